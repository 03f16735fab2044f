#!/usr/bin/env bash
# Release build of the storefront (split per page, as `cargo xtask run`
# builds it) and server, then what a shopper downloads
# and what an operator deploys. Run after `cargo xtask run` or `cargo xtask
# test` has installed the tools. Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
cargo leptos build --release --split >/dev/null 2>&1
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
row "wasm, main module (mercato.wasm, wasm-opt -Oz)" target/site/pkg/mercato.wasm
cat target/site/pkg/chunk_*.wasm target/site/pkg/split_*.wasm >/tmp/mercato-chunks.wasm
row "wasm, every page's chunks together ($(ls target/site/pkg/chunk_*.wasm target/site/pkg/split_*.wasm | wc -l) files; bench/first-load.sh has what each page loads)" /tmp/mercato-chunks.wasm
row "JS glue (mercato.js)" target/site/pkg/mercato.js
row "CSS (mercato.css, Tailwind, minified)" target/site/pkg/mercato.css
row "server binary (target/release/server)" target/release/server
strip -o /tmp/mercato-server-stripped target/release/server
row "server binary, stripped" /tmp/mercato-server-stripped
