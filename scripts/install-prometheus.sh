#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus and promtool) for the metrics test, unless it is
# already there. Fails loudly when it cannot. The test starts its own Prometheus with a scrape
# configuration of its own; a system service, if the package started one, is not used.
exec bash "$(dirname "$0")/install-debian.sh" "prometheus promtool" prometheus
