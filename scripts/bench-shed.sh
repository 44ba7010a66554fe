#!/usr/bin/env bash
# Load shedding (server.max_in_flight) at twice the load a process can serve. One cleave
# process (every module, one worker) pinned to CPU 0, the load on CPU 1, page GET / (the
# storefront's home: a catalog list and a price conversion per product, kept in memory, and
# the visitor's cart, read from the database: every request carries one returning visitor's
# session cookie):
#   1. capacity: wrk, closed loop, 32 connections;
#   2. unloaded: an open loop at 1000 requests/s (p99 of the answers);
#   3. overloaded: an open loop at twice the capacity, once per limit (none; in-flight
#      limits 64 and 4, `server.max_in_flight`; loop-delay limits of 2 and 5 ms,
#      `server.max_queue_delay_ms`): the answers served (2xx), shed (503), failed (no answer
#      in 10 s), and the p50/p99 of the 2xx ones; and how late the load tool's sends were (a
#      tool sending late measures itself, not the server; it paces its sends by polling the
#      clock, so its CPU share is 100% whenever it keeps up).
# Rounds are interleaved (BENCH_ROUNDS, default 3) and medians reported. Loopback only.
# BENCH_SHED_PATH requests another path (default /, the home page); BENCH_LIMITS the limits
# (`off`, `in_flight=N`, `queue_delay=MS`); BENCH_SHED_CART_ITEMS puts that many products in
# the visitor's cart first (with BENCH_SHED_PATH=/cart: a page that reads the cart from the
# database and converts every line, for machines whose capacity for the home page is more
# than the load tool can send twice over); BENCH_SHED_PRODUCTS=N puts N copies of every
# product in the catalog first (written to its table with sqlite3 before the process that
# serves the rounds starts): a home page that still waits on nothing (the catalog is read
# from memory, the cart count kept) but costs the worker N+1 times the products' share of it.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
LIMITS=(${BENCH_LIMITS:-off in_flight=64 in_flight=4 queue_delay=2 queue_delay=5})
PAGE=${BENCH_SHED_PATH:-/} # what is requested; default the storefront's home page
[ "${BENCH_SHED_PRODUCTS:-0}" -eq 0 ] || command -v sqlite3 >/dev/null || { echo "bench-shed: BENCH_SHED_PRODUCTS needs sqlite3" >&2; exit 1; }
[ "${BENCH_SHED_CART_ITEMS:-0}" -eq 0 ] || command -v jq >/dev/null || { echo "bench-shed: BENCH_SHED_CART_ITEMS needs jq" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-shed: needs 2 CPUs (server and load pinned apart)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-shed: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench-shed: taskset is not installed (util-linux)" >&2; exit 1; }

PROFILE=${BENCH_PROFILE:-release} # profiling: the release build with symbols
cargo build --profile "$PROFILE" --locked --bin cleave --example bench-open-loop
BIN=target/$PROFILE
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

serve() { # limit: off, in_flight=N or queue_delay=MS
  local in_flight=1000000 queue_delay=0
  case "$1" in
    off) ;;
    in_flight=*) in_flight=${1#in_flight=} ;;
    queue_delay=*) queue_delay=${1#queue_delay=} ;;
    *) echo "bench-shed: unknown limit $1" >&2; exit 1 ;;
  esac
  CLEAVE_SERVER__LISTEN=127.0.0.1:18310 CLEAVE_SERVER__WORKERS=1 CLEAVE_LOG__FORMAT=json \
    CLEAVE_DATABASE__DATA_DIR="$work/data" CLEAVE_SERVER__MAX_IN_FLIGHT="$in_flight" \
    CLEAVE_SERVER__MAX_QUEUE_DELAY_MS="$queue_delay" \
    taskset -c 0 "$BIN/cleave" serve >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null http://127.0.0.1:18310/health/ready 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "bench-shed: cleave did not become ready" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
