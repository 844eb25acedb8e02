import CHiredis
import Caching
import DequeModule
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
/// **The thread** owns the hiredis context: it connects and runs the handshake (blocking
/// hiredis calls, on this thread only), then waits in `poll(2)` on the socket, reads every
/// reply that arrives, finds where each one ends, and resumes each caller with the bytes of
/// its replies as soon as they are complete (the caller decodes them on its own thread).
/// Between round trips it takes **every** request queued since the last one and writes them
/// all at once (automatic pipelining): concurrent callers share round trips, and the thread
/// wakes once per batch of replies, not once per command.
///
/// **An idle connection** (connected, nothing in flight, nothing queued) lets the caller write
/// its own request with a non-blocking `send(2)`, so a lone caller costs one thread hop (the
/// reply), not two. The write never blocks: what the socket does not take at once is handed to
/// the thread, which finishes it when the socket is writable.
///
/// Requests are written in the order they enter `inflight`, and replies arrive in that order,
/// so the thread matches each reply to the oldest request still waiting.
///
/// **Failures.** A read or write error, an unexpected end of stream or a request older than
/// the command timeout drops the connection: the requests in flight fail, and the thread
/// reconnects by itself (at once, then with bounded exponential backoff). While it waits, new
/// requests fail at once with the last error.
///
/// `@unchecked Sendable`: every property below the mutex is read and written only with
/// `mutex` held, except `wakePipe`, written once by ``start()`` before the thread exists and
/// before any caller can reach the connection; `pending`, `connected` and `roundTrips` are
/// atomics; the rest is immutable.
final class RedisConnection: @unchecked Sendable {
    let id: Int
    let configuration: RedisConfiguration
    let logger: Logger
    /// Requests queued or in flight, for choosing a connection.
    let pending = Atomic<Int>(0)
    /// Whether the thread holds a working connection (a hint for the pool, not a guarantee).
    let connected = Atomic<Bool>(false)
    /// Writes of requests so far: direct writes plus pipelined batches (for tests and diagnostics).
    let roundTrips = Atomic<Int>(0)

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    // Guarded by `mutex`:
    /// Requests accepted but not written yet.
    private var queue: [RedisRequest] = []
    /// Requests written (at least in part), oldest first, waiting for their replies.
    private var inflight = Deque<RedisRequest>()
    /// Bytes of requests in `inflight` that the socket has not taken yet.
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// The connected socket, or -1. Only written here with the mutex held, so a caller never
    /// writes to a descriptor the thread has closed.
    private var socket: Int32 = -1
    private var closing = false
    private var exited = false
    private var joinable = false
    private var wakePending = false
    /// `errno` of a failed write by a caller, for the thread to report.
    private var writeError: Int32 = 0
    private var exitWaiters: [UnsafeContinuation<Void, Never>] = []
    private var thread: pthread_t?
    /// A pipe that wakes the thread from `poll`: [read end, write end].
    private var wakePipe: (Int32, Int32) = (-1, -1)

    /// The thread's name, such as `redis3.0` (backend 3, connection 0), shown by `top -H` and
    /// debuggers (at most 15 characters on Linux).
    let threadName: String

