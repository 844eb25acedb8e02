import CHiredis
import Caching
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The hiredis context of one ``RedisConnection`` and everything only its thread touches:
/// connecting and the handshake (blocking hiredis calls), receiving replies and finding where
/// each one ends (``RedisReplyScanner``), failure handling and the reconnection backoff. Never
/// shared between threads, so it is not `Sendable`.
///
/// Once connected, replies are not parsed into hiredis reply objects: the thread only frames
/// them and hands each request the bytes of its replies, which the caller decodes on its own
/// thread (``RedisReplyParser``). This keeps the connection's thread, which every request goes
/// through, as short as possible, and keeps the allocations of decoded values on the thread
/// that frees them (memory allocated on one thread and freed on another misses the
/// allocator's per-thread caches).
final class RedisLink {
    private unowned let connection: RedisConnection
    private let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    /// Failed connection attempts since the last working connection.
    private var failures = 0
    /// When to try connecting again (monotonic nanoseconds); `nil` while connected.
    private(set) var nextAttempt: UInt64? = 0
    /// Why the connection is down, for commands that arrive before the next attempt.
    private var lastError: CacheError?
    /// Bytes received and not yet handed to a request: `[inputStart, inputEnd)` of `input`.
    /// `inputStart` is where the replies of the oldest unanswered request begin; the scanner
    /// resumes at `scanCursor`.
    private var input: UnsafeMutableRawPointer
    private var inputCapacity = RedisLink.inputSize
    private var inputStart = 0
    private var inputEnd = 0
    private var scanCursor = 0
    private var scanner = RedisReplyScanner()
    /// The usual size of `input`; it grows to hold a request's replies when they are larger,
    /// and shrinks back when it is empty again.
    private static let inputSize = 64 * 1024
    /// Room kept free at the end of `input` for a `recv`.
    private static let minimumRead = 16 * 1024
    let commandTimeoutNanoseconds: UInt64
    private let commandTimeout: Int64
    private let connectTimeout: Int64
    /// How long `poll` waits when nothing is in flight: a request written by a caller while the
    /// thread sleeps is checked against the command timeout at most this late.
    private let idleTickMilliseconds: Int32

    init(connection: RedisConnection) {
        self.connection = connection
        self.configuration = connection.configuration
        input = .allocate(byteCount: Self.inputSize, alignment: 16)
        commandTimeout = CacheTTL.milliseconds(configuration.commandTimeout)
        commandTimeoutNanoseconds = Monotonic.nanoseconds(configuration.commandTimeout)
        connectTimeout = CacheTTL.milliseconds(configuration.connectTimeout)
        idleTickMilliseconds = Int32(clamping: max(10, min(commandTimeout / 4, 1000)))
    }

    deinit {
        disconnect()
        input.deallocate()
    }

    private var logger: Logger { connection.logger }

    private var server: String { "Redis at \(configuration.endpoint)" }

    var isConnected: Bool { context != nil }

    /// The connected socket, or -1.
    var socket: Int32 { context?.pointee.fd ?? -1 }

    /// True when there is no connection and the backoff has elapsed.
    func reconnectDue() -> Bool {
        guard context == nil, let nextAttempt else { return false }
        return Monotonic.now() >= nextAttempt
    }

    // MARK: Connecting

