/* CPU placement helpers for cache-bench; see include/CReference.h. */
#define _GNU_SOURCE
#include "CReference.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

int cref_current_cpu(void) {
    return sched_getcpu();
}

int cref_set_affinity(int tid, const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return EINVAL;
        CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity((pid_t)tid, sizeof set, &set) == 0 ? 0 : errno;
}

int cref_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_CONF);
    return n > 0 ? (int)n : 1;
}
