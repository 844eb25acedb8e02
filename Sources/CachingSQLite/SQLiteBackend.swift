import Caching
import Logging
import Synchronization

/// A persistent cache in one SQLite file: no server, survives restarts, and is shared safely by
/// several processes on one machine.
///
/// ```swift
/// let backend = try await SQLiteBackend(path: "/var/cache/shop/cache.sqlite")
/// try await backend.set("greeting", to: Array("hello".utf8), ttl: .seconds(300))
/// let entry = try await backend.get("greeting")          // CacheEntry(value: [104, ...], ttl: ~300 s)
/// try await backend.close()
/// ```
///
/// Run a ``Sweeper`` in your `ServiceGroup` to delete expired rows in the background; expired rows are
/// never returned either way.
///
/// ## How it works
/// - The file is in WAL mode, so readers never wait for the writer. One connection writes, on its own
///   thread; ``Configuration/readerCount`` more connections read, each on its own thread. Every
///   `sqlite3` call runs on these threads, never on Swift's cooperative pool, and each handle is used by
///   one thread only.
/// - Requests that queue up while a thread is busy run together: consecutive reads in one read
///   transaction and consecutive writes in one `BEGIN IMMEDIATE` transaction (one commit for all), and
///   their callers resume after the commit. Under concurrency this is faster per operation than a plain
///   loop of autocommitted statements.
/// - Keys are stored as their UTF-8 bytes in a `BLOB` primary key, so any string works and
///   ``clear(prefix:)`` is a range scan on the key, byte for byte: `*`, `?`, `%`, `_` mean nothing.
/// - Expiry is a wall-clock Unix time in milliseconds, so every process agrees on it.
/// - ``add(_:value:ttl:)``, ``increment(_:by:ttl:)`` and the batch operations are atomic across
///   processes: one statement, or one `BEGIN IMMEDIATE` transaction.
/// - Several processes may use one file at once; a writer waits up to ``Configuration/busyTimeout``
///   for another to commit instead of failing with `SQLITE_BUSY`.
///
/// See `Docs/SQLiteBackend.md` for the schema, the eviction policy and the performance figures.
public final class SQLiteBackend: CacheBackend {
    /// `"sqlite"`.
    public var name: String { "sqlite" }
    /// Where the store lives.
    public let location: Location
    /// The settings the backend was opened with.
    public let configuration: Configuration

    private let store: StoreContext
    private let writer: ConnectionThread
    private let readers: [ConnectionThread]
    private let isClosed = Atomic<Bool>(false)
    private let logger: Logger

    /// Batches larger than this run on their own, interruptible, instead of grouped with other requests.
    static let largeBatch = 64
    /// Keys examined per sweep transaction; bounds how long a sweep holds the write lock at a time.
    static let sweepChunk = 2000

