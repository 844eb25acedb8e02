#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Helpers for what Swift cannot import from hiredis, or imports awkwardly (fixed-size char arrays,
 * errno, signal-set macros). Everything here is `static inline` so the module needs no C target. */

/* A timeval from whole milliseconds (negative values become zero). */
static inline struct timeval chiredis_timeval_ms(long long ms) {
    struct timeval tv;
    if (ms < 0) ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* Connects over TCP, waiting at most `timeout_ms` for the connection. Never NULL unless out of memory. */
static inline redisContext *chiredis_connect_tcp(const char *host, int port, long long timeout_ms) {
    return redisConnectWithTimeout(host, port, chiredis_timeval_ms(timeout_ms));
}

/* Connects to a Unix domain socket, waiting at most `timeout_ms`. */
static inline redisContext *chiredis_connect_unix(const char *path, long long timeout_ms) {
    return redisConnectUnixWithTimeout(path, chiredis_timeval_ms(timeout_ms));
}

/* Sets the socket send and receive timeouts (SO_SNDTIMEO / SO_RCVTIMEO) of a blocking context. */
static inline int chiredis_set_timeout_ms(redisContext *c, long long timeout_ms) {
    return redisSetTimeout(c, chiredis_timeval_ms(timeout_ms));
}

/* The context's error string (a fixed-size array Swift imports as a tuple). */
static inline const char *chiredis_errstr(const redisContext *c) {
    return c->errstr;
}

/* The calling thread's errno (a macro over a thread-local). */
static inline int chiredis_errno(void) {
    return errno;
}

static inline void chiredis_clear_errno(void) {
    errno = 0;
}

/* True when the last failed read or write on a blocking socket hit SO_RCVTIMEO / SO_SNDTIMEO. */
static inline int chiredis_errno_is_timeout(int e) {
    return e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT;
}

/* Blocks SIGPIPE on the calling thread only. hiredis writes with write(2), which raises SIGPIPE
 * when the server has closed the socket; blocked, the signal stays pending on this thread and
 * write returns EPIPE instead of killing the process. The process-wide disposition is untouched. */
static inline int chiredis_block_sigpipe_on_this_thread(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Names the calling thread (shown by top, gdb and perf); a no-op where unsupported. */
static inline void chiredis_set_thread_name(const char *name) {
#ifdef __linux__
    prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
#else
    (void)name;
#endif
}

/* Lets the context's reader keep up to `bytes` of idle buffer instead of freeing anything
 * over 16 KiB after every reply (hiredis's default), which costs a malloc and a free per batch. */
static inline void chiredis_set_reader_max_idle_buffer(redisContext *c, size_t bytes) {
    c->reader->maxbuf = bytes;
}

/* Element `i` of an array reply. */
static inline redisReply *chiredis_reply_element(const redisReply *r, size_t i) {
    return r->element[i];
}

#endif
