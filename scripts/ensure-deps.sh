#!/usr/bin/env bash
# Installs the Debian packages swift-caching needs, when any is missing.
# Usage: scripts/ensure-deps.sh            (libraries + servers)
# Safe to run again: it only calls apt-get when something is missing.
set -euo pipefail

packages=(libsqlite3-dev libhiredis-dev libmemcached-dev redis-server memcached pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "ensure-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ensure-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the servers it installs where it can; our scripts start their own on free
# loopback ports, so stop the system ones to keep the machine as it was asked to be.
for svc in redis-server memcached; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        $SUDO systemctl stop "$svc" || true
    fi
done
