import Caching
import Logging
import Synchronization

/// A ``CacheBackend`` on a Redis server, through hiredis.
///
/// ```swift
/// let backend = try RedisBackend(url: "redis://127.0.0.1:6379")
/// try await backend.set("greeting", to: Array("hello".utf8), ttl: .seconds(30))
/// let entry = try await backend.get("greeting")     // value and remaining TTL, one round trip
/// try await backend.close()
/// ```
///
/// **Connections.** The backend keeps ``RedisConfiguration/poolSize`` connections, each owned
/// by a dedicated OS thread: hiredis's blocking calls never run on Swift's cooperative thread
/// pool. Calls fill the first connected connection up to a full batch (64 requests waiting),
/// then overflow to the least loaded one, so light loads share round trips and heavy loads use
/// every connection.
///
/// **Automatic pipelining.** A caller that finds its connection idle writes its request
/// itself (a non-blocking `send`) and the connection's thread resumes it when the reply
/// arrives: one thread hop. Otherwise the request is queued, and the thread writes every
/// request queued since its last write at once between reading replies, so commands issued
/// concurrently by many tasks share round trips.
///
/// **Failures.** When a connection fails, the commands it had in flight fail with
/// ``CacheError/Code/connectionFailed`` (or ``CacheError/Code/timeout`` when the server stopped
/// answering within ``RedisConfiguration/commandTimeout``); the connection reconnects by
/// itself with bounded exponential backoff, and until it is back, calls on it fail at once.
/// Error replies from the server (`WRONGTYPE`, `NOAUTH`, `OOM`, ...) become
/// ``CacheError/Code/serverError`` with the server's message.
///
/// **Commands.** `get` sends `GET` and `PTTL` in one round trip; `set` is `SET ... PX`; the
/// batch `get` is `MGET` (plus `PTTL` per key when ``RedisConfiguration/batchGetReadsTTL`` is
/// set); the batch `set` is pipelined
/// `SET ... PX`; `add` is `SET ... NX PX`; `increment` is `SET key 0 NX PX ttl` then
/// `INCRBY`, pipelined, so a new counter gets the TTL and an existing one keeps its own;
/// `touch` is `PEXPIRE` or `PERSIST`; deletes are `UNLINK`; ``clear(prefix:)`` walks `SCAN`
/// with an escaped `MATCH` pattern and unlinks what it finds, page by page (never `KEYS` or
/// `FLUSHDB`).
public final class RedisBackend: CacheBackend {
    /// `"redis"`.
    public let name = "redis"
    /// The configuration this backend was created with.
    public let configuration: RedisConfiguration
    private let connections: [RedisConnection]
    private let closed = Atomic<Bool>(false)
    /// A number unique to this backend in the process, in its threads' names.
    let serial: Int
    private static let serials = Atomic<Int>(0)

