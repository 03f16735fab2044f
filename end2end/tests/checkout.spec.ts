import { test, expect, waitForHydration, snapshot, expectFailedCall, admin, newCustomer, pickProduct, fillAddress } from './fixtures';

test('a customer checks out, sees the confirmation and the order in "my orders", and cancels it', async ({ page, request }) => {
  const item = await pickProduct(request, 5, 2);
  await newCustomer(page, 'Grace');

  // Add two units from the product page, then go through the cart.
  await page.goto(`/products/${item.product}?sku=${item.sku}`);
  await waitForHydration(page);
  await page.getByTestId('add-to-cart').click();
  await expect(page.getByTestId('added')).toBeVisible();
  await page.goto('/cart');
  await waitForHydration(page);
  const line = page.locator(`[data-testid="cart-line"][data-sku="${item.sku}"]`);
  await line.getByTestId('line-quantity').fill('2');
  await line.getByTestId('update-line').click();
  await expect(page.getByTestId('cart-badge')).toHaveText('2');
  await page.getByTestId('go-to-checkout').click();

  await expect(page).toHaveURL(/\/checkout$/);
  await waitForHydration(page);
  await expect(page.getByTestId('summary-line')).toHaveCount(1);
  await expect(page.getByTestId('summary-line')).toContainText(item.title);
  const total = await page.getByTestId('checkout-total').textContent();

  // The browser drew its own idempotency key once hydrated.
  const key = page.locator('input[name="idempotency_key"]');
  await expect(key).toHaveValue(/^[0-9a-f-]{36}$/);
  await fillAddress(page, 'Grace Hopper');
  await expect(page.getByTestId('card-pm_card_visa')).toBeChecked();
  await snapshot(page, 'checkout-filled');
  await page.getByTestId('place-order').click();

  // The confirmation: the order, authorised and confirmed, for the total shown.
  await expect(page).toHaveURL(/\/orders\/[0-9a-f-]{36}\?placed=1$/);
  await expect(page.getByTestId('order-confirmation')).toBeVisible();
  await expect(page.getByTestId('order-status')).toHaveText('Confirmed');
  await expect(page.getByTestId('order-total')).toHaveText(total!);
  await expect(page.getByTestId('order-item')).toContainText(item.title);
  await expect(page.getByTestId('cart-badge')).toHaveText('0');
  const orderId = page.url().match(/orders\/([0-9a-f-]{36})/)![1];
  await snapshot(page, 'order-confirmation');

  // "My orders", from the account menu.
  await page.getByTestId('account-menu-button').click();
  await page.getByTestId('my-orders').click();
  await expect(page).toHaveURL(/\/orders$/);
  const row = page.locator(`[data-testid="order-row"][data-order="${orderId}"]`);
  await expect(row).toBeVisible();
  await expect(row.getByTestId('order-status')).toHaveText('Confirmed');
  await snapshot(page, 'my-orders');

  // Cancel it: the authorisation is voided and the timeline ends in Cancelled.
  await row.getByRole('link').click();
  await expect(page).toHaveURL(new RegExp(`/orders/${orderId}$`));
  await waitForHydration(page);
  await page.getByTestId('cancel-order').click();
  await expect(page.getByTestId('cancel-done')).toBeVisible();
  await expect(page.getByTestId('order-status')).toHaveText('Cancelled');
  await expect(page.getByTestId('cancel-order')).toHaveCount(0);
  const steps = page.getByTestId('timeline-step');
  await expect(steps.last()).toHaveAttribute('data-status', 'CANCELLED');
  await expect(page.locator('[data-testid="timeline-step"][data-done="false"]')).toHaveCount(0);
  await snapshot(page, 'order-cancelled');

  // The REST API agrees, and the units are back on sale.
  const api = await page.request.get(`/api/v1/orders/${orderId}`);
  expect((await api.json()).status).toBe('CANCELLED');
});

test('two customers race for the last unit: one order, and the other is told which item sold out', async ({ browser, request }) => {
  const item = await pickProduct(request, 1, 3);
  // Leave exactly one unit (an admin may set any SKU's stock).
  const adminLogin = await (await request.post('/api/v1/auth/login', { data: admin })).json();
  const set = await request.put(`/api/v1/seller/skus/${item.sku}/stock`, {
    data: { stock_count: 1 }, headers: { authorization: `Bearer ${adminLogin.token}` },
  });
  expect(set.status()).toBe(200);

  // Two shoppers in their own browsers, each with the last unit in the cart.
  const shoppers = await Promise.all(['Ada', 'Alan'].map(async (name) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const token = await newCustomer(page, name);
    const added = await page.request.post('/api/v1/cart/items', {
      data: { sku_id: item.sku, quantity: 1 }, headers: { authorization: `Bearer ${token}` },
    });
    expect(added.status()).toBe(200);
    await page.goto('/checkout');
    await waitForHydration(page);
    await fillAddress(page, `${name} Tester`);
    return { name, context, page, errors };
  }));

  // Both press "Place order" at once.
  await Promise.all(shoppers.map((s) => s.page.getByTestId('place-order').click()));
  const outcome = async (s: typeof shoppers[number]) => {
    const placed = s.page.getByTestId('order-confirmation');
    const refused = s.page.getByTestId('checkout-error');
    await expect(placed.or(refused)).toBeVisible();
    return (await placed.isVisible()) ? 'placed' : 'refused';
  };
  const results = await Promise.all(shoppers.map(outcome));
  expect([...results].sort()).toEqual(['placed', 'refused']);

  const loser = shoppers[results.indexOf('refused')];
  await expect(loser.page.getByTestId('checkout-error')).toContainText(`“${item.title}” is sold out`);
  await expect(loser.page).toHaveURL(/\/checkout$/);
  await snapshot(loser.page, 'checkout-sold-out');
  for (const s of shoppers) {
    expect(s.errors, `${s.name}: no uncaught errors`).toEqual([]);
    await s.context.close();
  }
});

test('a declined card is explained and nothing is ordered; the page offers another try', async ({ page, request }) => {
  const item = await pickProduct(request, 3, 4);
  const token = await newCustomer(page, 'Edsger');
  await page.request.post('/api/v1/cart/items', { data: { sku_id: item.sku, quantity: 1 }, headers: { authorization: `Bearer ${token}` } });
  // The server function answers 402, as the REST API does.
  expectFailedCall(page, '/api/place_order', 402);

  await page.goto('/checkout');
  await waitForHydration(page);
  await fillAddress(page, 'Edsger Dijkstra');
  await page.getByTestId('card-pm_card_chargeCustomerFail').check();
  const declinedKey = await page.locator('input[name="idempotency_key"]').inputValue();
  await page.getByTestId('place-order').click();
  await expect(page.getByTestId('checkout-error')).toContainText('Your card was declined');
  await expect(page.getByTestId('checkout-error').getByRole('link')).toHaveCount(0);
  await snapshot(page, 'checkout-declined');
  await page.setViewportSize({ width: 375, height: 812 });
  await snapshot(page, 'checkout-declined-mobile');
  const orders = await (await page.request.get('/api/v1/orders')).json();
  expect(orders.orders).toEqual([]);

  // Choosing the good card is a new attempt with a new key, and it goes through.
  await page.getByTestId('card-pm_card_visa').check();
  await expect(page.locator('input[name="idempotency_key"]')).not.toHaveValue(declinedKey);
  await page.getByTestId('place-order').click();
  await expect(page.getByTestId('order-confirmation')).toBeVisible();
});
