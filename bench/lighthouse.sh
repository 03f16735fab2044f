#!/usr/bin/env bash
# Lighthouse, as people measure Core Web Vitals: the npm package driving
# Debian's Chromium, mobile emulation with Lighthouse's default throttled
# network and CPU, on the four browsing pages (home, a category, a search,
# a product). Each page RUNS times (3 by default); the table shows, per
# page, the median run by performance score: its four category scores and
# LCP / CLS / TBT, then every audit that did not pass in any category.
# Usage: bench/lighthouse.sh   with the shop running (`cargo xtask run`:
# release wasm and server); BASE overrides http://127.0.0.1:3000.
# Lighthouse installs into target/tools/lighthouse (npm) on first use.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:-http://127.0.0.1:3000}
RUNS=${RUNS:-3}
LH_DIR="$ROOT/target/tools/lighthouse"
LH="$LH_DIR/node_modules/.bin/lighthouse"
if [ ! -x "$LH" ]; then
  echo "== installing lighthouse@12 into $LH_DIR"
  mkdir -p "$LH_DIR"
  # A package.json of its own, or npm would add it to the repository's.
  [ -f "$LH_DIR/package.json" ] || echo '{"private":true,"name":"mercato-lighthouse"}' > "$LH_DIR/package.json"
  npm install --prefix "$LH_DIR" --no-audit --no-fund lighthouse@12 >/dev/null
fi
CHROME_PATH=${CHROME_PATH:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROME_PATH" ] || { echo "no Chromium found: set CHROME_PATH" >&2; exit 1; }
export CHROME_PATH
curl -sf "$BASE/readyz" >/dev/null || { echo "the shop is not answering at $BASE: start it with cargo xtask run" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
category=$(curl -sf "$BASE/api/v1/categories" | python3 -c 'import json, sys; print(next(c["slug"] for c in json.load(sys.stdin)["categories"] if c["product_count"] > 0))')
product=$(curl -sf "$BASE/api/v1/products?category=$category&per_page=1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["hits"][0]["id"])')
pages=("home /" "category /c/$category" "search /search?q=headphones" "product /products/$product")

for entry in "${pages[@]}"; do
  name=${entry%% *}; path=${entry#* }
  for run in $(seq 1 "$RUNS"); do
    "$LH" "$BASE$path" --quiet --output=json --output-path="$WORK/$name-$run.json" \
      --only-categories=performance,accessibility,best-practices,seo \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu" >/dev/null 2>"$WORK/$name-$run.log" \
      || { echo "lighthouse failed on $path:" >&2; tail -5 "$WORK/$name-$run.log" >&2; exit 1; }
  done
done

python3 - "$WORK" "$RUNS" "${pages[@]}" <<'EOF'
import json, statistics, sys
work, runs, pages = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cats = ["performance", "accessibility", "best-practices", "seo"]
print("| page | path | performance | accessibility | best practices | SEO | LCP | CLS | TBT | performance over the runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
failing = {}
for entry in pages:
    name, path = entry.split(" ", 1)
    reports = [json.load(open(f"{work}/{name}-{r}.json")) for r in range(1, runs + 1)]
    perf = [round(r["categories"]["performance"]["score"] * 100) for r in reports]
    median = sorted(zip(perf, range(runs)))[runs // 2][1]
    r = reports[median]
    a = r["audits"]
    scores = [round(r["categories"][c]["score"] * 100) for c in cats]
    print(f"| {name} | `{path}` | " + " | ".join(map(str, scores))
          + f" | {a['largest-contentful-paint']['numericValue'] / 1000:.2f} s | {a['cumulative-layout-shift']['numericValue']:.3f}"
          + f" | {a['total-blocking-time']['numericValue']:.0f} ms | {', '.join(map(str, perf))} |")
    for c in cats:
        for ref in r["categories"][c]["auditRefs"]:
            audit = a[ref["id"]]
            if ref.get("weight", 0) > 0 and audit.get("score") is not None and audit["score"] < 1:
                failing.setdefault((c, ref["id"], audit["title"]), []).append(name)
print()
print("Audits below full marks (weighted), and where:")
for (c, id, title), where in sorted(failing.items()):
    print(f"- {c}: `{id}` ({title}): {', '.join(where)}")
EOF
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); Chromium: $("$CHROME_PATH" --version 2>/dev/null | head -1); lighthouse $("$LH" --version)"
