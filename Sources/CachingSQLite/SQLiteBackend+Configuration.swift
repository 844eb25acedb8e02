import Caching

extension SQLiteBackend {
    /// Where the store lives.
    public enum Location: Sendable, Hashable, CustomStringConvertible {
        /// A database file, created if missing. Its directory must exist. SQLite keeps two more files
        /// next to it while it is open (`-wal` and `-shm`), so the directory must be writable too.
        case file(String)
        /// A private in-memory database: fast, gone at ``SQLiteBackend/close()``, never shared
        /// between backends or processes. It uses one connection, so reads and writes share a thread.
        case memory

        /// `file '/path'` or `in-memory database`.
        public var description: String {
            switch self {
            case .file(let path): "file '\(path)'"
            case .memory: "in-memory database"
            }
        }
    }

    /// How hard SQLite works to make a committed write survive a power loss.
    public enum Synchronous: Sendable, Hashable {
        /// `PRAGMA synchronous=NORMAL`, the default: with WAL, a commit survives a crash of the process,
        /// and the last commits before a power loss may be lost (never corrupted). The right choice
        /// for a cache, and several times faster than `.full` for single writes.
        case normal
        /// `PRAGMA synchronous=FULL`: every commit is flushed to the disk (`fsync`) before it returns.
        case full
    }

    /// The settings of an ``SQLiteBackend``.
    ///
    /// ```swift
    /// var configuration = SQLiteBackend.Configuration()
    /// configuration.maximumBytes = 512 << 20          // 512 MiB of keys and values
    /// configuration.busyTimeout = .seconds(2)
    /// let backend = try await SQLiteBackend(path: "/var/cache/app/cache.sqlite", configuration: configuration)
    /// ```
    public struct Configuration: Sendable, Hashable {
        /// Durability of each commit; `.normal` unless the cache must survive power loss.
        public var synchronous: Synchronous
        /// How long a statement waits for another connection or process to release the database lock
        /// before it fails with ``CacheError/Code/timeout``. Default: 5 seconds.
        public var busyTimeout: Duration
        /// The most key and value bytes the store keeps (`nil`: no limit). Past it, the backend evicts
        /// expired entries first, then the least recently used ones, until the store is at
        /// ``evictionTarget`` of the limit. The file itself is larger (SQLite's page overhead, free
        /// pages, the WAL). Every process writing the store should use the same limits.
        public var maximumBytes: Int?
        /// The most entries the store keeps (`nil`: no limit); evicted like ``maximumBytes``.
        public var maximumEntries: Int?
        /// The fraction of a limit that eviction brings the store back to, in `0.5...1`. Default 0.9:
        /// evicting a tenth at a time keeps the scan that picks the victims rare.
        public var evictionTarget: Double
        /// How stale an entry's recorded access time may get before a read records a new one.
        ///
        /// With a size limit, reads feed the least-recently-used order; recording every read would turn
        /// each read into a write. Instead a read only records an access when the stored time is older
        /// than this, and the records are written in batches with the next write. Two entries read
        /// within this interval of each other may be evicted in either order. Default: 10 seconds.
        public var accessTimeResolution: Duration
        /// The connections that serve reads, each with its own thread, next to the one connection that
        /// writes. With WAL, readers never wait for the writer. `0` serves reads on the writer's
        /// connection. Ignored for ``Location/memory``. Default: 1.
        public var readerCount: Int
        /// How long a connection's thread keeps polling for more work after it runs out, before it
        /// sleeps. A thread that is still awake picks the next request up without a wake-up, which
        /// cuts the latency of back-to-back calls, at the price of CPU time while idle between them.
        /// A caller that finds the thread polling also polls for its answer, for at most 20 µs, before it
        /// suspends: a short operation then completes in a few microseconds, with no wake-up on either
        /// side. The price is CPU time: while one task calls back to back, its thread and the
        /// connection's thread are both busy (two cores), and after each call a connection thread
        /// polls for up to this long before it sleeps. Several concurrent callers keep the queue full
        /// and nobody polls. Default: 50 microseconds; `.zero` turns both off (so does a machine with
        /// one core), and every call then pays a thread wake-up on each side.
        public var idleSpin: Duration
        /// Whether a reader connection keeps its read transaction open from one lone get to the next
        /// while nothing is committed to the database; on by default.
        ///
        /// Each read transaction costs two `fcntl` system calls and a check of SQLite's page cache,
        /// about 1 µs of a 2.3 µs get. A held read checks instead, before each request, whether the
        /// WAL's shared-memory header changed (every commit of any process changes it) and starts a
        /// new transaction if it did, so a get never returns older data than a fresh transaction
        /// would. It ends before the thread goes idle, after 256 requests, and while the WAL is
        /// long. Turn it off only if something outside this backend runs `RESTART` or `TRUNCATE`
        /// checkpoints that must never wait for a busy reader (they wait at most until the reader's
        /// next request). See the `SQLiteBackend` article, "Held reads".
        public var holdsReads: Bool

        /// Creates a configuration; every parameter has the default described on its property.
        public init(
            synchronous: Synchronous = .normal,
            busyTimeout: Duration = .seconds(5),
            maximumBytes: Int? = nil,
            maximumEntries: Int? = nil,
            evictionTarget: Double = 0.9,
            accessTimeResolution: Duration = .seconds(10),
            readerCount: Int = 1,
            idleSpin: Duration = .microseconds(50),
            holdsReads: Bool = true
        ) {
            self.synchronous = synchronous
            self.busyTimeout = busyTimeout
            self.maximumBytes = maximumBytes
            self.maximumEntries = maximumEntries
            self.evictionTarget = evictionTarget
            self.accessTimeResolution = accessTimeResolution
            self.readerCount = readerCount
            self.idleSpin = idleSpin
            self.holdsReads = holdsReads
        }

        /// Whether a size limit is set, so sizes are counted and accesses recorded.
        var hasLimits: Bool { maximumBytes != nil || maximumEntries != nil }

        /// Refuses settings that cannot work.
        func validate() throws {
            func refuse(_ message: String) -> CacheError { CacheError(.configuration, "SQLiteBackend.Configuration: \(message)") }
            if busyTimeout < .zero { throw refuse("busyTimeout \(busyTimeout) is negative") }
            if let maximumBytes, maximumBytes <= 0 { throw refuse("maximumBytes \(maximumBytes) must be positive, or nil for no limit") }
            if let maximumEntries, maximumEntries <= 0 { throw refuse("maximumEntries \(maximumEntries) must be positive, or nil for no limit") }
            if !(evictionTarget >= 0.5 && evictionTarget <= 1) { throw refuse("evictionTarget \(evictionTarget) must be in 0.5...1") }
            if accessTimeResolution < .zero { throw refuse("accessTimeResolution \(accessTimeResolution) is negative") }
            if readerCount < 0 || readerCount > 64 { throw refuse("readerCount \(readerCount) must be in 0...64") }
            if idleSpin < .zero || idleSpin > .milliseconds(10) { throw refuse("idleSpin \(idleSpin) must be in 0...10 ms") }
        }
    }
}
