#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro over a cast of -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
/// SQLITE_STATIC likewise.
static inline sqlite3_destructor_type csqlite_static(void) { return SQLITE_STATIC; }

/// Binds `n` bytes at `bytes` to parameter `index` without copying them (SQLITE_STATIC): the caller keeps
/// the bytes alive until the statement is reset. A zero-length blob is bound as an empty blob, never as
/// NULL (sqlite3_bind_blob binds NULL when the pointer is NULL, which an empty Swift buffer may have).
static inline int csqlite_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, sqlite3_uint64 n) {
    if (n == 0) return sqlite3_bind_zeroblob(statement, index, 0);
    return sqlite3_bind_blob64(statement, index, bytes, n, SQLITE_STATIC);
}

/// A hint to the CPU that the caller is spinning (PAUSE on x86, YIELD on ARM): it saves power and lets
/// the sibling hyper-thread run while a worker thread briefly polls its queue before sleeping.
static inline void csqlite_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/// The processor the calling thread runs on now (Linux: `sched_getcpu`, a vDSO call of a few
/// nanoseconds), or -1 where unknown. Two threads that poll for each other use it to notice that they
/// share one processor, where polling only keeps the other from running.
#if defined(__linux__)
extern int sched_getcpu(void);
static inline int csqlite_current_cpu(void) { return sched_getcpu(); }
#else
static inline int csqlite_current_cpu(void) { return -1; }
#endif

/// Names the calling thread (shown by `top -H`, `gdb`, `perf`); Linux keeps the first 15 bytes.
#if defined(__linux__)
#include <sys/prctl.h>
static inline void csqlite_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
#else
static inline void csqlite_set_thread_name(const char *name) { (void)name; }
#endif

#endif
