#!/usr/bin/env bash
# HTTP throughput of GET /api/catalog/v1/products/{id}, four set-ups measured in one run:
#   bare    a bare actix-web handler answering the same JSON from memory (baseline)
#   single  cleave, every module in one process
#   split   cleave front process forwarding to catalog in a second cleave process
#   hop     a hand-written actix + reqwest forwarding hop to that same catalog process
#   grpc    cleave front process calling catalog in a second cleave process over gRPC (the
#           front serves the route from its gRPC client; kept answers off, so every read
#           crosses, as a forwarded one does)
# Every server runs one worker; wrk runs one thread. Rounds are interleaved and the median
# is reported, with the ratios the goals are stated in. Beside the throughput, each set-up's
# CPU time a request (utime + stime of its server processes from /proc, wrk's left out): where
# the throughput is lower, it tells work a request costs from time spent waiting (on a noisy
# host it moves between rounds too). Loopback only; every run is bounded.
# With BENCH_BASELINE_BIN=<a cleave binary built from an earlier commit>, the same set-ups of
# that binary (single, split, and a hop to its catalog) run in the same rounds, so a change
# is compared with what it replaced in one run. A newer config/default.toml may hold keys an
# older binary refuses: BENCH_BASELINE_CONFIG_DIR=<that commit's config/> (e.g. from
# `git archive REV config | tar -x -C DIR`) is what the baseline processes read.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
PATH_UNDER_TEST=/api/catalog/v1/products/OLJCESPC7Z

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || { echo "bench-http: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
fi

# BENCH_PROFILE=profiling measures the build the profilers read (release with symbols), so a
# baseline built for callgrind serves here too.
PROFILE=${BENCH_PROFILE:-release}
cargo build --profile "$PROFILE" --locked --bin cleave --example bench-bare --example bench-forward
BIN=target/$PROFILE
work=$(mktemp -d)
declare -A pid_of # each server process by name
cleanup() { for p in "${pid_of[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # name, then the command
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pid_of[$name]=$!
}
cleave_env() { # data dir name, listen port
  echo "CLEAVE_SERVER__LISTEN=127.0.0.1:$2 CLEAVE_SERVER__WORKERS=1 CLEAVE_LOG__FORMAT=json CLEAVE_DATABASE__DATA_DIR=$work/$1"
}

start bare "$BIN/examples/bench-bare" 127.0.0.1:18190
start single env $(cleave_env single 18191) "$BIN/cleave" serve
# Every process names identity (the front one hosts it): tokens are verified everywhere.
start catalog env $(cleave_env catalog 18192) CLEAVE_MODULES__IDENTITY__URL=http://127.0.0.1:18193 \
  "$BIN/cleave" serve --modules catalog
start front env $(cleave_env front 18193) CLEAVE_MODULES__CATALOG__URL=http://127.0.0.1:18192 \
  "$BIN/cleave" serve --modules identity,currency,cart,recommendation
start hop "$BIN/examples/bench-forward" 127.0.0.1:18194 http://127.0.0.1:18192
start catalog_grpc env $(cleave_env catalog_grpc 18199) CLEAVE_SERVER__GRPC_LISTEN=127.0.0.1:18299 \
  CLEAVE_MODULES__IDENTITY__URL=http://127.0.0.1:18201 "$BIN/cleave" serve --modules catalog
start front_grpc env $(cleave_env front_grpc 18201) CLEAVE_MODULES__CATALOG__URL=grpc://127.0.0.1:18299 \
  CLEAVE_REMOTE__CACHE_TTL_MS=0 "$BIN/cleave" serve --modules identity,currency,cart,recommendation
BASE=${BENCH_BASELINE_BIN:-}
if [ -n "$BASE" ]; then
  [ -x "$BASE" ] || { echo "bench-http: BENCH_BASELINE_BIN=$BASE is not executable" >&2; exit 1; }
  base_config=${BENCH_BASELINE_CONFIG_DIR:-config}
  start single_before env $(cleave_env single_before 18197) CLEAVE_CONFIG_DIR="$base_config" "$BASE" serve
  start catalog_before env $(cleave_env catalog_before 18195) CLEAVE_CONFIG_DIR="$base_config" \
    CLEAVE_MODULES__IDENTITY__URL=http://127.0.0.1:18196 "$BASE" serve --modules catalog
  start front_before env $(cleave_env front_before 18196) CLEAVE_CONFIG_DIR="$base_config" \
    CLEAVE_MODULES__CATALOG__URL=http://127.0.0.1:18195 \
    "$BASE" serve --modules identity,currency,cart,recommendation
  start hop_before "$BIN/examples/bench-forward" 127.0.0.1:18198 http://127.0.0.1:18195
fi

declare -A url=(
  [bare]=http://127.0.0.1:18190$PATH_UNDER_TEST
  [single]=http://127.0.0.1:18191$PATH_UNDER_TEST
  [split]=http://127.0.0.1:18193$PATH_UNDER_TEST
  [hop]=http://127.0.0.1:18194$PATH_UNDER_TEST
  [grpc]=http://127.0.0.1:18201$PATH_UNDER_TEST
)
setups=(bare single split hop grpc)
if [ -n "$BASE" ]; then
  url[single_before]=http://127.0.0.1:18197$PATH_UNDER_TEST
  url[split_before]=http://127.0.0.1:18196$PATH_UNDER_TEST
  url[hop_before]=http://127.0.0.1:18198$PATH_UNDER_TEST
  setups+=(single_before split_before hop_before)
fi

for s in "${setups[@]}"; do
  ok=
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "${url[$s]}"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "bench-http: $s did not come up; logs in $work" >&2; cat "$work"/*.log >&2; exit 1; }
  # The answers must be the same JSON, or the comparison means nothing.
  curl -fsS "${url[$s]}" >"$work/$s.json"
done
for s in "${setups[@]:1}"; do
  cmp -s "$work/bare.json" "$work/$s.json" || { echo "bench-http: $s answers differently from bare" >&2; exit 1; }
done

for s in "${setups[@]}"; do wrk -t1 -c"$CONNECTIONS" -d2s "${url[$s]}" >/dev/null; done # warm-up

# The server processes each set-up's requests pass through.
declare -A procs_of=([bare]="bare" [single]="single" [split]="front catalog" [hop]="hop catalog"
  [grpc]="front_grpc catalog_grpc" [single_before]="single_before"
  [split_before]="front_before catalog_before" [hop_before]="hop_before catalog_before")
ticks() { # CPU ticks used so far by the processes of set-up $1
  local t=0 p
  for p in ${procs_of[$1]}; do
    t=$((t + $(awk '{print $14 + $15}' /proc/"${pid_of[$p]}"/stat)))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

declare -A results cpu
for round in $(seq 1 "$ROUNDS"); do
  for s in "${setups[@]}"; do
    before=$(ticks "$s")
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${url[$s]}")
    used=$(($(ticks "$s") - before))
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(awk -v t="$used" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
    cpu[$s]+="$us "
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    [ -z "$errors" ] || { echo "bench-http: $s had errors: $errors" >&2; exit 1; }
    results[$s]+="$rps "
    echo "round $round  $s  $rps req/s  p50 $p50  cpu $us us/request" >&2
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
b=$(median "${results[bare]}"); s1=$(median "${results[single]}")
sp=$(median "${results[split]}"); h=$(median "${results[hop]}"); g=$(median "${results[grpc]}")
cb=$(median "${cpu[bare]}"); c1=$(median "${cpu[single]}"); csp=$(median "${cpu[split]}")
ch=$(median "${cpu[hop]}"); cg=$(median "${cpu[grpc]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

cat <<MD
### HTTP: GET $PATH_UNDER_TEST ($(date -u +%Y-%m-%d), $ROUNDS rounds x $DURATION, $CONNECTIONS connections, wrk -t1, 1 server worker)

| set-up | median req/s | all rounds | CPU µs / request (median) | all rounds |
| --- | ---: | --- | ---: | --- |
| bare actix handler (baseline) | $b | ${results[bare]}| $cb | ${cpu[bare]}|
| cleave, one process | $s1 | ${results[single]}| $c1 | ${cpu[single]}|
| hand-written actix+reqwest hop -> cleave catalog | $h | ${results[hop]}| $ch | ${cpu[hop]}|
| cleave split: front -> cleave catalog | $sp | ${results[split]}| $csp | ${cpu[split]}|
| cleave split over gRPC: front -> cleave catalog | $g | ${results[grpc]}| $cg | ${cpu[grpc]}|

| goal | ratio | target |
| --- | ---: | ---: |
| one process / bare | $(ratio "$s1" "$b") | >= 0.85 |
| split / hand-written hop | $(ratio "$sp" "$h") | >= 1.00 |
| gRPC split / REST split | $(ratio "$g" "$sp") | (measured) |
| bare / one process, CPU per request (as a throughput ratio: the work of a request) | $(ratio "$cb" "$c1") | (measured) |
| hand-written hop / split, CPU per request (both processes of each) | $(ratio "$ch" "$csp") | (measured) |
MD
if [ -n "$BASE" ]; then
  s1b=$(median "${results[single_before]}"); spb=$(median "${results[split_before]}")
  hb=$(median "${results[hop_before]}")
  c1b=$(median "${cpu[single_before]}"); cspb=$(median "${cpu[split_before]}")
  chb=$(median "${cpu[hop_before]}")
  cat <<MD

Baseline \`$BASE\`, same rounds:

| set-up | median req/s | all rounds | CPU µs / request (median) | all rounds |
| --- | ---: | --- | ---: | --- |
| baseline, one process | $s1b | ${results[single_before]}| $c1b | ${cpu[single_before]}|
| hand-written hop -> baseline catalog | $hb | ${results[hop_before]}| $chb | ${cpu[hop_before]}|
| baseline split | $spb | ${results[split_before]}| $cspb | ${cpu[split_before]}|

| ratio | baseline | this build |
| --- | ---: | ---: |
| one process / bare | $(ratio "$s1b" "$b") | $(ratio "$s1" "$b") |
| split / hand-written hop | $(ratio "$spb" "$hb") | $(ratio "$sp" "$h") |
| bare / one process, CPU per request | $(ratio "$cb" "$c1b") | $(ratio "$cb" "$c1") |
| hand-written hop / split, CPU per request | $(ratio "$chb" "$cspb") | $(ratio "$ch" "$csp") |
MD
fi
