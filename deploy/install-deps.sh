#!/bin/sh
# Installs the Debian bookworm packages that building, testing and the demo
# need, and only those that are missing. Safe to run any number of times.
# chromium (headless, with a font for screenshots) loads the dashboard's page
# in tests/integration/test_dashboard.py and takes the README's screenshot.
set -eu

PKGS="build-essential pkg-config
librdkafka-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev
libconfig-dev libuv1-dev libmicrohttpd-dev libssl-dev
redis-server
json-schema-test-suite
python3 python3-jsonschema python3-confluent-kafka python3-redis python3-prometheus-client python3-yaml
python3-botocore
chromium fonts-dejavu-core"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
