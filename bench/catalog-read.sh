#!/usr/bin/env bash
# The catalog read path under a fixed load (issue: catalog, product pages
# and search). Seeds PRODUCTS products into its own database, starts a
# release server, and drives it with bench/loadgen at RATE requests/s:
#   1. product pages (SSR), Zipf-distributed, cold cache;
#   2. the same after `server cache-warm` (steady state of a running shop);
#   3. the search API, a mix of plain, typo, prefix and filtered queries.
# Reports p50/p99, the product cache hit ratio from /metrics, and what
# PostgreSQL was asked during each phase (pg_stat_database commits).
# Also reports the server's startup time to the first search answered: with
# MERCATO_SEARCH_DIR set, run it twice to see a rebuild, then a reopen.
# MERCATO_SEARCH_CACHE=off measures the search mix on the cold path.
# Usage: bench/catalog-read.sh   (PRODUCTS, RATE, DURATION seconds per phase, ZIPF,
#        PHASES="product-cold product-warm search" overrides; BUILD=0 skips the build;
#        SERVER_BIN=<another server binary>; SETTLE=0 starts without waiting
#        for the stock counter preload)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PRODUCTS=${PRODUCTS:-100000}
RATE=${RATE:-200}
SECONDS_PER_PHASE=${DURATION:-60}
ZIPF=${ZIPF:-1.0}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench
PORT=${PORT:-3300}
PREFIX="bench:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MERCATO_REDIS_PREFIX="$PREFIX" MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site"
# Request logs at 200/s would measure the terminal, not the shop.
export RUST_LOG=warn,shop::search=info,server::startup=info
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null; rm -rf "$WORK"' EXIT

PHASES=${PHASES:-product-cold product-warm search}
if [ "${BUILD:-1}" = 1 ]; then
  echo "== build (release)"
  cargo build --release -q -p server -p loadgen
fi
SERVER_BIN=${SERVER_BIN:-target/release/server}
LOADGEN=target/release/loadgen

count=$(psql "$PG/$DB" -tAc "SELECT count(*) FROM products" 2>/dev/null || echo none)
if [ "$count" != "$PRODUCTS" ]; then
  echo "== seeding $PRODUCTS products into $DB"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
  $SERVER_BIN seed --products "$PRODUCTS"
fi

echo "== targets"
psql "$DATABASE_URL" -tAc "SELECT '/products/' || id FROM products ORDER BY md5(id::text)" > "$WORK/products.txt"
{
  for q in headphones laptop "running shoes" tent serum "board game" kettle backpack "yoga mat" camera \
           headphnoes laptpo sneakres espreso keybaord \
           head lap sne espr "wool co" \
           aurora nimbus kortex calic; do
    enc=${q// /+}
    echo "/api/v1/products?q=$enc"
    echo "/api/v1/products?q=$enc&sort=price_asc&in_stock=true"
    echo "/api/v1/search/suggest?q=$enc"
  done
  echo "/api/v1/products?category=electronics&price_min=50&price_max=500&rating_min=4"
  echo "/api/v1/products?category=fashion&brand=Calic&brand=Soltra&sort=rating"
  echo "/api/v1/products?sort=newest"
} > "$WORK/search.txt"

echo "== server (MERCATO_SEARCH_DIR=${MERCATO_SEARCH_DIR:-unset}, MERCATO_SEARCH_CACHE=${MERCATO_SEARCH_CACHE:-on})"
started=$(date +%s.%N)
$SERVER_BIN serve > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 6000); do curl -sf "http://127.0.0.1:$PORT/api/v1/products?q=lamp" >/dev/null && break; sleep 0.1; done
echo "   startup to the first search answered: $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
grep -oE 'search index (built|reopened).*' "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g' || true
# The stock counter preload runs in the background after a start (minutes
# of Redis at a million products); the phases measure the shop after it,
# unless SETTLE=0 (then the first phase runs while it loads).
if [ "${SETTLE:-1}" = 1 ]; then
  for _ in $(seq 1 6000); do grep -aq "stock counters" "$WORK/server.log" && break; sleep 0.1; done
  echo "   stock counters loaded $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }') after launch"
fi

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
commits() { psql "$DATABASE_URL" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"; }

phase() { # label, targets file, extra loadgen args
  local label=$1 file=$2; shift 2
  local h0 m0 l0 s0 c0 h1 m1 l1 s1 c1
  # PostgreSQL publishes a backend's counters lazily (up to seconds after it
  # finishes, e.g. cache-warm's); let them settle so they land in no phase.
  sleep 3
  h0=$(metric mercato_product_cache_hits_total); m0=$(metric mercato_product_cache_misses_total)
  l0=$(metric mercato_product_db_loads_total); s0=$(metric mercato_stock_counter_loads_total); c0=$(commits)
  result=$($LOADGEN --base "http://127.0.0.1:$PORT" --rate "$RATE" --seconds "$SECONDS_PER_PHASE" --targets "$file" --label "$label" "$@")
  h1=$(metric mercato_product_cache_hits_total); m1=$(metric mercato_product_cache_misses_total)
  l1=$(metric mercato_product_db_loads_total); s1=$(metric mercato_stock_counter_loads_total); c1=$(commits)
  local hits=$((h1 - h0)) misses=$((m1 - m0))
  local ratio=n/a
  [ $((hits + misses)) -gt 0 ] && ratio=$(awk -v h=$hits -v m=$misses 'BEGIN { printf "%.1f%%", 100 * h / (h + m) }')
  echo "$result"
  echo "   cache: hits=$hits misses=$misses hit_ratio=$ratio | postgres: product_loads=$((l1 - l0)) stock_counter_loads=$((s1 - s0)) transactions=$((c1 - c0))"
}

wants() { [[ " $PHASES " == *" $1 "* ]]; }
if wants product-cold; then
  echo "== 1. product pages, Zipf($ZIPF), cold cache, $RATE req/s for ${SECONDS_PER_PHASE}s"
  phase product-cold "$WORK/products.txt" --zipf "$ZIPF"
fi
if wants product-warm; then
  echo "== cache warm"
  $SERVER_BIN cache-warm
  echo "== 2. product pages, Zipf($ZIPF), warm cache, $RATE req/s for ${SECONDS_PER_PHASE}s"
  phase product-warm "$WORK/products.txt" --zipf "$ZIPF"
fi
if wants search; then
  echo "== 3. search API, $RATE req/s for ${SECONDS_PER_PHASE}s"
  phase search "$WORK/search.txt"
  echo "   result cache: hits=$(metric mercato_search_cache_hits_total) misses=$(metric mercato_search_cache_misses_total) (whole run)"
fi
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
