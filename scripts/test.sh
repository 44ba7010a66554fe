#!/usr/bin/env bash
# The test command of the README, the same on a fresh machine and in CI: prepares what the
# tests need, then runs every test of the workspace.
#   - Debian's chromium and chromedriver for the storefront browser test (installed when
#     missing; the test fails, never skips, without them);
#   - Debian's Prometheus (prometheus, promtool) for the metrics test (installed when missing);
#   - Debian's nginx and haproxy for the edge test (installed when missing);
#   - protoc with its well-known types (scripts/install-protoc.sh: etcd-client's build compiles
#     etcd's protocol) and Debian's etcd-server (each registry test starts its own etcd on
#     free ports);
#   - Python's grpcio, grpcio-tools, and its health and reflection clients for the gRPC
#     interop test (scripts/install-grpcio.sh, from PyPI);
#   - a NATS server with JetStream on 127.0.0.1:4222 for the event bus tests (scripts/nats.sh
#     starts Debian's nats-server when nothing answers there; the run fails if it cannot);
#   - with CLEAVE_TEST_DATABASE_URL set (CI sets it), every database test also runs on a fresh
#     PostgreSQL database made through that url: the server must answer, or the run fails.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p cart`).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test prerequisites"
bash scripts/install-browser.sh
chromium --version
bash scripts/install-prometheus.sh
promtool --version | sed -n 1p
# nginx and haproxy for the edge test (`cleave edge`); Debian's, not started as services.
bash scripts/install-debian.sh "nginx haproxy" nginx haproxy
nginx -v
haproxy -v | sed -n 1p
bash scripts/install-protoc.sh
bash scripts/install-debian.sh etcd etcd-server
etcd --version | sed -n 1p
bash scripts/nats.sh
bash scripts/install-grpcio.sh
if [ -n "${CLEAVE_TEST_DATABASE_URL:-}" ]; then
  if ! psql "$CLEAVE_TEST_DATABASE_URL" -qAtc 'select 1' >/dev/null; then
    echo "test: CLEAVE_TEST_DATABASE_URL is set but PostgreSQL does not answer there" >&2
    exit 1
  fi
  echo "PostgreSQL answers: database tests run on SQLite and PostgreSQL"
else
  echo "CLEAVE_TEST_DATABASE_URL is not set: database tests run on SQLite only"
fi

echo "== cargo test --workspace --locked"
cargo test --workspace --locked "$@"
