import { test, expect, waitForHydration, pickProduct } from './fixtures';

// The storefront's pages load lazily in three groups (app/src/routes.rs):
// browsing, the account forms, and buying. A product page's first load
// must carry the browsing group only, its first interaction must work,
// and going on to the cart must fetch the buying group then.
test('a product page loads the browsing code only; the cart brings its own on the way there', async ({ page }) => {
  const fetched: string[] = [];
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith('/pkg/') && path.endsWith('.wasm')) fetched.push(path);
  });
  const group = (name: string) => fetched.some((path) => path.startsWith(`/pkg/split_${name}_`));

  const { product } = await pickProduct(page.request, 2, 1);
  await page.goto(`/products/${product}`);
  await waitForHydration(page);
  expect(group('browsing'), fetched.join(' ')).toBe(true);
  expect(group('buying'), fetched.join(' ')).toBe(false);
  expect(group('account'), fetched.join(' ')).toBe(false);

  // The lazily loaded page answers its first click.
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await expect(page.getByTestId('cart-badge')).toHaveText('1');
  expect(group('buying')).toBe(false);

  // A client-side move into the buying group fetches it, and it works.
  await page.getByTestId('cart-link').click();
  await expect(page).toHaveURL(/\/cart$/);
  await expect(page.getByTestId('cart-line')).toHaveCount(1);
  expect(group('buying'), fetched.join(' ')).toBe(true);
  expect(group('account')).toBe(false);
});
