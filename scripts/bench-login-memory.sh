#!/usr/bin/env bash
# Memory of failed logins: starts cleave (every module, one worker), reads its resident set
# size (VmRSS) when idle, sends LOGINS failed logins (each costs one Argon2id verification of
# 19 MiB; the per-account and per-address limits are raised so every one is hashed), and
# reads the RSS again. Issue 9 asks that it stays within idle + 64 MiB after 1,000.
# Loopback only; the number of requests is bounded. BENCH_BIN=<binary> measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."

LOGINS=${LOGINS:-1000}
PARALLEL=${PARALLEL:-4}
PORT=${PORT:-18181}
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --locked --bin cleave
  BENCH_BIN=target/release/cleave
fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CLEAVE_SERVER__LISTEN=127.0.0.1:$PORT CLEAVE_SERVER__WORKERS=1 CLEAVE_DATABASE__DATA_DIR="$work" \
  CLEAVE_MODULES__IDENTITY__LOGIN_PER_IP_PER_MINUTE=1000000 \
  CLEAVE_MODULES__IDENTITY__LOGIN_ATTEMPTS_PER_MINUTE=1000000 \
  "$BENCH_BIN" serve >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null || { cat "$work/log" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
idle=$(rss)
seq 1 "$LOGINS" | xargs -P "$PARALLEL" -I{} curl -s -o /dev/null -w '%{http_code}\n' \
  -H 'content-type: application/json' \
  -d '{"email":"nobody-{}@example.com","password":"wrong password"}' \
  "http://127.0.0.1:$PORT/api/identity/v1/tokens" >"$work/codes"
after=$(rss)
refused=$(grep -c '^401$' "$work/codes" || true)
echo "failed logins: $LOGINS sent, $refused answered 401"
echo "RSS idle: ${idle} MiB, after: ${after} MiB, growth: $((after - idle)) MiB (goal: at most 64)"
