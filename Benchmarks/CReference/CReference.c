/*
 * cache-bench's C reference: see include/CReference.h.
 *
 * Kept deliberately plain, in the way a C programmer would write the fastest straightforward
 * loop: one blocking connection, reused prepared statements, no extra copies.
 */
#define _GNU_SOURCE
#include "CReference.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>
#include <sqlite3.h>

enum { KIND_REDIS = 1, KIND_MEMCACHED = 2, KIND_SQLITE = 3 };

struct cref_keys {
    uint32_t count;
    char *bytes;
    uint32_t *offset; /* count + 1 offsets into bytes */
};

struct cref_target {
    int kind;
    /* Redis */
    redisContext *redis;
    /* memcached: `mc` (binary protocol) writes; `mc_read` reads (text protocol unless
       CACHE_BENCH_MEMCACHED_REFERENCE_READS=binary, then it is `mc`). */
    memcached_st *mc;
    memcached_st *mc_read;
    /* SQLite */
    sqlite3 *db;
    sqlite3_stmt *get_stmt, *set_stmt, *del_stmt, *begin_stmt, *commit_stmt;
    /* scratch for batches */
    const char **argv;
    size_t *argvlen;
    size_t scratch;
};

uint64_t cref_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void note_error(cref_stats *stats, const char *fmt, ...) {
    stats->errors++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(stats->last_error, sizeof stats->last_error, fmt, ap);
    va_end(ap);
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MARK: keys */

cref_keys *cref_keys_new(const char *prefix, uint32_t count) {
    cref_keys *keys = calloc(1, sizeof *keys);
    if (!keys) return NULL;
    size_t plen = strlen(prefix);
    size_t total = (size_t)count * (plen + 11) + 1;
    keys->bytes = malloc(total);
    keys->offset = malloc(((size_t)count + 1) * sizeof(uint32_t));
    if (!keys->bytes || !keys->offset) {
        cref_keys_free(keys);
        return NULL;
    }
    keys->count = count;
    size_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        keys->offset[i] = (uint32_t)at;
        at += (size_t)snprintf(keys->bytes + at, total - at, "%s%u", prefix, i);
    }
    keys->offset[count] = (uint32_t)at;
    return keys;
}

void cref_keys_free(cref_keys *keys) {
    if (!keys) return;
    free(keys->bytes);
    free(keys->offset);
    free(keys);
}

static inline const char *key_at(const cref_keys *keys, uint32_t i, size_t *len) {
    uint32_t k = i % keys->count;
    *len = keys->offset[k + 1] - keys->offset[k];
    return keys->bytes + keys->offset[k];
}

static int ensure_scratch(cref_target *t, size_t n) {
    if (t->scratch >= n) return 1;
    const char **argv = realloc(t->argv, n * sizeof *argv);
    if (!argv) return 0;
    t->argv = argv;
    size_t *lens = realloc(t->argvlen, n * sizeof *lens);
    if (!lens) return 0;
    t->argvlen = lens;
    t->scratch = n;
    return 1;
}

/* MARK: open / close */

