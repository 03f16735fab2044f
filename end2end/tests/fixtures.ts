import { test as base, expect, Page } from '@playwright/test';

/// Every page in every test fails on a console error or an uncaught exception.
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
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