    /// Opens (or creates) the store in the file at `path`.
    ///
    /// ```swift
    /// let backend = try await SQLiteBackend(path: "/var/cache/shop/cache.sqlite")
    /// ```
    /// - Parameters:
    ///   - path: the database file; created if missing. Its directory must exist and be writable.
    ///   - configuration: durability, busy timeout, size limits, reader connections.
    ///   - logger: where the backend logs what it does in the background; silent by default.
    /// - Throws: ``CacheError`` with `.storeCorrupt` when the file is not an SQLite database or is
    ///   damaged, `.configuration` when its directory is missing, it belongs to another application or
    ///   to a newer swift-caching, or a setting is invalid, `.readOnly` when it cannot be written, and
    ///   `.timeout` when another process holds it locked past the busy timeout.
    public convenience init(
        path: String,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "swift-caching.sqlite", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws {
        try await self.init(location: .file(path), configuration: configuration, logger: logger)
    }

    /// Opens the store at `location`: a file, or a private in-memory database.
    ///
    /// ```swift
    /// let scratch = try await SQLiteBackend(location: .memory)
    /// ```
    /// - Parameters:
    ///   - location: ``Location/file(_:)`` or ``Location/memory``.
    ///   - configuration: durability, busy timeout, size limits, reader connections.
    ///   - logger: where the backend logs what it does in the background; silent by default.
    /// - Throws: as ``init(path:configuration:logger:)``.
    public init(
        location: Location,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "swift-caching.sqlite", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws {
        try configuration.validate()
        let store = StoreContext(location: location, configuration: configuration)
        let writer = try await ConnectionThread.start(name: "sqlite-writer", isWriter: true, spin: configuration.idleSpin) {
            let connection = try SQLiteConnection.open(store: store, creating: true)
            try connection.prepareStore()
            return connection
        }
        var readers: [ConnectionThread] = []
        if case .file = location {
            do {
                for index in 0..<configuration.readerCount {
                    let reader = try await ConnectionThread.start(name: "sqlite-read-\(index)", isWriter: false, spin: configuration.idleSpin) {
                        let connection = try SQLiteConnection.open(store: store, creating: false)
                        try connection.applyConnectionSettings()
                        return connection
                    }
                    readers.append(reader)
                }
            } catch {
                for reader in readers { await reader.shutdown() }
                await writer.shutdown()
                throw error
            }
        }
        self.location = location
        self.configuration = configuration
        self.store = store
        self.writer = writer
        self.readers = readers
        self.logger = logger
        logger.debug("opened SQLite cache", metadata: ["location": "\(location)", "readers": "\(readers.count)"])
    }

    deinit {
        if !isClosed.load(ordering: .acquiring) {
            for reader in readers { reader.shutdownDetached() }
            writer.shutdownDetached()
        }
    }

    /// The executor of the connection thread that serves reads (the first reader; the writer for
    /// ``Location/memory`` or ``Configuration/readerCount`` 0), for tasks that make many calls in a row.
    ///
    /// By default every call hops: the request goes to the connection's thread and the answer comes
    /// back to the caller's thread. A task that prefers this executor runs its own code on that
    /// connection thread instead (between batches of other callers' requests), so its reads run inline
    /// on the thread that owns the connection, with no hop and no wake-up; its writes still go to the
    /// writer's thread (inline too when this is the writer). No SQLite call runs on Swift's cooperative
    /// pool either way.
    ///
    /// ```swift
    /// let backend = try await SQLiteBackend(path: "/var/cache/app/cache.sqlite")
    /// let cache = CacheFront(backend: backend, prefix: "app")
    /// let names = try await withTaskExecutorPreference(backend.taskExecutor) {
    ///     var found: [String] = []
    ///     for id in ids { if let name = try await cache.get("name:\(id)", as: String.self) { found.append(name) } }
    ///     return found
    /// }
    /// ```
    ///
    /// Use it for read-heavy stretches of short code: a write still hops to the writer's thread and
    /// back, and is slower than on the default path. Everything the task does in the scope runs on this
    /// one thread, one job at a time, between the requests of every other caller: CPU-heavy or blocking
    /// code in it delays every read of the backend, and tasks sharing it never run in parallel. After
    /// ``close()``, tasks that still prefer it run on the global concurrent executor.
    public var taskExecutor: any TaskExecutor { readers.first ?? writer }

    /// The thread for the next read: the reader the calling code already runs on (a task that prefers
    /// ``taskExecutor``), else the first idle reader, else the least busy, or the writer when there are
    /// no readers. Filling the first reader first keeps a lone caller on one thread, which is then
    /// still awake for its next call.
    private var reader: ConnectionThread {
        guard var best = readers.first else { return writer }
        for candidate in readers where candidate.isCurrentThread { return candidate }
        var bestLoad = best.activeCallerCount
        if bestLoad == 0 { return best }
        for candidate in readers.dropFirst() {
            let load = candidate.activeCallerCount
            if load == 0 { return candidate }
            if load < bestLoad {
                best = candidate
                bestLoad = load
            }
        }
        return best
    }

    private func checkSize(_ key: String, _ value: [UInt8]) throws {
        if let maximum = configuration.maximumBytes, key.utf8.count + value.count > maximum {
            throw CacheError.valueTooLarge(size: key.utf8.count + value.count, limit: maximum, key: key)
        }
    }

    // MARK: CacheBackend

    /// The live entry at `key` and its remaining TTL, or `nil`; read on a reader connection.
    public func get(_ key: String) async throws -> CacheEntry? {
        let thread = reader
        // The value is copied into memory allocated here, on the caller's thread, where it will be
        // freed: memory allocated on the connection's thread and freed on this one costs glibc a
        // locked trip back to the other thread's arena on every call. A task running on the
        // connection's thread (``taskExecutor``) allocates there anyway.
        if thread.isCurrentThread { return try thread.readInline { try $0.get(key) } }
        return try await thread.perform(.read, buffer: store.valueBuffer()) { try $0.get(key, into: &$1) }
    }

    /// Stores `value` at `key` (insert or replace); returns after the commit.
    /// - Throws: `.invalidTTL` for a zero or negative `ttl`; `.valueTooLarge` when the key and value
    ///   are larger than ``Configuration/maximumBytes``.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        try checkSize(key, value)
        try await writer.perform(.write) { try $0.set(key, value, ttl: ttl) }
    }

    /// Removes `key`; returns whether it held a live entry.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        try await writer.perform(.write) { try $0.delete(key) }
    }