cref_target *cref_open_redis(const char *host, int port, const char *unix_path,
                             const char *username, const char *password, int db,
                             int timeout_ms, char *err, size_t errlen) {
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    redisContext *c = unix_path ? redisConnectUnixWithTimeout(unix_path, tv)
                                : redisConnectWithTimeout(host, port, tv);
    if (!c) {
        set_err(err, errlen, "hiredis: out of memory");
        return NULL;
    }
    if (c->err) {
        set_err(err, errlen, "hiredis: cannot connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (password && *password) {
        const char *argv[3] = { "AUTH", username ? username : password, password };
        size_t lens[3] = { 4, strlen(argv[1]), strlen(password) };
        redisReply *r = redisCommandArgv(c, username ? 3 : 2, argv, lens);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        set_err(err, errlen, "hiredis: AUTH failed: %s", r && r->str ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        if (bad) {
            redisFree(c);
            return NULL;
        }
    }
    if (db > 0) {
        char dbs[16];
        snprintf(dbs, sizeof dbs, "%d", db);
        const char *argv[2] = { "SELECT", dbs };
        size_t lens[2] = { 6, strlen(dbs) };
        redisReply *r = redisCommandArgv(c, 2, argv, lens);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        set_err(err, errlen, "hiredis: SELECT failed: %s", r && r->str ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        if (bad) {
            redisFree(c);
            return NULL;
        }
    }
    cref_target *t = calloc(1, sizeof *t);
    if (!t) {
        redisFree(c);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    t->kind = KIND_REDIS;
    t->redis = c;
    return t;
}

/* One libmemcached handle over `servers` (ketama, TCP_NODELAY, the timeouts), in the binary
   or the text protocol; checks that every server answers. */
static memcached_st *memcached_open_handle(const char *servers, int timeout_ms, int binary, char *err, size_t errlen) {
    memcached_st *mc = memcached_create(NULL);
    if (!mc) {
        set_err(err, errlen, "libmemcached: out of memory");
        return NULL;
    }
    memcached_server_st *list = memcached_servers_parse(servers);
    if (!list) {
        set_err(err, errlen, "libmemcached: cannot parse server list '%s'", servers);
        memcached_free(mc);
        return NULL;
    }
    memcached_return_t rc = memcached_server_push(mc, list);
    memcached_server_list_free(list);
    if (rc != MEMCACHED_SUCCESS) {
        set_err(err, errlen, "libmemcached: %s", memcached_strerror(mc, rc));
        memcached_free(mc);
        return NULL;
    }
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, binary ? 1 : 0);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, (uint64_t)timeout_ms);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, (uint64_t)timeout_ms);
    /* Check that every server answers now, with a short timeout, so that a wrong address is
       a clear error rather than a run full of failures. */
    memcached_stat_st *st = memcached_stat(mc, NULL, &rc);
    if (st) memcached_stat_free(mc, st);
    if (rc != MEMCACHED_SUCCESS) {
        set_err(err, errlen, "libmemcached: cannot reach %s: %s", servers, memcached_strerror(mc, rc));
        memcached_free(mc);
        return NULL;
    }
    return mc;
}

/* Writes go through the binary protocol. Reads go through the text protocol, as the Swift
   backend's do: libmemcached sends a binary multi-get as two writes (the GETKQs, then the NOOP
   that ends them), which makes it markedly slower than one text `get k1 k2 ...`; the reference
   must be the fastest loop libmemcached allows. CACHE_BENCH_MEMCACHED_REFERENCE_READS=binary
   reads with the binary protocol instead (the reference of earlier runs). */
cref_target *cref_open_memcached(const char *servers, int timeout_ms, char *err, size_t errlen) {
    memcached_st *mc = memcached_open_handle(servers, timeout_ms, 1, err, errlen);
    if (!mc) return NULL;
    const char *reads = getenv("CACHE_BENCH_MEMCACHED_REFERENCE_READS");
    memcached_st *mc_read = mc;
    if (!(reads && strcmp(reads, "binary") == 0)) {
        mc_read = memcached_open_handle(servers, timeout_ms, 0, err, errlen);
        if (!mc_read) {
            memcached_free(mc);
            return NULL;
        }
    }
    cref_target *t = calloc(1, sizeof *t);
    if (!t) {
        if (mc_read != mc) memcached_free(mc_read);
        memcached_free(mc);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    t->kind = KIND_MEMCACHED;
    t->mc = mc;
    t->mc_read = mc_read;
    return t;
}

static int sqlite_exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        set_err(err, errlen, "sqlite3: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return 0;
    }
    return 1;
}

static int sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL) != SQLITE_OK) {
        set_err(err, errlen, "sqlite3: cannot prepare %s: %s", sql, sqlite3_errmsg(db));
        return 0;
    }
    return 1;
}