    init(id: Int, backendSerial: Int, configuration: RedisConfiguration, logger: Logger) {
        self.id = id
        self.threadName = String("redis\(backendSerial).\(id)".prefix(15))
        self.configuration = configuration
        self.logger = logger
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Creates the wake-up pipe and starts the thread, which connects at once.
    /// - Throws: ``CacheError/Code/internalError`` if the system refuses a pipe or a thread.
    func start() throws(CacheError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw CacheError(.internalError, "cannot create a pipe for Redis connection \(id) (errno \(chiredis_errno()))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakePipe = (fds[0], fds[1])
        let tid: pthread_t
        switch OSThread.start({ self.threadMain() }) {
        case .success(let started):
            tid = started
        case .failure(let error):
            closeDescriptor(fds[0])
            closeDescriptor(fds[1])
            throw CacheError(.internalError, "cannot start a thread for Redis connection \(id) (pthread_create returned \(error.code))")
        }
        pthread_mutex_lock(mutex)
        thread = tid
        joinable = true
        pthread_mutex_unlock(mutex)
    }

    // MARK: Callers

    /// Sends `commands` and waits for their replies: the reply itself for one command, an
    /// ``RedisValue/array(_:)`` of the replies, in order, for several.
    ///
    /// The replies are decoded here, on the caller's thread, from the bytes the connection's
    /// thread framed.
    func send(_ commands: RedisCommands, decoding: RedisDecoding = .values) async throws -> RedisValue {
        let bytes = try await exchange(commands)
        return try Self.decode(bytes, count: commands.count, decoding: decoding)
    }

    /// Sends `commands` and waits for the bytes of their replies.
    private func exchange(_ commands: RedisCommands) async throws -> [UInt8] {
        if commands.isMalformed || commands.count == 0 {
            throw CacheError(.internalError, "a malformed Redis request was built; please report this bug")
        }
        let request = RedisRequest(commands)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[UInt8], any Error>) in
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

    /// Decodes the replies to `count` commands.
    static func decode(_ bytes: [UInt8], count: Int, decoding: RedisDecoding) throws(CacheError) -> RedisValue {
        let decoded = bytes.withUnsafeBytes { raw -> Result<RedisValue, RedisProtocolError> in
            var parser = RedisReplyParser(raw)
            do throws(RedisProtocolError) {
                if count == 1 {
                    if decoding == .entries, let entries = try parser.entries() { return .success(.entries(entries)) }
                    return .success(try parser.value())
                }
                var values: [RedisValue] = []
                values.reserveCapacity(count)
                for _ in 0..<count { values.append(try parser.value()) }
                return .success(.array(values))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .success(let value): return value
        case .failure(let error): throw CacheError(.internalError, "could not decode a reply from Redis: \(error.message)")
        }
    }

    private func enqueue(_ request: RedisRequest) {
        pthread_mutex_lock(mutex)
        if closing {
            pthread_mutex_unlock(mutex)
            request.reject(CacheError.closed("redis"))
            return
        }
        pending.add(1, ordering: .relaxed)
        if socket >= 0 && inflight.isEmpty && queue.isEmpty {
            // Idle: write the request now, without waking the thread. It is in `poll` on the
            // socket and will read the reply.
            guard request.take() else {
                pending.subtract(1, ordering: .relaxed)  // cancelled meanwhile; already resumed
                pthread_mutex_unlock(mutex)
                return
            }
            request.sentAt = Monotonic.now()
            inflight.append(request)
            roundTrips.add(1, ordering: .relaxed)
            let bytes = request.commands.bytes
            let (written, error) = bytes.withUnsafeBytes { sendAll(socket, $0) }
            if written < bytes.count {
                // The socket did not take it all: the thread finishes the write when the socket
                // is writable, or reports the failure.
                if error == 0 {
                    output.append(contentsOf: bytes[written...])
                } else {
                    writeError = error
                }
                wakeLocked()
            }
        } else {
            queue.append(request)
            // A connected thread with requests in flight flushes the queue when their replies
            // arrive; a disconnected one waits on the pipe.
            if socket < 0 && queue.count == 1 { wakeLocked() }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Writes as much of `output` as the socket takes without blocking. Returns `errno` of a
    /// failed write, or 0. Call with the mutex held.
    private func flushOutputLocked() -> Int32 {
        guard socket >= 0 else { return EBADF }
        let (written, error) = output.withUnsafeBytes { raw in
            sendAll(socket, UnsafeRawBufferPointer(rebasing: raw[outputOffset...]))
        }
        outputOffset += written
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 65536)
            outputOffset = 0
        }
        return error
    }

    /// Wakes the thread from `poll`. Call with the mutex held.
    private func wakeLocked() {
        guard !wakePending, !exited else { return }
        wakePending = true
        var byte: UInt8 = 1
        _ = write(wakePipe.1, &byte, 1)
    }

    /// Fails queued commands with ``CacheError/Code/closed``, lets those in flight finish
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
            wakeLocked()
            pthread_mutex_unlock(mutex)
        }
        // The thread has left its loop; joining only reaps it.
        pthread_mutex_lock(mutex)
        let toJoin = joinable ? thread : nil
        joinable = false
        pthread_mutex_unlock(mutex)
        if let toJoin { OSThread.end(toJoin, join: true) }
    }

    /// Asks the thread to stop without waiting (used when the backend is released unclosed).
    func stopDetached() {
        pthread_mutex_lock(mutex)
        closing = true
        wakeLocked()
        let toDetach = joinable ? thread : nil
        joinable = false
        pthread_mutex_unlock(mutex)
        if let toDetach { OSThread.end(toDetach, join: false) }
    }

    // MARK: The thread

    private func threadMain() {
        _ = chiredis_block_sigpipe_on_this_thread()
        chiredis_set_thread_name(threadName)
        let link = RedisLink(connection: self)
        var closed = false
        while true {
            if !link.isConnected {
                if isClosing() { break }
                if link.reconnectDue(), link.connect() {
                    pthread_mutex_lock(mutex)
                    socket = link.socket
                    pthread_mutex_unlock(mutex)
                    connected.store(true, ordering: .relaxed)
                    continue
                }
                if isClosing() { continue }  // the queued requests fail with `closed` on the way out
                failQueued(with: link.notConnectedError())
                waitForWake(until: link.nextAttempt)
                continue
            }

            // Write what was queued since the last round trip, in one go.
            pthread_mutex_lock(mutex)
            closed = closing
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            var writeFailed = writeError
            writeError = 0
            if !closed && !batch.isEmpty {
                let now = Monotonic.now()
                let wasIdle = output.isEmpty
                for request in batch {
                    if request.take() {
                        request.sentAt = now
                        inflight.append(request)
                        output.append(contentsOf: request.commands.bytes)
                    } else {
                        pending.subtract(1, ordering: .relaxed)  // cancelled while queued
                    }
                }
                if wasIdle && !output.isEmpty { roundTrips.add(1, ordering: .relaxed) }
            }
            if writeFailed == 0 && outputOffset < output.count { writeFailed = flushOutputLocked() }
            let wantsWrite = outputOffset < output.count
            let oldest = inflight.first?.sentAt
            pthread_mutex_unlock(mutex)
            if closed {
                fail(batch, with: CacheError.closed("redis"))
                if oldest == nil { break }
            }
            if writeFailed != 0 {
                connectionLost(link, link.socketError(writing: true, errno: writeFailed))
                continue
            }

            // Wait for replies, room to write, a wake-up, or the oldest request's deadline.
            let timeout = link.pollTimeout(oldestSentAt: oldest)
            if timeout == 0 {
                connectionLost(link, link.timeoutError())
                continue
            }
            let events = link.poll(wakeFD: wakePipe.0, wantsWrite: wantsWrite, timeoutMilliseconds: timeout)
            if events.wake { drainWakePipe() }
            if events.readable {
                if let error = link.readReplies(deliver: deliver) {
                    connectionLost(link, error)
                    continue
                }
            }
            // The oldest request's deadline is checked at the top of the loop (`pollTimeout`).
        }
        // Leaving: fail whatever is left and release the descriptors.
        pthread_mutex_lock(mutex)
        let leftoverQueued = queue
        let leftoverInFlight = Array(inflight)
        queue.removeAll()
        inflight.removeAll()
        socket = -1
        pthread_mutex_unlock(mutex)
        fail(leftoverQueued, with: CacheError.closed("redis"), taken: false)
        fail(leftoverInFlight, with: CacheError.closed("redis"), taken: true)
        link.disconnect()
        connected.store(false, ordering: .relaxed)
        pthread_mutex_lock(mutex)
        exited = true
        closeDescriptor(wakePipe.0)
        closeDescriptor(wakePipe.1)
        let waiters = exitWaiters
        exitWaiters = []
        pthread_mutex_unlock(mutex)
        for waiter in waiters { waiter.resume() }
    }

    private func isClosing() -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return closing
    }

