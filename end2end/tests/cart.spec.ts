import { test, expect, waitForHydration, snapshot, expectFailedCall } from './fixtures';

const ada = { email: 'ada@mercato.test', password: 'shop-demo-2026' };

test('a guest cart merges into the account at sign-in, then lines change, go, and sign-out ends it', async ({ page, request, baseURL }) => {
  // Two products that can be bought, each with its first SKU in stock.
  const list = await (await request.get('/api/v1/products?in_stock=true&sort=rating&per_page=20')).json();
  const picks: { product: string; sku: string; title: string }[] = [];
  for (const hit of list.hits) {
    const p = await (await request.get(`/api/v1/products/${hit.id}`)).json();
    if (p.skus[0].available >= 5) picks.push({ product: p.id, sku: p.skus[0].sku_id, title: p.title });
    if (picks.length === 2) break;
  }
  expect(picks.length).toBe(2);
  const [a, b] = picks;

  // Ada's account already holds two of the first item (added from another device).
  const login = await (await request.post('/api/v1/auth/login', { data: ada })).json();
  const added = await request.post('/api/v1/cart/items', {
    data: { sku_id: a.sku, quantity: 2 }, headers: { authorization: `Bearer ${login.token}` },
  });
  expect(added.status()).toBe(200);

  // As a guest, add one of each.
  for (const item of [a, b]) {
    await page.goto(`/products/${item.product}?sku=${item.sku}`);
    await waitForHydration(page);
    await page.getByTestId('add-to-cart').click();
    await expect(page.getByTestId('added')).toBeVisible();
  }
  await expect(page.getByTestId('cart-badge')).toHaveText('2');

  // Sign in: the guest cart folds into Ada's.
  await page.goto('/login');
  await waitForHydration(page);
  await page.getByLabel('Email').fill(ada.email);
  await page.getByLabel('Password').fill(ada.password);
  await page.getByTestId('sign-in').click();
  await expect(page).toHaveURL(/\/cart$/);
  const lineA = page.locator(`[data-testid="cart-line"][data-sku="${a.sku}"]`);
  const lineB = page.locator(`[data-testid="cart-line"][data-sku="${b.sku}"]`);
  await expect(lineA.getByTestId('line-quantity')).toHaveValue('3');
  await expect(lineB.getByTestId('line-quantity')).toHaveValue('1');
  await expect(page.getByTestId('cart-badge')).toHaveText('4');
  await snapshot(page, 'cart-merged');

  // Change a quantity, then remove a line.
  await lineB.getByTestId('line-quantity').fill('3');
  await lineB.getByTestId('update-line').click();
  await expect(page.getByTestId('cart-badge')).toHaveText('6');
  await lineA.getByTestId('remove-line').click();
  await expect(lineA).toHaveCount(0);
  await expect(lineB.getByTestId('line-quantity')).toHaveValue('3');
  await expect(page.getByTestId('cart-badge')).toHaveText('3');

  // Sign out: the menu offers sign-in again and the cart is no longer Ada's.
  await page.getByTestId('account-menu-button').click();
  await expect(page.getByTestId('signed-in-as')).toContainText('Ada');
  await page.getByTestId('sign-out').click();
  await page.getByTestId('account-menu-button').click();
  await expect(page.getByTestId('account-menu').getByRole('link', { name: 'Sign in' })).toBeVisible();
  await expect(page.getByTestId('cart-badge')).toHaveText('0');
  await snapshot(page, 'signed-out');
});

test('a wrong password is refused without saying which part was wrong', async ({ page }) => {
  // The sign-in server function answers 401, as the REST API does.
  expectFailedCall(page, '/api/sign_in', 401);
  await page.goto('/login');
  await waitForHydration(page);
  await page.getByLabel('Email').fill(ada.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByTestId('sign-in').click();
  await expect(page.getByTestId('form-error')).toHaveText('wrong email or password');
  await expect(page).toHaveURL(/\/login$/);
});
