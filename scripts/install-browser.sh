#!/usr/bin/env bash
# Installs Debian's headless Chromium and ChromeDriver for the storefront browser test, unless
# they are already there. Fails loudly when it cannot.
exec bash "$(dirname "$0")/install-debian.sh" "chromium chromedriver" chromium chromium-driver
