import { test as base, expect, Page } from '@playwright/test';

/// Paths a test navigates to on purpose expecting a 404 document. Chromium
/// logs "Failed to load resource … 404" for those; only they are excused.
const expectedNotFound = new WeakMap<Page, Set<string>>();

export function expectNotFoundDocument(page: Page, path: string) {
  const paths = expectedNotFound.get(page) ?? new Set<string>();
  paths.add(path);
  expectedNotFound.set(page, paths);
}

/// Every page in every test fails on a console error or an uncaught exception.
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const source = msg.location().url;
      const excused = msg.text().includes('status of 404')
        && source !== '' && expectedNotFound.get(page)?.has(new URL(source).pathname);
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
