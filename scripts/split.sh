#!/usr/bin/env bash
# Runs the shop split into OS processes on this machine, the way the placement runner's tests
# do (tests/e2e/placements.rs): one process per group of modules, each with its own SQLite
# database, serving HTTPS with a deployment CA made by `cleave certs`, presenting one
# certificate naming the modules it hosts, reaching every other module at the process that
# hosts it, events over NATS JetStream. Stops every process on Ctrl-C.
#
#   scripts/split.sh [GROUP...]     GROUP: modules of one process, comma-separated
#                                   (default: one process per module)
#
# The process hosting the storefront listens on $FRONT (default 127.0.0.1:8080), the others on
# the ports after it. Clients trust $DIR/certs/ca.pem (curl --cacert, REQUESTS_CA_BUNDLE for
# Locust). Environment: SPLIT_BIN (default target/release/cleave), DIR (default
# target/split), NATS_URL (default nats://127.0.0.1:4222), SPLIT_KEEP_GOING (set: a process
# that exits leaves the others running, for fault drills; default: it stops them all),
# SPLIT_PROTOCOL (grpc: each process also serves gRPC on its port + 1000, and the others call
# its modules there, grpcs:// with the same certificates; default rest).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SPLIT_BIN:-target/release/cleave}
DIR=${DIR:-target/split}
FRONT=${FRONT:-127.0.0.1:8080}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first (or set SPLIT_BIN)" >&2; exit 1; }

if [ $# -eq 0 ]; then
  mapfile -t groups < <("$BIN" modules | awk 'NR > 1 && $1 != "" { print $1 }')
else
  groups=("$@")
fi
[ ${#groups[@]} -gt 0 ] || { echo "no modules: \`$BIN modules\` failed" >&2; exit 1; }
front_host=${FRONT%:*}
front_port=${FRONT##*:}

rm -rf "$DIR" && mkdir -p "$DIR/certs" "$DIR/data" "$DIR/logs"
"$BIN" certs init --dir "$DIR/certs" >/dev/null
PROTOCOL=${SPLIT_PROTOCOL:-rest}
case $PROTOCOL in rest|grpc) ;; *) echo "SPLIT_PROTOCOL is rest or grpc, not $PROTOCOL" >&2; exit 1 ;; esac
declare -A url_of port_of
next=$((front_port + 1))
for g in "${groups[@]}"; do
  if [[ ",$g," == *",storefront,"* ]]; then port_of[$g]=$front_port; else port_of[$g]=$next; next=$((next + 1)); fi
  "$BIN" certs issue --module "$g" --dir "$DIR/certs" >/dev/null
  for m in ${g//,/ }; do
    if [ "$PROTOCOL" = grpc ]; then
      url_of[$m]="grpcs://$front_host:$((port_of[$g] + 1000))"
    else
      url_of[$m]="https://$front_host:${port_of[$g]}"
    fi
  done
done

prefix="split$$"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; exit 0' INT TERM EXIT
for g in "${groups[@]}"; do
  name=${g//,/+}
  env_=(
    CLEAVE_DATABASE__URL="sqlite://$DIR/data/$name.db?mode=rwc"
    CLEAVE_SERVER__TLS__CERT_FILE="$DIR/certs/server.pem"
    CLEAVE_SERVER__TLS__KEY_FILE="$DIR/certs/server.key"
    CLEAVE_SERVER__TLS__CLIENT_CA_FILE="$DIR/certs/ca.pem"
    CLEAVE_SERVER__TLS__CLIENT_CERT_REQUIRED=false
    CLEAVE_REMOTE__CA_FILE="$DIR/certs/ca.pem"
    CLEAVE_REMOTE__CLIENT_CERT_FILE="$DIR/certs/$name.pem"
    CLEAVE_REMOTE__CLIENT_KEY_FILE="$DIR/certs/$name.key"
    CLEAVE_EVENTS__BUS=nats
    CLEAVE_EVENTS__NATS_URL="$NATS_URL"
    CLEAVE_EVENTS__NATS_PREFIX="$prefix"
    CLEAVE_LOG__FORMAT=json
  )
  if [ "$PROTOCOL" = grpc ]; then
    env_+=(CLEAVE_SERVER__GRPC_LISTEN="$front_host:$((port_of[$g] + 1000))")
  fi
  for m in "${!url_of[@]}"; do
    [[ ",$g," == *",$m,"* ]] || env_+=("CLEAVE_MODULES__${m^^}__URL=${url_of[$m]}")
  done
  env "${env_[@]}" "$BIN" serve --modules "$g" --listen "$front_host:${port_of[$g]}" \
    >"$DIR/logs/$name.log" 2>&1 &
  pids+=($!)
  echo "$g: https://$front_host:${port_of[$g]} (log $DIR/logs/$name.log)"
done
echo "the shop: https://$FRONT/ (trust $DIR/certs/ca.pem); Ctrl-C stops every process"
if [ -n "${SPLIT_KEEP_GOING:-}" ]; then wait; exit 0; fi
wait -n "${pids[@]}" || true
echo "a process exited; stopping the others (see $DIR/logs)" >&2
exit 1
