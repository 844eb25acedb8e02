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


/// The first region of the wal-index (the `-shm` file that SQLite maps into every process using a
/// WAL database), as this connection's VFS maps it, or NULL when there is none (not in WAL mode,
/// no WAL opened yet, a VFS without shared memory). Valid while the connection stays open in WAL
/// mode. Uses only public interfaces: `SQLITE_FCNTL_FILE_POINTER` and the VFS's `xShmMap` with
/// `bExtend` 0, which returns the mapping SQLite already made.
static inline const volatile void *csqlite_wal_index(sqlite3 *db) {
    sqlite3_file *file = 0;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK) return 0;
    if (!file || !file->pMethods || file->pMethods->iVersion < 2 || !file->pMethods->xShmMap) return 0;
    volatile void *region = 0;
    if (file->pMethods->xShmMap(file, 0, 32768, 0, &region) != SQLITE_OK) return 0;
    return region;
}

/// The wal-index header (https://sqlite.org/walformat.html, "The WAL-Index Header") is 48 bytes,
/// stored twice, back to back, at the start of the first region.
/// Copies the wal-index header into `out` (6 words) the way SQLite's own readers do: the first
/// copy, a memory barrier, then the second copy; a writer updates them in the other order. Returns
/// 1 when the two copies agree (no commit is updating the header), 0 otherwise (`out` then holds
/// the first copy). Every commit changes the header (its frame count, checksums, change counter),
/// so an unchanged header means that nothing was committed in between.
static inline int csqlite_wal_header_read(const volatile void *wal_index, unsigned long long *out) {
    const volatile unsigned long long *header = (const volatile unsigned long long *)wal_index;
    for (int i = 0; i < 6; i++) out[i] = header[i];
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int same = 1;
    for (int i = 0; i < 6; i++) same &= (header[6 + i] == out[i]);
    return same;
}

/// Whether the wal-index header still equals `saved` (taken with `csqlite_wal_header_read`), both
/// copies of it: 1 when no transaction was committed since, 0 when one was or one is being.
static inline int csqlite_wal_header_unchanged(const volatile void *wal_index, const unsigned long long *saved) {
    unsigned long long now[6];
    if (!csqlite_wal_header_read(wal_index, now)) return 0;
    int same = 1;
    for (int i = 0; i < 6; i++) same &= (now[i] == saved[i]);
    return same;
}

/// The number of valid frames in the WAL (`mxFrame`, at byte 16 of the header) in a header copy.
static inline unsigned int csqlite_wal_header_frames(const unsigned long long *header) {
    unsigned int frames;
    __builtin_memcpy(&frames, (const unsigned char *)header + 16, sizeof frames);
    return frames;
}

/// The wal-index format version in a header copy (3007000 for every SQLite since 3.7.0).
static inline unsigned int csqlite_wal_header_version(const unsigned long long *header) {
    unsigned int version;
    __builtin_memcpy(&version, header, sizeof version);
    return version;
}

#endif
