import Synchronization

/// A bounded cache in the process's memory, with S3-FIFO eviction and millisecond TTLs.
///
/// ```swift
/// let backend = InMemoryBackend()                                   // 100,000 entries, 64 MiB
/// let cache = CacheFront(backend: backend, prefix: "shop", defaultTTL: .seconds(300))
///
/// // Remove expired entries in the background as part of the app's service group:
/// let group = ServiceGroup(services: [server, try backend.sweeper(interval: .seconds(5))], logger: logger)
/// ```
///
/// ## Limits
/// The cache holds at most `maxEntries` entries and `maxBytes` bytes of keys and values (the
/// UTF-8 bytes of each key plus its value's bytes; the bookkeeping, about 100 bytes an entry,
/// is not counted). When a write would go over either limit, entries are evicted first. A value
/// larger than `maxValueSize` is refused with ``CacheError/Code/valueTooLarge`` and changes
/// nothing.
///
/// ## Eviction: S3-FIFO
/// Eviction follows S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
/// SOSP 2023). New keys enter a small FIFO queue (10 % of the space). When it is full, its
/// oldest entry moves to the main FIFO queue if it was read while in the small one, and is
/// evicted otherwise, its key's hash going to a ghost queue; a key found in the ghost queue
/// when it is set again goes straight to the main queue. The main queue evicts its oldest entry
/// unless it was read since it was last looked at, in which case it goes around again with a
/// 2-bit read counter decremented.
///
/// Compared with LRU, one-hit wonders and scans pass through the small queue without pushing
/// out the hot set, so the hit ratio is higher on skewed (Zipf-like) workloads; and a hit only
/// increments a counter instead of moving the entry to the front of a list. Compared with
/// W-TinyLFU (Caffeine), S3-FIFO needs no count-min sketch, no window and no periodic aging,
/// is a little simpler to reason about, and matches it on most web-cache traces; TinyLFU can do
/// better on workloads whose popular set changes slowly. See `Docs/InMemoryBackend.md`.
///
/// ## Keys
/// Any non-empty `String`, compared byte for byte as UTF-8, as Redis and memcached compare
/// them: `"caf\u{E9}"` and `"cafe\u{301}"` are two keys here too, although Swift's `==` calls
/// them equal. ``clear(prefix:)`` matches bytes as well.
///
/// ## Concurrency
/// Keys are spread over `shardCount` shards, each with its own `Mutex`, table and queues;
/// the limits are split evenly between them. Every operation, including ``add(_:value:ttl:)``,
/// ``increment(_:by:ttl:)``, ``touch(_:ttl:)`` and the batch forms, is atomic per key. A hit
/// allocates nothing: the returned `[UInt8]` shares the stored buffer (copy-on-write).
///
/// ## Expiry
/// TTLs are kept to the millisecond on a ``CacheClock`` (the system's monotonic clock unless
/// one is given; ``ManualClock`` in tests). An expired entry is never returned: it is removed
/// when it is next touched, when eviction reaches it, or by ``sweepExpired()``, which the
/// ``Sweeper`` service calls periodically.
public final class InMemoryBackend: CacheBackend, @unchecked Sendable {
    // @unchecked Sendable: the only stored property that is not Sendable is `shards`, a pointer
    // to the shards' mutexes. It is written once in `init` and freed in `deinit`; everything it
    // points to is reached only through `Mutex.withLock`.

    /// `"memory"`.
    public var name: String { "memory" }

    /// The most entries the cache holds.
    public let maxEntries: Int
    /// The most bytes of keys and values the cache holds.
    public let maxBytes: Int
    /// The largest value accepted, in bytes.
    public let maxValueSize: Int
    /// The number of shards in use (a power of two, at most the `shardCount` asked for).
    public let shardCount: Int

    /// The clock that TTLs are measured on.
    public let clock: any CacheClock

    /// `shardCount` mutexes, allocated once: indexing them costs no reference counting.
    private let shards: UnsafeMutablePointer<Mutex<ShardState>>
    /// Set for good once an entry with a TTL is written: until then reads skip the clock.
    private let hasExpiringEntries = Atomic<Bool>(false)
    /// `64 - log2(shardCount)`: a shard is picked by the top bits of the key's hash, and a
    /// bucket within it by the low bits.
    private let shardShift: UInt
    private let shardMask: Int
    /// The smallest shard's byte budget: a key and value larger than this cannot be stored.
    private let maxEntrySize: Int

