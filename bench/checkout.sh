#!/usr/bin/env bash
# Checkout end to end (issue: checkout): BUYERS customers each with one item
# in the cart check out through POST /api/v1/checkout (fresh Idempotency-Key
# each) at RATE/s for DURATION s: p50/p95 and the rate sustained with 0
# errors. Then REJECT_RATE/s of checkouts for a sold-out SKU for
# REJECT_SECONDS s (409 out_of_stock, refused before any payment call).
# The payment provider is localstripe on its own port (PROVIDER=localstripe)
# or bench/fake-stripe.py answering every call after FAKE_LATENCY_MS
# (PROVIDER=fake); its latency for one authorization (create + confirm) is
# measured on its own first.
# Usage: bench/checkout.sh   (PROVIDER, FAKE_LATENCY_MS, RATE, DURATION,
#        REJECT_RATE, REJECT_SECONDS override)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PROVIDER=${PROVIDER:-localstripe}
FAKE_LATENCY_MS=${FAKE_LATENCY_MS:-12}
RATE=${RATE:-40}
DURATION=${DURATION:-30}
REJECT_RATE=${REJECT_RATE:-300}
REJECT_SECONDS=${REJECT_SECONDS:-10}
BUYERS=$(( RATE * DURATION ))
REJECTERS=$(( REJECT_RATE * REJECT_SECONDS ))
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_checkout
PORT=${PORT:-3302}
STRIPE_PORT=${STRIPE_PORT:-8431}
PREFIX="bench-checkout:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MERCATO_REDIS_PREFIX="$PREFIX" MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn
export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT" MERCATO_RECONCILE_SECS=0
AUTH="Authorization: Bearer sk_test_bench"
WORK=$(mktemp -d)
cleanup() {
  kill "$SERVER" "$STRIPE" 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null
  rm -rf "$WORK"
}
SERVER=; STRIPE=
trap cleanup EXIT

cargo build --release -q -p server -p loadgen
[ -x target/tools/localstripe/bin/localstripe ] || { echo "run cargo xtask test once first (it installs localstripe)"; exit 2; }
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
target/release/server seed --products 10000 >/dev/null
# Plenty of stock on 1,000 SKUs for the buyers; one more SKU for the sold-out run.
psql "$DATABASE_URL" -qc "UPDATE inventory SET stock_count = 1000000 WHERE sku_id IN (SELECT sku_id FROM inventory ORDER BY md5(sku_id::text) LIMIT 1001)"
psql "$DATABASE_URL" -tAc "SELECT '{\"sku_id\":\"' || sku_id || '\",\"quantity\":1}' FROM inventory ORDER BY md5(sku_id::text) LIMIT 1000" > "$WORK/carts.txt"
SOLD_OUT=$(psql "$DATABASE_URL" -tAc "SELECT sku_id FROM inventory ORDER BY md5(sku_id::text) OFFSET 1000 LIMIT 1")
echo "{\"sku_id\":\"$SOLD_OUT\",\"quantity\":1}" > "$WORK/soldout-cart.txt"
target/release/server loadtest-users --count "$BUYERS" --out "$WORK/buyers.txt" >/dev/null
target/release/server loadtest-users --count "$REJECTERS" --out "$WORK/rejecters.txt" >/dev/null
echo '{"shipping_address":{"name":"Ada Lovelace","line1":"12 St James'"'"'s Square","city":"London","postal_code":"SW1Y 4JH","country":"GB"},"payment_method":"pm_card_visa"}' > "$WORK/checkout.json"

if [ "$PROVIDER" = fake ]; then
  target/tools/localstripe/bin/python bench/fake-stripe.py "$STRIPE_PORT" "$FAKE_LATENCY_MS" > "$WORK/provider.log" 2>&1 &
else
  target/tools/localstripe/bin/localstripe --port "$STRIPE_PORT" --from-scratch > "$WORK/provider.log" 2>&1 &
fi
STRIPE=$!
for _ in $(seq 1 100); do curl -sf -H "$AUTH" "$STRIPE_API_BASE/v1/payment_intents" >/dev/null && break; sleep 0.2; done
target/release/server serve > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done

echo "== payment provider alone ($PROVIDER): 20 authorizations (create + confirm)"
for i in $(seq 1 20); do
  s=$(date +%s%N)
  id=$(curl -sf -H "$AUTH" "$STRIPE_API_BASE/v1/payment_intents" -d amount=1000 -d currency=usd -d payment_method=pm_card_visa -d capture_method=manual \
    | grep -o '"id": *"pi_[^"]*"' | head -1 | cut -d'"' -f4)
  curl -sf -H "$AUTH" -X POST "$STRIPE_API_BASE/v1/payment_intents/$id/confirm" >/dev/null
  echo $(( ($(date +%s%N) - s) / 1000 ))
done | sort -n | awk '{ a[NR] = $1 } END { printf "   provider authorization: p50 %.1f ms, max %.1f ms\n", a[int(NR/2)+1]/1000, a[NR]/1000 }'

echo "== filling $BUYERS + $REJECTERS carts"
target/release/loadgen --base "http://127.0.0.1:$PORT" --rate 500 --seconds "$(awk -v n="$BUYERS" 'BEGIN { print n / 500 }')" \
  --post /api/v1/cart/items --targets "$WORK/carts.txt" --tokens "$WORK/buyers.txt" --label fill-buyers >/dev/null
target/release/loadgen --base "http://127.0.0.1:$PORT" --rate 500 --seconds "$(awk -v n="$REJECTERS" 'BEGIN { print n / 500 }')" \
  --post /api/v1/cart/items --targets "$WORK/soldout-cart.txt" --tokens "$WORK/rejecters.txt" --label fill-rejecters >/dev/null
psql "$DATABASE_URL" -qc "UPDATE inventory SET stock_count = 0 WHERE sku_id = '$SOLD_OUT'"
target/release/server reconcile >/dev/null

echo "== checkouts: $RATE/s for ${DURATION}s ($BUYERS customers, one each)"
target/release/loadgen --base "http://127.0.0.1:$PORT" --rate "$RATE" --seconds "$DURATION" \
  --post /api/v1/checkout --targets "$WORK/checkout.json" --tokens "$WORK/buyers.txt" --idempotency --label checkout
echo "== sold-out checkouts: $REJECT_RATE/s for ${REJECT_SECONDS}s"
target/release/loadgen --base "http://127.0.0.1:$PORT" --rate "$REJECT_RATE" --seconds "$REJECT_SECONDS" \
  --post /api/v1/checkout --targets "$WORK/checkout.json" --tokens "$WORK/rejecters.txt" --idempotency --accept 409 --label sold-out
echo "== orders: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM orders'), authorized PaymentIntents: $(curl -sf -H "$AUTH" "$STRIPE_API_BASE/v1/payment_intents?limit=100000" | grep -o '"requires_capture"' | wc -l)"
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
