/// The byte-level storage contract: bytes in, bytes out, with a time to live.
///
/// A backend knows nothing of types, coders or namespaces: ``CacheFront`` builds the keys and
/// encodes the values. A third-party backend implements the five essentials (``get(_:)``,
/// ``set(_:to:ttl:)``, ``delete(_:)``, ``clear(prefix:)`` and ``close()``); the batch and atomic
/// operations have default implementations in an extension, which a backend with native
/// commands overrides. Run ``BackendConformance`` from the `CachingTesting` module against
/// it to check the contract.
///
/// ```swift
/// let backend = InMemoryBackend()
/// try await backend.set("greeting", to: Array("hello".utf8), ttl: .seconds(30))
/// let entry = try await backend.get("greeting")   // CacheEntry(value: [104, ...], ttl: ~30 s)
/// ```
///
/// Rules every backend keeps:
/// - A `ttl` of `nil` means "never expires"; a zero or negative one throws ``CacheError/Code/invalidTTL``
///   (use ``CacheTTL/validate(_:)``).
/// - Any non-empty key the front builds is accepted, whatever bytes it holds; a backend whose
///   store restricts keys maps them to a safe form itself.
/// - Expired entries are never returned.
/// - Errors are ``CacheError``s.
public protocol CacheBackend: Sendable {
    /// A short name for logs and metrics, such as `"memory"` or `"redis"`.
    var name: String { get }

    /// The stored bytes and their remaining TTL, or `nil` on a miss.
    func get(_ key: String) async throws -> CacheEntry?

    /// Stores `value` under `key`, replacing what was there.
    /// - Parameter ttl: how long to keep it; `nil` keeps it until it is deleted or evicted.
    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws

    /// Removes `key`; returns whether it was there.
    @discardableResult
    func delete(_ key: String) async throws -> Bool

    /// Removes every key that starts with `prefix`, and nothing else.
    ///
    /// `prefix` is matched byte for byte: characters such as `*`, `?`, `[` or `%` have no special meaning.
    func clear(prefix: String) async throws

    /// Releases connections, files and threads. Operations after `close()` throw ``CacheError/Code/closed``.
    func close() async throws

    // MARK: Operations with default implementations

    /// Whether `key` holds a live entry.
    func exists(_ key: String) async throws -> Bool

    /// The entries for `keys`, in the same order, `nil` for each miss.
    ///
    /// A backend may leave ``CacheEntry/ttl`` `nil` in batch results when reading every
    /// remaining TTL would cost another round trip (the Redis backend does, unless configured
    /// otherwise); the single-key ``get(_:)`` always reports it.
    func get(_ keys: [String]) async throws -> [CacheEntry?]

    /// The entries for `prefix + key` of each of `keys`, in the same order, `nil` for each miss:
    /// batch `get(_:)` of the prefixed keys.
    ///
    /// ``CacheFront`` reads batches through it with its scope as the prefix (`"shop:users:"`),
    /// so a backend that writes keys onto the wire can write the prefix and each key straight
    /// into its request instead of building a prefixed string per key (the Redis backend does).
    /// The default implementation builds the prefixed keys and calls batch `get(_:)`.
    ///
    /// ```swift
    /// let entries = try await backend.get(["42", "43"], prefix: "shop:users:")
    /// ```
    func get(_ keys: [String], prefix: String) async throws -> [CacheEntry?]

    /// Stores every item with the same `ttl`.
    func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws

    /// Removes `keys`; returns how many were there.
    @discardableResult
    func delete(_ keys: [String]) async throws -> Int

    /// Stores `value` only if `key` holds no live entry; returns whether it stored it.
    func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool

    /// Adds `delta` to the decimal integer stored at `key` and returns the new value.
    ///
    /// A missing key starts at 0 and gets `ttl`; an existing key keeps its expiry. Counters are
    /// stored as ASCII decimal digits, the form Redis and memcached use, so ``get(_:)`` reads
    /// them back as text.
    /// - Throws: ``CacheError/Code/notANumber`` when the stored value is not a 64-bit decimal
    ///   integer or the sum overflows.
    func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64

    /// Gives `key` a new TTL (`nil`: never expires); returns whether the key was there.
    @discardableResult
    func touch(_ key: String, ttl: Duration?) async throws -> Bool
}
