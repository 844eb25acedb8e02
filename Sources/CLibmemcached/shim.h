#ifndef CLIBMEMCACHED_SHIM_H
#define CLIBMEMCACHED_SHIM_H
#include <libmemcached/memcached.h>
#include <libmemcached/util.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/// Names the calling thread (at most 15 bytes are kept), so `top -H` and debuggers show
/// which threads are memcached connections. Does nothing where unsupported.
static inline void clibmemcached_name_current_thread(const char *name) {
#ifdef __linux__
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)name;
#endif
}

/// A hint to the CPU that the caller is in a spin-wait loop (x86 PAUSE, Arm YIELD): it saves
/// power and lets the other hardware thread of the core run. Does nothing elsewhere.
static inline void clibmemcached_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/// The number of processors the calling thread may run on (its affinity mask, as `taskset` or a
/// container's cpuset sets it), or 0 where unknown. A raw system call: glibc declares
/// `sched_getaffinity` only with `_GNU_SOURCE`.
static inline int clibmemcached_usable_cpus(void) {
#ifdef __linux__
    unsigned long mask[16] = {0};   /* 1024 processors */
    long size = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (size <= 0) return 0;
    int count = 0;
    for (long i = 0; i < size / (long)sizeof(unsigned long); i++) count += __builtin_popcountl(mask[i]);
    return count;
#else
    return 0;
#endif
}
#endif