    /// Creates a backend and starts its connections.
    ///
    /// The connections are opened in the background by their threads; this initializer does
    /// not wait for the server, so it may run anywhere. Calls made before a connection is
    /// ready wait for the first attempt (at most ``RedisConfiguration/connectTimeout`` plus
    /// ``RedisConfiguration/commandTimeout``); use ``ping()`` to wait for the server.
    ///
    /// ```swift
    /// var configuration = RedisConfiguration(host: "cache.internal", password: secret)
    /// configuration.poolSize = 4
    /// let backend = try RedisBackend(configuration: configuration, logger: logger)
    /// ```
    /// - Parameters:
    ///   - configuration: the server and options.
    ///   - logger: where connection losses and recoveries are reported (the password never is).
    /// - Throws: ``CacheError/Code/configuration`` for an invalid configuration;
    ///   ``CacheError/Code/internalError`` if a thread cannot be started.
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "swift-caching.redis")) throws(CacheError) {
        try configuration.validate()
        self.configuration = configuration
        let serial = Self.serials.add(1, ordering: .relaxed).newValue
        self.serial = serial
        var connections: [RedisConnection] = []
        for id in 0..<configuration.poolSize {
            let connection = RedisConnection(id: id, backendSerial: serial, configuration: configuration, logger: logger)
            do {
                try connection.start()
            } catch {
                for started in connections { started.stopDetached() }
                throw error
            }
            connections.append(connection)
        }
        self.connections = connections
    }

    /// Creates a backend from a URL such as `redis://user:password@host:6379/0` or
    /// `unix:///run/redis.sock` (see ``RedisConfiguration/init(url:)``).
    ///
    /// ```swift
    /// let backend = try RedisBackend(url: "redis://127.0.0.1:6379/1")
    /// ```
    /// - Parameters:
    ///   - url: the server's URL.
    ///   - logger: where connection losses and recoveries are reported.
    /// - Throws: ``CacheError/Code/configuration`` for a malformed URL or option.
    public convenience init(url: String, logger: Logger = Logger(label: "swift-caching.redis")) throws(CacheError) {
        try self.init(configuration: RedisConfiguration(url: url), logger: logger)
    }

    deinit {
        for connection in connections { connection.stopDetached() }
    }

    // MARK: Sending

    /// Where the next request goes: the first connected connection with fewer than
    /// `spillThreshold` requests waiting, else the least loaded one.
    ///
    /// Filling one connection before the next makes the batches large: every request that
    /// shares a round trip saves a wake-up and a system call on both sides, which is worth
    /// more than spreading a light load over threads. Once a connection has a full batch
    /// waiting, the others take the overflow, so heavy loads use every connection.
    private func connection() -> RedisConnection {
        var best = connections[0]
        if connections.count == 1 { return best }
        var bestLoad = Int.max
        for candidate in connections {
            let candidateLoad = load(candidate)
            if candidateLoad < Self.spillThreshold { return candidate }
            if candidateLoad < bestLoad {
                best = candidate
                bestLoad = candidateLoad
            }
        }
        return best
    }

    /// Requests waiting on a connection before the next one takes new requests: about one
    /// well-filled pipelined batch.
    static let spillThreshold = 64

    private func load(_ connection: RedisConnection) -> Int {
        connection.pending.load(ordering: .relaxed) &+ (connection.connected.load(ordering: .relaxed) ? 0 : 1 << 32)
    }

    /// Pipelined round trips made by all connections so far (for tests and diagnostics).
    var roundTrips: Int { connections.reduce(0) { $0 + $1.roundTrips.load(ordering: .relaxed) } }

    func send(_ commands: RedisCommands, decoding: RedisDecoding = .values) async throws -> RedisValue {
        if closed.load(ordering: .relaxed) { throw CacheError.closed(name) }
        return try await connection().send(commands, decoding: decoding)
    }

    // MARK: CacheBackend

    /// The bytes and remaining TTL at `key` (`GET` and `PTTL` in one round trip), or `nil`.
    public func get(_ key: String) async throws -> CacheEntry? {
        try Self.validate(key)
        var commands = RedisCommands("GET", arguments: 1) { $0.argument(key) }
        commands.command("PTTL", arguments: 1) { $0.argument(key) }
        let reply = try await send(commands)
        guard case .array(let replies) = reply, replies.count == 2 else { throw Self.unexpected(reply, "GET") }
        return try Self.entry(value: replies[0], pttl: replies[1], command: "GET", key: key)
    }

    /// Stores `value` at `key` with `SET key value [PX ms]`.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try Self.validate(key)
        try CacheTTL.validate(ttl)
        try checkSize(value, key: key)
        let reply = try await send(Self.setCommand(key, value, ttl: ttl))
        try Self.expectOK(reply, "SET", key: key)
    }

    /// Removes `key` with `UNLINK`; returns whether it was there.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        try Self.validate(key)
        return try await Self.integer(send(RedisCommands("UNLINK", arguments: 1) { $0.argument(key) }), "UNLINK", key: key) > 0
    }

    /// Removes every key that starts with `prefix`: `SCAN` with `MATCH <escaped prefix>*`,
    /// page by page, each page removed with `UNLINK` in the same round trip as the next `SCAN`.
    ///
    /// Keys written while the walk runs may survive it, as with any `SCAN`. An empty prefix
    /// removes every key of the database, still without `FLUSHDB`.
    public func clear(prefix: String) async throws {
        let pattern = Self.scanPattern(prefix: prefix)
        var cursor: [UInt8] = Array("0".utf8)
        var toUnlink: [[UInt8]] = []
        repeat {
            var commands = RedisCommands()
            if !toUnlink.isEmpty {
                commands.command("UNLINK", arguments: toUnlink.count) { for key in toUnlink { $0.argument(key) } }
            }
            commands.command("SCAN", arguments: 5) {
                $0.argument(cursor)
                $0.argument("MATCH")
                $0.argument(pattern)
                $0.argument("COUNT")
                $0.argument(configuration.scanCount)
            }
            var reply = try await send(commands)
            if !toUnlink.isEmpty {
                guard case .array(let replies) = reply, replies.count == 2 else { throw Self.unexpected(reply, "UNLINK") }
                _ = try Self.integer(replies[0], "UNLINK", key: nil)
                reply = replies[1]
            }
            guard case .array(let page) = reply, page.count == 2, case .bulk(let next) = page[0],
                case .array(let keys) = page[1]
            else {
                throw Self.failure(reply, "SCAN") ?? Self.unexpected(reply, "SCAN")
            }
            cursor = next
            toUnlink = keys.compactMap { if case .bulk(let key) = $0 { return key } else { return nil } }
        } while cursor != Array("0".utf8)
        if !toUnlink.isEmpty {
            let reply = try await send(RedisCommands("UNLINK", arguments: toUnlink.count) { for key in toUnlink { $0.argument(key) } })
            _ = try Self.integer(reply, "UNLINK", key: nil)
        }
    }

    /// Fails the queued commands with ``CacheError/Code/closed``, lets those in flight finish
    /// (at most the command timeout), closes the connections and joins their threads. Calls
    /// after `close()` throw ``CacheError/Code/closed``; closing twice is harmless.
    public func close() async throws {
        closed.store(true, ordering: .relaxed)
        for connection in connections { await connection.close() }
    }

    // MARK: Native batch and atomic operations

    /// Whether `key` exists (`EXISTS`).
    public func exists(_ key: String) async throws -> Bool {
        try Self.validate(key)
        return try await Self.integer(send(RedisCommands("EXISTS", arguments: 1) { $0.argument(key) }), "EXISTS", key: key) > 0
    }

    /// The entries for `keys`, in order, with one `MGET`.
    ///
    /// By default the entries' ``CacheEntry/ttl`` is `nil` (not read): a `PTTL` per key costs
    /// the server and the client about as much as the `MGET` itself, and batch readers rarely
    /// need it. Set ``RedisConfiguration/batchGetReadsTTL`` to pipeline one `PTTL` per key in
    /// the same round trip and get the remaining TTLs.
    public func get(_ keys: [String]) async throws -> [CacheEntry?] {
        try await get(keys, prefix: "")
    }

    /// The entries for `prefix + key` of each of `keys`, in order, with one `MGET`: the batch
    /// get of a ``CacheFront``, which passes its scope as `prefix` so the storage keys are
    /// written straight into the request instead of being built as strings first.
    public func get(_ keys: [String], prefix: String) async throws -> [CacheEntry?] {
        if keys.isEmpty { return [] }
        if prefix.isEmpty {
            for key in keys { try Self.validate(key) }
        }
        var commands = RedisCommands("MGET", prefix: prefix, keys: keys)
        guard configuration.batchGetReadsTTL else {
            // Decoded into entries on this (the caller's) thread, straight from the reply bytes.
            let reply = try await send(commands, decoding: .entries)
            guard case .entries(let entries) = reply, entries.count == keys.count else {
                throw Self.failure(reply, "MGET") ?? Self.unexpected(reply, "MGET")
            }
            return entries
        }
        for key in keys { commands.command("PTTL", arguments: 1) { $0.argument(prefix + key) } }
        let reply = try await send(commands)
        guard case .array(let replies) = reply, replies.count == keys.count + 1 else { throw Self.unexpected(reply, "MGET") }
        guard case .array(let values) = replies[0], values.count == keys.count else {
            throw Self.failure(replies[0], "MGET") ?? Self.unexpected(replies[0], "MGET")
        }
        var entries: [CacheEntry?] = []
        entries.reserveCapacity(keys.count)
        for index in keys.indices {
            entries.append(try Self.entry(value: values[index], pttl: replies[index + 1], command: "MGET", key: prefix + keys[index]))
        }
        return entries
    }

    /// Stores every item with `SET ... PX`, all pipelined in one round trip.
    public func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        if items.isEmpty { return }
        var commands = RedisCommands()
        for item in items {
            try Self.validate(item.key)
            try checkSize(item.value, key: item.key)
            Self.appendSet(&commands, item.key, item.value, ttl: ttl)
        }
        let reply = try await send(commands)
        if items.count == 1 { return try Self.expectOK(reply, "SET", key: items[0].key) }
        guard case .array(let replies) = reply, replies.count == items.count else { throw Self.unexpected(reply, "SET") }
        for (index, reply) in replies.enumerated() { try Self.expectOK(reply, "SET", key: items[index].key) }
    }

    /// Removes `keys` with `UNLINK` (in commands of at most 1,000 keys, one round trip); returns
    /// how many were there.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        if keys.isEmpty { return 0 }
        for key in keys { try Self.validate(key) }
        var commands = RedisCommands()
        var start = 0
        while start < keys.count {
            let end = min(start + 1000, keys.count)
            commands.command("UNLINK", arguments: end - start) { for key in keys[start..<end] { $0.argument(key) } }
            start = end
        }
        let reply = try await send(commands)
        if commands.count == 1 { return Int(try Self.integer(reply, "UNLINK", key: nil)) }
        guard case .array(let replies) = reply else { throw Self.unexpected(reply, "UNLINK") }
        var removed = 0
        for reply in replies { removed += Int(try Self.integer(reply, "UNLINK", key: nil)) }
        return removed
    }

    /// Stores `value` only if `key` is absent (`SET ... NX PX`); returns whether it stored it.
    public func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool {
        try Self.validate(key)
        try CacheTTL.validate(ttl)
        try checkSize(value, key: key)
        var commands = RedisCommands()
        Self.appendSet(&commands, key, value, ttl: ttl, onlyIfAbsent: true)
        let reply = try await send(commands)
        switch reply {
        case .status: return true
        case .null: return false
        default: throw Self.failure(reply, "SET NX", key: key) ?? Self.unexpected(reply, "SET NX")
        }
    }

    /// Adds `delta` to the counter at `key` with `INCRBY`. With a TTL, `SET key 0 NX PX ttl` goes
    /// first in the same round trip, so a new counter gets the TTL and an existing one keeps its
    /// expiry.
    /// - Throws: ``CacheError/Code/notANumber`` when the value is not a decimal 64-bit integer or
    ///   the sum overflows.
    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        try Self.validate(key)
        try CacheTTL.validate(ttl)
        var commands = RedisCommands()
        if let ttl {
            commands.command("SET", arguments: 5) {
                $0.argument(key)
                $0.argument("0")
                $0.argument("NX")
                $0.argument("PX")
                $0.argument(Self.milliseconds(ttl))
            }
        }
        commands.command("INCRBY", arguments: 2) {
            $0.argument(key)
            $0.argument(delta)
        }
        var reply = try await send(commands)
        if ttl != nil {
            guard case .array(let replies) = reply, replies.count == 2 else { throw Self.unexpected(reply, "INCRBY") }
            if let error = Self.failure(replies[0], "SET NX", key: key) { throw error }
            reply = replies[1]
        }
        if case .error(let message) = reply,
            message.contains("not an integer") || message.contains("overflow")
        {
            throw CacheError(
                .notANumber,
                "cannot increment key \(Self.describe(key)) by \(delta): \(message); delete it or use another key"
            )
        }
        return try Self.integer(reply, "INCRBY", key: key)
    }

    /// Gives `key` a new TTL (`PEXPIRE`), or removes its TTL (`PERSIST`) when `ttl` is `nil`;
    /// returns whether the key was there.
    @discardableResult
    public func touch(_ key: String, ttl: Duration?) async throws -> Bool {
        try Self.validate(key)
        try CacheTTL.validate(ttl)
        if let ttl {
            let reply = try await send(RedisCommands("PEXPIRE", arguments: 2) {
                $0.argument(key)
                $0.argument(Self.milliseconds(ttl))
            })
            return try Self.integer(reply, "PEXPIRE", key: key) > 0
        }
        // PERSIST answers 0 both for a missing key and for one without a TTL: ask EXISTS too.
        var commands = RedisCommands("PERSIST", arguments: 1) { $0.argument(key) }
        commands.command("EXISTS", arguments: 1) { $0.argument(key) }
        let reply = try await send(commands)
        guard case .array(let replies) = reply, replies.count == 2 else { throw Self.unexpected(reply, "PERSIST") }
        _ = try Self.integer(replies[0], "PERSIST", key: key)
        return try Self.integer(replies[1], "EXISTS", key: key) > 0
    }

    /// Sends `PING` and returns the round-trip time; use it to wait for the server or as a
    /// health check.
    /// - Throws: ``CacheError/Code/connectionFailed`` or ``CacheError/Code/timeout`` when the
    ///   server cannot be reached; ``CacheError/Code/serverError`` when it refuses (`NOAUTH`).
    @discardableResult
    public func ping() async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let reply = try await send(RedisCommands("PING"))
        if let error = Self.failure(reply, "PING") { throw error }
        return clock.now - start
    }
}