    /// Removes every key that starts with `prefix` (byte for byte), with a range scan on the key index.
    /// Cancelling the calling task interrupts it; then nothing is removed.
    public func clear(prefix: String) async throws {
        _ = try await writer.perform(.exclusive) { connection in
            try connection.atomically(immediate: true) { try connection.clear(prefix: prefix) }
        }
    }

    /// Lets queued operations finish, then closes every connection and ends their threads. Operations
    /// after `close()` throw ``CacheError/Code/closed``. Closing twice is harmless.
    public func close() async throws {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for reader in readers { await reader.shutdown() }
        await writer.shutdown()
        logger.debug("closed SQLite cache", metadata: ["location": "\(location)"])
    }

    /// Whether `key` holds a live entry (reads no value).
    public func exists(_ key: String) async throws -> Bool {
        try await reader.perform(.read) { try $0.exists(key) }
    }

    /// The entries for `keys`, read in one transaction (one consistent snapshot).
    public func get(_ keys: [String]) async throws -> [CacheEntry?] {
        if keys.isEmpty { return [] }
        return try await reader.perform(keys.count > Self.largeBatch ? .exclusive : .read) { connection in
            try connection.reading {
                var entries: [CacheEntry?] = []
                entries.reserveCapacity(keys.count)
                for key in keys {
                    try connection.checkInterrupt()
                    entries.append(try connection.get(key))
                }
                return entries
            }
        }
    }