# One returning visitor (a session id of the storefront's form): their cart is read per page.
COOKIE="Cookie: shop_session-id=session-$(cat /proc/sys/kernel/random/uuid)"
FILL=${BENCH_SHED_CART_ITEMS:-0}
fill_cart() { # the products of the catalog's first page, one of each, into the visitor's cart
  local ids
  ids=$(curl -fsS http://127.0.0.1:18310/api/catalog/v1/products | jq -r '.products[].id' | head -n "$FILL")
  [ "$(echo "$ids" | grep -c .)" -eq "$FILL" ] || { echo "bench-shed: the catalog has fewer than $FILL products" >&2; exit 1; }
  for id in $ids; do
    curl -fsS -o /dev/null -H "$COOKIE" --data "product_id=$id&quantity=1" http://127.0.0.1:18310/cart
  done
}
COPIES=${BENCH_SHED_PRODUCTS:-0}
copy_products() { # every product of the catalog again, COPIES times, under ids of its own
  local n
  for n in $(seq "$COPIES"); do
    echo "INSERT INTO catalog_products SELECT id || '-$n', name || ' $n', description, picture,
      price_currency_code, price_units, price_nanos, categories FROM catalog_products
      WHERE id NOT LIKE '%-%';"
  done | sqlite3 "$work/data/cleave.db"
}
load() { taskset -c 1 "$BIN/examples/bench-open-loop" "http://127.0.0.1:18310$PAGE" "$1" "$SECS" "$COOKIE"; }

results="$work/results"
for round in $(seq "$ROUNDS"); do
  serve off
  # The database outlives the restarts: the catalog grows and the cart is filled once.
  if [ "$round" -eq 1 ] && [ "$COPIES" -gt 0 ]; then
    stop
    copy_products
    serve off
  fi
  [ "$round" -gt 1 ] || [ "$FILL" -eq 0 ] || fill_cart
  cap=$(taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -H "$COOKIE" "http://127.0.0.1:18310$PAGE" | awk '/Requests\/sec/ {printf "%d", $2}')
  echo "capacity $cap" >>"$results"
  echo "unloaded $(load 1000)" >>"$results"
  stop
  for limit in "${LIMITS[@]}"; do
    serve "$limit"
    echo "limit=$limit $(load $((cap * 2)))" >>"$results"
    stop
  done
  echo "round $round done" >&2
done

python3 - "$results" "$(nproc)" <<'PY'
import json, os, statistics, sys
secs = float(os.environ.get('BENCH_SECONDS', '5'))
rows = [l.split(' ', 1) for l in open(sys.argv[1]).read().splitlines()]
cap = statistics.median(int(v) for k, v in rows if k == 'capacity')
def med(key, field):
    vals = [json.loads(v) for k, v in rows if k == key]
    return statistics.median(f(v) for v in vals for f in [field])
unloaded = med('unloaded', lambda v: v['ok_p99_ms'])
print(f"capacity (wrk, closed loop): {cap:.0f} req/s; unloaded p99 at 1000 req/s: {unloaded:.2f} ms")
print(f"offered: {2 * cap:.0f} req/s (twice the capacity), {sys.argv[2]} CPUs, server on one")
print("| limit | served/s | shed (503) | failed | p50 served | p99 served | p99 / unloaded | load tool CPU | sends late p99 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for key in dict.fromkeys(k for k, _ in rows if k.startswith('limit=')):
    name = key.split('=', 1)[1]
    shed = med(key, lambda v: v['by_status'].get('503', 0) / v['offered'])
    failed = med(key, lambda v: v['by_status'].get('failed', 0) / v['offered'])
    rate = med(key, lambda v: v['by_status'].get('200', 0))
    p50 = med(key, lambda v: v['ok_p50_ms'])
    p99 = med(key, lambda v: v['ok_p99_ms'])
    tool = med(key, lambda v: v['tool_cpu_share'])
    late = med(key, lambda v: v['tool_late_p99_ms'])
    print(f"| {name} | {rate / secs:.0f} | {shed:.0%} | {failed:.0%} | {p50:.2f} ms | {p99:.2f} ms | {p99 / unloaded:.1f}x | {tool:.0%} | {late:.2f} ms |")
PY
