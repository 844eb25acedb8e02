#ifndef CLIBMEMCACHED_SHIM_H
#define CLIBMEMCACHED_SHIM_H
#include <libmemcached/memcached.h>
#include <libmemcached/util.h>
#ifdef __linux__
#include <sys/prctl.h>
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
#endif
