import { Browser, Page } from '@playwright/test';
import { test, expect, waitForHydration, snapshot, admin, newCustomer, pickProduct } from './fixtures';

/// A shopper in a browser context of their own, at a phone's or a laptop's width.
async function shopper(browser: Browser, name: string, width: number): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: width < 500 ? 800 : 900 } });
  const page = await context.newPage();
  await newCustomer(page, name);
  return page;
}

test('two shoppers in a flash sale: the countdown opens it, one buys the last unit, the other waits in line and gets it when the payment window runs out', async ({ browser, request }) => {
  test.setTimeout(120_000);
  const item = await pickProduct(request, 2, 6);
  const product = await (await request.get(`/api/v1/products/${item.product}`)).json();
  const regular = product.skus[0].price_cents as number;
  const adminToken = (await (await request.post('/api/v1/auth/login', { data: admin })).json()).token;
  // Time enough to open both pages before the start on a loaded machine.
  const startsAt = new Date(Date.now() + 15_000);
  const created = await request.post('/api/v1/seller/flash-sales', {
    headers: { Authorization: `Bearer ${adminToken}` },
    data: {
      sku_id: item.sku, quantity: 1, price_cents: Math.floor(regular / 2), per_user_limit: 1,
      starts_at: startsAt.toISOString(), ends_at: new Date(Date.now() + 10 * 60_000).toISOString(),
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const sale = (await created.json()).id as string;

  const ada = await shopper(browser, 'Ada', 1280);
  const bob = await shopper(browser, 'Bob', 375);
  for (const page of [ada, bob]) {
    await page.goto(`/flash/${sale}`);
    await waitForHydration(page);
    await expect(page.getByTestId('flash-status')).toHaveAttribute('data-status', 'Scheduled');
    await expect(page.getByTestId('buy-now')).toBeDisabled();
    await expect(page.getByTestId('remaining')).toHaveText('1');
    await snapshot(page, `flash-countdown-${page.viewportSize()!.width}`);
  }
  // The countdown runs without a reload.
  const first = await ada.getByTestId('countdown').textContent();
  await expect(ada.getByTestId('countdown')).not.toHaveText(first!);

  // At the start the page opens the sale by itself; Ada takes the only unit.
  await expect(ada.getByTestId('buy-now')).toBeEnabled({ timeout: 30_000 });
  await ada.getByTestId('buy-now').click();
  await expect(ada.getByTestId('reserved')).toBeVisible();
  await expect(ada.getByTestId('cart-badge')).toHaveText('1');
  await expect(ada.getByTestId('reserved')).toHaveAttribute('data-promoted', 'false');
  await expect(ada.getByTestId('remaining')).toHaveText('0');
  await snapshot(ada, 'flash-reserved-1280');

  // Bob finds none left and joins the line instead of a flat refusal.
  await expect(bob.getByTestId('buy-now')).toBeEnabled({ timeout: 10_000 });
  // With every unit held the button says what it does now.
  await expect(bob.getByTestId('buy-now')).toHaveText('Join the line', { timeout: 10_000 });
  // In line, his page follows his state by long poll, not by asking each second.
  const following = bob.waitForRequest((r) => r.url().endsWith('/api/flash_wait'));
  await bob.getByTestId('buy-now').click();
  await expect(bob.getByTestId('position')).toHaveText('1');
  await following;
  await snapshot(bob, 'flash-waiting-375');

  // Ada never pays: when her window runs out the unit is Bob's, and his
  // open page says so by itself.
  await expect(bob.getByTestId('reserved')).toHaveAttribute('data-promoted', 'true', { timeout: 30_000 });
  await expect(bob.getByTestId('promoted')).toBeVisible();
  await expect(bob.getByTestId('cart-badge')).toHaveText('1');
  await expect(ada.getByTestId('reserved')).toHaveCount(0, { timeout: 10_000 });
  await expect(ada.getByTestId('hold-expired')).toBeVisible();
  await snapshot(bob, 'flash-promoted-375');
  await snapshot(ada, 'flash-after-1280');

  // The unit waits in Bob's cart at the sale price.
  const cart = await (await bob.request.get('/api/v1/cart')).json();
  const line = cart.lines.find((l: { sku_id: string }) => l.sku_id === item.sku);
  expect(line.unit_cents).toBe(Math.floor(regular / 2));
  expect(line.flash_sale_id).toBe(sale);
});
