#!/usr/bin/env bash
# Runs cache-bench, the backend comparison: the README's first command.
#
#   scripts/bench.sh                          # all workloads, all backends, private servers
#   scripts/bench.sh --reference --chart bench.svg
#   scripts/bench.sh --workload get --coder raw --format markdown
#   scripts/bench.sh eviction                 # InMemoryBackend vs an exact LRU
#   scripts/bench.sh micro                    # the core's hot paths
#
# On a fresh Debian machine with only Swift it installs the C libraries and the servers with apt
# (scripts/ensure-deps.sh), builds cache-bench in release mode, and runs the comparison with
# --spawn-servers: redis-server and memcached are started on free 127.0.0.1 ports for the run
# and stopped by PID at the end, also on errors and Ctrl-C. Extra arguments go to cache-bench
# (see `scripts/bench.sh --help` and Docs/Benchmarking.md). Results go to standard output;
# build output and progress go to standard error.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
swift build -c release --product cache-bench >&2
bench=.build/release/cache-bench

case "${1:-}" in
    eviction|micro|help|-h|--help)
        exec "$bench" "$@" ;;
    run)
        shift
        exec "$bench" run --spawn-servers "$@" ;;
    *)
        exec "$bench" run --spawn-servers "$@" ;;
esac