    /// The default `maxEntries`: 100,000.
    public static let defaultMaxEntries = 100_000
    /// The default `maxBytes`: 64 MiB.
    public static let defaultMaxBytes = 64 << 20
    /// The default `shardCount`: 16.
    public static let defaultShardCount = 16
    /// The fewest entries a shard is given; small caches use fewer shards to keep this.
    static let minEntriesPerShard = 256
    /// How many slots a sweep or a prefix clear looks at per lock hold.
    static let slotsPerLockHold = 512

    /// Creates a cache with the default limits: 100,000 entries, 64 MiB, values up to 4 MiB,
    /// 16 shards, on the system clock.
    ///
    /// ```swift
    /// let backend = InMemoryBackend()
    /// ```
    public convenience init() {
        // The defaults pass every check of the throwing initializer: 6,250 entries and 4 MiB a shard.
        self.init(
            validated: Self.defaultMaxEntries, Self.defaultMaxBytes, Self.defaultMaxBytes / 16, Self.defaultShardCount,
            SystemCacheClock()
        )
    }

    /// Creates a cache with the given limits.
    ///
    /// ```swift
    /// let clock = ManualClock()
    /// let backend = try InMemoryBackend(maxEntries: 10_000, maxBytes: 8 << 20, clock: clock)
    /// ```
    ///
    /// - Parameters:
    ///   - maxEntries: the most entries to hold; at least 1.
    ///   - maxBytes: the most bytes of keys (UTF-8) and values to hold; at least 1.
    ///   - maxValueSize: the largest value to accept, at most `maxBytes`. `nil` picks
    ///     `maxBytes / shardCount`, but at least 1 MiB (or `maxBytes` if smaller): 4 MiB with
    ///     the defaults.
    ///   - shardCount: how many independently locked shards to use; a power of two from 1 to
    ///     4096. Fewer are used when a shard would get fewer than 256 entries or fewer bytes
    ///     than `maxValueSize`, because the limits are split evenly between shards.
    ///   - clock: the time source for TTLs; pass a ``ManualClock`` in tests.
    /// - Throws: ``CacheError/Code/configuration`` when a limit is out of range.
    public convenience init(
        maxEntries: Int = InMemoryBackend.defaultMaxEntries,
        maxBytes: Int = InMemoryBackend.defaultMaxBytes,
        maxValueSize: Int? = nil,
        shardCount: Int = InMemoryBackend.defaultShardCount,
        clock: any CacheClock = SystemCacheClock()
    ) throws(CacheError) {
        guard maxEntries >= 1 else {
            throw CacheError(.configuration, "maxEntries is \(maxEntries); it must be at least 1")
        }
        guard maxBytes >= 1 else {
            throw CacheError(.configuration, "maxBytes is \(maxBytes); it must be at least 1")
        }
        if let maxValueSize, maxValueSize < 0 || maxValueSize > maxBytes {
            throw CacheError(
                .configuration,
                "maxValueSize is \(maxValueSize); it must be between 0 and maxBytes (\(maxBytes))"
            )
        }
        guard shardCount >= 1, shardCount <= 4096, shardCount & (shardCount - 1) == 0 else {
            throw CacheError(
                .configuration,
                "shardCount is \(shardCount); it must be a power of two between 1 and 4096, such as 16"
            )
        }
        let valueLimit = maxValueSize ?? min(maxBytes, max(1 << 20, maxBytes / shardCount))
        var shards = shardCount
        while shards > 1 && (maxEntries / shards < Self.minEntriesPerShard || maxBytes / shards < max(valueLimit, 1)) {
            shards /= 2
        }
        guard maxEntries / shards < Int(Int32.max) else {
            throw CacheError(
                .configuration,
                "maxEntries is \(maxEntries); at most \(Int(Int32.max) - 1) entries per shard are supported, use more shards"
            )
        }
        self.init(validated: maxEntries, maxBytes, valueLimit, shards, clock)
    }

