import Caching

/// A backend whose every operation fails, as a backend behind a network outage would: the
/// fault that a cache's fail-open paths are about.
///
/// Use it to test that your app keeps serving when its cache is down:
///
/// ```swift
/// let cache = CacheFront(backend: FailingBackend())
/// let user = try await cache.getOrSet("42") { try await db.user(42) }   // still computed and returned
/// ```
///
/// Every operation but ``close()`` throws ``CacheError`` with the code given at init
/// (``CacheError/Code/connectionFailed`` by default).
public struct FailingBackend: CacheBackend {
    /// `"failing"`, for metrics and logs.
    public let name = "failing"
    /// The code of every error it throws.
    public let code: CacheError.Code

    /// Creates a backend that always fails.
    /// - Parameter code: the code of the errors it throws.
    public init(code: CacheError.Code = .connectionFailed) {
        self.code = code
    }

    private func failure() -> CacheError {
        CacheError(code, "FailingBackend refuses every operation (a test double for a cache outage)")
    }

    public func get(_ key: String) async throws -> CacheEntry? { throw failure() }
    public func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws { throw failure() }
    public func delete(_ key: String) async throws -> Bool { throw failure() }
    public func clear(prefix: String) async throws { throw failure() }
    public func close() async throws {}
}