    /// Connects and runs the handshake (`AUTH`, `SELECT`, or `PING`) with blocking hiredis
    /// calls; on failure schedules the next attempt and returns false.
    func connect() -> Bool {
        let fresh: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            fresh = chiredis_connect_tcp(host, Int32(port), connectTimeout)
        case .unixSocket(let path):
            fresh = chiredis_connect_unix(path, connectTimeout)
        }
        guard let fresh else {
            attemptFailed(CacheError(.connectionFailed, "cannot allocate a hiredis context for \(server)"))
            return false
        }
        if fresh.pointee.err != 0 {
            let reason = String(cString: chiredis_errstr(fresh))
            redisFree(fresh)
            attemptFailed(
                CacheError(
                    .connectionFailed,
                    "cannot connect to \(server): \(reason); check that the server is running and the URL is right"
                )
            )
            return false
        }
        _ = chiredis_set_timeout_ms(fresh, commandTimeout)
        chiredis_set_reader_max_idle_buffer(fresh, 256 * 1024)
        if case .tcp = configuration.endpoint { _ = redisEnableKeepAlive(fresh) }
        #if canImport(Darwin)
        var one: Int32 = 1
        _ = setsockopt(fresh.pointee.fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        context = fresh

        var handshake: [(name: String, arguments: [String])] = []
        if let password = configuration.password {
            handshake.append(("AUTH", configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]))
        }
        if configuration.database != 0 {
            handshake.append(("SELECT \(configuration.database)", ["SELECT", String(configuration.database)]))
        }
        if handshake.isEmpty { handshake.append(("PING", ["PING"])) }
        for step in handshake {
            switch command(step.arguments) {
            case .failure(let error):
                attemptFailed(error)
                return false
            case .success(.error(let message)):
                attemptFailed(
                    CacheError(
                        .serverError,
                        "\(server) refused \(step.name) while connecting: \(message); check the credentials and database in the configuration"
                    )
                )
                return false
            case .success:
                continue
            }
        }
        if failures > 0 {
            logger.info(
                "Redis connection restored",
                metadata: ["redis.server": "\(configuration.redactedURL)", "redis.connection": "\(connection.id)"]
            )
        }
        failures = 0
        nextAttempt = nil
        lastError = nil
        return true
    }

    /// One blocking command with `redisCommandArgv` (binary-safe lengths), for the handshake.
    private func command(_ arguments: [String]) -> Result<RedisValue, CacheError> {
        guard let context else { return .failure(notConnectedError()) }
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        for argument in arguments {
            bytes.append(contentsOf: argument.utf8)
            lengths.append(argument.utf8.count)
        }
        bytes.append(0)  // never empty, so the buffer has an address
        chiredis_clear_errno()
        let raw: UnsafeMutableRawPointer? = bytes.withUnsafeBufferPointer { buffer in
            guard let base = UnsafeRawPointer(buffer.baseAddress) else { return nil }
            var pointers: [UnsafePointer<CChar>?] = []
            var offset = 0
            for length in lengths {
                pointers.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvLengths in
                    redisCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvLengths.baseAddress)
                }
            }
        }
        guard let raw else { return .failure(ioError(errno: chiredis_errno())) }
        defer { freeReplyObject(raw) }
        return .success(RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self)))
    }

    private func attemptFailed(_ error: CacheError) {
        dropContext()
        failures += 1
        lastError = error
        let delay = backoff(failures: failures)
        nextAttempt = Monotonic.now() &+ delay
        let metadata: Logger.Metadata = [
            "redis.server": "\(configuration.redactedURL)", "redis.connection": "\(connection.id)",
            "error": "\(error.message)", "retry_in_ms": "\(delay / 1_000_000)",
        ]
        if failures == 1 {
            logger.warning("Redis connection attempt failed", metadata: metadata)
        } else {
            logger.debug("Redis connection attempt failed", metadata: metadata)
        }
    }

    /// Bounded exponential backoff with ±20 % jitter, in nanoseconds.
    private func backoff(failures: Int) -> UInt64 {
        let initial = Monotonic.nanoseconds(configuration.reconnectBackoff.initial)
        let maximum = Monotonic.nanoseconds(configuration.reconnectBackoff.maximum)
        let shift = min(failures - 1, 30)
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: UInt64(1) << UInt64(shift))
        let base = overflow ? maximum : min(scaled, maximum)
        let jitter = base / 5
        guard jitter > 0 else { return base }
        return base - jitter + UInt64.random(in: 0...(2 * jitter))
    }

    /// The connection failed while in use: forget it and reconnect at once (then back off).
    func connectionLost(_ error: CacheError) {
        dropContext()
        lastError = error
        nextAttempt = Monotonic.now()
        logger.warning(
            "Redis connection lost",
            metadata: [
                "redis.server": "\(configuration.redactedURL)", "redis.connection": "\(connection.id)",
                "error": "\(error.message)",
            ]
        )
    }

    private func dropContext() {
        if let context { redisFree(context) }
        context = nil
        resetInput()
    }

    /// Closes the connection for good.
    func disconnect() {
        dropContext()
        nextAttempt = nil
    }

    // MARK: Waiting and reading

    /// Milliseconds `poll` may wait: until the oldest request's deadline, or an idle tick; 0
    /// when the deadline has passed.
    func pollTimeout(oldestSentAt: UInt64?) -> Int32 {
        guard let oldestSentAt else { return idleTickMilliseconds }
        let deadline = oldestSentAt &+ commandTimeoutNanoseconds
        let now = Monotonic.now()
        guard deadline > now else { return 0 }
        return Int32(clamping: (deadline - now + 999_999) / 1_000_000)
    }

    /// Waits for the socket (readable, or writable when `wantsWrite`) or the wake-up pipe.
    func poll(wakeFD: Int32, wantsWrite: Bool, timeoutMilliseconds: Int32) -> (readable: Bool, wake: Bool) {
        var descriptors = (
            pollfd(fd: socket, events: Int16(POLLIN) | (wantsWrite ? Int16(POLLOUT) : 0), revents: 0),
            pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        )
        let ready = withUnsafeMutableBytes(of: &descriptors) { raw in
            pollDescriptors(raw.baseAddress?.assumingMemoryBound(to: pollfd.self), 2, timeoutMilliseconds)
        }
        guard ready > 0 else { return (false, false) }
        let readable = descriptors.0.revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0
        return (readable, descriptors.1.revents != 0)
    }

    /// What ``RedisConnection`` did with a complete reply.
    enum Delivery {
        /// The oldest request expects more replies; its bytes so far stay in the buffer.
        case needsMore
        /// The oldest request took the bytes of all its replies.
        case delivered
        /// No request was waiting for a reply (a protocol error).
        case unexpected
    }

    /// Reads what the socket has and, each time a reply is complete, calls `deliver` with the
    /// bytes of the oldest request's replies so far. Returns the error that ends the
    /// connection, if any.
    func readReplies(deliver: (UnsafeRawBufferPointer) -> Delivery) -> CacheError? {
        guard let context else { return notConnectedError() }
        let fd = context.pointee.fd
        while true {
            makeRoom()
            let room = inputCapacity - inputEnd
            let received = receive(fd, input + inputEnd, room)
            if received == 0 {
                return CacheError(.connectionFailed, "\(server) closed the connection; it will be reopened")
            }
            if received < 0 {
                let code = chiredis_errno()
                if code == EINTR { continue }
                if chiredis_errno_is_timeout(code) != 0 { return nil }  // nothing more for now
                return socketError(writing: false, errno: code)
            }
            inputEnd += received
            do {
                while try scanner.next(in: UnsafeRawBufferPointer(start: input, count: inputEnd), cursor: &scanCursor) {
                    switch deliver(UnsafeRawBufferPointer(start: input + inputStart, count: scanCursor - inputStart)) {
                    case .needsMore:
                        continue
                    case .delivered:
                        inputStart = scanCursor
                    case .unexpected:
                        return CacheError(.connectionFailed, "\(server) sent a reply nobody asked for (protocol error); the connection is reset")
                    }
                }
            } catch {
                return CacheError(
                    .connectionFailed, "\(server) sent a reply that breaks the Redis protocol (\(error.message)); the connection is reset"
                )
            }
            if inputStart == inputEnd {
                inputStart = 0
                inputEnd = 0
                scanCursor = 0
                if inputCapacity > 4 * Self.inputSize { resizeInput(to: Self.inputSize) }
            }
            if received < room { return nil }  // the socket is drained
        }
    }

    /// Makes at least ``minimumRead`` bytes free at the end of `input`: moves the unanswered
    /// bytes to the front, or grows the buffer when they fill it.
    private func makeRoom() {
        if inputCapacity - inputEnd >= Self.minimumRead { return }
        if inputStart > 0 {
            let kept = inputEnd - inputStart
            if kept > 0 { (input + 0).copyMemory(from: input + inputStart, byteCount: kept) }
            scanCursor -= inputStart
            inputEnd = kept
            inputStart = 0
            if inputCapacity - inputEnd >= Self.minimumRead { return }
        }
        resizeInput(to: max(inputCapacity * 2, inputEnd + Self.minimumRead))
    }

    private func resizeInput(to capacity: Int) {
        let resized = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if inputEnd > 0 { resized.copyMemory(from: input, byteCount: inputEnd) }
        input.deallocate()
        input = resized
        inputCapacity = capacity
    }

    /// Forgets received bytes and any partial reply (the connection was dropped).
    private func resetInput() {
        inputStart = 0
        inputEnd = 0
        scanCursor = 0
        scanner.reset()
        if inputCapacity != Self.inputSize { resizeInput(to: Self.inputSize) }
    }

    // MARK: Errors

    /// The error for commands that arrive while there is no connection.
    func notConnectedError() -> CacheError {
        let reason = lastError ?? CacheError(.connectionFailed, "not connected to \(server)")
        var retry = ""
        if let nextAttempt {
            let now = Monotonic.now()
            let wait = nextAttempt > now ? (nextAttempt - now) / 1_000_000 : 0
            retry = "; the next reconnection attempt is in \(wait) ms"
        }
        return CacheError(reason.code, "not connected: \(reason.message)\(retry)")
    }

    /// A request waited longer than the command timeout.
    func timeoutError() -> CacheError {
        CacheError(
            .timeout,
            "\(server) did not answer within the command timeout (\(configuration.commandTimeout)); the connection is reset, and commands that were sent may or may not have run"
        )
    }

    /// A failed `send` or `recv`.
    func socketError(writing: Bool, errno code: Int32 = chiredis_errno()) -> CacheError {
        let reason = String(cString: strerror(code))
        return CacheError(
            .connectionFailed,
            "lost the connection to \(server) while \(writing ? "writing" : "reading"): \(reason); it will be reopened"
        )
    }

    /// The error for a failed blocking hiredis call (the handshake), from the context and `errno`.
    private func ioError(errno code: Int32) -> CacheError {
        guard let context else { return notConnectedError() }
        let kind = context.pointee.err
        let reason = String(cString: chiredis_errstr(context))
        if kind == REDIS_ERR_IO && chiredis_errno_is_timeout(code) != 0 {
            return timeoutError()
        }
        if kind == REDIS_ERR_EOF {
            return CacheError(.connectionFailed, "\(server) closed the connection (\(reason))")
        }
        if kind == REDIS_ERR_OOM {
            return CacheError(.internalError, "hiredis ran out of memory talking to \(server)")
        }
        return CacheError(.connectionFailed, "lost the connection to \(server): \(reason)")
    }
}

// The C calls whose names the types above shadow (`poll`, `send`, `close`).

/// `recv(2)` without blocking.
func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    recv(fd, buffer, count, Int32(MSG_DONTWAIT))
}

/// `send(2)` without blocking and without `SIGPIPE` (Darwin sockets get `SO_NOSIGPIPE` instead).
func sendNonBlocking(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Darwin)
    return send(fd, buffer, count, Int32(MSG_DONTWAIT))
    #else
    return send(fd, buffer, count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
    #endif
}

/// `poll(2)`.
func pollDescriptors(_ descriptors: UnsafeMutablePointer<pollfd>?, _ count: Int, _ timeoutMilliseconds: Int32) -> Int32 {
    poll(descriptors, nfds_t(count), timeoutMilliseconds)
}

/// `close(2)`.
func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
