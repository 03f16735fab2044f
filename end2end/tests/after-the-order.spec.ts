import { test, expect, waitForHydration, snapshot, expectFailedCall, admin, registerCustomer, pickProduct, fillAddress } from './fixtures';

// The browser suite's server gets SMTP_URL and MAILDEV_URL from `cargo xtask test`.
const maildev = process.env.MAILDEV_URL ?? 'http://127.0.0.1:1080';

type Mail = { subject: string; to: { address: string }[]; headers: Record<string, string> };

test('a customer watches the order ship and arrive without reloading, gets the emails, and reviews the product', async ({ page, request }) => {
  // Shipping by hand, delivery after the e2e server's short delay, emails
  // through the bus: more than the default 30 s on a loaded machine.
  test.setTimeout(120_000);
  const item = await pickProduct(request, 2, 5);
  const customer = await registerCustomer(page, 'Barbara');
  const before = await (await request.get(`/api/v1/products/${item.product}`)).json();

  // Order it through the storefront.
  await page.goto(`/products/${item.product}?sku=${item.sku}`);
  await waitForHydration(page);
  await page.getByTestId('add-to-cart').click();
  await expect(page.getByTestId('added')).toBeVisible();
  await page.goto('/checkout');
  await waitForHydration(page);
  await fillAddress(page, 'Barbara Liskov');
  await page.getByTestId('place-order').click();
  await expect(page).toHaveURL(/\/orders\/[0-9a-f-]{36}\?placed=1$/);
  const orderId = page.url().match(/orders\/([0-9a-f-]{36})/)![1];
  await waitForHydration(page);
  await expect(page.getByTestId('order-status')).toHaveText('Confirmed');
  await expect(page.getByTestId('review-item')).toHaveCount(0);

  // The seller's side ships it (the same path as the warehouse). The open
  // page is never reloaded: a marker set on its DOM survives only if it is not.
  await page.evaluate(() => { (window as unknown as { stillHere: boolean }).stillHere = true; });
  const adminToken = (await (await request.post('/api/v1/auth/login', { data: admin })).json()).token;
  const tracking = `E2E${Date.now()}`;
  const shipped = await request.post(`/api/v1/seller/orders/${orderId}/ship`, {
    headers: { Authorization: `Bearer ${adminToken}` },
    data: { carrier: 'DHL', tracking_number: tracking },
  });
  expect(shipped.status()).toBe(200);

  await expect(page.getByTestId('order-status')).toHaveText('Shipped', { timeout: 15_000 });
  const shippedStep = page.locator('[data-testid="timeline-step"][data-status="SHIPPED"]');
  await expect(shippedStep).toHaveAttribute('data-done', 'true');
  await expect(shippedStep.getByTestId('carrier')).toHaveText('DHL');
  await expect(shippedStep.getByTestId('tracking-number')).toHaveText(tracking);
  await expect(page.getByTestId('cancel-order')).toHaveCount(0);
  await snapshot(page, 'order-shipped');

  await expect(page.getByTestId('order-status')).toHaveText('Delivered', { timeout: 30_000 });
  await expect(page.locator('[data-testid="timeline-step"][data-status="DELIVERED"]')).toHaveAttribute('data-done', 'true');
  expect(await page.evaluate(() => (window as unknown as { stillHere?: boolean }).stillHere)).toBe(true);
  await snapshot(page, 'order-delivered');

  // One email per step, each naming this order, in maildev.
  const subjects = async () => {
    const mails: Mail[] = await (await request.get(`${maildev}/email`)).json();
    return mails.filter((m) => m.to.some((t) => t.address === customer.email)).map((m) => m.subject).sort();
  };
  await expect.poll(subjects, { timeout: 30_000 }).toEqual([
    `Your Mercato order ${orderId} has been delivered`,
    `Your Mercato order ${orderId} has shipped`,
    `Your Mercato order ${orderId} is placed`,
  ]);

  // The delivered order offers a review of its item.
  await page.getByTestId('review-item').click();
  await expect(page).toHaveURL(new RegExp(`/products/${item.product}/review$`));
  await waitForHydration(page);
  await expect(page.getByTestId('review-product')).toHaveText(item.title);
  // Publishing without a rating is explained (a 422), and nothing is written.
  expectFailedCall(page, '/api/write_review', 422);
  await page.getByTestId('review-title-input').fill('Does what it says <b>on the tin</b>');
  await page.getByTestId('review-body-input').fill('Arrived quickly.\nWell made, and the <script>colour</script> is as shown.');
  await page.getByTestId('submit-review').click();
  await expect(page.getByTestId('review-error')).toContainText('Choose a rating');
  await page.getByTestId('rating-4').check();
  await snapshot(page, 'review-form');
  await page.getByTestId('submit-review').click();

  // Back on the product page: the review is listed (escaped, as text) and
  // the product's rating and count moved.
  await expect(page).toHaveURL(new RegExp(`/products/${item.product}\\?reviewed=1#reviews$`));
  const count = before.rating_count + 1;
  const average = (before.rating_avg * before.rating_count + 4) / count;
  const reviews = page.getByTestId('reviews');
  await expect(reviews.getByTestId('review-count')).toHaveAttribute('data-count', String(count));
  await expect(reviews.getByTestId('review-average')).toHaveText(average.toFixed(1));
  const mine = reviews.getByTestId('review').first();
  await expect(mine).toHaveAttribute('data-rating', '4');
  await expect(mine.getByTestId('review-title')).toHaveText('Does what it says <b>on the tin</b>');
  await expect(mine.getByTestId('review-body')).toContainText('<script>colour</script>');
  await expect(mine).toContainText('Barbara');
  await expect(mine).toContainText('Verified buyer');
  const fours = reviews.locator('[data-testid="histogram-row"][data-stars="4"]');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(item.title);
  await expect(page.getByTestId('rating').first()).toContainText(`${average.toFixed(1)} (${count})`);
  await snapshot(page, 'product-reviewed');

  // The public API agrees, and so does the histogram.
  const after = await (await request.get(`/api/v1/products/${item.product}/reviews`)).json();
  expect(after.rating_count).toBe(count);
  await expect(fours).toHaveAttribute('data-count', String(after.histogram['4']));
});
