/// Reads that do not suspend, for backends that can answer at once (``SynchronousCacheReading``).
extension CacheFront {
    /// What ``CacheFront/getSynchronously(_:as:)`` found.
    public enum SynchronousRead<Value> {
        /// The stored value and its remaining TTL (`nil`: never expires).
        case hit(Value, ttl: Duration?)
        /// Nothing is stored under the key (or the front is disabled).
        case miss
        /// The front cannot answer without suspending: the backend is not
        /// ``SynchronousCacheReading``, or the stored entry cannot be decoded and must be
        /// removed (which the asynchronous read does). Use ``getWithTTL(_:as:)`` instead.
        case unavailable
    }

    /// Whether the backend can answer ``getSynchronously(_:as:)`` (it is
    /// ``SynchronousCacheReading``, as ``InMemoryBackend`` is). When `false`, every synchronous
    /// read answers ``SynchronousRead/unavailable``.
    public var readsSynchronously: Bool {
        backend is any SynchronousCacheReading
    }

    /// The value stored under `key` and its remaining TTL, read without suspending when the
    /// backend can (``SynchronousCacheReading``); otherwise ``SynchronousRead/unavailable``,
    /// which is not a miss: the caller then reads with ``getWithTTL(_:as:)``.
    ///
    /// For code that would start a task only to read the cache: answer a hit on the spot, and
    /// go asynchronous for the rest.
    /// ```swift
    /// switch try users.getSynchronously("42", as: User.self) {
    /// case .hit(let user, _):
    ///     return eventLoop.makeSucceededFuture(user)                 // no task
    /// case .miss:
    ///     return eventLoop.makeFutureWithTask {
    ///         let user = try await db.user(42)
    ///         try await users.set(user, forKey: "42")
    ///         return user
    ///     }
    /// case .unavailable:                                             // e.g. a Redis backend
    ///     return eventLoop.makeFutureWithTask { try await users.getOrSet("42") { try await db.user(42) } }
    /// }
    /// ```
    ///
    /// Hits and misses are counted in `cache.requests` as ``get(_:as:)`` counts them; a
    /// disabled front (``isEnabled`` `false`) misses without counting, as it does there. An entry
    /// that cannot be decoded as `T` answers ``SynchronousRead/unavailable`` and is not counted:
    /// the asynchronous read that follows counts it as a miss and removes it, exactly once.
    /// - Throws: ``CacheError`` when the backend fails or `key` is empty.
    @inlinable
    public func getSynchronously<T: Decodable & Sendable>(
        _ key: String,
        as type: T.Type = T.self
    ) throws(CacheError) -> SynchronousRead<T> {
        let storageKey = try storageKey(key)
        guard isEnabled else { return .miss }
        guard let reader = backend as? any SynchronousCacheReading else { return .unavailable }
        guard let entry = try reader.getSynchronously(storageKey) else {
            recordMiss()
            return .miss
        }
        guard let value = try? decode(entry.value, as: T.self) else { return .unavailable }
        recordHit()
        return .hit(value, ttl: entry.ttl)
    }
}

extension CacheFront.SynchronousRead: Sendable where Value: Sendable {}
extension CacheFront.SynchronousRead: Equatable where Value: Equatable {}
