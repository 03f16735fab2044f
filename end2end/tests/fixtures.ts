import { test as base, expect, APIRequestContext, Page } from '@playwright/test';

/// Paths a test navigates to on purpose expecting a 404 document. Chromium
/// logs "Failed to load resource … 404" for those; only they are excused.
const expectedNotFound = new WeakMap<Page, Set<string>>();

export function expectNotFoundDocument(page: Page, path: string) {
  const paths = expectedNotFound.get(page) ?? new Set<string>();
  paths.add(path);
  expectedNotFound.set(page, paths);
}

/// Server calls a test makes fail on purpose (say, a wrong password: 401).
/// Chromium logs "Failed to load resource … status of N" for those; only
/// calls to URLs starting with a declared path and answering that status are excused.
const expectedFailures = new WeakMap<Page, { path: string; status: number }[]>();

export function expectFailedCall(page: Page, path: string, status: number) {
  const list = expectedFailures.get(page) ?? [];
  list.push({ path, status });
  expectedFailures.set(page, list);
}

/// Every page in every test fails on a console error or an uncaught exception.
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const source = msg.location().url;
      const path = source === '' ? '' : new URL(source).pathname;
      const excused = (msg.text().includes('status of 404') && source !== '' && expectedNotFound.get(page)?.has(path))
        || (expectedFailures.get(page) ?? []).some((f) => path.startsWith(f.path) && msg.text().includes(`status of ${f.status}`));
      if (!excused) errors.push(`${msg.text()} (${source || 'page'})`);
    });
    page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
    await use(errors);
    expect(errors, 'no console errors').toEqual([]);
  }, { auto: true }],
});

export { expect };

/// Waits for the marker only the hydrated app sets (see `hydrate()` in app/src/lib.rs).
export async function waitForHydration(page: Page) {
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
}

/// Saves a full-page screenshot as a test artifact (kept in test-results/).
export async function snapshot(page: Page, name: string) {
  const file = test.info().outputPath(`${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await test.info().attach(name, { path: file, contentType: 'image/png' });
}

/// The seeded admin (may act for any seller).
export const admin = { email: 'admin@mercato.test', password: 'admin-demo-2026' };

/// A new customer, signed in in this browser context (the REST sign-up sets
/// the session cookie); returns their address and bearer token.
export async function registerCustomer(page: Page, name: string): Promise<{ email: string; token: string }> {
  const email = `${name.toLowerCase()}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@e2e.mercato.test`;
  const res = await page.request.post('/api/v1/auth/register', { data: { email, password: 'checkout-e2e-2026', name } });
  expect(res.status()).toBe(201);
  return { email, token: (await res.json()).token };
}

/// Like `registerCustomer`, for tests that need only the bearer token.
export async function newCustomer(page: Page, name: string): Promise<string> {
  return (await registerCustomer(page, name)).token;
}

/// A product whose first SKU has at least `min` units. Each test takes its
/// own page of the newest products (they run in parallel and change stock),
/// and none of the top-rated ones the cart test uses.
export async function pickProduct(request: APIRequestContext, min: number, page: number) {
  const avoid = (await (await request.get('/api/v1/products?in_stock=true&sort=rating&per_page=20')).json()).hits.map((h: { id: string }) => h.id);
  const list = await (await request.get(`/api/v1/products?in_stock=true&sort=newest&per_page=20&page=${page}`)).json();
  for (const hit of list.hits) {
    if (avoid.includes(hit.id)) continue;
    const p = await (await request.get(`/api/v1/products/${hit.id}`)).json();
    const sku = p.skus[0];
    if (sku.available >= min) return { product: p.id as string, sku: sku.sku_id as string, title: p.title as string };
  }
  throw new Error('no product with enough stock in the seed');
}

export async function fillAddress(page: Page, name: string) {
  await page.getByLabel('Full name').fill(name);
  await page.getByLabel('Address line 1').fill('12 Analytical Row');
  await page.getByLabel('Town or city').fill('London');
  await page.getByLabel('Postcode').fill('EC1A 1BB');
  await page.getByLabel('Country').selectOption('GB');
}
