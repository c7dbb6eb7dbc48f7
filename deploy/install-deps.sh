#!/bin/sh
# Installs the Debian bookworm packages that building, testing and the demo
# need, and only those that are missing. Safe to run any number of times.
# chromium (headless, with a font for screenshots) loads the dashboard's page
# in tests/integration/test_dashboard.py and takes the README's screenshot.
# clang and libclang-rt-14-dev (libFuzzer and clang's sanitizer runtimes, only
# recommended by clang, so not pulled in with --no-install-recommends) are for
# the fuzz targets of tests/fuzz (make fuzz; make test runs them briefly).
set -eu

PKGS="build-essential pkg-config
librdkafka-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev
libconfig-dev libuv1-dev libmicrohttpd-dev libssl-dev
redis-server nginx-light openssl
json-schema-test-suite
clang libclang-rt-14-dev
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
# nginx-light is for the TLS tests (tests/lib/tls.py), which start their own
# nginx on loopback ports: Debian's would start a server on port 80, so
# services are not started while installing (policy-rc.d, as in containers).
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
[ -n "$policy" ] && $SUDO rm -f "$policy"
exit "${status:-0}"
