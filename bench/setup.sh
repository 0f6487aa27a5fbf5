#!/bin/sh
# Install what the benchmarks need from Debian's packages: the broker the agent ships to, and the
# peer row's collectd. collectd-core holds the plugins; the ping and mqtt plugins load liboping0 and
# libmosquitto1, which Debian lists only as suggestions, so they are named here.
set -eu
if [ "$(id -u)" != 0 ]; then
    echo "run as root (apt-get install)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    mosquitto collectd-core liboping0 libmosquitto1
# The package's own service would run with the default config and write RRD files; the benchmark
# starts its own collectd with its own config, so the system one is kept stopped.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet collectd 2>/dev/null; then
    systemctl stop collectd
fi
