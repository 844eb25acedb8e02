#!/usr/bin/env bash
# Starts a private redis-server and two memcached servers on free 127.0.0.1 ports for the
# tests and the benchmark, and stops them by PID when the sourcing script exits.
#
# Source it:  . scripts/servers.sh && start_cache_servers
# It exports CACHING_REDIS_URL and CACHING_MEMCACHED_SERVERS and sets an EXIT trap.

_cache_server_pids=()
_cache_server_dir=""

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    local port tries=0
    while [ $tries -lt 200 ]; do
        port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    echo "servers.sh: no free port found" >&2
    return 1
}

# Waits until 127.0.0.1:$1 accepts connections, up to 10 s; fails if the process $2 died.
wait_for_port() {
    local port=$1 pid=$2 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers.sh: server (pid $pid) exited before listening on $port" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "servers.sh: nothing listens on 127.0.0.1:$port after 10 s" >&2
    return 1
}

stop_cache_servers() {
    local pid
    for pid in "${_cache_server_pids[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${_cache_server_pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    _cache_server_pids=()
    [ -n "$_cache_server_dir" ] && rm -rf "$_cache_server_dir"
    _cache_server_dir=""
}

start_cache_servers() {
    trap stop_cache_servers EXIT
    trap 'exit 130' INT TERM
    _cache_server_dir=$(mktemp -d)
    local user
    user=$(id -un)

    local redis_port
    redis_port=$(free_port) || return 1
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$_cache_server_dir" --logfile "$_cache_server_dir/redis.log" &
    _cache_server_pids+=($!)
    wait_for_port "$redis_port" $! || return 1
    export CACHING_REDIS_URL="redis://127.0.0.1:$redis_port"

    local servers="" port i
    for i in 1 2; do
        port=$(free_port) || return 1
        # -I 2m: the conformance suite stores 1 MiB values, over memcached's default 1 MiB item limit with overhead.
        memcached -l 127.0.0.1 -p "$port" -U 0 -m 64 -I 2m -u "$user" >"$_cache_server_dir/memcached-$i.log" 2>&1 &
        _cache_server_pids+=($!)
        wait_for_port "$port" $! || return 1
        servers="${servers:+$servers,}127.0.0.1:$port"
    done
    export CACHING_MEMCACHED_SERVERS="$servers"
    echo "servers.sh: redis at $CACHING_REDIS_URL (pid ${_cache_server_pids[0]}), memcached at $CACHING_MEMCACHED_SERVERS (pids ${_cache_server_pids[*]:1})" >&2
}
