#!/usr/bin/env bash
# Cart writes under a fixed load (issue: accounts, gateway and cart):
# USERS signed-in customers (created by `server loadtest-users`) each add
# items through POST /api/v1/cart/items, RATE writes/s in total for DURATION
# seconds, round robin over the users so each stays under the per-user
# add-to-cart limit. Reports p50/p99 and the achieved rate.
# Usage: bench/cart-write.sh   (RATE, DURATION, USERS override)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATE=${RATE:-2000}
DURATION=${DURATION:-30}
USERS=${USERS:-4000}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_cart
PORT=${PORT:-3301}
PREFIX="bench-cart:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MERCATO_REDIS_PREFIX="$PREFIX" MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null; rm -rf "$WORK"' EXIT

cargo build --release -q -p server -p loadgen
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
target/release/server seed --products 10000 >/dev/null
target/release/server loadtest-users --count "$USERS" --out "$WORK/tokens.txt"
psql "$DATABASE_URL" -tAc "SELECT '{\"sku_id\":\"' || id || '\",\"quantity\":1}' FROM skus ORDER BY md5(id::text) LIMIT 5000" > "$WORK/bodies.txt"

target/release/server serve > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done

echo "== cart adds: $RATE/s for ${DURATION}s over $USERS users"
target/release/loadgen --base "http://127.0.0.1:$PORT" --rate "$RATE" --seconds "$DURATION" \
  --post /api/v1/cart/items --targets "$WORK/bodies.txt" --tokens "$WORK/tokens.txt" --label cart-add
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
