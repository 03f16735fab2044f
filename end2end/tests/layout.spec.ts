import { test, expect, waitForHydration, snapshot } from './fixtures';

const widths = [
  { name: 'mobile', width: 375, height: 812 },
  { name: 'desktop', width: 1440, height: 900 },
];

for (const { name, width, height } of widths) {
  test(`layout at ${width}px (${name})`, async ({ page }) => {
    await page.setViewportSize({ width, height });
    await page.goto('/');
    await waitForHydration(page);

    // Nothing overflows sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);

    // Header essentials are on screen and usable at this width.
    for (const locator of [
      page.getByRole('link', { name: 'Mercato home' }),
      page.getByLabel('Search products'),
      page.getByTestId('account-menu-button'),
      page.getByTestId('cart-link'),
    ]) {
      await expect(locator).toBeVisible();
      const box = await locator.boundingBox();
      expect(box!.x).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width).toBeLessThanOrEqual(width);
    }

    // Product grid: two columns on phones, four on wide screens.
    const cards = page.getByTestId('product-card');
    const tops = await cards.evaluateAll((els) => els.slice(0, 4).map((e) => Math.round(e.getBoundingClientRect().top)));
    const perRow = tops.filter((t) => t === tops[0]).length;
    expect(perRow).toBe(name === 'mobile' ? 2 : 4);

    await expect(page.getByRole('contentinfo')).toBeVisible();
    await snapshot(page, `home-${name}`);
  });
}

test('keyboard users see where focus is', async ({ page }) => {
  await page.goto('/');
  await waitForHydration(page);
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to content' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeVisible();
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
  expect(outline).toBe('solid');
});
