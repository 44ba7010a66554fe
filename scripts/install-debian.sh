#!/usr/bin/env bash
# Installs Debian packages a test needs unless its commands are already there; fails loudly
# when they are still missing afterwards.
#   scripts/install-debian.sh "COMMAND..." PACKAGE...
set -euo pipefail
commands=$1
shift
have_all() {
    for c in $commands; do command -v "$c" >/dev/null || return 1; done
}
if have_all; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
have_all || {
    echo "install-debian: $commands still missing after apt-get install $*" >&2
    exit 1
}
