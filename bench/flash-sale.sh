#!/usr/bin/env bash
# A flash sale at the design's scale (issue: flash sales): CUSTOMERS shoppers
# with sessions (`server loadtest-users`) arrive over RAMP s for UNITS units
# of one SKU (limit 1 each). Each presses Buy now, waits in line if it must
# (long-polling /me, LONG_POLL s at a time, as the storefront follows it; or
# with LONG_POLL=0 polling it every POLL_MS), and checks out with its own
# Idempotency-Key (`loadgen flash`). HTTP2=N (default 256) sends it all as
# cleartext HTTP/2 over N connections, as a CDN or proxy would: tens of
# thousands of parked long polls over HTTP/1.1 need more descriptors than
# a process gets here (20,000); HTTP2=0 is HTTP/1.1. Payments go to bench/fake-stripe.py: log-normal
# latency (median FAKE_LATENCY_MS per call, sigma FAKE_JITTER), DECLINE_RATE
# of confirms declined, Stripe's Idempotency-Key rules enforced.
#
# The same sale runs once per mode in MODES:
#   redis    the normal path (a private redis-server on REDIS_PORT, so the
#            machine's shared Redis is never touched or stopped);
#   db-only  the same, with that Redis shut down after the sale is pre-loaded
#            (what is left is PostgreSQL), and started again, empty, once
#            the shoppers are done so the schedule can close the sale.
# After each run, once the sale has ended, the invariants are read from
# PostgreSQL, Redis and the payment fake, then the table is printed:
#   units in orders = sold <= quantity (oversold 0); one authorization per
#   checkout key (double authorizations 0); every authorization has an
#   order or a void; no live hold left (Redis holds, inventory `held`,
#   checkout claims still `started`).
# While the shoppers run, pg_stat_activity of the bench database is sampled
# every 100 ms (what the server's connections wait on) and, with PERF=1,
# `perf record` samples the server.
# Usage: bench/flash-sale.sh   (CUSTOMERS, UNITS, RAMP, DECLINE_RATE,
#        FAKE_LATENCY_MS, FAKE_JITTER, PAY_WINDOW, WAIT, LONG_POLL, POLL_MS, HTTP2,
#        MAX_INFLIGHT, GIVE_UP (s a shopper retries 429/503/lost answers;
#        a checkout, 504s too, for 3 × GIVE_UP),
#        MODES, PERF override; RESULTS=DIR keeps the raw output; BUILD=0
#        skips the release build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CUSTOMERS=${CUSTOMERS:-50000}
UNITS=${UNITS:-10000}
RAMP=${RAMP:-10}
DECLINE_RATE=${DECLINE_RATE:-0.05}
FAKE_LATENCY_MS=${FAKE_LATENCY_MS:-100}
FAKE_JITTER=${FAKE_JITTER:-0.35}
PAY_WINDOW=${PAY_WINDOW:-180}
WAIT=${WAIT:-30}
POLL_MS=${POLL_MS:-1000}
LONG_POLL=${LONG_POLL:-25}
HTTP2=${HTTP2:-256}
MAX_INFLIGHT=${MAX_INFLIGHT:-4096}
# The server runs with its own admission limit (1,024 in flight) unless
# MERCATO_MAX_IN_FLIGHT is set: checkouts waiting in the sale's confirm
# queue give their place back, so the default serves the sale.
GIVE_UP=${GIVE_UP:-30}
MODES=${MODES:-redis db-only}
PERF=${PERF:-0}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_flash
PORT=${PORT:-3303}
STRIPE_PORT=${STRIPE_PORT:-8432}
REDIS_PORT=${REDIS_PORT:-6391}
PREFIX="bench-flash:"
export DATABASE_URL="$PG/$DB" REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export MERCATO_REDIS_PREFIX="$PREFIX" MERCATO_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn
export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT" MERCATO_RECONCILE_SECS=0
export MERCATO_FLASH_PRELOAD_LEAD_SECS=5 MERCATO_FLASH_PAY_WINDOW_SECS="$PAY_WINDOW" MERCATO_FLASH_WAIT_SECS="$WAIT"
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
RESULTS=${RESULTS:-$WORK}
SERVER=; STRIPE=; REDIS=; SAMPLER=
stop() { for p in "$@"; do if [ -n "$p" ] && kill "$p" 2>/dev/null; then wait "$p" 2>/dev/null || true; fi; done; }
cleanup() {
  stop "$SAMPLER" "$SERVER" "$STRIPE"
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  stop "$REDIS"
  rm -rf "$WORK"
}
trap cleanup EXIT

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
  REDIS=$!
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "private redis-server did not start on $REDIS_PORT"; exit 2
}
stop_redis() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; stop "$REDIS"; REDIS=; }
sql() { psql "$DATABASE_URL" -tAc "$1"; }

