#ifndef CREFERENCE_H
#define CREFERENCE_H
/*
 * The C limit for cache-bench's `--reference` mode: the same get/set/delete workloads that the
 * Swift backends run, issued straight through hiredis, libmemcached and sqlite3 from one thread
 * on one connection (one database handle), with nothing in between.
 *
 * The Swift side draws the operations (kinds, key indices, value sizes) with the same generators
 * it uses for the Swift backends and hands them over in chunks; `cref_run` issues them and
 * records each call's latency in nanoseconds. One `cref_target` is used by one thread at a time.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Operation codes in the `ops` array given to `cref_run`.
enum {
    CREF_OP_GET = 0,
    CREF_OP_SET = 1,
    CREF_OP_DELETE = 2,
};

/// A connection (Redis, memcached) or database handle (SQLite) with its prepared state.
typedef struct cref_target cref_target;

/// A fixed key space: `count` keys `prefix0`, `prefix1`, ... built once.
typedef struct cref_keys cref_keys;

/// Counters that `cref_run` adds to.
typedef struct cref_stats {
    uint64_t calls;   /* calls issued (a batch call counts once) */
    uint64_t keys;    /* keys touched (a batch call counts its keys) */
    uint64_t hits;    /* get keys found */
    uint64_t misses;  /* get keys not found */
    uint64_t errors;  /* failed calls */
    char last_error[160];
} cref_stats;

/// Builds `count` keys `prefix` + decimal index. Returns NULL when out of memory.
cref_keys *cref_keys_new(const char *prefix, uint32_t count);
void cref_keys_free(cref_keys *keys);

/// Connects to Redis over TCP (`unix_path` NULL) or a Unix socket; sends AUTH (`username` may be
/// NULL) and SELECT when given. Connect and command timeouts are `timeout_ms`.
/// Returns NULL and writes a message to `err` on failure.
cref_target *cref_open_redis(const char *host, int port, const char *unix_path,
                             const char *username, const char *password, int db,
                             int timeout_ms, char *err, size_t errlen);

/// Connects to memcached servers given as "host:port,host:port" with the binary protocol,
/// TCP_NODELAY and consistent (ketama) hashing, as the Swift backend configures it.
cref_target *cref_open_memcached(const char *servers, int timeout_ms, char *err, size_t errlen);

/// Opens (creating) an SQLite database with WAL, synchronous=NORMAL (FULL when `synchronous_full`),
/// busy_timeout and one table `cache(key BLOB PRIMARY KEY, value BLOB, expires INTEGER) WITHOUT ROWID`,
/// with prepared get / set / delete statements reused for every call.
cref_target *cref_open_sqlite(const char *path, int synchronous_full, char *err, size_t errlen);

/// A short name such as "hiredis", "libmemcached" or "sqlite3".
const char *cref_name(const cref_target *target);

/// Closes the connection or database and frees the target.
void cref_close(cref_target *target);

/// Removes every key in `keys` (Redis DEL, memcached delete, SQLite DELETE), ignoring misses.
int cref_clear(cref_target *target, const cref_keys *keys, char *err, size_t errlen);

/// Issues `ncalls` calls. Call `i` has kind `ops[i]` and covers the `batch` keys
/// `key_index[i * batch ..< (i + 1) * batch]` (batch gets use Redis MGET, memcached multi-get,
/// one SQLite read transaction; batch sets a Redis pipeline, memcached sets, one SQLite
/// transaction). Set values are the first `sizes[i]` bytes of `value`. `ttl_ms` <= 0 means no
/// TTL. Each call's latency in nanoseconds goes to `latency_ns[i]`.
void cref_run(cref_target *target, const cref_keys *keys,
              const uint8_t *ops, const uint32_t *key_index, const uint32_t *sizes,
              size_t ncalls, size_t batch, const uint8_t *value, int64_t ttl_ms,
              uint64_t *latency_ns, cref_stats *stats);

/// The monotonic clock in nanoseconds (CLOCK_MONOTONIC).
uint64_t cref_now_ns(void);

/* MARK: CPU placement (glibc's GNU extensions, which Swift's Glibc module does not import) */

/// The CPU the calling thread runs on now (`sched_getcpu`), or -1.
int cref_current_cpu(void);

/// Restricts thread or process `tid` (0: the calling thread) to the `count` CPUs in `cpus`
/// (`sched_setaffinity`). Returns 0, or an errno value.
int cref_set_affinity(int tid, const int *cpus, int count);

/// The number of CPUs configured on this machine.
int cref_cpu_count(void);

#ifdef __cplusplus
}
#endif
#endif