    /// Stores every item in one transaction: all of them or, on an error, none.
    public func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        if items.isEmpty { return }
        for item in items { try checkSize(item.key, item.value) }
        let items = items.map { SendableItem(key: $0.key, value: $0.value) }
        try await writer.perform(items.count > Self.largeBatch ? .exclusive : .write) { connection in
            try connection.atomically(immediate: true) {
                for item in items {
                    try connection.checkInterrupt()
                    try connection.set(item.key, item.value, ttl: ttl)
                }
            }
        }
    }

    /// Removes `keys` in one transaction; returns how many held live entries.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        if keys.isEmpty { return 0 }
        return try await writer.perform(keys.count > Self.largeBatch ? .exclusive : .write) { connection in
            try connection.atomically(immediate: true) {
                var removed = 0
                for key in keys {
                    try connection.checkInterrupt()
                    if try connection.delete(key) { removed += 1 }
                }
                return removed
            }
        }
    }

    /// Stores `value` only if `key` holds no live entry, in one statement (an upsert that only
    /// replaces an expired row), so it is atomic across connections and processes.
    public func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool {
        try CacheTTL.validate(ttl)
        try checkSize(key, value)
        return try await writer.perform(.write) { try $0.add(key, value, ttl: ttl) }
    }

    /// Adds `delta` to the counter at `key` inside a `BEGIN IMMEDIATE` transaction, so concurrent
    /// increments from any connection or process never lose an update.
    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        try CacheTTL.validate(ttl)
        return try await writer.perform(.write) { try $0.increment(key, by: delta, ttl: ttl) }
    }

    /// Gives the live entry at `key` a new TTL (`nil`: never expires) in one statement; returns whether
    /// there was one.
    @discardableResult
    public func touch(_ key: String, ttl: Duration?) async throws -> Bool {
        try CacheTTL.validate(ttl)
        return try await writer.perform(.write) { try $0.touch(key, ttl: ttl) }
    }

    // MARK: Maintenance

    /// Deletes every expired row now and returns how many went.
    ///
    /// The table is swept in chunks of keys, each in its own short transaction, so other readers,
    /// writers and processes keep going while a large store is swept. ``Sweeper`` calls this
    /// periodically. It also writes pending access times and evicts if the store is over a limit.
    /// Cancelling the calling task stops the sweep between or inside chunks.
    @discardableResult
    public func sweepExpired() async throws -> Int {
        var removed = 0
        var lower: [UInt8] = []
        let now = WallClock.nowMilliseconds()
        while true {
            let start = lower
            let chunk = try await writer.perform(.exclusive) { connection in
                try connection.atomically(immediate: true) {
                    try connection.flushAccesses()
                    try connection.checkInterrupt()
                    return try connection.sweepChunk(from: start, chunk: Self.sweepChunk, now: now)
                }
            }
            removed += chunk.removed
            guard let next = chunk.next else { break }
            lower = next
        }
        if removed > 0 {
            logger.debug("swept expired SQLite cache entries", metadata: ["removed": "\(removed)"])
        }
        return removed
    }

    /// The live entries and their key and value bytes.
    public struct Statistics: Sendable, Hashable {
        /// Entries that have not expired.
        public var entries: Int
        /// Their key and value bytes (the file is larger: page overhead, free pages, the WAL).
        public var bytes: Int

        /// Creates statistics.
        /// - Parameters:
        ///   - entries: live entries.
        ///   - bytes: their key and value bytes.
        public init(entries: Int, bytes: Int) {
            self.entries = entries
            self.bytes = bytes
        }
    }

    /// Counts the live entries and their bytes with a scan of the table (takes time on a large store).
    public func statistics() async throws -> Statistics {
        try await reader.perform(.exclusive) { connection in
            let counted = try connection.reading { try connection.liveStatistics() }
            return Statistics(entries: counted.entries, bytes: counted.bytes)
        }
    }

    // MARK: Testing hooks

    /// Runs one SQL statement on a connection and returns the first column of its first row; for
    /// tests of cancellation and of the thread model (for example a deliberately slow query).
    /// - Parameters:
    ///   - sql: the statement.
    ///   - onWriter: run it on the writer's connection rather than a reader's.
    func runStatement(_ sql: String, onWriter: Bool = false) async throws -> Int64? {
        try await withConnection(onWriter: onWriter) { connection in
            try connection.scalar(sql, "running a statement on")
        }
    }

    /// The first reader's thread (the writer's without readers); for tests of the hot paths.
    var readThreadForTesting: ConnectionThread { readers.first ?? writer }

    /// What the connections share (the value-size hint among it); for tests.
    var storeForTesting: StoreContext { store }

    /// Runs `body` with a connection on its thread, alone and interruptible; for tests.
    func withConnection<T: Sendable>(onWriter: Bool, _ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await (onWriter ? writer : reader).perform(.exclusive, body)
    }
}

/// A batch item in a form that crosses to the connection's thread.
private struct SendableItem: Sendable {
    var key: String
    var value: [UInt8]
}
