import CLibmemcached
import Caching
import Logging
import Synchronization

/// A ``CacheBackend`` over one or many memcached servers, through libmemcached.
///
/// ```swift
/// let backend = try MemcachedBackend(url: "memcached://10.0.0.1:11211,10.0.0.2:11211")
/// let cache = CacheFront(backend: backend, prefix: "shop", defaultTTL: .seconds(300))
/// try await cache.namespace("users").set(user, forKey: "42")
/// ```
///
/// Keys are spread over the servers with consistent hashing (libmemcached's weighted ketama,
/// MD5), so adding or losing a server moves only its share of the keys. Each server gets
/// ``Configuration/connectionsPerServer`` libmemcached handles, each owned by a dedicated
/// thread: blocking calls never run on Swift's cooperative pool, and concurrent reads waiting
/// for the same connection are merged into one multi-get. Writes, deletes and counters use
/// libmemcached's binary protocol; plain reads use the text protocol's `get k1 k2 …` through the
/// backend's own reply parser. Both use TCP_NODELAY and the connect and I/O timeouts of the
/// configuration.
///
/// memcached's limits do not leak to callers:
/// - **Any key works.** Keys that are not printable ASCII without spaces, or are longer than
///   memcached allows, are stored under their SHA-256 digest (see the `MemcachedBackend`
///   article for the key layout).
/// - **TTLs are honoured to the second.** They are rounded up to whole seconds, sent as an
///   absolute time beyond 30 days, and the exact expiry is kept in the item's flags, which
///   also gives ``CacheEntry/ttl``.
/// - **Values over the limit fail clearly** with ``CacheError/Code/valueTooLarge``, before any
///   traffic when over ``Configuration/maxValueSize``, or when the server refuses them.
/// - **`clear(prefix:)` is O(1)**: every namespace level of a key (`shop:`, `shop:users:`) has a
///   generation counter on each server, read with the value in the same round trip and mixed
///   into the stored key; clearing a namespace bumps its counter, so its old keys are never
///   read again and memcached evicts them in time. Prefixes must end with the namespace
///   delimiter (`:`), as the front's are.
/// - **A server that is down** is left alone for ``Configuration/retryTimeout`` and then tried
///   again by one request; meanwhile operations on its keys fail at once with
///   ``CacheError/Code/connectionFailed`` (batch reads report its keys as misses), and the
///   other servers keep serving.
///
/// Counters (``increment(_:by:ttl:)``) are ASCII decimal as memcached's INCR needs; memcached
/// counters are unsigned, so a decrement stops at 0.
///
/// A task that makes many calls in a row can run on one of the backend's connection threads
/// with `withTaskExecutorPreference(backend.taskExecutor) { ... }`: its calls then run inline on
/// that thread, with no thread hop (see ``taskExecutor``).
public final class MemcachedBackend: CacheBackend {
    /// `"memcached"`.
    public let name = "memcached"
    /// The configuration the backend was created with.
    public let configuration: Configuration

    private let keySpace: MemcachedKeySpace
    private let router: MemcachedRouter
    private let states: [ServerState]
    private let connections: [[MemcachedConnection]]
    private let closed = Atomic<Bool>(false)
    private let logger: Logger
    /// The last single-key plan, whose namespace levels the next one may share.
    private let lastPlan = Mutex<KeyPlan?>(nil)
    /// The thread behind ``taskExecutor``, made on first use.
    private let executorThread = AtomicLazyReference<MemcachedExecutorThread>()
    /// Serializes the creation of ``executorThread`` with ``close()``.
    private let executorCreation = Mutex<Void>(())

