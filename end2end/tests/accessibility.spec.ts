import AxeBuilder from '@axe-core/playwright';
import { Page } from '@playwright/test';
import { test, expect, waitForHydration, expectNotFoundDocument, registerCustomer, pickProduct, fillAddress } from './fixtures';

/// axe-core's WCAG 2.1 A/AA rules on the hydrated page: no serious or
/// critical violation. A failure lists each rule with the elements it hit.
async function expectAccessible(page: Page, name: string) {
  await waitForHydration(page);
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const blocking = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
  expect(blocking, `axe on ${name}`).toEqual([]);
  // The rules ran: an empty page or a failed load would pass vacuously.
  expect(results.passes.length, `axe checked ${name}`).toBeGreaterThan(10);
}

test('the browsing pages have no serious accessibility violations', async ({ page, request }) => {
  await page.goto('/');
  await expectAccessible(page, 'home');
  await page.goto('/c/electronics');
  await expectAccessible(page, 'category');
  await page.goto('/search?q=lamp');
  await expectAccessible(page, 'search');
  const item = await pickProduct(request, 1, 7);
  await page.goto(`/products/${item.product}`);
  await expectAccessible(page, 'product');
  await page.goto('/login');
  await expectAccessible(page, 'sign-in');
  await page.goto('/register');
  await expectAccessible(page, 'register');
  expectNotFoundDocument(page, '/no-such-page');
  const missing = await page.goto('/no-such-page');
  expect(missing?.status()).toBe(404);
  await expectAccessible(page, '404');
});

test('the buying pages have no serious accessibility violations', async ({ page, request }) => {
  test.setTimeout(90_000);
  const item = await pickProduct(request, 2, 8);
  await registerCustomer(page, 'Grace');
  await page.goto(`/products/${item.product}?sku=${item.sku}`);
  await waitForHydration(page);
  await page.getByTestId('add-to-cart').click();
  await expect(page.getByTestId('added')).toBeVisible();
  await page.goto('/cart');
  await expectAccessible(page, 'cart');
  await page.goto('/checkout');
  await expectAccessible(page, 'checkout');
  await fillAddress(page, 'Grace Hopper');
  await page.getByTestId('place-order').click();
  await expect(page).toHaveURL(/\/orders\/[0-9a-f-]{36}\?placed=1$/);
  await expectAccessible(page, 'order');
  await page.goto('/orders');
  await expectAccessible(page, 'orders');
});