    /// Counts one complete reply for the oldest request in flight and, when it has all its
    /// replies, resumes its caller with their bytes (`bytes` holds every reply of the request
    /// so far). The caller decodes them on its own thread.
    private func deliver(_ bytes: UnsafeRawBufferPointer) -> RedisLink.Delivery {
        pthread_mutex_lock(mutex)
        guard let request = inflight.first else {
            pthread_mutex_unlock(mutex)
            return .unexpected
        }
        request.received += 1
        if request.received < request.commands.count {
            pthread_mutex_unlock(mutex)
            return .needsMore
        }
        inflight.removeFirst()
        pthread_mutex_unlock(mutex)
        pending.subtract(1, ordering: .relaxed)
        request.finish(.success(copyBytes(bytes)))
        return .delivered
    }

    /// Drops the connection: the requests in flight fail with `error`; the thread reconnects.
    private func connectionLost(_ link: RedisLink, _ error: CacheError) {
        pthread_mutex_lock(mutex)
        socket = -1
        let failed = Array(inflight)
        inflight.removeAll()
        output.removeAll()
        outputOffset = 0
        pthread_mutex_unlock(mutex)
        connected.store(false, ordering: .relaxed)
        link.connectionLost(error)
        fail(failed, with: error, taken: true)
    }