cref_target *cref_open_sqlite(const char *path, int synchronous_full, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        set_err(err, errlen, "sqlite3: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    cref_target *t = calloc(1, sizeof *t);
    if (!t) {
        sqlite3_close(db);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    t->kind = KIND_SQLITE;
    t->db = db;
    sqlite3_busy_timeout(db, 5000);
    if (!sqlite_exec(db, "PRAGMA journal_mode=WAL", err, errlen) ||
        !sqlite_exec(db, synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err, errlen) ||
        !sqlite_exec(db, "CREATE TABLE IF NOT EXISTS cache(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL, "
                         "expires INTEGER) WITHOUT ROWID", err, errlen) ||
        !sqlite_prepare(db, "SELECT value FROM cache WHERE key = ?1 AND (expires IS NULL OR expires > ?2)",
                        &t->get_stmt, err, errlen) ||
        !sqlite_prepare(db, "INSERT INTO cache(key, value, expires) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                        &t->set_stmt, err, errlen) ||
        !sqlite_prepare(db, "DELETE FROM cache WHERE key = ?1", &t->del_stmt, err, errlen) ||
        !sqlite_prepare(db, "BEGIN", &t->begin_stmt, err, errlen) ||
        !sqlite_prepare(db, "COMMIT", &t->commit_stmt, err, errlen)) {
        cref_close(t);
        return NULL;
    }
    return t;
}

const char *cref_name(const cref_target *t) {
    switch (t->kind) {
    case KIND_REDIS: return "hiredis";
    case KIND_MEMCACHED: return "libmemcached";
    default: return "sqlite3";
    }
}

void cref_close(cref_target *t) {
    if (!t) return;
    if (t->redis) redisFree(t->redis);
    if (t->mc_read && t->mc_read != t->mc) memcached_free(t->mc_read);
    if (t->mc) memcached_free(t->mc);
    if (t->db) {
        sqlite3_finalize(t->get_stmt);
        sqlite3_finalize(t->set_stmt);
        sqlite3_finalize(t->del_stmt);
        sqlite3_finalize(t->begin_stmt);
        sqlite3_finalize(t->commit_stmt);
        sqlite3_close(t->db);
    }
    free(t->argv);
    free(t->argvlen);
    free(t);
}

/* MARK: Redis */

static void redis_call(cref_target *t, const cref_keys *keys, int op, const uint32_t *idx, size_t batch,
                       const uint8_t *value, uint32_t size, int64_t ttl_ms, cref_stats *stats) {
    redisContext *c = t->redis;
    if (c->err) {
        note_error(stats, "hiredis: connection broken: %s", c->errstr);
        return;
    }
    char ttl[24];
    size_t ttllen = ttl_ms > 0 ? (size_t)snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms) : 0;
    if (op == CREF_OP_GET) {
        if (batch == 1) {
            const char *argv[2] = { "GET", NULL };
            size_t lens[2] = { 3, 0 };
            argv[1] = key_at(keys, idx[0], &lens[1]);
            redisReply *r = redisCommandArgv(c, 2, argv, lens);
            if (!r) { note_error(stats, "hiredis: %s", c->errstr); return; }
            if (r->type == REDIS_REPLY_STRING) stats->hits++;
            else if (r->type == REDIS_REPLY_NIL) stats->misses++;
            else note_error(stats, "GET: %s", r->str ? r->str : "unexpected reply");
            freeReplyObject(r);
            return;
        }
        if (!ensure_scratch(t, batch + 1)) { note_error(stats, "out of memory"); return; }
        t->argv[0] = "MGET";
        t->argvlen[0] = 4;
        for (size_t k = 0; k < batch; k++) t->argv[k + 1] = key_at(keys, idx[k], &t->argvlen[k + 1]);
        redisReply *r = redisCommandArgv(c, (int)batch + 1, t->argv, t->argvlen);
        if (!r) { note_error(stats, "hiredis: %s", c->errstr); return; }
        if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < r->elements; k++) {
                if (r->element[k]->type == REDIS_REPLY_STRING) stats->hits++; else stats->misses++;
            }
        } else {
            note_error(stats, "MGET: %s", r->str ? r->str : "unexpected reply");
        }
        freeReplyObject(r);
        return;
    }
    /* SET (with PX) and DEL: one command, or a pipeline of `batch` commands. */
    for (size_t k = 0; k < batch; k++) {
        const char *argv[5];
        size_t lens[5];
        int argc;
        if (op == CREF_OP_SET) {
            argv[0] = "SET"; lens[0] = 3;
            argv[1] = key_at(keys, idx[k], &lens[1]);
            argv[2] = (const char *)value; lens[2] = size;
            argc = 3;
            if (ttllen) { argv[3] = "PX"; lens[3] = 2; argv[4] = ttl; lens[4] = ttllen; argc = 5; }
        } else {
            argv[0] = "DEL"; lens[0] = 3;
            argv[1] = key_at(keys, idx[k], &lens[1]);
            argc = 2;
        }
        if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) {
            note_error(stats, "hiredis: %s", c->errstr);
            return;
        }
    }
    for (size_t k = 0; k < batch; k++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            note_error(stats, "hiredis: %s", c->errstr);
            return;
        }
        if (r->type == REDIS_REPLY_ERROR) note_error(stats, "%s: %s", op == CREF_OP_SET ? "SET" : "DEL", r->str);
        freeReplyObject(r);
    }
}

