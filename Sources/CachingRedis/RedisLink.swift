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
/// connecting and the handshake, pipelined batches, failure handling and the reconnection
/// backoff. Never shared between threads, so it is not `Sendable`.
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
    /// Scratch space for `redisAppendCommandArgv`.
    private var argv: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private var argvLengths: UnsafeMutablePointer<Int>
    private var argvCapacity = 16
    private var taken: [RedisRequest] = []
    /// When the last batch finished (monotonic nanoseconds).
    private var lastUsed: UInt64 = 0
    /// How long a connection may sit idle before ``execute(_:)`` checks that it is still open.
    private static let idleCheckNanoseconds: UInt64 = 50_000_000
    private let commandTimeout: Int64
    private let connectTimeout: Int64

    init(connection: RedisConnection) {
        self.connection = connection
        self.configuration = connection.configuration
        argv = .allocate(capacity: argvCapacity)
        argvLengths = .allocate(capacity: argvCapacity)
        commandTimeout = CacheTTL.milliseconds(configuration.commandTimeout)
        connectTimeout = CacheTTL.milliseconds(configuration.connectTimeout)
    }

    deinit {
        disconnect()
        argv.deallocate()
        argvLengths.deallocate()
    }

    private var logger: Logger { connection.logger }

    private var server: String { "Redis at \(configuration.endpoint)" }

    /// True when there is no connection and the backoff has elapsed.
    func reconnectDue() -> Bool {
        guard context == nil, let nextAttempt else { return false }
        return Monotonic.now() >= nextAttempt
    }

    // MARK: Connecting

    /// Connects and runs the handshake (`AUTH`, `SELECT`, or `PING`); on failure schedules the
    /// next attempt.
    func connect() {
        let fresh: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            fresh = chiredis_connect_tcp(host, Int32(port), connectTimeout)
        case .unixSocket(let path):
            fresh = chiredis_connect_unix(path, connectTimeout)
        }
        guard let fresh else {
            attemptFailed(CacheError(.connectionFailed, "cannot allocate a hiredis context for \(server)"))
            return
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
            return
        }
        _ = chiredis_set_timeout_ms(fresh, commandTimeout)
        if case .tcp = configuration.endpoint { _ = redisEnableKeepAlive(fresh) }

        var handshake = RedisCommands()
        var names: [String] = []
        if let password = configuration.password {
            handshake.command("AUTH") {
                if let username = configuration.username { $0.argument(username) }
                $0.argument(password)
            }
            names.append("AUTH")
        }
        if configuration.database != 0 {
            handshake.command("SELECT") { $0.argument(configuration.database) }
            names.append("SELECT \(configuration.database)")
        }
        if handshake.count == 0 {
            handshake.command("PING")
            names.append("PING")
        }
        context = fresh
        if !append(handshake) {
            attemptFailed(ioError(errno: chiredis_errno()))
            return
        }
        for name in names {
            switch readReply() {
            case .failure(let error):
                attemptFailed(error)
                return
            case .success(.error(let message)):
                attemptFailed(
                    CacheError(.serverError, "\(server) refused \(name) while connecting: \(message); check the credentials and database in the configuration")
                )
                return
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
        lastUsed = Monotonic.now()
        nextAttempt = nil
        lastError = nil
        connection.connected.store(true, ordering: .relaxed)
    }

    private func attemptFailed(_ error: CacheError) {
        if context != nil { dropContext() }
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
    private func connectionLost(_ error: CacheError) {
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
        connection.connected.store(false, ordering: .relaxed)
    }

    /// Closes the connection for good.
    func disconnect() {
        dropContext()
        nextAttempt = nil
    }

    // MARK: Batches

    /// Sends every request of `batch` in one pipelined write, then reads the replies in order
    /// and resumes each caller as soon as its replies are complete.
    func execute(_ batch: [RedisRequest]) {
        taken.removeAll(keepingCapacity: true)
        for request in batch {
            if request.take() {
                taken.append(request)
            } else {
                connection.pending.subtract(1, ordering: .relaxed)  // cancelled while queued
            }
        }
        guard !taken.isEmpty else { return }
        // A connection that sat idle may have been closed by the server (a restart, an idle
        // timeout): check before sending, and reconnect rather than fail the batch.
        if context != nil, Monotonic.now() &- lastUsed > Self.idleCheckNanoseconds, !peerIsOpen() {
            dropContext()
            connect()
        }
        guard context != nil else {
            failTaken(from: 0, with: notConnectedError())
            return
        }
        connection.roundTrips.add(1, ordering: .relaxed)
        defer { lastUsed = Monotonic.now() }
        for request in taken where !append(request.commands) {
            let error = ioError(errno: chiredis_errno())
            failTaken(from: 0, with: error)
            connectionLost(error)
            return
        }
        for index in taken.indices {
            let request = taken[index]
            let count = request.commands.count
            var result: Result<RedisValue, CacheError>
            if count == 1 {
                result = readReply()
            } else {
                var replies: [RedisValue] = []
                replies.reserveCapacity(count)
                result = .success(.null)
                for _ in 0..<count {
                    switch readReply() {
                    case .success(let value): replies.append(value)
                    case .failure(let error): result = .failure(error)
                    }
                    if case .failure = result { break }
                }
                if case .success = result { result = .success(.array(replies)) }
            }
            if case .failure(let error) = result {
                failTaken(from: index, with: error)
                connectionLost(error)
                return
            }
            connection.pending.subtract(1, ordering: .relaxed)
            request.finish(result)
        }
        taken.removeAll(keepingCapacity: true)
    }

    /// False when the server has closed the socket (a zero-byte or failed non-blocking peek).
    private func peerIsOpen() -> Bool {
        guard let context else { return false }
        var byte: UInt8 = 0
        let received = recv(context.pointee.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if received > 0 { return true }
        if received == 0 { return false }
        return chiredis_errno_is_timeout(chiredis_errno()) != 0
    }

    private func failTaken(from start: Int, with error: CacheError) {
        for request in taken[start...] {
            connection.pending.subtract(1, ordering: .relaxed)
            request.finish(.failure(error))
        }
        taken.removeAll(keepingCapacity: true)
    }

    private func notConnectedError() -> CacheError {
        let reason = lastError ?? CacheError(.connectionFailed, "not connected to \(server)")
        var retry = ""
        if let nextAttempt {
            let now = Monotonic.now()
            let wait = nextAttempt > now ? (nextAttempt - now) / 1_000_000 : 0
            retry = "; the next reconnection attempt is in \(wait) ms"
        }
        return CacheError(reason.code, "not connected: \(reason.message)\(retry)")
    }

    /// Appends every command to the output buffer; false on failure (out of memory).
    private func append(_ commands: RedisCommands) -> Bool {
        guard let context else { return false }
        let lengths = commands.lengths
        return commands.bytes.withUnsafeBufferPointer { bytes -> Bool in
            // Any non-null pointer will do when every argument is empty: hiredis copies zero bytes.
            let base = UnsafeRawPointer(bytes.baseAddress) ?? UnsafeRawPointer(argvLengths)
            var offset = 0
            var argument = 0
            for argc in commands.argumentCounts {
                reserveArgv(argc)
                for slot in 0..<argc {
                    let length = lengths[argument]
                    argv[slot] = (base + offset).assumingMemoryBound(to: CChar.self)
                    argvLengths[slot] = length
                    offset += length
                    argument += 1
                }
                if redisAppendCommandArgv(context, Int32(argc), argv, argvLengths) != REDIS_OK { return false }
            }
            return true
        }
    }

    private func reserveArgv(_ count: Int) {
        guard count > argvCapacity else { return }
        argv.deallocate()
        argvLengths.deallocate()
        argvCapacity = max(count, argvCapacity * 2)
        argv = .allocate(capacity: argvCapacity)
        argvLengths = .allocate(capacity: argvCapacity)
    }

    /// Flushes the output buffer if needed and reads one reply.
    private func readReply() -> Result<RedisValue, CacheError> {
        guard let context else { return .failure(notConnectedError()) }
        var raw: UnsafeMutableRawPointer?
        chiredis_clear_errno()
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            return .failure(ioError(errno: chiredis_errno()))
        }
        defer { freeReplyObject(raw) }
        return .success(RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self)))
    }

    /// The error for a failed read or write, from the context's error and `errno`.
    private func ioError(errno: Int32) -> CacheError {
        guard let context else { return notConnectedError() }
        let kind = context.pointee.err
        let reason = String(cString: chiredis_errstr(context))
        if kind == REDIS_ERR_IO && chiredis_errno_is_timeout(errno) != 0 {
            return CacheError(
                .timeout,
                "\(server) did not answer within the command timeout (\(configuration.commandTimeout)); the connection is reset, and commands that were sent may or may not have run"
            )
        }
        if kind == REDIS_ERR_EOF {
            return CacheError(.connectionFailed, "\(server) closed the connection (\(reason)); it will be reopened")
        }
        if kind == REDIS_ERR_OOM {
            return CacheError(.internalError, "hiredis ran out of memory talking to \(server)")
        }
        return CacheError(.connectionFailed, "lost the connection to \(server): \(reason); it will be reopened")
    }
}
