#!/usr/bin/env bash
# Runs every test of swift-caching against real servers.
#
#   scripts/test.sh                 # all tests, all modules (Hummingbird and Vapor included)
#   scripts/test.sh --filter Redis  # extra arguments go to `swift test`
#
# On a fresh Debian machine with only Swift it installs the C libraries and the servers with
# apt (scripts/ensure-deps.sh), starts redis-server and two memcached on free 127.0.0.1 ports,
# runs `swift test --enable-all-traits`, and stops the servers by PID whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
. scripts/servers.sh
start_cache_servers

# Serially: many tests check timeouts, expiry and responsiveness, which 300 tests in parallel
# on a 2-core machine would turn into noise. Concurrency is tested inside the tests themselves.
swift test --enable-all-traits --no-parallel "$@"