    /// Creates a backend for the configured servers. No connection is opened until the first
    /// operation, so this succeeds while servers are down.
    ///
    /// ```swift
    /// var configuration = MemcachedBackend.Configuration(servers: [
    ///     MemcachedServer(host: "10.0.0.1"), MemcachedServer(host: "10.0.0.2", weight: 2),
    /// ])
    /// configuration.maxValueSize = 4 << 20   // servers run with -I 4m
    /// let backend = try MemcachedBackend(configuration: configuration, logger: logger)
    /// ```
    /// - Parameters:
    ///   - configuration: the servers and settings.
    ///   - logger: where server failures and recoveries are logged.
    /// - Throws: ``CacheError/Code/configuration`` when a setting is invalid.
    public init(configuration: Configuration, logger: Logger = Logger(label: "swift-caching.memcached")) throws(CacheError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        keySpace = MemcachedKeySpace(delimiter: configuration.namespaceDelimiter, maxDepth: configuration.maxNamespaceDepth)
        router = try MemcachedRouter(servers: configuration.servers)
        var states: [ServerState] = []
        var connections: [[MemcachedConnection]] = []
        for (index, server) in configuration.servers.enumerated() {
            let state = ServerState(index: index, server: server, retryTimeout: configuration.retryTimeout, logger: logger)
            states.append(state)
            var serverConnections: [MemcachedConnection] = []
            for number in 0..<configuration.connectionsPerServer {
                let handle = try MemcachedHandle(server: server, configuration: configuration)
                let reader = MemcachedTextReader(server: server, configuration: configuration, spinSlots: .shared, polledReads: polledReads)
                serverConnections.append(MemcachedConnection(
                    state: state, handle: handle, reader: reader, configuration: configuration, name: "memcached-\(index)-\(number)"
                ))
            }
            connections.append(serverConnections)
        }
        self.states = states
        self.connections = connections
    }

    /// Creates a backend from a server list such as `memcached://127.0.0.1:11211,127.0.0.1:11212`,
    /// with the default settings.
    ///
    /// ```swift
    /// let backend = try MemcachedBackend(url: "memcached://127.0.0.1:11211")
    /// ```
    /// - Parameters:
    ///   - url: the server list (the scheme may be left out; `host:port:weight` sets a weight).
    ///   - logger: where server failures and recoveries are logged.
    /// - Throws: ``CacheError/Code/configuration`` when the list cannot be parsed.
    public convenience init(url: String, logger: Logger = Logger(label: "swift-caching.memcached")) throws(CacheError) {
        try self.init(configuration: Configuration(url: url), logger: logger)
    }

    deinit {
        // Without close(): let the threads finish their queues and end on their own.
        for serverConnections in connections {
            for connection in serverConnections { connection.shutdown(join: false) }
        }
        executorThread.load()?.stop(join: false)
    }

    /// The servers, in configuration order.
    public var servers: [MemcachedServer] { configuration.servers }

    /// The server that holds `key` (by consistent hashing of its UTF-8 bytes).
    public func server(for key: String) -> MemcachedServer {
        configuration.servers[router.server(for: Array(key.utf8))]
    }

    /// Multi-get round trips sent so far, over all servers (for tests and diagnostics).
    var readRoundTrips: Int { states.reduce(0) { $0 + $1.multiGets.load(ordering: .relaxed) } }

    /// The thread behind ``taskExecutor``; made (and started) on first use, or made stopped
    /// after ``close()``.
    var executor: MemcachedExecutorThread {
        if let existing = executorThread.load() { return existing }
        return executorCreation.withLock { _ in
            if let existing = executorThread.load() { return existing }
            let made = MemcachedExecutorThread(
                states: states, configuration: configuration, name: "memcached-exec",
                stopped: closed.load(ordering: .acquiring)
            )
            return executorThread.storeIfNil(made)
        }
    }

    /// Reads of the pool connections that polled their socket for the reply
    /// (``Configuration/replySpin``), for tests and diagnostics.
    let polledReads = PolledReads()

    /// Backend calls run inline on the ``taskExecutor`` thread so far (for tests and diagnostics).
    var inlineCalls: Int { executorThread.load()?.inlineCalls.load(ordering: .relaxed) ?? 0 }

    /// The executor thread when the calling code runs on it (a task that prefers ``taskExecutor``).
    @inline(__always)
    private var currentExecutor: MemcachedExecutorThread? {
        guard let executor = executorThread.load(), executor.isCurrentThread else { return nil }
        return executor
    }