    private init(validated maxEntries: Int, _ maxBytes: Int, _ maxValueSize: Int, _ shardCount: Int, _ clock: any CacheClock) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.maxValueSize = maxValueSize
        self.shardCount = shardCount
        self.shardMask = shardCount - 1
        self.shardShift = UInt(64 - shardCount.trailingZeroBitCount)
        self.clock = clock
        let shards = UnsafeMutablePointer<Mutex<ShardState>>.allocate(capacity: shardCount)
        for i in 0..<shardCount {
            let entries = maxEntries / shardCount + (i < maxEntries % shardCount ? 1 : 0)
            let bytes = maxBytes / shardCount + (i < maxBytes % shardCount ? 1 : 0)
            (shards + i).initialize(to: Mutex(ShardState(limits: ShardLimits(maxEntries: entries, maxBytes: bytes))))
        }
        self.shards = shards
        self.maxEntrySize = maxBytes / shardCount
    }

    deinit {
        shards.deinitialize(count: shardCount)
        shards.deallocate()
    }

    // MARK: Helpers

    /// The shard that holds keys with `hash`.
    @inline(__always)
    private func shard(_ hash: Int) -> UnsafeMutablePointer<Mutex<ShardState>> {
        // `&>>` takes the shift modulo 64, so one shard (shift 64) reads the whole hash and
        // the mask of 0 picks shard 0.
        shards + (Int(truncatingIfNeeded: UInt(bitPattern: hash) &>> shardShift) & shardMask)
    }

    /// The hash of a valid key: Swift's seeded `hashValue` (see `KeyBytes`).
    ///
    /// The seed differs between processes: fine for placing keys in this process's tables, and
    /// it keeps them safe from keys crafted to collide. It is never used to build a stored or
    /// shared key.
    @inline(__always)
    private func hash(_ key: String) throws(CacheError) -> Int {
        guard !key.isEmpty else {
            throw CacheError(.invalidKey, "the key is empty; use a key of at least one byte")
        }
        return key.hashValue
    }

    /// Checks that `value` can be stored under `key`.
    @inline(__always)
    private func checkSize(_ key: String, valueSize: Int) throws(CacheError) {
        if valueSize > maxValueSize {
            throw CacheError.valueTooLarge(size: valueSize, limit: maxValueSize, key: key)
        }
        let entrySize = key.utf8.count + valueSize
        if entrySize > maxEntrySize {
            throw CacheError(
                .valueTooLarge,
                "key and value of \(entrySize) bytes for key \(String(reflecting: String(key.prefix(80)))) are over the limit of \(maxEntrySize) bytes per entry (maxBytes split over \(shardCount) shards); use a shorter key or raise maxBytes"
            )
        }
    }

    /// The expiry on `clock` of an entry written now with `ttl`.
    @inline(__always)
    private func expiry(for ttl: Duration?) throws(CacheError) -> Int64 {
        guard let ttl else { return .max }
        guard ttl > .zero else { throw CacheError.invalidTTL(ttl) }
        if !hasExpiringEntries.load(ordering: .relaxed) { hasExpiringEntries.store(true, ordering: .relaxed) }
        let (sum, overflow) = clock.now().addingReportingOverflow(CacheTTL.milliseconds(ttl))
        return overflow || sum == .max ? .max - 1 : sum
    }

    @inline(__always)
    private func entry(_ value: [UInt8], remaining: Int64) -> CacheEntry {
        CacheEntry(value: value, ttl: remaining < 0 ? nil : .milliseconds(remaining))
    }

    private var closedError: CacheError { .closed(name) }

    // MARK: CacheBackend

    /// The bytes stored under `key` and their remaining TTL (to the millisecond), or `nil`.
    ///
    /// A hit marks the entry as read for eviction; an expired entry is removed.
    /// - Throws: ``CacheError/Code/invalidKey`` for an empty key; ``CacheError/Code/closed``
    ///   after ``close()``.
    public func get(_ key: String) async throws -> CacheEntry? {
        try getNow(key)
    }

    /// The synchronous body of ``get(_:)``.
    @inline(__always)
    func getNow(_ key: String) throws(CacheError) -> CacheEntry? {
        let hash = try hash(key)
        // The clock is read before the lookup: reading it waits for every load before it to
        // finish (the vDSO orders its `rdtsc`), so after the lookup it would wait for the cache
        // misses on the entry instead of running while they are outstanding. A backend that
        // never stored a TTL skips it (and an entry with one written meanwhile reads it late).
        let now: Int64? = hasExpiringEntries.load(ordering: .relaxed) ? clock.now() : nil
        let clock = self.clock
        let found = try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            return state.get(key, hash: hash, now: now, clock: clock)
        }
        guard let found else { return nil }
        return entry(found.value, remaining: found.remaining)
    }

    /// Stores `value` under `key`, evicting other entries if the cache is full.
    /// - Throws: ``CacheError/Code/invalidTTL`` for a zero or negative TTL;
    ///   ``CacheError/Code/valueTooLarge`` when the value is over ``maxValueSize``;
    ///   ``CacheError/Code/invalidKey`` for an empty key; ``CacheError/Code/closed``.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        let hash = try hash(key)
        try checkSize(key, valueSize: value.count)
        let expiresAt = try expiry(for: ttl)
        let clock = self.clock
        try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            state.set(key, hash: hash, value: value, expiresAt: expiresAt, clock: clock)
        }
    }

    /// Removes `key`; returns whether it held a live entry.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        let hash = try hash(key)
        let clock = self.clock
        return try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            return state.delete(key, hash: hash, clock: clock)
        }
    }

    /// Removes every entry whose key starts with the UTF-8 bytes of `prefix`.
    ///
    /// No character is special: `*`, `?`, `[` and `:` match only themselves. An empty prefix
    /// removes everything. Each shard is walked a few hundred slots per lock hold, so other
    /// operations keep running during a large clear.
    public func clear(prefix: String) async throws {
        try clearNow(prefix: prefix)
    }

    /// The synchronous body of ``clear(prefix:)``; returns how many entries it removed.
    @discardableResult
    func clearNow(prefix: String) throws(CacheError) -> Int {
        var removed = 0
        if prefix.isEmpty {
            for i in 0..<shardCount {
                removed += try shards[i].withLock { (state) throws(CacheError) in
                    guard !state.closed else { throw closedError }
                    let count = state.count
                    state.removeAll()
                    return count
                }
            }
            return removed
        }
        let bytes = Array(prefix.utf8)
        for i in 0..<shardCount {
            var start = 0
            while true {
                let (count, next, done) = try shards[i].withLock { (state) throws(CacheError) in
                    guard !state.closed else { throw closedError }
                    let (count, next) = state.removeKeys(withPrefix: bytes, from: start, limit: Self.slotsPerLockHold)
                    return (count, next, next >= state.slotCount)
                }
                removed += count
                if done { break }
                start = next
            }
        }
        return removed
    }

    /// Drops every entry. Later operations throw ``CacheError/Code/closed``; closing twice is
    /// harmless.
    public func close() async throws {
        for i in 0..<shardCount {
            shards[i].withLock { state in
                state.closed = true
                state.removeAll()
            }
        }
    }

    /// Whether the backend has been closed.
    public var isClosed: Bool {
        shards[0].withLock { $0.closed }
    }

    // MARK: Native batch and atomic operations

    /// Whether `key` holds a live entry. Not counted as a read for eviction or statistics.
    public func exists(_ key: String) async throws -> Bool {
        let hash = try hash(key)
        let clock = self.clock
        return try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            return state.liveSlot(key, hash: hash, clock: clock) != nil
        }
    }

    /// The entries for `keys`, in order, `nil` for each miss.
    public func get(_ keys: [String]) async throws -> [CacheEntry?] {
        var result: [CacheEntry?] = []
        result.reserveCapacity(keys.count)
        for key in keys {
            result.append(try getNow(key))
        }
        return result
    }

    /// Stores every item with the same `ttl`.
    ///
    /// Every key, value and the TTL are checked before anything is stored: if one is refused,
    /// nothing is written.
    public func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws {
        var hashes: [Int] = []
        hashes.reserveCapacity(items.count)
        for item in items {
            hashes.append(try hash(item.key))
            try checkSize(item.key, valueSize: item.value.count)
        }
        let expiresAt = try expiry(for: ttl)
        let clock = self.clock
        for (hash, item) in zip(hashes, items) {
            try shard(hash).pointee.withLock { (state) throws(CacheError) in
                guard !state.closed else { throw closedError }
                state.set(item.key, hash: hash, value: item.value, expiresAt: expiresAt, clock: clock)
            }
        }
    }

    /// Removes `keys`; returns how many held a live entry.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        var hashes: [Int] = []
        hashes.reserveCapacity(keys.count)
        for key in keys { hashes.append(try hash(key)) }
        let clock = self.clock
        var count = 0
        for (hash, key) in zip(hashes, keys) {
            let deleted = try shard(hash).pointee.withLock { (state) throws(CacheError) in
                guard !state.closed else { throw closedError }
                return state.delete(key, hash: hash, clock: clock)
            }
            if deleted { count += 1 }
        }
        return count
    }

    /// Stores `value` only if `key` holds no live entry; returns whether it stored it.
    /// - Throws: as ``set(_:to:ttl:)``.
    public func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool {
        let hash = try hash(key)
        try checkSize(key, valueSize: value.count)
        let expiresAt = try expiry(for: ttl)
        let clock = self.clock
        return try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            if state.liveSlot(key, hash: hash, clock: clock) != nil { return false }
            state.set(key, hash: hash, value: value, expiresAt: expiresAt, clock: clock)
            return true
        }
    }

    /// Adds `delta` to the decimal counter at `key` and returns the new value, atomically.
    ///
    /// A missing (or expired) key starts at 0 and gets `ttl`; an existing key keeps its expiry.
    /// - Throws: ``CacheError/Code/notANumber`` when the stored value is not a decimal `Int64`
    ///   or the sum overflows (the value is left as it was); ``CacheError/Code/invalidTTL``.
    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        let hash = try hash(key)
        try checkSize(key, valueSize: 20)
        let expiresAt = try expiry(for: ttl)
        let clock = self.clock
        return try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            if let slot = state.liveSlot(key, hash: hash, clock: clock) {
                let next = try CacheCounter.add(delta, to: state.value(at: slot), key: key)
                let keep = state.expiresAt(slot: slot)
                state.set(key, hash: hash, value: Array(String(next).utf8), expiresAt: keep, clock: clock)
                return next
            }
            state.set(key, hash: hash, value: Array(String(delta).utf8), expiresAt: expiresAt, clock: clock)
            return delta
        }
    }

    /// Gives `key` a new TTL (`nil`: never expires); returns whether it held a live entry.
    @discardableResult
    public func touch(_ key: String, ttl: Duration?) async throws -> Bool {
        let hash = try hash(key)
        let expiresAt = try expiry(for: ttl)
        let clock = self.clock
        return try shard(hash).pointee.withLock { (state) throws(CacheError) in
            guard !state.closed else { throw closedError }
            guard let slot = state.liveSlot(key, hash: hash, clock: clock) else { return false }
            state.setExpiry(slot: slot, to: expiresAt)
            return true
        }
    }

    // MARK: Expiry sweep

    /// Removes every expired entry now; returns how many it removed.
    ///
    /// Each shard is walked a few hundred slots per lock hold, so a sweep never stalls other
    /// operations for long. ``Sweeper`` calls this periodically; tests and apps without a
    /// service group can call it directly. Returns 0 once the backend is closed.
    @discardableResult
    public func sweepExpired() -> Int {
        var removed = 0
        let clock = self.clock
        for i in 0..<shardCount {
            var start = 0
            while true {
                let (count, next, done) = shards[i].withLock { state in
                    if state.closed { return (0, 0, true) }
                    let (count, next) = state.sweep(from: start, limit: Self.slotsPerLockHold, now: clock.now())
                    return (count, next, next >= state.slotCount)
                }
                removed += count
                if done { break }
                start = next
            }
        }
        return removed
    }

    // MARK: Statistics

    /// A snapshot of the cache's size and counters, summed over the shards.
    ///
    /// Cheap (one short lock hold per shard), so it can feed a metrics gauge.
    public func stats() -> Stats {
        var stats = Stats()
        for i in 0..<shardCount {
            shards[i].withLock { state in
                stats.entries += state.count
                stats.bytes += state.bytes
                stats.hits += state.hits
                stats.misses += state.misses
                stats.evictions += state.evictions
                stats.expirations += state.expirations
                stats.ghostEntries += state.ghostCount
            }
        }
        return stats
    }
}
