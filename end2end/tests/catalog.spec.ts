import { test, expect, waitForHydration, snapshot, expectNotFoundDocument } from './fixtures';

/// "€1,299.00" → 1299.
function euros(text: string): number {
  return Number(text.replace(/[^0-9.]/g, ''));
}

test('browse a category, then filter by brand and price', async ({ page }) => {
  await page.goto('/c/electronics');
  await waitForHydration(page);
  await expect(page.getByRole('heading', { level: 1, name: 'Electronics' })).toBeVisible();
  await expect(page.getByTestId('product-card')).toHaveCount(24);
  await expect(page.getByRole('link', { name: /^Audio/ })).toBeVisible();

  // Pick the busiest brand and a price range, then apply.
  const brandBox = page.getByTestId('brand-facet').getByRole('checkbox').first();
  const brand = await brandBox.getAttribute('value');
  await brandBox.check();
  await page.getByTestId('price-min').fill('50');
  await page.getByTestId('price-max').fill('500');
  await page.getByTestId('apply-filters').click();

  await expect(page).toHaveURL(/brand=/);
  await expect(page).toHaveURL(/price_min=50/);
  const cards = page.getByTestId('product-card');
  await expect(cards.first()).toBeVisible();
  const count = await cards.count();
  expect(count).toBeGreaterThan(0);
  for (let i = 0; i < count; i++) {
    const card = cards.nth(i);
    await expect(card.locator('p').first()).toHaveText(brand!, { ignoreCase: true });
    const price = euros(await card.locator('p.text-lg').innerText());
    expect(price).toBeGreaterThanOrEqual(50);
    expect(price).toBeLessThanOrEqual(500);
  }
  // The form shows exactly the filters in the URL, even though the page was
  // re-rendered in place: one brand ticked, the prices kept.
  const facet = page.getByTestId('brand-facet');
  await expect(facet.getByRole('checkbox', { name: new RegExp(`^${brand}`) })).toBeChecked();
  expect(await facet.locator('input:checked').count()).toBe(1);
  await expect(page.getByTestId('price-min')).toHaveValue('50');
  await expect(page.getByTestId('price-max')).toHaveValue('500');
  await snapshot(page, 'category-filtered');
});

test('search with a typo, with suggestions as you type', async ({ page }) => {
  await page.goto('/');
  await waitForHydration(page);
  const box = page.getByLabel('Search products');
  await box.pressSequentially('headphnoes', { delay: 20 });
  const suggestions = page.getByTestId('suggestions');
  await expect(suggestions).toBeVisible();
  await expect(suggestions.getByRole('option').first()).toContainText('Headphones');
  await snapshot(page, 'search-suggestions');

  await box.press('Enter');
  await expect(page).toHaveURL(/\/search\?q=headphnoes/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Results for “headphnoes”');
  const titles = await page.getByTestId('product-card-title').allInnerTexts();
  expect(titles.length).toBeGreaterThan(0);
  for (const title of titles) expect(title).toContain('Headphones');
  await expect(page.getByTestId('result-count')).toContainText('products');
  await snapshot(page, 'search-typo');
});

test('open a product, switch variant and image without a reload', async ({ page, request }) => {
  // A product whose variants have different prices.
  const list = await (await request.get('/api/v1/products?q=smartphone&per_page=48')).json();
  let product: any = null;
  for (const hit of list.hits) {
    const p = await (await request.get(`/api/v1/products/${hit.id}`)).json();
    if (p.skus.length > 1 && p.images.length > 1 && p.skus[0].price_cents !== p.skus[1].price_cents) { product = p; break; }
  }
  expect(product, 'a multi-variant product in the demo catalog').not.toBeNull();

  await page.goto('/search?q=smartphone');
  await waitForHydration(page);
  await page.goto(`/products/${product.id}`);
  await waitForHydration(page);
  await expect(page).toHaveTitle(`${product.title} · Mercato`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(product.title);
  await expect(page.getByTestId('stock')).toBeVisible();

  // A marker on window survives client-side navigation, not a reload.
  await page.evaluate(() => ((window as any).__noReload = true));
  const second = product.skus[1];
  await page.getByTestId('variant').nth(1).click();
  await expect(page).toHaveURL(new RegExp(`sku=${second.sku_id}`));
  const expected = (second.price_cents / 100).toFixed(2);
  await expect(page.getByTestId('price')).toContainText(expected.replace(/\B(?=(\d{3})+(?!\d))/g, ','));
  await expect(page.getByTestId('variant').nth(1)).toHaveAttribute('aria-current', 'true');
  const stock = page.getByTestId('stock');
  const wanted = second.availability === 'out_of_stock' ? 'Out of stock' : second.availability === 'low_stock' ? `Only ${second.available} left` : 'In stock';
  await expect(stock).toHaveText(wanted);

  const main = page.getByTestId('main-image');
  const before = await main.getAttribute('src');
  await page.getByRole('link', { name: 'Show image 2' }).click();
  await expect(main).not.toHaveAttribute('src', before!);
  // The gallery works from the keyboard: each thumbnail is a focusable
  // link that Enter follows, and says which image is shown.
  const first = page.getByRole('link', { name: 'Show image 1' });
  await first.focus();
  await expect(first).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(main).toHaveAttribute('src', before!);
  await expect(first).toHaveAttribute('aria-current', 'true');
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  await snapshot(page, 'product-variant');
});

test('an unknown product is a real 404', async ({ page }) => {
  const path = '/products/01930000-0000-7000-8000-000000000000';
  expectNotFoundDocument(page, path);
  const response = await page.goto(path);
  expect(response!.status()).toBe(404);
  await expect(page.getByTestId('not-found')).toBeVisible();
});
