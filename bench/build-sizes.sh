#!/usr/bin/env bash
# Release build of the storefront and server, then what a shopper downloads
# and what an operator deploys. Run after `cargo xtask run` or `cargo xtask
# test` has installed the tools. Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
cargo leptos build --release >/dev/null 2>&1
build_secs=$(( $(date +%s) - start ))

row() { # name file
  local raw gz
  raw=$(wc -c <"$2")
  gz=$(gzip -9 -c "$2" | wc -c)
  printf '| %s | %s | %s |\n' "$1" "$raw" "$gz"
}

echo "release build: ${build_secs}s (incremental unless target/ was empty)"
echo
echo "| artifact | bytes | gzip -9 bytes |"
echo "|---|---|---|"
row "wasm (mercato.wasm, wasm-opt -Oz)" target/site/pkg/mercato.wasm
row "JS glue (mercato.js)" target/site/pkg/mercato.js
row "CSS (mercato.css, Tailwind, minified)" target/site/pkg/mercato.css
row "server binary (target/release/server)" target/release/server
strip -o /tmp/mercato-server-stripped target/release/server
row "server binary, stripped" /tmp/mercato-server-stripped
