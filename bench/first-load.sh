#!/usr/bin/env bash
# What each storefront page makes a browser download on its first load:
# every wasm, JS and CSS file it fetched from /pkg until it hydrated,
# measured as gzip -9 of the built file (what a shopper's browser receives
# from a server compressing with gzip; brotli, which `cargo xtask run`
# serves, is smaller still). Pages: home, a category, a search, a product,
# cart, checkout, orders, sign-in, register.
# Usage: bench/first-load.sh   with the shop running from this checkout's
# release build (`cargo xtask run`); BASE overrides http://127.0.0.1:3000.
# Needs the repository's npm packages (Playwright) and Debian's Chromium.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:-http://127.0.0.1:3000}
curl -sf "$BASE/readyz" >/dev/null || { echo "the shop is not answering at $BASE: start it with cargo xtask run" >&2; exit 1; }
category=$(curl -sf "$BASE/api/v1/categories" | python3 -c 'import json, sys; print(next(c["slug"] for c in json.load(sys.stdin)["categories"] if c["product_count"] > 0))')
product=$(curl -sf "$BASE/api/v1/products?category=$category&per_page=1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["hits"][0]["id"])')

cd "$ROOT"
BASE=$BASE PAGES="home=/ category=/c/$category search=/search?q=headphones product=/products/$product cart=/cart checkout=/checkout orders=/orders sign-in=/login register=/register" \
node - <<'EOF'
const { chromium } = require('playwright');
const fs = require('node:fs');
const zlib = require('node:zlib');
const path = require('node:path');

const gz = (file) => zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;
const kind = (url) => (url.endsWith('.wasm') ? 'wasm' : url.endsWith('.js') ? 'js' : url.endsWith('.css') ? 'css' : null);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  const rows = [];
  for (const entry of process.env.PAGES.split(' ')) {
    const [name, route] = entry.split('=');
    // A fresh context per page: nothing cached from the page before.
    const context = await browser.newContext();
    const page = await context.newPage();
    const files = new Set();
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith('/pkg/') && kind(url.pathname)) files.add(url.pathname);
    });
    await page.goto(process.env.BASE + route);
    await page.waitForSelector('html[data-hydrated="true"]', { timeout: 30000 });
    await page.waitForLoadState('networkidle');
    const sum = { wasm: 0, js: 0, css: 0 };
    const names = [];
    for (const file of [...files].sort()) {
      sum[kind(file)] += gz(path.join('target/site', file));
      names.push(path.basename(file));
    }
    rows.push({ name, route, ...sum, total: sum.wasm + sum.js + sum.css, files: names.length, names });
    await context.close();
  }
  await browser.close();
  const kib = (n) => (n / 1024).toFixed(1);
  console.log('| page | route | wasm | JS | CSS | first load (gzip -9) | files |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.name} | \`${r.route}\` | ${kib(r.wasm)} KiB | ${kib(r.js)} KiB | ${kib(r.css)} KiB | **${kib(r.total)} KiB** | ${r.files} |`);
  }
  for (const r of rows) console.error(`${r.name}: ${r.names.join(' ')}`);
})();
EOF
