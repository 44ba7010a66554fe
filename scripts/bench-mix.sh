#!/usr/bin/env bash
# Split cost on Online Boutique's task mix (benches/tools/mix.rs: its weights, routes and
# forms, 50 shoppers with their own cookies, tasks started at a fixed rate), measured in one
# run against these set-ups of the same binary:
#   one     every module in one process (plain HTTP, its own SQLite file)
#   split   one process per module, checkout with email (scripts/split.sh: HTTPS with module
#           certificates, one SQLite file per process, events over NATS)
#   grpc    the same split, the processes calling each other over gRPC (SPLIT_PROTOCOL=grpc:
#           grpcs:// with the same certificates); the shoppers still browse over HTTPS
#   one_tls the one process serving the shoppers over HTTPS as the split's front does (the same
#           certificate; HTTP/2 by ALPN, as the load tool then speaks to both): the split / one
#           ratios are also given against it, so that the cost of serving shoppers over TLS
#           is not counted as a cost of the split
# For each, every cleave process's CPU time (utime + stime from /proc) over the run is divided
# by the requests answered; p50 and p99 are the shoppers' request latencies. Rounds alternate
# the set-ups; medians are reported with the split / one ratios the goal is stated in.
#   BENCH_MIX_RATE   tasks per second (default 64: about 98 requests per second)
#   BENCH_MIX_SECS   seconds per round (default 30)
#   BENCH_MIX_ROUNDS rounds (default 3)
#   BENCH_PROFILE    cargo profile of the binaries (default release; profiling has symbols)
#   BENCH_MIX_BASELINE_BIN  a cleave binary built from an earlier commit: its one-process
#                    and split set-ups run in the same rounds ("one, before", "split,
#                    before"), so a change of either's cost is told from the machine's
#                    (BENCH_MIX_BASELINE_CONFIG_DIR: that commit's config/, when the newer
#                    one holds keys it refuses)
# Last, a breaker drill on the split set-up: checkouts alone (BENCH_MIX_ONLY=checkout, 20 a
# second, each after adding an item) for BENCH_MIX_SECS with payment healthy; then payment
# is killed (kill -9) and, after a warm-up that opens checkout's breaker to it, the same
# again; the checkout requests' statuses and p50/p99 of both are reported.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${BENCH_MIX_RATE:-64}
SECS=${BENCH_MIX_SECS:-30}
ROUNDS=${BENCH_MIX_ROUNDS:-3}
ONE=127.0.0.1:18400
ONE_BEFORE=127.0.0.1:18401
ONE_TLS=127.0.0.1:18402
FRONT=127.0.0.1:18410
FRONT_GRPC=127.0.0.1:18430
FRONT_BEFORE=127.0.0.1:18450

bash scripts/install-debian.sh "jq curl" jq curl
bash scripts/nats.sh >/dev/null
PROFILE=${BENCH_PROFILE:-release} # profiling: the release build with symbols
cargo build --profile "$PROFILE" --locked --bin cleave --example bench-mix
BIN=$PWD/target/$PROFILE
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CLEAVE_SERVER__LISTEN=$ONE CLEAVE_LOG__FORMAT=json CLEAVE_DATABASE__DATA_DIR="$work/one" \
  "$BIN/cleave" serve >"$work/one.log" 2>&1 &
pids+=($!)
one_pid=$!
BASE=${BENCH_MIX_BASELINE_BIN:-}
if [ -n "$BASE" ]; then
  [ -x "$BASE" ] || { echo "bench-mix: BENCH_MIX_BASELINE_BIN=$BASE is not executable" >&2; exit 1; }
  CLEAVE_CONFIG_DIR=${BENCH_MIX_BASELINE_CONFIG_DIR:-config} CLEAVE_SERVER__LISTEN=$ONE_BEFORE \
    CLEAVE_LOG__FORMAT=json CLEAVE_DATABASE__DATA_DIR="$work/one_before" \
    "$BASE" serve >"$work/one_before.log" 2>&1 &
  pids+=($!)
  before_pid=$!
fi
groups=()
for m in $("$BIN/cleave" modules | awk 'NR > 1 && $1 != "" { print $1 }'); do
  case $m in checkout|email) ;; *) groups+=("$m") ;; esac
done
groups+=(checkout,email)
SPLIT_KEEP_GOING=1 SPLIT_BIN="$BIN/cleave" DIR="$work/split" FRONT=$FRONT bash scripts/split.sh "${groups[@]}" >"$work/split.log" 2>&1 &
pids+=($!)
split_pid=$!
SPLIT_PROTOCOL=grpc SPLIT_KEEP_GOING=1 SPLIT_BIN="$BIN/cleave" DIR="$work/grpc" FRONT=$FRONT_GRPC \
  bash scripts/split.sh "${groups[@]}" >"$work/grpc.log" 2>&1 &