    // MARK: Plumbing

    private func checkOpen() throws(CacheError) {
        if closed.load(ordering: .acquiring) { throw CacheError.closed(name) }
    }

    private func plan(_ key: String) throws(CacheError) -> KeyPlan {
        // Reuse the namespace levels of the last single-key plan: calls one after another
        // usually stay in one namespace, and building the generation keys is most of a plan's
        // allocations.
        var previous = lastPlan.withLock { $0 }
        let plan = try plan(key, after: &previous)
        lastPlan.withLock { $0 = plan }
        return plan
    }

    /// Plans `key`; reuses the namespace levels of `previous` when the key has the same ones
    /// (the usual case in a batch), so a batch builds them once.
    private func plan(_ key: String, after previous: inout KeyPlan?) throws(CacheError) -> KeyPlan {
        if key.isEmpty { throw CacheError(.invalidKey, "the cache key is empty; pass a non-empty key") }
        let bytes = Array(key.utf8)
        let generationKeys: [MemcachedKey]
        if let previous, keySpace.sameLevels(bytes, as: previous.bytes) {
            generationKeys = previous.generationKeys
        } else {
            generationKeys = keySpace.generationKeys(of: bytes)
        }
        let plan = KeyPlan(
            bytes: bytes,
            server: router.server(for: bytes),
            digest: MemcachedKeySpace.digest(bytes[...]),
            generationKeys: generationKeys
        )
        previous = plan
        return plan
    }

    private func plans(_ keys: some Sequence<String>) throws(CacheError) -> [KeyPlan] {
        var previous: KeyPlan?
        var plans: [KeyPlan] = []
        plans.reserveCapacity(keys.underestimatedCount)
        for key in keys { plans.append(try plan(key, after: &previous)) }
        return plans
    }

    /// The least busy connection to `server`; fails at once when the server is marked down.
    private func connection(_ server: Int) throws(CacheError) -> MemcachedConnection {
        if let refusal = states[server].refusal() { throw refusal }
        let pool = connections[server]
        if pool.count == 1 { return pool[0] }
        var best = pool[0]
        var bestLoad = best.pending
        for connection in pool.dropFirst() where bestLoad > 0 {
            let load = connection.pending
            if load < bestLoad {
                best = connection
                bestLoad = load
            }
        }
        return best
    }

    /// Reads `plans` (all on `server`): inline on the executor thread when the calling code runs
    /// there, else on one of the server's pool connections.
    private func read(_ plans: [KeyPlan], on server: Int) async throws -> [CacheEntry?] {
        if let executor = currentExecutor {
            return try executor.run(server: server) { context throws(CacheError) in try context.read(plans) }
        }
        return try await connection(server).read(plans)
    }

    /// Runs `body` with a connection to `server`: inline on the executor thread when the calling
    /// code runs there, else on the thread of one of the server's pool connections.
    private func perform<T: Sendable>(
        on server: Int, _ body: @escaping @Sendable (ConnectionContext) throws(CacheError) -> T
    ) async throws -> T {
        if let executor = currentExecutor { return try executor.run(server: server, body) }
        return try await connection(server).perform(body)
    }

    private func checkSize(_ value: [UInt8], key: String) throws(CacheError) {
        if value.count > configuration.maxValueSize {
            throw CacheError.valueTooLarge(size: value.count, limit: configuration.maxValueSize, key: key)
        }
    }

    /// Groups the positions of `plans` by server.
    private static func byServer(_ plans: [KeyPlan]) -> [(server: Int, positions: [Int])] {
        if let first = plans.first?.server, plans.allSatisfy({ $0.server == first }) {
            return [(first, Array(plans.indices))]
        }
        var order: [Int] = []
        var groups: [Int: [Int]] = [:]
        for (position, plan) in plans.enumerated() {
            if groups[plan.server] == nil { order.append(plan.server) }
            groups[plan.server, default: []].append(position)
        }
        return order.map { ($0, groups[$0] ?? []) }
    }

