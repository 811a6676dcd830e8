#!/bin/sh
# Print Alertmanager's config (the file given, by default the mounted alertmanager.yml) with
# ${ALERT_WEBHOOK_URL} replaced by that variable's value: Alertmanager reads no environment variables.
# docker-compose.yml's alertmanager service runs it before Alertmanager; tests/deploy/ checks the result.
set -eu
: "${ALERT_WEBHOOK_URL:?set ALERT_WEBHOOK_URL to the URL that receives the alerts (make env writes it to .env)}"
url=$(printf '%s\n' "$ALERT_WEBHOOK_URL" | sed 's/[\\|&]/\\&/g')
sed "s|\${ALERT_WEBHOOK_URL}|$url|g" "${1:-/etc/alertmanager/alertmanager.yml}"