pids+=($!)
grpc_pid=$!
if [ -n "$BASE" ]; then
  CLEAVE_CONFIG_DIR=${BENCH_MIX_BASELINE_CONFIG_DIR:-config} SPLIT_KEEP_GOING=1 SPLIT_BIN="$BASE" \
    DIR="$work/split_before" FRONT=$FRONT_BEFORE bash scripts/split.sh "${groups[@]}" \
    >"$work/split_before.log" 2>&1 &
  pids+=($!)
  split_before_pid=$!
fi

up() { # url, then curl options
  local url=$1; shift
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "bench-mix: $url did not come up; logs in $work" >&2
  cat "$work"/*.log >&2
  exit 1
}
up "http://$ONE/health/ready"
[ -z "$BASE" ] || up "http://$ONE_BEFORE/health/ready"
up "https://$FRONT/health/ready" --cacert "$work/split/certs/ca.pem"
# The split's certificates exist now: the one process over HTTPS uses the front's.
CLEAVE_SERVER__LISTEN=$ONE_TLS CLEAVE_LOG__FORMAT=json CLEAVE_DATABASE__DATA_DIR="$work/one_tls" \
  CLEAVE_SERVER__TLS__CERT_FILE="$work/split/certs/server.pem" \
  CLEAVE_SERVER__TLS__KEY_FILE="$work/split/certs/server.key" \
  CLEAVE_SERVER__TLS__CLIENT_CA_FILE="$work/split/certs/ca.pem" \
  CLEAVE_SERVER__TLS__CLIENT_CERT_REQUIRED=false \
  "$BIN/cleave" serve >"$work/one_tls.log" 2>&1 &
pids+=($!)
one_tls_pid=$!
up "https://$ONE_TLS/health/ready" --cacert "$work/split/certs/ca.pem"
up "https://$FRONT_GRPC/health/ready" --cacert "$work/grpc/certs/ca.pem"
[ -z "$BASE" ] || up "https://$FRONT_BEFORE/health/ready" --cacert "$work/split_before/certs/ca.pem"
procs() { # the cleave processes of a set-up
  case $1 in
    one) echo "$one_pid" ;; one_before) echo "$before_pid" ;; one_tls) echo "$one_tls_pid" ;;
    split) pgrep -P "$split_pid" ;; grpc) pgrep -P "$grpc_pid" ;;
    split_before) pgrep -P "$split_before_pid" ;;
  esac
}
splits=(split grpc)
[ -z "$BASE" ] || splits+=(split_before)
for s in "${splits[@]}"; do
  for p in $(procs "$s"); do up "https://127.0.0.1:$(
    tr '\0' ' ' </proc/"$p"/cmdline | sed -E 's/.*--listen [^:]+:([0-9]+).*/\1/')/health/ready" --cacert "$work/$s/certs/ca.pem"; done
done

declare -A target=([one]="http://$ONE" [split]="https://$FRONT" [grpc]="https://$FRONT_GRPC"
  [one_before]="http://$ONE_BEFORE" [one_tls]="https://$ONE_TLS"
  [split_before]="https://$FRONT_BEFORE")
declare -A ca=([one]="" [split]="$work/split/certs/ca.pem" [grpc]="$work/grpc/certs/ca.pem"
  [one_before]="" [one_tls]="$work/split/certs/ca.pem"
  [split_before]="$work/split_before/certs/ca.pem")
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
name_of() { tr '\0' ' ' </proc/"$1"/cmdline | sed -E 's/.*--modules ([^ ]+).*/\1/; t; s/.*/all/'; }
hz=$(getconf CLK_TCK)

mix() { "$BIN/examples/bench-mix" "${target[$1]}" "$2" "$3" ${ca[$1]:+"${ca[$1]}"}; }
setups=(one one_tls split grpc)
[ -z "$BASE" ] || setups+=(one_before split_before)
for s in "${setups[@]}"; do mix "$s" "$RATE" 5 >/dev/null; done # warm-up

declare -A cpu p50 p99 fails reqs per_proc
for round in $(seq 1 "$ROUNDS"); do
  for s in "${setups[@]}"; do
    declare -A before=()
    for p in $(procs "$s"); do before[$p]=$(cpu_ticks "$p"); done
    out=$(mix "$s" "$RATE" "$SECS")
    total=0
    line=""
    for p in $(procs "$s"); do
      d=$(( $(cpu_ticks "$p") - ${before[$p]} ))
      total=$((total + d))
      line+="$(name_of "$p")=$d "
    done
    n=$(jq -r .requests <<<"$out")
    ms=$(awk -v t="$total" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.3f", t * 1000 / hz / n}')
    cpu[$s]+="$ms "; p50[$s]+="$(jq -r .p50_ms <<<"$out") "; p99[$s]+="$(jq -r .p99_ms <<<"$out") "
    fails[$s]+="$(jq -r .failures <<<"$out") "; reqs[$s]+="$n "
    per_proc[$s]="$line"
    echo "round $round  $s  $out  cpu ${ms} ms/request  ticks: $line" >&2
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
c1=$(median "${cpu[one]}"); cs=$(median "${cpu[split]}"); cg=$(median "${cpu[grpc]}")
l1=$(median "${p50[one]}"); ls=$(median "${p50[split]}"); lg=$(median "${p50[grpc]}")
ct=$(median "${cpu[one_tls]}"); lt=$(median "${p50[one_tls]}")
cat <<MD
### Boutique's mix ($(date -u +%Y-%m-%d), $ROUNDS rounds x ${SECS}s at $RATE tasks/s, $(nproc) cores)

| set-up | CPU ms / request (median) | p50 ms | p99 ms | requests | failures |
| --- | ---: | --- | --- | --- | --- |
| one process | $c1 | ${p50[one]}| ${p99[one]}| ${reqs[one]}| ${fails[one]}|
| one process, HTTPS to the shoppers | $ct | ${p50[one_tls]}| ${p99[one_tls]}| ${reqs[one_tls]}| ${fails[one_tls]}|
| one process per module | $cs | ${p50[split]}| ${p99[split]}| ${reqs[split]}| ${fails[split]}|
| one process per module, gRPC between them | $cg | ${p50[grpc]}| ${p99[grpc]}| ${reqs[grpc]}| ${fails[grpc]}|

| goal | ratio | target |
| --- | ---: | ---: |
| split / one, CPU per request | $(ratio "$cs" "$c1") | <= 2.0 |
| split / one, p50 | $(ratio "$ls" "$l1") | <= 2.0 |
| split / one over HTTPS (the same protocol to the shoppers), CPU per request | $(ratio "$cs" "$ct") | <= 2.0 |
| split / one over HTTPS, p50 | $(ratio "$ls" "$lt") | <= 2.0 |
| gRPC split / REST split, CPU per request | $(ratio "$cg" "$cs") | (measured) |
| gRPC split / REST split, p50 | $(ratio "$lg" "$ls") | (measured) |

CPU ticks per process in the last round (1 tick = $((1000 / hz)) ms): REST ${per_proc[split]}; gRPC ${per_proc[grpc]}
MD
if [ -n "$BASE" ]; then
  cb=$(median "${cpu[one_before]}")
  csb=$(median "${cpu[split_before]}")
  cat <<MD

Baseline \`$BASE\`, same rounds: one process CPU $cb ms / request (rounds: ${cpu[one_before]}), p50 ${p50[one_before]}ms, p99 ${p99[one_before]}ms, failures ${fails[one_before]}; this build / baseline, CPU per request: $(ratio "$c1" "$cb"). One process per module CPU $csb ms / request (rounds: ${cpu[split_before]}), p50 ${p50[split_before]}ms, p99 ${p99[split_before]}ms, failures ${fails[split_before]}; this build / baseline: $(ratio "$cs" "$csb"). Ticks per process in the last round: ${per_proc[split_before]}
MD
fi

# The breaker drill: checkouts alone, payment healthy, then killed (checkout's breaker open).
healthy=$(BENCH_MIX_ONLY=checkout mix split 20 "$SECS")
for p in $(procs split); do [ "$(name_of "$p")" = payment ] && kill -9 "$p"; done
BENCH_MIX_ONLY=checkout mix split 20 5 >/dev/null # the breaker opens
dead=$(BENCH_MIX_ONLY=checkout mix split 20 "$SECS")
row() { jq -r --arg s "$1" '.checkout | "| \($s) | \(.requests) | \(.by_status | to_entries | map("\(.key): \(.value)") | join(", ")) | \(.p50_ms) | \(.p99_ms) |"' <<<"$2"; }
cat <<MD

Checkouts alone (\`POST /cart/checkout\` through the storefront, 20 tasks a second, each after
adding an item) in the split set-up, ${SECS}s each: payment healthy, then killed (kill -9;
checkout's breaker open, after a 5 s warm-up):

| payment | checkouts | statuses | p50 ms | p99 ms |
| --- | ---: | --- | ---: | ---: |
$(row healthy "$healthy")
$(row killed "$dead")

Every request of the drill with payment killed (the item added, the checkout): p50 $(jq -r .p50_ms <<<"$dead") ms, p99 $(jq -r .p99_ms <<<"$dead") ms.
MD