// MARK: Helpers

extension RedisBackend {
    static func validate(_ key: String) throws(CacheError) {
        if key.isEmpty { throw CacheError(.invalidKey, "the key is empty; Redis keys need at least one byte") }
    }

    private func checkSize(_ value: [UInt8], key: String) throws(CacheError) {
        if value.count > configuration.maxValueSize {
            throw CacheError.valueTooLarge(size: value.count, limit: configuration.maxValueSize, key: key)
        }
    }

    /// Milliseconds for `PX`/`PEXPIRE`, rounded up, and capped far below the point where Redis
    /// refuses an expiry time that overflows (about 146 million years).
    static func milliseconds(_ ttl: Duration) -> Int64 {
        min(CacheTTL.milliseconds(ttl), 1 << 62)
    }

    static func setCommand(_ key: String, _ value: [UInt8], ttl: Duration?) -> RedisCommands {
        var commands = RedisCommands()
        appendSet(&commands, key, value, ttl: ttl)
        return commands
    }

    static func appendSet(
        _ commands: inout RedisCommands, _ key: String, _ value: [UInt8], ttl: Duration?, onlyIfAbsent: Bool = false
    ) {
        commands.command("SET", arguments: 2 + (onlyIfAbsent ? 1 : 0) + (ttl == nil ? 0 : 2)) {
            $0.argument(key)
            $0.argument(value)
            if onlyIfAbsent { $0.argument("NX") }
            if let ttl {
                $0.argument("PX")
                $0.argument(milliseconds(ttl))
            }
        }
    }

