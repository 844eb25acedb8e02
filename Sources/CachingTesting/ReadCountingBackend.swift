import Caching

/// An ``InMemoryBackend`` that counts its reads, asynchronous and synchronous: how tests tell
/// which read path a caller took (``CacheFront/getSynchronously(_:as:)`` or ``CacheFront/get(_:as:)``).
///
/// ```swift
/// let backend = ReadCountingBackend()
/// let cache = CacheFront(backend: backend, prefix: "t")
/// _ = try cache.getSynchronously("k", as: String.self)
/// #expect(backend.synchronousReads.count == 1 && backend.asyncReads.count == 0)
/// ```
public struct ReadCountingBackend: SynchronousCacheReading {
    /// The backend that stores the entries.
    public let inner = InMemoryBackend()
    /// Calls of ``get(_:)``.
    public let asyncReads = CallCounter()
    /// Calls of ``getSynchronously(_:)``.
    public let synchronousReads = CallCounter()

    /// A new, empty backend with both counters at zero.
    public init() {}

    /// `"memory"`.
    public var name: String { "memory" }

    /// Counts an asynchronous read and reads from ``inner``.
    public func get(_ key: String) async throws -> CacheEntry? {
        asyncReads.increment()
        return try await inner.get(key)
    }

    /// Counts a synchronous read and reads from ``inner``.
    public func getSynchronously(_ key: String) throws(CacheError) -> CacheEntry? {
        synchronousReads.increment()
        return try inner.getSynchronously(key)
    }

    /// Stores in ``inner``.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try await inner.set(key, to: value, ttl: ttl)
    }

    /// Deletes from ``inner``.
    public func delete(_ key: String) async throws -> Bool { try await inner.delete(key) }

    /// Clears a prefix of ``inner``.
    public func clear(prefix: String) async throws { try await inner.clear(prefix: prefix) }

    /// Closes ``inner``.
    public func close() async throws { try await inner.close() }
}

/// A ``ReadCountingBackend`` without its synchronous read, as the Redis, Memcached and SQLite
/// backends have none: callers must take the asynchronous path.
///
/// ```swift
/// let backend = AsyncOnlyBackend()
/// let cache = CacheFront(backend: backend, prefix: "t")
/// #expect(try cache.getSynchronously("k", as: String.self) == .unavailable)
/// ```
public struct AsyncOnlyBackend: CacheBackend {
    /// The counting backend underneath; its ``ReadCountingBackend/synchronousReads`` stay at zero.
    public let inner = ReadCountingBackend()

    /// A new, empty backend.
    public init() {}

    /// Calls of ``get(_:)``.
    public var asyncReads: CallCounter { inner.asyncReads }

    /// `"async-only"`.
    public var name: String { "async-only" }

    /// Reads from ``inner``, counted.
    public func get(_ key: String) async throws -> CacheEntry? { try await inner.get(key) }

    /// Stores in ``inner``.
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try await inner.set(key, to: value, ttl: ttl)
    }

    /// Deletes from ``inner``.
    public func delete(_ key: String) async throws -> Bool { try await inner.delete(key) }

    /// Clears a prefix of ``inner``.
    public func clear(prefix: String) async throws { try await inner.clear(prefix: prefix) }

    /// Closes ``inner``.
    public func close() async throws { try await inner.close() }
}
