import CHiredis
import Caching
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One Redis connection and the dedicated OS thread that owns it.
///
/// Callers queue ``RedisRequest``s; the thread takes **every** request queued since its last
/// round trip, appends all their commands to the hiredis output buffer (one write), reads all
/// the replies, and resumes each caller as soon as its replies are in. Concurrent callers
/// therefore share round trips (automatic pipelining), and a thread wakes once per batch, not
/// once per command. The blocking `write`/`read` happen on this thread only, never on Swift's
/// cooperative pool, and the hiredis context is never touched by another thread.
///
/// When the connection fails, the commands in flight fail with the error, and the thread
/// reconnects by itself: at once after a working connection drops, then with bounded
/// exponential backoff. While it waits, new commands fail at once with the last error, so a
/// caller with a fallback (the front's fail-open) is not held up.
///
/// `@unchecked Sendable`: the mutable properties below the mutex are read and written only
/// with `mutex` held; `pending` and `connected` are atomics; `configuration`, `logger` and `id`
/// are immutable.
final class RedisConnection: @unchecked Sendable {
    let id: Int
    let configuration: RedisConfiguration
    let logger: Logger
    /// Requests queued or in flight, for choosing the least-loaded connection.
    let pending = Atomic<Int>(0)
    /// Whether the thread holds a working connection (a hint for the pool, not a guarantee).
    let connected = Atomic<Bool>(false)
    /// Pipelined round trips made so far (for tests and diagnostics).
    let roundTrips = Atomic<Int>(0)

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`:
    private var queue: [RedisRequest] = []
    private var closing = false
    private var sleeping = false
    private var exited = false
    private var joinable = false
    private var exitWaiters: [UnsafeContinuation<Void, Never>] = []
    private var thread: pthread_t?

    init(id: Int, configuration: RedisConfiguration, logger: Logger) {
        self.id = id
        self.configuration = configuration
        self.logger = logger
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// Starts the thread, which connects at once.
    /// - Throws: ``CacheError/Code/internalError`` if the system refuses a new thread.
    func start() throws(CacheError) {
        let box = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Darwin)
        var tid: pthread_t?
        #else
        var tid = pthread_t()
        #endif
        let rc = pthread_create(&tid, nil, { raw in
            #if canImport(Darwin)
            let connection = Unmanaged<RedisConnection>.fromOpaque(raw).takeRetainedValue()
            #else
            guard let raw else { return nil }
            let connection = Unmanaged<RedisConnection>.fromOpaque(raw).takeRetainedValue()
            #endif
            connection.threadMain()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<RedisConnection>.fromOpaque(box).release()
            throw CacheError(.internalError, "cannot start a thread for Redis connection \(id) (pthread_create returned \(rc))")
        }
        pthread_mutex_lock(mutex)
        thread = tid
        joinable = true
        pthread_mutex_unlock(mutex)
    }

    // MARK: Callers

    /// Queues `commands` and waits for their replies: the reply itself for one command, an
    /// ``RedisValue/array(_:)`` of the replies, in order, for several.
    func send(_ commands: RedisCommands) async throws -> RedisValue {
        let request = RedisRequest(commands)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<RedisValue, any Error>) in
                guard request.publish(continuation) else {
                    continuation.resume(throwing: CacheError.cancelled)
                    return
                }
                enqueue(request)
            }
        } onCancel: {
            request.cancel()
        }
    }

    private func enqueue(_ request: RedisRequest) {
        pthread_mutex_lock(mutex)
        if closing {
            pthread_mutex_unlock(mutex)
            request.reject(CacheError.closed("redis"))
            return
        }
        queue.append(request)
        pending.add(1, ordering: .relaxed)
        let wake = sleeping
        sleeping = false
        pthread_mutex_unlock(mutex)
        if wake { pthread_cond_signal(cond) }
    }

    /// Fails queued commands with ``CacheError/Code/closed``, lets the batch in flight finish
    /// (bounded by the command timeout), and waits for the thread to end without blocking the
    /// caller's thread.
    func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            pthread_mutex_lock(mutex)
            closing = true
            if exited {
                pthread_mutex_unlock(mutex)
                continuation.resume()
                return
            }
            exitWaiters.append(continuation)
            pthread_mutex_unlock(mutex)
            pthread_cond_signal(cond)
        }
        // The thread has left its loop; joining only reaps it.
        pthread_mutex_lock(mutex)
        let toJoin = joinable ? thread : nil
        joinable = false
        pthread_mutex_unlock(mutex)
        if let toJoin { pthread_join(toJoin, nil) }
    }

    /// Asks the thread to stop without waiting (used when the backend is released unclosed).
    func stopDetached() {
        pthread_mutex_lock(mutex)
        closing = true
        let toDetach = joinable ? thread : nil
        joinable = false
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(cond)
        if let toDetach { pthread_detach(toDetach) }
    }

    // MARK: The thread

    private func threadMain() {
        _ = chiredis_block_sigpipe_on_this_thread()
        chiredis_set_thread_name("redis-\(id)")
        let link = RedisLink(connection: self)
        var batch: [RedisRequest] = []
        while true {
            pthread_mutex_lock(mutex)
            while !closing && queue.isEmpty && !link.reconnectDue() {
                sleeping = true
                if let deadline = link.nextAttempt {
                    var time = Monotonic.deadline(deadline)
                    pthread_cond_timedwait(cond, mutex, &time)
                } else {
                    pthread_cond_wait(cond, mutex)
                }
                sleeping = false
            }
            if closing {
                swap(&batch, &queue)
                pthread_mutex_unlock(mutex)
                break
            }
            swap(&batch, &queue)
            pthread_mutex_unlock(mutex)

            if link.reconnectDue() { link.connect() }
            if !batch.isEmpty {
                link.execute(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        let closed = CacheError.closed("redis")
        for request in batch {
            pending.subtract(1, ordering: .relaxed)
            if request.take() { request.finish(.failure(closed)) }
        }
        link.disconnect()
        pthread_mutex_lock(mutex)
        exited = true
        let waiters = exitWaiters
        exitWaiters = []
        pthread_mutex_unlock(mutex)
        for waiter in waiters { waiter.resume() }
    }
}

/// Monotonic time in nanoseconds, and its conversion for `pthread_cond_timedwait` (whose
/// condition variable uses `CLOCK_MONOTONIC`).
enum Monotonic {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// The absolute time for `pthread_cond_timedwait`.
    static func deadline(_ nanoseconds: UInt64) -> timespec {
        #if canImport(Darwin)
        // Darwin's condition variables wait on the wall clock: convert the remaining time.
        let current = now()
        let remaining = nanoseconds > current ? nanoseconds - current : 0
        var wall = timeval()
        gettimeofday(&wall, nil)
        let target = UInt64(wall.tv_sec) * 1_000_000_000 + UInt64(wall.tv_usec) * 1000 + remaining
        #else
        let target = nanoseconds
        #endif
        return timespec(tv_sec: Int(target / 1_000_000_000), tv_nsec: Int(target % 1_000_000_000))
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