    /// The `SCAN MATCH` pattern for keys starting with `prefix`: glob characters escaped.
    static func scanPattern(prefix: String) -> [UInt8] {
        var pattern: [UInt8] = []
        pattern.reserveCapacity(prefix.utf8.count + 8)
        for byte in prefix.utf8 {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "\\"):
                pattern.append(UInt8(ascii: "\\"))
            default:
                break
            }
            pattern.append(byte)
        }
        pattern.append(UInt8(ascii: "*"))
        return pattern
    }

    /// A `GET`/`MGET` reply and its `PTTL` as an entry.
    static func entry(value: RedisValue, pttl: RedisValue, command: String, key: String) throws(CacheError) -> CacheEntry? {
        switch value {
        case .null:
            return nil
        case .bulk(let bytes):
            switch pttl {
            case .integer(let milliseconds) where milliseconds >= 0:
                return CacheEntry(value: bytes, ttl: .milliseconds(max(milliseconds, 1)))
            case .integer(-1):
                return CacheEntry(value: bytes, ttl: nil)
            case .integer:
                return nil  // expired between GET and PTTL
            default:
                throw failure(pttl, "PTTL", key: key) ?? unexpected(pttl, "PTTL")
            }
        default:
            throw failure(value, command, key: key) ?? unexpected(value, command)
        }
    }

    static func expectOK(_ reply: RedisValue, _ command: String, key: String?) throws(CacheError) {
        if case .status = reply { return }
        throw failure(reply, command, key: key) ?? unexpected(reply, command)
    }

    static func integer(_ reply: RedisValue, _ command: String, key: String?) throws(CacheError) -> Int64 {
        if case .integer(let value) = reply { return value }
        throw failure(reply, command, key: key) ?? unexpected(reply, command)
    }

    /// The ``CacheError/Code/serverError`` for an error reply, or `nil` for any other reply.
    static func failure(_ reply: RedisValue, _ command: String, key: String? = nil) -> CacheError? {
        guard case .error(let message) = reply else { return nil }
        let keyPart = key.map { " for key \(describe($0))" } ?? ""
        return CacheError(.serverError, "Redis answered \(command)\(keyPart) with an error: \(message)")
    }

    static func unexpected(_ reply: RedisValue, _ command: String) -> CacheError {
        if let error = failure(reply, command) { return error }
        return CacheError(.internalError, "unexpected reply to \(command) from Redis: \(String(describing: reply).prefix(200))")
    }

    static func describe(_ key: String) -> String {
        String(reflecting: String(key.prefix(80)))
    }
}
