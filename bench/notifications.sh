#!/usr/bin/env bash
# Customer emails (issue: after the order): ORDERS orders written as checkout
# writes them, RATE per second, while one outbox relay (every 100 ms, the
# server's default) and one `notifications` consumer run as in a server and
# send each confirmation over SMTP to maildev. Reports p50/p90/p99/max time
# from each order's COMMIT to its email's arrival in maildev.
# Needs maildev (cargo xtask run|test start it; SMTP_URL and MAILDEV_URL
# override the defaults smtp://127.0.0.1:1025 and http://127.0.0.1:1080).
# Usage: bench/notifications.sh   (ORDERS, RATE override)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ORDERS=${ORDERS:-300}
RATE=${RATE:-20}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=mercato_bench_notifications
PREFIX="bench-notifications:$$:"
export DATABASE_URL="$PG/$DB" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} MERCATO_REDIS_PREFIX="$PREFIX" RUST_LOG=warn
export SMTP_URL=${SMTP_URL:-smtp://127.0.0.1:1025} MAILDEV_URL=${MAILDEV_URL:-http://127.0.0.1:1080}
trap 'redis-cli -u "$REDIS_URL" --scan --pattern "${PREFIX}*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" unlink >/dev/null' EXIT

cargo build --release -q -p server --example notifications_bench
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB"
target/release/examples/notifications_bench "$ORDERS" "$RATE"