[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p server -p loadgen
[ -x target/tools/localstripe/bin/python ] || { echo "run cargo xtask test once first (it installs localstripe's virtualenv, which the fake runs on)"; exit 2; }
if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then echo "port $REDIS_PORT is taken: set REDIS_PORT"; exit 2; fi

run() {
  local mode=$1 out="$RESULTS/flash-$1"
  echo "== $mode: $CUSTOMERS customers over ${RAMP}s for $UNITS units, ${DECLINE_RATE} declines"
  start_redis
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
  target/release/server seed --products 1000 >/dev/null
  local sku
  sku=$(sql "SELECT sku_id FROM inventory ORDER BY sku_id LIMIT 1")
  sql "UPDATE inventory SET stock_count = $UNITS + 1000 WHERE sku_id = '$sku'" >/dev/null
  target/release/server loadtest-users --count "$CUSTOMERS" --out "$WORK/tokens.txt"
  target/tools/localstripe/bin/python bench/fake-stripe.py "$STRIPE_PORT" "$FAKE_LATENCY_MS" "$DECLINE_RATE" "$FAKE_JITTER" > "$WORK/provider.log" 2>&1 &
  STRIPE=$!
  target/release/server serve > "$out-server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "$BASE/readyz" >/dev/null && curl -sf "$STRIPE_API_BASE/_fake/counts" >/dev/null && break; sleep 0.5; done
  target/release/server reconcile >/dev/null

  # The sale: starts in 12 s (pre-loaded 5 s before), open for 60 s.
  local admin start_ms starts ends sale
  admin=$(curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' -H "origin: $BASE" \
    -d '{"email":"admin@mercato.test","password":"admin-demo-2026"}' | jq -r .token)
  start_ms=$(( $(date +%s%3N) + 12000 ))
  starts=$(date -u -d "@$(( start_ms / 1000 ))" +%Y-%m-%dT%H:%M:%SZ); start_ms=$(( start_ms / 1000 * 1000 ))
  ends=$(date -u -d "@$(( start_ms / 1000 + 60 ))" +%Y-%m-%dT%H:%M:%SZ)
  sale=$(curl -sf "$BASE/api/v1/seller/flash-sales" -H "authorization: Bearer $admin" -H 'content-type: application/json' -H "origin: $BASE" \
    -d "{\"sku_id\":\"$sku\",\"quantity\":$UNITS,\"price_cents\":999,\"starts_at\":\"$starts\",\"ends_at\":\"$ends\",\"per_user_limit\":1}" | jq -r .id)
  echo "   sale $sale of SKU $sku, $starts to $ends"
  for _ in $(seq 1 200); do [ -n "$(sql "SELECT preloaded_at FROM flash_sales WHERE id = '$sale'")" ] && break; sleep 0.1; done
  if [ "$mode" = db-only ]; then
    stop_redis
    echo "   Redis shut down after the pre-load"
  fi

  # What the server's connections wait on, every 100 ms while shoppers run.
  ( while :; do
      psql "$PG/postgres" -tAc "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, state) FROM pg_stat_activity WHERE datname = '$DB' AND state <> 'idle' AND pid <> pg_backend_pid()"
      sleep 0.1
    done > "$WORK/waits.txt" 2>/dev/null ) &
  SAMPLER=$!
  local perf_pid=
  if [ "$PERF" = 1 ]; then
    local lead=$(( (start_ms - $(date +%s%3N)) / 1000 ))
    ( sleep $(( lead > 0 ? lead : 0 )); perf record -F 199 -g -o "$WORK/perf.data" -p "$SERVER" -- sleep 25 ) > "$WORK/perf.log" 2>&1 &
    perf_pid=$!
  fi
  local cpu0 gen0
  cpu0=$(cpu_times); children_cpu > "$WORK/gen0"; gen0=$(cat "$WORK/gen0")
  target/release/loadgen flash --base "$BASE" --sale "$sale" --tokens "$WORK/tokens.txt" --customers "$CUSTOMERS" \
    --ramp "$RAMP" --start-ms "$start_ms" --poll-ms "$POLL_MS" --long-poll "$LONG_POLL" --http2 "$HTTP2" --max-inflight "$MAX_INFLIGHT" --give-up "$GIVE_UP" --label "$mode" > "$out.json"
  local cpu1
  children_cpu > "$WORK/gen1"
  cpu1="$(cpu_times) loadgen=$(awk -v a="$gen0" -v b="$(cat "$WORK/gen1")" 'BEGIN { printf "%.1f", b - a }')"
  stop "$SAMPLER"; SAMPLER=
  [ -n "$perf_pid" ] && wait "$perf_pid" || true
  if [ "$mode" = db-only ]; then start_redis; fi

  # The schedule closes the sale at its end and finishes it once no hold is
  # in its payment window: wait for the report.
  echo "   waiting for the sale to end (report)…"
  for _ in $(seq 1 $(( (60 + PAY_WINDOW + 60) * 2 ))); do [ "$(sql "SELECT status FROM flash_sales WHERE id = '$sale'")" = ended ] && break; sleep 0.5; done

  # Invariants.
  local quantity sold units orders oversold held live_redis started_claims status report first_ms last_s
  quantity=$(sql "SELECT quantity FROM flash_sales WHERE id = '$sale'")
  status=$(sql "SELECT status FROM flash_sales WHERE id = '$sale'")
  report=$(sql "SELECT coalesce(report::text, '{}') FROM flash_sales WHERE id = '$sale'")
  sold=$(sql "SELECT coalesce(sum(quantity), 0) FROM flash_outcomes WHERE sale_id = '$sale' AND outcome = 'confirmed'")
  units=$(sql "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.sku_id = '$sku' AND o.status NOT IN ('CANCELLED', 'REFUNDED')")
  orders=$(sql "SELECT count(*) FROM orders")
  oversold=$(( units > quantity ? units - quantity : 0 ))
  held=$(sql "SELECT held FROM inventory WHERE sku_id = '$sku'")
  started_claims=$(sql "SELECT count(*) FROM checkout_requests WHERE state = 'started'")
  live_redis=$(redis-cli -p "$REDIS_PORT" hlen "${PREFIX}flash:{$sale}:holds")
  last_s=$(sql "SELECT coalesce(round(extract(epoch FROM max(decided_at) - (SELECT starts_at FROM flash_sales WHERE id = '$sale'))::numeric, 2)::text, '-') FROM flash_outcomes WHERE sale_id = '$sale' AND outcome = 'confirmed'")
  sql "SELECT payment_id FROM orders WHERE payment_id IS NOT NULL" | sort > "$WORK/order-payments.txt"
  curl -sf "$STRIPE_API_BASE/_fake/authorizations" > "$WORK/auths.tsv"
  curl -sf "$STRIPE_API_BASE/_fake/counts" > "$out-provider.json"
  local auths double reauth orphan voided_orders
  auths=$(wc -l < "$WORK/auths.tsv")
  # Two authorizations under one checkout key that were not voided: a
  # customer held (and, once captured, charged) twice.
  double=$(awk -F'\t' '$5 != "canceled" { print $2 }' "$WORK/auths.tsv" | sort | uniq -d | wc -l)
  # Keys authorized more than once in all (a retry after our failure voids
  # the first authorization and authorizes again under a new order id).
  reauth=$(cut -f2 "$WORK/auths.tsv" | sort | uniq -d | wc -l)
  cp "$WORK/auths.tsv" "$out-authorizations.tsv"
  # An authorization with neither an order nor a void.
  orphan=$(awk -F'\t' '$5 != "canceled" { print $1 }' "$WORK/auths.tsv" | sort | comm -23 - "$WORK/order-payments.txt" | wc -l)
  # An order whose authorization was voided.
  voided_orders=$(awk -F'\t' '$5 == "canceled" { print $1 }' "$WORK/auths.tsv" | sort | comm -12 - "$WORK/order-payments.txt" | wc -l)
  sort "$WORK/waits.txt" | uniq -c | sort -rn | head -8 > "$out-waits.txt"
  # Units sold in each 5 s since the start: where the sale spends its time.
  sql "SELECT string_agg(s || '-' || (s + 5) || ' s: ' || n, ', ' ORDER BY s) FROM (
         SELECT (floor(extract(epoch FROM o.decided_at - f.starts_at) / 5) * 5)::int AS s, sum(o.quantity) AS n
         FROM flash_outcomes o JOIN flash_sales f ON f.id = o.sale_id
         WHERE o.sale_id = '$sale' AND o.outcome = 'confirmed' GROUP BY 1) t" > "$out-timeline.txt"

  jq -n --arg mode "$mode" --argjson quantity "$quantity" --argjson sold "$sold" --argjson units "$units" --argjson orders "$orders" \
    --argjson oversold "$oversold" --argjson auths "$auths" --argjson double "$double" --argjson reauth "$reauth" --argjson orphan "$orphan" \
    --argjson voided_orders "$voided_orders" --argjson held "$held" --argjson live_redis "${live_redis:-0}" \
    --argjson started_claims "$started_claims" --arg status "$status" --argjson report "$report" --arg last_s "$last_s" \
    --slurpfile load "$out.json" --slurpfile provider "$out-provider.json" --arg cpu0 "$cpu0" --arg cpu1 "$cpu1" \
    '{mode: $mode, status: $status, quantity: $quantity, sold: $sold, units_in_orders: $units, orders: $orders, oversold: $oversold,
      authorizations: $auths, double_authorizations: $double, keys_authorized_again_after_a_void: $reauth, authorizations_without_order_or_void: $orphan,
      orders_with_voided_authorization: $voided_orders, inventory_held_after: $held, redis_holds_after: $live_redis,
      checkout_claims_started: $started_claims, last_unit_sold_after_start_s: $last_s, report: $report,
      load: $load[0], provider: $provider[0], cpu_before: $cpu0, cpu_after: $cpu1}' > "$out-summary.json"
  if [ "$PERF" = 1 ] && [ -s "$WORK/perf.data" ]; then
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -60 > "$out-perf.txt" || true
  fi
  echo "   sale $status: sold $sold of $quantity, oversold $oversold, double authorizations $double, orphan authorizations $orphan"
  echo "   waits of the bench database's connections (samples):"; sed 's/^/     /' "$out-waits.txt"
  echo "   units sold per 5 s: $(cat "$out-timeline.txt")"

  # The server's own latency per route, to set against what shoppers saw.
  curl -sf "$BASE/metrics" > "$out-metrics.txt" || true
  stop "$SERVER" "$STRIPE"; SERVER=; STRIPE=
  stop_redis
}

