import { defineConfig } from '@playwright/test';
import * as path from 'node:path';

// `cargo xtask test` builds the server, seeds a fresh database and sets these;
// the defaults let `npx playwright test` run against a debug build by hand.
const port = Number(process.env.MERCATO_E2E_PORT ?? 3100);
const root = path.resolve(__dirname, '..');
const server = process.env.MERCATO_E2E_SERVER ?? path.join(root, 'target/debug/server');
const baseURL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      // Debian's Chromium: Playwright's own browser download is not reachable here.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
  webServer: {
    command: `"${server}" serve`,
    cwd: root,
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      MERCATO_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? path.join(root, 'target/site'),
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      // The warehouse never picks on its own during the suite (an hour, the
      // default), so a test can cancel what it ordered; an order shipped by
      // hand is delivered a few seconds later.
      MERCATO_WAREHOUSE_DELIVER_MS: '3000',
      MERCATO_WAREHOUSE_POLL_MS: '250',
      // A flash sale's payment window, short enough for a test to watch an
      // unpaid unit go to the next in line.
      MERCATO_FLASH_PAY_WINDOW_SECS: '8',
    },
  },
});