    /// Runs `body` for each server group at once, and returns each group's result.
    private func eachServer<T: Sendable>(
        _ groups: [(server: Int, positions: [Int])],
        _ body: @escaping @Sendable (Int, [Int]) async throws -> T
    ) async -> [Result<T, any Error>] {
        if groups.count == 1 || currentExecutor != nil {
            // One group, or a task on the executor thread, whose calls run inline one after
            // another anyway (child tasks would inherit its executor preference).
            var results: [Result<T, any Error>] = []
            results.reserveCapacity(groups.count)
            for group in groups {
                do { results.append(.success(try await body(group.server, group.positions))) } catch { results.append(.failure(error)) }
            }
            return results
        }
        return await withTaskGroup(of: (Int, Result<T, any Error>).self) { group in
            for (index, entry) in groups.enumerated() {
                group.addTask {
                    do { return (index, .success(try await body(entry.server, entry.positions))) } catch { return (index, .failure(error)) }
                }
            }
            var results = [Result<T, any Error>?](repeating: nil, count: groups.count)
            for await (index, result) in group { results[index] = result }
            return results.map { $0 ?? .failure(CacheError(.internalError, "a memcached server group returned no result")) }
        }
    }

    // MARK: CacheBackend

    /// The value of `key` and its remaining TTL (from the expiry recorded in the item's flags),
    /// read with its namespace generations in one round trip.
    /// - Throws: ``CacheError/Code/connectionFailed`` or ``CacheError/Code/timeout`` when the
    ///   key's server is down or does not answer.
    public func get(_ key: String) async throws -> CacheEntry? {
        try checkOpen()
        let plan = try plan(key)
        return try await read([plan], on: plan.server).first ?? nil
    }

    /// Reads all `keys` with one multi-get per server, the servers in parallel.
    ///
    /// Keys on a server that is down or fails read as misses, so one server does not fail a
    /// page that needs keys from many; the call throws only when every server it needed failed.
    public func get(_ keys: [String]) async throws -> [CacheEntry?] {
        try checkOpen()
        if keys.isEmpty { return [] }
        let plans = try plans(keys)
        let groups = Self.byServer(plans)
        if groups.count == 1 {
            // One server (every key of a one-server cluster): its answer is aligned with `keys`.
            return try await read(plans, on: groups[0].server)
        }
        let results = await eachServer(groups) { [self] server, positions in
            try await read(positions.map { plans[$0] }, on: server)
        }
        var entries = [CacheEntry?](repeating: nil, count: keys.count)
        var firstError: (any Error)?
        var anySuccess = false
        for (group, result) in zip(groups, results) {
            switch result {
            case .success(let found):
                anySuccess = true
                for (position, entry) in zip(group.positions, found) { entries[position] = entry }
            case .failure(let error):
                if firstError == nil { firstError = error }
                logger.debug("memcached batch read: keys on one server read as misses", metadata: ["error": "\(error)"])
            }
        }
        if !anySuccess, let firstError { throw firstError }
        return entries
    }

    /// Whether `key` holds a live entry (a read of the value).
    public func exists(_ key: String) async throws -> Bool {
        try await get(key) != nil
    }

