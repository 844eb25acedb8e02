extension InMemoryBackend: SynchronousCacheReading {
    /// The bytes stored under `key` and their remaining TTL (to the millisecond), or `nil`:
    /// ``get(_:)`` without the `async`, for callers that want to avoid a task (see
    /// ``CacheFront/getSynchronously(_:as:)``).
    ///
    /// ```swift
    /// if let entry = try backend.getSynchronously("shop:greeting") { print(entry.value.count) }
    /// ```
    ///
    /// Like ``get(_:)``, a hit marks the entry as read for eviction and an expired entry is
    /// removed. It takes the lock of one shard for a table lookup, never longer.
    /// - Throws: ``CacheError/Code/invalidKey`` for an empty key; ``CacheError/Code/closed``
    ///   after ``close()``.
    public func getSynchronously(_ key: String) throws(CacheError) -> CacheEntry? {
        try getNow(key)
    }
}
