#!/usr/bin/env bash
# The search API's cold path at a million products (issue 14): the result
# cache off, so every request asks the index, over QUERIES distinct
# long-tail requests from bench/search-queries.py (words of the seeded
# catalog, typos, half-typed words, filters, sorts, later pages, browsing
# without text). For each server build:
#   1. closed loop, CONNECTIONS connections for DURATION s: what the
#      machine can answer (load generator, server, PostgreSQL, Redis on
#      the same cores);
#   2. open loop at RATE requests/s for DURATION s: the issue's goal is
#      250/s with p99 < 50 ms.
# The server reopens the index kept in MERCATO_SEARCH_DIR (built on the
# first run), and each phase waits until the stock counter preload of its
# start has finished, so neither measures that.
# Usage: bench/search-cold.sh   (PRODUCTS, QUERIES, CONNECTIONS, RATE, DURATION;
#        BUILD=0 skips the build; BEFORE_BIN=<older server binary> measures it
#        first, in the same run, on the same database and index)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PRODUCTS=${PRODUCTS:-1000000}
QUERIES=${QUERIES:-10000}
CONNECTIONS=${CONNECTIONS:-4}
RATE=${RATE:-250}
DURATION=${DURATION:-60}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench
PORT=${PORT:-3320}
PREFIX="bench-cold:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MERCATO_REDIS_PREFIX="$PREFIX" MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site"
export MERCATO_SEARCH_CACHE=off MERCATO_SEARCH_DIR=${MERCATO_SEARCH_DIR:-$ROOT/target/bench-index}
export RUST_LOG=warn,shop::search=info,server::startup=info
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${BUILD:-1}" = 1 ]; then
  echo "== build (release)"
  cargo build --release -q -p server -p loadgen
fi
LOADGEN=target/release/loadgen

count=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM products" 2>/dev/null || echo none)
if [ "$count" != "$PRODUCTS" ]; then
  echo "== seeding $PRODUCTS products into $DB"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
  target/release/server seed --products "$PRODUCTS"
fi
python3 bench/search-queries.py "$QUERIES" > "$WORK/queries.txt"
echo "== $(wc -l < "$WORK/queries.txt") distinct requests over $PRODUCTS products, result cache off"

measure() { # label, server binary
  local label=$1 bin=$2 started
  started=$(date +%s.%N)
  $bin serve > "$WORK/server-$label.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 3000); do curl -sf "http://127.0.0.1:$PORT/api/v1/products?q=lamp" >/dev/null && break; sleep 0.1; done
  echo "== $label ($bin): first search answered $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }') after launch"
  grep -aoE 'search index (built|reopened).*' "$WORK/server-$label.log" | sed 's/\x1b\[[0-9;]*m//g' || true
  for _ in $(seq 1 3000); do grep -aq "stock counters" "$WORK/server-$label.log" && break; sleep 0.2; done
  echo "   1. closed loop, $CONNECTIONS connections, ${DURATION}s"
  $LOADGEN --base "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --seconds "$DURATION" --targets "$WORK/queries.txt" --label "$label-closed"
  echo "   2. open loop, $RATE requests/s, ${DURATION}s"
  $LOADGEN --base "http://127.0.0.1:$PORT" --rate "$RATE" --seconds "$DURATION" --targets "$WORK/queries.txt" --label "$label-open"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  SERVER=
}

if [ -n "${BEFORE_BIN:-}" ]; then
  measure before "$BEFORE_BIN"
fi
measure this target/release/server
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
