extension InMemoryBackend {
    /// A snapshot of an ``InMemoryBackend``'s size and counters, from ``InMemoryBackend/stats()``.
    ///
    /// ```swift
    /// let stats = backend.stats()
    /// print("\(stats.entries) entries, \(stats.bytes) bytes, hit ratio \(stats.hitRatio)")
    /// ```
    ///
    /// The counters start at zero when the backend is created and only grow (``close()`` keeps
    /// them). Only ``InMemoryBackend/get(_:)`` (single and batch) counts hits and misses.
    public struct Stats: Sendable, Hashable, CustomStringConvertible {
        /// Live entries (including expired ones not yet removed).
        public var entries = 0
        /// Bytes of keys (UTF-8) and values held.
        public var bytes = 0
        /// Reads that found a live entry.
        public var hits = 0
        /// Reads that found nothing, or an expired entry.
        public var misses = 0
        /// Entries removed to make room for others.
        public var evictions = 0
        /// Expired entries removed (on access, by eviction or by a sweep).
        public var expirations = 0
        /// Keys remembered in the S3-FIFO ghost queues.
        public var ghostEntries = 0

        /// Creates an empty snapshot.
        public init() {}

        /// `hits / (hits + misses)`, or 0 before the first read.
        public var hitRatio: Double {
            let reads = hits + misses
            return reads == 0 ? 0 : Double(hits) / Double(reads)
        }

        public var description: String {
            "entries: \(entries), bytes: \(bytes), hits: \(hits), misses: \(misses), evictions: \(evictions), expirations: \(expirations)"
        }
    }
}
