#!/usr/bin/env bash
# Reservations on one hot SKU (issue: inventory): reservations/s and p50/p99
# at TASKS concurrent tasks through shop::inventory, for the Redis Lua path,
# the same SKU in 8 shards, and the DB-only path, in one run; then the
# ceiling: redis-benchmark running the very same reservation script
# (EVALSHA, one unit, a fresh token per call) with as many clients.
# Usage: bench/inventory-reserve.sh   (TASKS, ROUND seconds, REQUESTS override)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TASKS=${TASKS:-256}
ROUND=${ROUND:-10}
REQUESTS=${REQUESTS:-500000}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_inventory
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
HOSTPORT=${REDIS_URL#redis://}
HOSTPORT=${HOSTPORT%%/*}
RHOST=${HOSTPORT%%:*}
RPORT=${HOSTPORT##*:}
PREFIX="bench-ceiling:$$:"
trap 'redis-cli -h "$RHOST" -p "$RPORT" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -h "$RHOST" -p "$RPORT" unlink >/dev/null' EXIT

cargo build --release -q -p shop --example reserve_bench
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"

echo "== shop::inventory::reserve"
target/release/examples/reserve_bench "$TASKS" "$ROUND"

echo "== ceiling: redis-benchmark, same script (EVALSHA), $TASKS clients, $REQUESTS calls"
SHA=$(redis-cli -h "$RHOST" -p "$RPORT" SCRIPT LOAD "$(target/release/examples/reserve_bench --print-script)")
SKU=00000000-0000-7000-8000-000000000001
redis-cli -h "$RHOST" -p "$RPORT" SET "${PREFIX}inv:{$SKU}:avail" 1000000000000 >/dev/null
# ARGV: prefix, token (random per call), ttl_ms, shard start, sku, qty.
redis-benchmark -h "$RHOST" -p "$RPORT" -c "$TASKS" -n "$REQUESTS" -r 1000000000 --csv \
  EVALSHA "$SHA" 0 "$PREFIX" __rand_int__ 600000 7 "$SKU" 1
echo "== Redis's own limit for that script: the same, 16 calls pipelined per client"
redis-benchmark -h "$RHOST" -p "$RPORT" -c "$TASKS" -n "$REQUESTS" -r 1000000000 -P 16 --csv \
  EVALSHA "$SHA" 0 "$PREFIX" __rand_int__ 600000 7 "$SKU" 1
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(redis-server --version | cut -d' ' -f3), $(psql --version)"