/* MARK: memcached */

static void memcached_call(cref_target *t, const cref_keys *keys, int op, const uint32_t *idx, size_t batch,
                           const uint8_t *value, uint32_t size, int64_t ttl_ms, cref_stats *stats) {
    memcached_st *mc = op == CREF_OP_GET ? t->mc_read : t->mc;
    time_t expiration = ttl_ms > 0 ? (time_t)((ttl_ms + 999) / 1000) : 0;
    memcached_return_t rc;
    if (op == CREF_OP_GET && batch == 1) {
        size_t klen, vlen;
        uint32_t flags;
        const char *key = key_at(keys, idx[0], &klen);
        char *v = memcached_get(mc, key, klen, &vlen, &flags, &rc);
        if (v) { stats->hits++; free(v); }
        else if (rc == MEMCACHED_NOTFOUND) stats->misses++;
        else note_error(stats, "memcached_get: %s", memcached_strerror(mc, rc));
        return;
    }
    if (op == CREF_OP_GET) {
        if (!ensure_scratch(t, batch)) { note_error(stats, "out of memory"); return; }
        for (size_t k = 0; k < batch; k++) t->argv[k] = key_at(keys, idx[k], &t->argvlen[k]);
        rc = memcached_mget(mc, t->argv, t->argvlen, batch);
        if (rc != MEMCACHED_SUCCESS) { note_error(stats, "memcached_mget: %s", memcached_strerror(mc, rc)); return; }
        size_t found = 0;
        memcached_result_st result;
        memcached_result_create(mc, &result);
        while (memcached_fetch_result(mc, &result, &rc) != NULL) found++;
        memcached_result_free(&result);
        if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
            note_error(stats, "memcached_fetch_result: %s", memcached_strerror(mc, rc));
        }
        stats->hits += found;
        stats->misses += batch - (found < batch ? found : batch);
        return;
    }
    for (size_t k = 0; k < batch; k++) {
        size_t klen;
        const char *key = key_at(keys, idx[k], &klen);
        if (op == CREF_OP_SET) {
            rc = memcached_set(mc, key, klen, (const char *)value, size, expiration, 0);
            if (rc != MEMCACHED_SUCCESS) note_error(stats, "memcached_set: %s", memcached_strerror(mc, rc));
        } else {
            rc = memcached_delete(mc, key, klen, 0);
            if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND)
                note_error(stats, "memcached_delete: %s", memcached_strerror(mc, rc));
        }
    }
}

/* MARK: SQLite */

static int sqlite_step_done(sqlite3 *db, sqlite3_stmt *s, cref_stats *stats) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        note_error(stats, "sqlite3: %s", sqlite3_errmsg(db));
        return 0;
    }
    return 1;
}

