import { test, expect, waitForHydration, snapshot, expectNotFoundDocument } from './fixtures';

test('home page is server-rendered, styled by Tailwind and hydrates', async ({ page }) => {
  const response = await page.goto('/');
  expect(response?.status()).toBe(200);
  await expect(page).toHaveTitle('Mercato');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('sellers you can trust');
  await expect(page.getByRole('heading', { name: 'New arrivals' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Top rated, in stock' })).toBeVisible();
  await expect(page.getByTestId('product-card')).toHaveCount(12);

  // Tailwind's generated CSS is applied: the primary button uses the brand colour.
  const searchButton = page.getByRole('button', { name: 'Search' });
  await expect(searchButton).toHaveCSS('background-color', 'rgb(23, 89, 90)');

  await waitForHydration(page);
  await snapshot(page, 'home');
});

test('the account menu opens only once the wasm has hydrated the page', async ({ page }) => {
  await page.goto('/');
  await waitForHydration(page);
  const button = page.getByTestId('account-menu-button');
  const menu = page.getByTestId('account-menu');
  await expect(menu).toBeHidden();
  await button.click();
  await expect(menu).toBeVisible();
  await expect(button).toHaveAttribute('aria-expanded', 'true');
  await expect(menu.getByRole('link', { name: 'Sign in' })).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(menu).toBeHidden();
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the page renders but the menu stays closed: interactivity comes from hydration', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByTestId('product-card')).toHaveCount(12);
    await expect(page.locator('html')).not.toHaveAttribute('data-hydrated', 'true');
    await page.getByTestId('account-menu-button').click();
    await expect(page.getByTestId('account-menu')).toBeHidden();
  });
});

test.describe('search without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the header search is a plain GET form that lands on real results', async ({ page }) => {
    await page.goto('/');
    const box = page.getByLabel('Search products');
    await box.fill('headphones');
    await box.press('Enter');
    await expect(page).toHaveURL(/\/search\?q=headphones/);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Results for “headphones”');
    await expect(page.getByTestId('product-card').first()).toBeVisible();
  });
});

test('unknown pages get a real 404 page', async ({ page }) => {
  expectNotFoundDocument(page, '/this/page/does-not-exist');
  const response = await page.goto('/this/page/does-not-exist');
  expect(response?.status()).toBe(404);
  await expect(page).toHaveTitle('Page not found · Mercato');
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await waitForHydration(page);
  await snapshot(page, 'not-found');
  // Client-side navigation back: the hydrated router fetches the home data via a server function.
  await page.getByRole('link', { name: 'Back to the shop' }).click();
  await expect(page).toHaveURL('/');
  await expect(page.getByTestId('product-card')).toHaveCount(12);
});

test('the API answers unknown routes with JSON, not the HTML page', async ({ request }) => {
  const response = await request.get('/api/v1/nothing-here');
  expect(response.status()).toBe(404);
  expect(await response.json()).toMatchObject({ error: 'not_found' });
});
