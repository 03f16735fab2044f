#!/usr/bin/env bash
# The listing/search API (`GET /api/v1/products`: results and facet counts)
# at its read scale, closed loop: CONNECTIONS connections each send their
# next request as soon as the last is answered, for DURATION seconds, over
# the demo catalog (PRODUCTS, 10,000 by default). Two phases on one server
# build, each on a fresh server process and Redis prefix:
#   1. MERCATO_SEARCH_CACHE=off: every request asks the index (the before);
#   2. the result cache on (the default): repeated requests come from Redis.
# The query set: every category under each sort order and two pages, with
# and without filters, plus the catalog benchmark's text queries, so a
# shop's common listings repeat and the long tail is a few hundred queries.
# Reports requests/s, p50/p99 and, for phase 2, the hit ratio from /metrics.
# Usage: bench/listing.sh   (PRODUCTS, CONNECTIONS, DURATION overrides; BUILD=0 skips the build)
# BEFORE_BIN=<an older server binary> adds a third phase, the cache on with
# that binary, so a change is measured against its predecessor in one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PRODUCTS=${PRODUCTS:-10000}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-30}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_listing
PORT=${PORT:-3310}
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "bench-listing:$$:*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${BUILD:-1}" = 1 ]; then
  echo "== build (release)"
  cargo build --release -q -p server -p loadgen
fi
SERVER_BIN=target/release/server
LOADGEN=target/release/loadgen

count=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM products" 2>/dev/null || echo none)
if [ "$count" != "$PRODUCTS" ]; then
  echo "== seeding $PRODUCTS products into $DB"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
  MERCATO_REDIS_PREFIX="bench-listing:$$:seed:" $SERVER_BIN seed --products "$PRODUCTS"
fi

echo "== queries"
{
  for slug in $(psql "$DATABASE_URL" -tAc "SELECT slug FROM categories ORDER BY position, slug"); do
    for sort in relevance newest price_asc price_desc rating; do
      echo "/api/v1/products?category=$slug&sort=$sort"
      echo "/api/v1/products?category=$slug&sort=$sort&page=2"
    done
    echo "/api/v1/products?category=$slug&in_stock=true"
    echo "/api/v1/products?category=$slug&rating_min=4&sort=price_asc"
    echo "/api/v1/products?category=$slug&price_min=20&price_max=200"
  done
  for q in headphones laptop "running shoes" tent serum "board game" kettle backpack "yoga mat" camera \
           headphnoes laptpo sneakres espreso keybaord head lap sne espr "wool co"; do
    enc=${q// /+}
    echo "/api/v1/products?q=$enc"
    echo "/api/v1/products?q=$enc&sort=price_asc&in_stock=true"
  done
  echo "/api/v1/products?sort=newest"
  echo "/api/v1/products"
} > "$WORK/listing.txt"
echo "   $(wc -l < "$WORK/listing.txt") distinct requests"

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

phase() { # label, MERCATO_SEARCH_CACHE value[, server binary]
  local label=$1 cache=$2 bin=${3:-$SERVER_BIN}
  MERCATO_REDIS_PREFIX="bench-listing:$$:$label:" MERCATO_SEARCH_CACHE=$cache $bin serve > "$WORK/server-$label.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
  local h0 m0 h1 m1
  h0=$(metric mercato_search_cache_hits_total); m0=$(metric mercato_search_cache_misses_total)
  $LOADGEN --base "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --seconds "$DURATION" --targets "$WORK/listing.txt" --label "$label"
  h1=$(metric mercato_search_cache_hits_total); m1=$(metric mercato_search_cache_misses_total)
  awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN { printf "   result cache: hits=%d misses=%d hit_ratio=%s\n", h, m, (h + m > 0 ? sprintf("%.1f%%", 100 * h / (h + m)) : "n/a") }'
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  SERVER=
}

echo "== 1. result cache off, $CONNECTIONS connections, ${DURATION}s"
phase cache-off off
echo "== 2. result cache on, $CONNECTIONS connections, ${DURATION}s"
phase cache-on on
if [ -n "${BEFORE_BIN:-}" ]; then
  echo "== 3. result cache on, $BEFORE_BIN, $CONNECTIONS connections, ${DURATION}s"
  phase cache-on-before on "$BEFORE_BIN"
fi
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
