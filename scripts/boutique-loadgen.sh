#!/usr/bin/env bash
# Drives a running shop with Online Boutique's own load generator, unchanged.
#
#   scripts/boutique-loadgen.sh PATH/TO/locustfile.py [HOST] [USERS] [SECONDS]
#
# The locustfile is Boutique's (src/loadgenerator/locustfile.py in
# GoogleCloudPlatform/microservices-demo); it is not copied into this repository. Locust and
# Faker are installed with pip when missing. Prints Locust's summary; exits non-zero when any
# request failed.
set -euo pipefail
LOCUSTFILE=${1:?usage: $0 PATH/TO/locustfile.py [HOST] [USERS] [SECONDS]}
HOST=${2:-http://127.0.0.1:8080}
USERS=${3:-50}
SECONDS_=${4:-60}
python3 -c 'import locust, faker' 2>/dev/null || pip install -q locust faker
exec locust -f "$LOCUSTFILE" --headless -u "$USERS" -r "$USERS" -t "${SECONDS_}s" \
    --host "$HOST" --only-summary --exit-code-on-error 1
