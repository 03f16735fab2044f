#!/usr/bin/env bash
# Search index build time and memory, and seeding speed, at catalog sizes
# (default 100,000 and 1,000,000 products). Each size gets its own database
# (reused when it already holds that many products); `server search-index`
# builds the embedded Tantivy index from PostgreSQL the way the server does
# at startup and reports seconds and peak RSS.
# Usage: bench/search-index.sh [SIZE ...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} MERCATO_REDIS_PREFIX="bench-index:$$:" RUST_LOG=warn
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100000 1000000)
cargo build --release -q -p server -p loadgen  # same feature set as catalog-read.sh: one build serves both
for n in "${SIZES[@]}"; do
  db=mercato_bench_$n
  [ "$n" = 100000 ] && db=mercato_bench
  export DATABASE_URL="$PG/$db"
  count=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM products" 2>/dev/null || echo none)
  if [ "$count" != "$n" ]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db"
    echo "== seed $n products"
    target/release/server seed --products "$n"
  fi
  echo "== index $n products"
  target/release/server search-index
  echo "   database size: $(psql "$DATABASE_URL" -tAc "SELECT pg_size_pretty(pg_database_size('$db'))")"
done
redis-cli -u "$REDIS_URL" --scan --pattern "bench-index:$$:*" | xargs -r redis-cli -u "$REDIS_URL" unlink >/dev/null
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