# CPU seconds so far of the server, PostgreSQL (every backend: the machine's
# PostgreSQL is shared, so this includes other work), the private Redis and
# the payment fake.
cpu_times() {
  local tck; tck=$(getconf CLK_TCK)
  sum() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat") )); done; awk -v t="$t" -v h="$tck" 'BEGIN { printf "%.1f", t / h }'; }
  echo "server=$(sum $SERVER) postgres=$(sum $(pgrep -x postgres | tr '\n' ' ')) redis=$(sum $REDIS) fake=$(sum $STRIPE)"
}

# CPU seconds of this script's finished children (the load generator is
# the only one that finishes while the shoppers run): it shares the cores.
# (`times` runs in this shell, not a pipeline's subshell, which has no children.)
children_cpu() { times > "$WORK/times"; awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times"; }

for mode in $MODES; do run "$mode"; done

echo
echo "== $CUSTOMERS customers over ${RAMP}s, $UNITS units of one SKU, ${DECLINE_RATE} declines, provider median ${FAKE_LATENCY_MS} ms per call"
printf '%-9s %-14s %-12s %-12s %-16s %-16s %-11s %-10s %-11s %-9s %-7s %-8s %-7s\n' mode "last unit sold" "buy p50" "buy p99" "checkout p50" "checkout p99" attempts/s promotions sold oversold "double" "re-auth" "orphan"
for mode in $MODES; do
  jq -r '[.mode, (.last_unit_sold_after_start_s + " s"), (.load.buy.p50_ms|tostring|.[0:7]) + " ms", (.load.buy.p99_ms|tostring|.[0:7]) + " ms",
          (.load.checkout.p50_ms|tostring|.[0:7]) + " ms", (.load.checkout.p99_ms|tostring|.[0:7]) + " ms", (.load.buy_attempts_per_s|floor|tostring),
          ((.report.promoted // "-")|tostring), (.sold|tostring) + "/" + (.quantity|tostring), (.oversold|tostring), (.double_authorizations|tostring),
          (.keys_authorized_again_after_a_void|tostring), (.authorizations_without_order_or_void|tostring)] | @tsv' "$RESULTS/flash-$mode-summary.json" |
    awk -F'\t' '{ printf "%-9s %-14s %-12s %-12s %-16s %-16s %-11s %-10s %-11s %-9s %-7s %-8s %-7s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
done
for mode in $MODES; do echo "-- $mode"; jq -c 'del(.load.errors)' "$RESULTS/flash-$mode-summary.json"; jq -r '.load.errors[]?' "$RESULTS/flash-$mode-summary.json" | head -5; done
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(redis-server --version | cut -d' ' -f3), $(psql --version)"
