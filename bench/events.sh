#!/usr/bin/env bash
# Events (issue: after the order): EVENTS outbox rows over AGGREGATES orders
# go outbox → relay (one round = one transaction of 500 rows under the
# advisory lock) → Redis Streams (order-events, 8 partitions) → CONSUMERS
# no-op consumers of one group (batches of 200, acked per batch). Reports
# how fast the relay drained the outbox and events/s end to end, both
# running at once in one process.
# Usage: bench/events.sh   (EVENTS, AGGREGATES, CONSUMERS override)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${EVENTS:-50000}
AGGREGATES=${AGGREGATES:-5000}
CONSUMERS=${CONSUMERS:-2}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_events
PREFIX="bench-events:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} MERCATO_REDIS_PREFIX="$PREFIX" RUST_LOG=warn
trap 'redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null' EXIT

cargo build --release -q -p server --example events_bench
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
target/release/examples/events_bench "$EVENTS" "$AGGREGATES" "$CONSUMERS"