    /// Fails the queued requests (while disconnected).
    private func failQueued(with error: CacheError) {
        pthread_mutex_lock(mutex)
        let failed = queue
        queue.removeAll(keepingCapacity: true)
        pthread_mutex_unlock(mutex)
        fail(failed, with: error)
    }

    /// Resumes `requests` with `error`. Queued requests (`taken: false`) may have been cancelled
    /// meanwhile; those are skipped.
    private func fail(_ requests: [RedisRequest], with error: CacheError, taken: Bool = false) {
        for request in requests {
            pending.subtract(1, ordering: .relaxed)
            if taken || request.take() {
                request.finish(.failure(error))
            }
        }
    }

    private func drainWakePipe() {
        pthread_mutex_lock(mutex)
        var buffer = (UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(wakePipe.0, $0.baseAddress, $0.count) }) > 0 {}
        wakePending = false
        pthread_mutex_unlock(mutex)
    }

    /// Sleeps until woken through the pipe or until `deadline` (monotonic nanoseconds).
    private func waitForWake(until deadline: UInt64?) {
        pthread_mutex_lock(mutex)
        let skip = closing || !queue.isEmpty
        pthread_mutex_unlock(mutex)
        if skip { return }
        var timeout: Int32 = -1
        if let deadline {
            let now = Monotonic.now()
            timeout = deadline > now ? Int32(clamping: (deadline - now + 999_999) / 1_000_000) : 0
        }
        var descriptor = pollfd(fd: wakePipe.0, events: Int16(POLLIN), revents: 0)
        _ = pollDescriptors(&descriptor, 1, timeout)
        if descriptor.revents != 0 { drainWakePipe() }
    }
}

/// Monotonic time in nanoseconds.
enum Monotonic {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}

/// Sends as much of `bytes` as the socket takes without blocking: the bytes written, and
/// `errno` of a failure (0 when the socket is merely full).
private func sendAll(_ socket: Int32, _ bytes: UnsafeRawBufferPointer) -> (written: Int, error: Int32) {
    guard let base = bytes.baseAddress else { return (0, 0) }
    var written = 0
    while written < bytes.count {
        let sent = sendNonBlocking(socket, base + written, bytes.count - written)
        if sent > 0 {
            written += sent
            continue
        }
        let code = chiredis_errno()
        if sent < 0 && code == EINTR { continue }
        if sent < 0 && chiredis_errno_is_timeout(code) != 0 { return (written, 0) }
        return (written, sent == 0 ? EPIPE : code)
    }
    return (written, 0)
}
