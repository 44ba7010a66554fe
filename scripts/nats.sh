#!/usr/bin/env bash
# Makes sure a NATS server with JetStream answers on 127.0.0.1:4222 (or where
# CLEAVE_EVENTS__NATS_URL points, e.g. a CI service container), for the tests of the
# NATS event bus, and that Debian's nats-server is installed (the broker-kill test runs one of
# its own): installs it when missing, starts it if nothing answers there, and fails loudly
# when it cannot be had.
set -euo pipefail
addr=${CLEAVE_EVENTS__NATS_URL:-nats://127.0.0.1:4222}
addr=${addr#nats://}
host=${addr%:*}
port=${addr##*:}
up() { (echo > "/dev/tcp/$host/$port") >/dev/null 2>&1; }
if ! command -v nats-server >/dev/null; then
  echo "nats-server is missing; installing Debian's nats-server"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nats-server >/dev/null; } \
    || { echo "FAIL: cannot install nats-server" >&2; exit 1; }
fi
if up; then
  echo "NATS answers on $host:$port"
  exit 0
fi
if [ "$host:$port" != "127.0.0.1:4222" ]; then
  echo "FAIL: NATS does not answer on $host:$port (CLEAVE_EVENTS__NATS_URL)" >&2
  exit 1
fi
store=${NATS_STORE_DIR:-/tmp/cleave-nats}
mkdir -p "$store"
echo "starting nats-server -js on 127.0.0.1:4222 (store $store)"
nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$store" >"$store/server.log" 2>&1 &
for _ in $(seq 1 50); do up && break; sleep 0.2; done
if ! up; then
  echo "FAIL: nats-server did not come up on 127.0.0.1:4222 (see $store/server.log)" >&2
  exit 1
fi
echo "NATS answers on 127.0.0.1:4222"
