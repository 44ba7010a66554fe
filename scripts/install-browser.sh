#!/usr/bin/env bash
# Installs Debian's headless Chromium and ChromeDriver for the storefront browser test, unless
# they are already there. Fails loudly when it cannot.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null || {
    echo "install-browser: chromium/chromedriver still missing after apt-get install" >&2
    exit 1
}