    /// Stores `value` under `key` with SET.
    /// - Throws: ``CacheError/Code/valueTooLarge`` over ``Configuration/maxValueSize`` or the
    ///   server's item size; ``CacheError/Code/invalidTTL`` for a TTL that is not positive;
    ///   ``CacheError/Code/connectionFailed`` when the key's server is down.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try checkOpen()
        try CacheTTL.validate(ttl)
        try checkSize(value, key: key)
        let plan = try plan(key)
        try await perform(on: plan.server) { context throws(CacheError) in
            try context.write([(plan, value)], ttl: ttl)
        }
    }

    /// Stores every item, grouped by server, the servers in parallel. Each item is its own SET
    /// (libmemcached cannot pipeline replies it must check); a failure stops that server's group
    /// and is thrown after the other groups finish.
    public func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws {
        try checkOpen()
        try CacheTTL.validate(ttl)
        if items.isEmpty { return }
        for item in items { try checkSize(item.value, key: item.key) }
        let plans = try plans(items.lazy.map(\.key))
        let values = items.map(\.value)
        let results = await eachServer(Self.byServer(plans)) { [self] server, positions in
            let work = positions.map { (plan: plans[$0], value: values[$0]) }
            try await perform(on: server) { context throws(CacheError) in try context.write(work, ttl: ttl) }
        }
        for case .failure(let error) in results { throw error }
    }

    /// Removes `key` with DELETE; returns whether it held a live entry.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        try checkOpen()
        let plan = try plan(key)
        return try await perform(on: plan.server) { context throws(CacheError) in try context.delete([plan]) } > 0
    }

    /// Removes `keys` (one multi-get and the DELETEs per server, the servers in parallel);
    /// returns how many held a live entry.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        try checkOpen()
        if keys.isEmpty { return 0 }
        let plans = try plans(keys)
        let results = await eachServer(Self.byServer(plans)) { [self] server, positions in
            let work = positions.map { plans[$0] }
            return try await perform(on: server) { context throws(CacheError) in try context.delete(work) }
        }
        var count = 0
        for result in results { count += try result.get() }
        return count
    }

    /// Stores `value` with ADD if `key` holds no live entry; returns whether it stored it. An item
    /// memcached still holds past its recorded expiry is replaced with CAS.
    public func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool {
        try checkOpen()
        try CacheTTL.validate(ttl)
        try checkSize(value, key: key)
        let plan = try plan(key)
        return try await perform(on: plan.server) { context throws(CacheError) in try context.add(plan, value: value, ttl: ttl) }
    }

    /// Adds `delta` to the counter at `key` with memcached's INCR (DECR for a negative delta).
    ///
    /// A missing key starts at 0 and gets `ttl`: with a TTL it is created with ADD, so the item
    /// records its expiry; without one, with the binary protocol's INCR-with-initial-value. An
    /// existing counter keeps its expiry. memcached counters are unsigned 64-bit: a decrement
    /// stops at 0 (it never goes negative), and a negative value stored with `set` is not a number.
    /// - Throws: ``CacheError/Code/notANumber`` when the value is not a decimal number or the
    ///   sum passes `Int64.max`.
    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        try checkOpen()
        try CacheTTL.validate(ttl)
        let plan = try plan(key)
        return try await perform(on: plan.server) { context throws(CacheError) in try context.increment(plan, by: delta, ttl: ttl) }
    }

    /// Gives `key` a new TTL.
    ///
    /// The item is rewritten with CAS rather than memcached's TOUCH, because the expiry this
    /// backend reports (and honours to the second) is kept in the item's flags, which TOUCH
    /// cannot change.
    @discardableResult
    public func touch(_ key: String, ttl: Duration?) async throws -> Bool {
        try checkOpen()
        try CacheTTL.validate(ttl)
        let plan = try plan(key)
        return try await perform(on: plan.server) { context throws(CacheError) in try context.touch(plan, ttl: ttl) }
    }

    /// Removes every key that starts with `prefix`, in O(1): the prefix's generation counter is
    /// bumped on every server, so no key below it is read again.
    ///
    /// `prefix` must end with ``Configuration/namespaceDelimiter`` (as the front's
    /// `prefix:namespace:` does) and have at most ``Configuration/maxNamespaceDepth`` levels;
    /// characters such as `*`, `?` and `[` have no special meaning.
    /// - Throws: ``CacheError/Code/unsupported`` for another prefix (memcached cannot list its
    ///   keys); ``CacheError/Code/connectionFailed`` when a server could not be reached, naming
    ///   it: keys stored there may still be read once it is back, so call again.
    public func clear(prefix: String) async throws {
        try checkOpen()
        let bytes = Array(prefix.utf8)
        let delimiter = Character(Unicode.Scalar(configuration.namespaceDelimiter))
        if bytes.isEmpty {
            throw CacheError(.unsupported, "memcached cannot clear every key: it cannot list keys, and flush_all would also drop other applications' data; clear a namespace prefix ending in \(String(reflecting: String(delimiter)))")
        }
        let levels = keySpace.levels(of: bytes)
        guard levels.endsAtBoundary else {
            throw CacheError(.unsupported, "memcached can only clear whole namespaces: the prefix \(String(reflecting: String(prefix.prefix(80)))) does not end with the namespace delimiter \(String(reflecting: String(delimiter)))")
        }
        guard levels.count <= configuration.maxNamespaceDepth else {
            throw CacheError(.unsupported, "the prefix \(String(reflecting: String(prefix.prefix(80)))) has \(levels.count) namespace levels, more than maxNamespaceDepth (\(configuration.maxNamespaceDepth)); raise maxNamespaceDepth in the memcached configuration")
        }
        let generationKey = MemcachedKeySpace.generationKey(bytes[...])
        let groups = states.indices.map { (server: $0, positions: [Int]()) }
        let results = await eachServer(groups) { [self] server, _ in
            try await perform(on: server) { context throws(CacheError) in try context.bumpGeneration(generationKey, prefix: prefix) }
        }
        var failed: [String] = []
        var firstError: (any Error)?
        for (state, result) in zip(states, results) {
            if case .failure(let error) = result {
                failed.append("\(state.server)")
                if firstError == nil { firstError = error }
            }
        }
        if !failed.isEmpty {
            throw CacheError(
                .connectionFailed,
                "clear(prefix: \(String(reflecting: String(prefix.prefix(80))))) did not reach memcached server(s) \(failed.joined(separator: ", ")); keys stored there may be read again once they are back, so clear again",
                underlying: firstError
            )
        }
    }

    /// Finishes queued operations, closes every connection and stops the threads. Later
    /// operations throw ``CacheError/Code/closed``.
    public func close() async throws {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        let all = connections.flatMap { $0 }
        // Any executor made from now on is made stopped (the flag is read under the same lock).
        let executor = executorCreation.withLock { _ in executorThread.load() }
        // Joining the threads waits for their queued work: do it off the cooperative pool.
        let worker = BlockingWorker(name: "memcached-close")
        defer { worker.shutdown() }
        try await worker.run {
            for connection in all { connection.shutdown() }
            executor?.stop(join: true)
        }
    }
}

