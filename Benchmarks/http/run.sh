#!/usr/bin/env bash
# HTTP cache benchmark: requests/s of a cached endpoint on HIT against the same trivial
# endpoint without the middleware, for the Hummingbird and Vapor examples (release builds)
# and for FastAPI + fastapi-cache (in-memory backend) under uvicorn.
#
# Usage: Benchmarks/http/run.sh            (from the package root)
# Prints, per round, requests/s, p50/p99 latency and the server's CPU microseconds per request
# (user+system time of the server process over the run / requests served; Linux only), then
# the medians and the HIT/uncached ratios. On a loaded machine the CPU per request is the
# steadier figure; quote requests/s ratios only from one run.
# Env:   DURATION=5s CONNECTIONS=32 THREADS=2 ROUNDS=5 FASTAPI_VENV=/tmp/fastapi-venv
#        SERVERS="hummingbird vapor fastapi fastapi-uvloop fastapi-2workers"
# Needs: wrk; a venv with `pip install fastapi fastapi-cache2 uvicorn` (+ uvloop httptools for
#        the fastapi-uvloop rows). Every server binds 127.0.0.1 on a free port and is stopped
#        by its PID, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
VENV=${FASTAPI_VENV:-/tmp/fastapi-venv}
SERVERS=${SERVERS:-"hummingbird vapor fastapi fastapi-uvloop"}
BIN=$(swift build -c release --enable-all-traits --show-bin-path)

SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

wait_ready() {
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:$1/hello" && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    return 1
}

start_server() {
    local name=$1 port=$2
    case "$name" in
        hummingbird) "$BIN/cache-example-hummingbird" --port "$port" > /tmp/http-bench-$name.log 2>&1 & ;;
        vapor) "$BIN/cache-example-vapor" --port "$port" > /tmp/http-bench-$name.log 2>&1 & ;;
        fastapi) (cd Benchmarks/http && exec "$VENV/bin/uvicorn" fastapi_app:app --host 127.0.0.1 --port "$port" \
                    --no-access-log --log-level warning --loop asyncio --http h11) > /tmp/http-bench-$name.log 2>&1 & ;;
        fastapi-uvloop) (cd Benchmarks/http && exec "$VENV/bin/uvicorn" fastapi_app:app --host 127.0.0.1 --port "$port" \
                    --no-access-log --log-level warning --loop uvloop --http httptools) > /tmp/http-bench-$name.log 2>&1 & ;;
        fastapi-2workers) (cd Benchmarks/http && exec "$VENV/bin/uvicorn" fastapi_app:app --host 127.0.0.1 --port "$port" \
                    --no-access-log --log-level warning --loop uvloop --http httptools --workers 2) > /tmp/http-bench-$name.log 2>&1 & ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    SERVER_PID=$!
}

# The server's user+system CPU time so far, in clock ticks (Linux /proc; 0 elsewhere).
server_cpu() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
TICKS=$(getconf CLK_TCK)

# Prints requests/s, latency percentiles and the server's CPU microseconds per request of one
# wrk run. CPU per request is what the load of other processes disturbs least.
measure() {
    local before after
    before=$(server_cpu)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1$2" > /tmp/http-bench-wrk.txt
    after=$(server_cpu)
    awk -v cpu=$((after - before)) -v ticks="$TICKS" \
        '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} / requests in / {n=$1}
         END {printf "%s %s %s %s %.1f\n", rps, p50, p99, (bad == "" ? 0 : bad), (n > 0 ? cpu * 1e6 / ticks / n : 0)}' /tmp/http-bench-wrk.txt
}

RESULTS=$(mktemp)
printf "%-18s %-14s %5s %12s %10s %10s %8s %10s\n" server path round "requests/s" p50 p99 non2xx "cpu us/req"
echo "# $(uptime)"
for name in $SERVERS; do
    port=$(free_port)
    start_server "$name" "$port"
    wait_ready "$port"
    # Fill the caches (and show the headers once).
    for path in /cached/hello /slow; do curl -s -o /dev/null "http://127.0.0.1:$port$path"; done
    curl -s -D - -o /dev/null "http://127.0.0.1:$port/cached/hello" | tr -d '\r' | grep -i -E "x-cache|x-fastapi-cache|etag" | sed "s/^/# $name: /"
    for round in $(seq 1 "$ROUNDS"); do
        paths="/hello /cached/hello /slow"
        if [ "$name" = vapor ]; then paths="/hello /async/hello /cached/hello /slow"; fi
        for path in $paths; do
            read -r rps p50 p99 bad cpu < <(measure "$port" "$path")
            printf "%-18s %-14s %5s %12s %10s %10s %8s %10s\n" "$name" "$path" "$round" "$rps" "$p50" "$p99" "$bad" "$cpu"
            echo "$name $path $rps $cpu" >> "$RESULTS"
        done
    done
    cleanup
    SERVER_PID=""
done
echo "# $(uptime)"

# Summary: median and best requests/s of the rounds, and the HIT/uncached ratios.
echo
printf "%-18s %-14s %12s %12s\n" server path "median r/s" "best r/s"
sort -k1,1 -k2,2 -k3,3g "$RESULTS" | awk '
    { key = $1 " " $2; n[key]++; v[key, n[key]] = $3; if (!(key in seen)) { seen[key] = 1; order[++count] = key } }
    END {
        for (i = 1; i <= count; i++) {
            key = order[i]; m = n[key]
            median = (m % 2) ? v[key, (m + 1) / 2] : (v[key, m / 2] + v[key, m / 2 + 1]) / 2
            best = v[key, m]; med[key] = median; top[key] = best
            split(key, parts, " ")
            printf "%-18s %-14s %12.0f %12.0f\n", parts[1], parts[2], median, best
        }
        print ""
        for (i = 1; i <= count; i++) {
            key = order[i]; split(key, parts, " ")
            if (parts[2] != "/cached/hello") continue
            plain = parts[1] " /hello"
            if (plain in med) printf "%-18s HIT /cached/hello vs /hello:        median %.2f  best %.2f\n", parts[1], med[key] / med[plain], top[key] / top[plain]
            async = parts[1] " /async/hello"
            if (async in med) printf "%-18s HIT /cached/hello vs /async/hello:  median %.2f  best %.2f\n", parts[1], med[key] / med[async], top[key] / top[async]
        }
    }'

# Median server CPU per request of the rounds (what a hit costs the server, whatever the load).
echo
printf "%-18s %-14s %18s\n" server path "median cpu us/req"
sort -k1,1 -k2,2 -k4,4g "$RESULTS" | awk '
    { key = $1 " " $2; n[key]++; v[key, n[key]] = $4; if (!(key in seen)) { seen[key] = 1; order[++count] = key } }
    END {
        for (i = 1; i <= count; i++) {
            key = order[i]; m = n[key]
            median = (m % 2) ? v[key, (m + 1) / 2] : (v[key, m / 2] + v[key, m / 2 + 1]) / 2
            split(key, parts, " ")
            printf "%-18s %-14s %18.1f\n", parts[1], parts[2], median
        }
    }'
rm -f "$RESULTS"
