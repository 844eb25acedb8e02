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
#endif
