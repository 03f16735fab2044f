import { test as base, expect, Page } from '@playwright/test';

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