static void sqlite_call(cref_target *t, const cref_keys *keys, int op, const uint32_t *idx, size_t batch,
                        const uint8_t *value, uint32_t size, int64_t ttl_ms, cref_stats *stats) {
    sqlite3 *db = t->db;
    int in_txn = batch > 1;
    if (in_txn && !sqlite_step_done(db, t->begin_stmt, stats)) return;
    int64_t now = wall_ms();
    for (size_t k = 0; k < batch; k++) {
        size_t klen;
        const char *key = key_at(keys, idx[k], &klen);
        if (op == CREF_OP_GET) {
            sqlite3_stmt *s = t->get_stmt;
            sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, now);
            int rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) {
                /* Copy the bytes out into a buffer the caller owns, as the backend must (a Swift
                   [UInt8]), so the copy-out cost is counted on both sides. */
                const void *bytes = sqlite3_column_blob(s, 0);
                int n = sqlite3_column_bytes(s, 0);
                uint8_t *copy = malloc(n > 0 ? (size_t)n : 1);
                if (copy && n > 0 && bytes) memcpy(copy, bytes, (size_t)n);
                volatile uint8_t sink = copy && n > 0 ? copy[n - 1] : 0;
                (void)sink;
                free(copy);
                stats->hits++;
            } else if (rc == SQLITE_DONE) {
                stats->misses++;
            } else {
                note_error(stats, "sqlite3 get: %s", sqlite3_errmsg(db));
            }
            sqlite3_reset(s);
        } else if (op == CREF_OP_SET) {
            sqlite3_stmt *s = t->set_stmt;
            sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
            sqlite3_bind_blob(s, 2, value, (int)size, SQLITE_STATIC);
            if (ttl_ms > 0) sqlite3_bind_int64(s, 3, now + ttl_ms); else sqlite3_bind_null(s, 3);
            sqlite_step_done(db, s, stats);
        } else {
            sqlite3_stmt *s = t->del_stmt;
            sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
            sqlite_step_done(db, s, stats);
        }
    }
    if (in_txn) sqlite_step_done(db, t->commit_stmt, stats);
}

/* MARK: run */

int cref_clear(cref_target *t, const cref_keys *keys, char *err, size_t errlen) {
    cref_stats stats;
    memset(&stats, 0, sizeof stats);
    const size_t chunk = 100;
    uint32_t idx[100];
    for (uint32_t start = 0; start < keys->count; start += chunk) {
        size_t n = keys->count - start < chunk ? keys->count - start : chunk;
        for (size_t k = 0; k < n; k++) idx[k] = start + (uint32_t)k;
        switch (t->kind) {
        case KIND_REDIS: redis_call(t, keys, CREF_OP_DELETE, idx, n, NULL, 0, 0, &stats); break;
        case KIND_MEMCACHED: memcached_call(t, keys, CREF_OP_DELETE, idx, n, NULL, 0, 0, &stats); break;
        default: sqlite_call(t, keys, CREF_OP_DELETE, idx, n, NULL, 0, 0, &stats); break;
        }
        if (stats.errors) {
            set_err(err, errlen, "%s", stats.last_error);
            return 0;
        }
    }
    return 1;
}

void cref_run(cref_target *t, const cref_keys *keys,
              const uint8_t *ops, const uint32_t *key_index, const uint32_t *sizes,
              size_t ncalls, size_t batch, const uint8_t *value, int64_t ttl_ms,
              uint64_t *latency_ns, cref_stats *stats) {
    if (batch == 0) batch = 1;
    for (size_t i = 0; i < ncalls; i++) {
        const uint32_t *idx = key_index + i * batch;
        uint64_t start = cref_now_ns();
        switch (t->kind) {
        case KIND_REDIS: redis_call(t, keys, ops[i], idx, batch, value, sizes[i], ttl_ms, stats); break;
        case KIND_MEMCACHED: memcached_call(t, keys, ops[i], idx, batch, value, sizes[i], ttl_ms, stats); break;
        default: sqlite_call(t, keys, ops[i], idx, batch, value, sizes[i], ttl_ms, stats); break;
        }
        latency_ns[i] = cref_now_ns() - start;
        stats->calls++;
        stats->keys += batch;
    }
}