/// Picks the server of a key with libmemcached's consistent hashing.
///
/// `@unchecked Sendable`: after `init`, the handle is only read, by
/// `memcached_generate_hash` (a `const` function that hashes the key and binary-searches the
/// ketama continuum); nothing changes it (servers are never added, removed or ejected) until
/// `deinit`.
final class MemcachedRouter: @unchecked Sendable {
    private let memc: UnsafeMutablePointer<memcached_st>
    private let count: Int

    init(servers: [MemcachedServer]) throws(CacheError) {
        guard let memc = memcached_create(nil) else {
            throw CacheError(.internalError, "memcached_create failed: out of memory")
        }
        self.memc = memc
        count = servers.count
        for server in servers {
            let rc = memcached_server_add_with_weight(memc, server.host, in_port_t(server.port), UInt32(server.weight))
            guard rc == MEMCACHED_SUCCESS else {
                let message = String(cString: memcached_strerror(memc, rc))
                memcached_free(memc)
                throw CacheError(.configuration, "memcached server \(server) cannot be used: \(message)")
            }
        }
        // Weighted ketama: MD5 key hash, MD5 continuum, points in proportion to the weights.
        let rc = memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1)
        guard rc == MEMCACHED_SUCCESS else {
            let message = String(cString: memcached_strerror(memc, rc))
            memcached_free(memc)
            throw CacheError(.internalError, "libmemcached refused ketama hashing: \(message)")
        }
    }

    deinit {
        memcached_free(memc)
    }

    /// The index of the server for `key`.
    func server(for key: [UInt8]) -> Int {
        if count == 1 { return 0 }
        let index = key.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { memcached_generate_hash(UnsafePointer(memc), $0.baseAddress, $0.count) }
        }
        return Int(index) < count ? Int(index) : 0
    }
}
