import Logging
import Metrics
import Synchronization

/// The typed face of a cache: keys with a prefix and namespaces, values through a ``Coder``,
/// and the policies around a ``CacheBackend`` (default TTL, fail-open, single-flight, metrics,
/// logging).
///
/// Make one per backend and setting at start-up and pass it where it is needed; several fronts
/// with different backends live side by side, and no global singleton is involved.
///
/// ```swift
/// let cache = CacheFront(backend: InMemoryBackend(), prefix: "shop", defaultTTL: .seconds(300))
/// let users = cache.namespace("users")
/// try await users.set(user, forKey: "42")                        // key "shop:users:42"
/// let hit: User? = try await users.get("42", as: User.self)
/// let fresh = try await users.getOrSet("42", ttl: .seconds(60)) { try await db.user(42) }
/// let lookup = users.cached(ttl: .seconds(60)) { (id: Int) async throws -> User in try await db.user(id) }
/// try await users.clear()                                         // this namespace only
/// ```
///
/// ## Keys
/// A value stored with key `k` in namespace `users` of a front with prefix `shop` lives under
/// `shop:users:k`. Prefix and namespace names have `%` and `:` escaped (`%25`, `%3A`), so a
/// namespace can never reach into another; keys are used as they are.
///
/// ## Values
/// `[UInt8]` and `String` values are stored as their bytes, without the coder, so they are
/// readable by other programs. Everything else goes through ``coder``. A value that the coder
/// cannot decode (written by another type or coder) is a miss: the front removes it.
///
/// ## Failures
/// ``get(_:as:)``, ``set(_:forKey:ttl:)`` and the other direct operations throw
/// ``CacheError``s. ``getOrSet(_:ttl:compute:)`` and ``cached(ttl:name:fileID:function:line:_:)``
/// are fail-open by default: a backend that fails is logged and counted, and the computation
/// runs, so an outage of the cache does not become an outage of the app. Pass `failOpen: false`
/// to rethrow instead.
public struct CacheFront: Sendable {
    /// The backend that stores the bytes.
    public let backend: any CacheBackend
    /// The first part of every key, or `""`.
    public let prefix: String
    /// The namespaces from the root front to this one (`["users", "v2"]`).
    public let namespaces: [String]
    /// The TTL used when an operation passes `nil`; `nil` here means entries never expire.
    public let defaultTTL: Duration?
    /// How values become bytes.
    public let coder: any Coder
    /// How calls of ``cached(ttl:name:fileID:function:line:_:)`` become keys.
    public let keyBuilder: any KeyBuilder
    /// Whether `getOrSet` and `cached` serve from the cache when the backend fails (`true`), or rethrow.
    public let failOpen: Bool
    /// The largest encoded value that ``set(_:forKey:ttl:)`` accepts, or `nil` for the backend's own limit.
    public let maxValueSize: Int?
    /// Where the front logs backend failures and decode errors.
    public let logger: Logger
    /// `prefix:namespace:…:` with escaping, the start of every key of this front.
    public let scope: String

    @usableFromInline
    let shared: Shared

    /// State shared by a front and every namespace made from it.
    @usableFromInline
    final class Shared: Sendable {
        let enabled: Atomic<Bool>
        let flights = SingleFlight()
        let metrics: CacheMetrics
        /// The coder as ``BinaryCoder``, when it is: ``BinaryCodable`` values then take its
        /// field-by-field overload.
        @usableFromInline
        let binaryCoder: BinaryCoder?

        init(enabled: Bool, backend: any CacheBackend, coder: any Coder, metricsFactory: (any MetricsFactory)?) {
            self.enabled = Atomic(enabled)
            self.metrics = CacheMetrics(backend: backend.name, factory: metricsFactory)
            self.binaryCoder = coder as? BinaryCoder
        }
    }

    /// Creates a front over `backend`.
    ///
    /// ```swift
    /// let cache = CacheFront(
    ///     backend: try RedisBackend(url: "redis://127.0.0.1:6379"),
    ///     prefix: "shop",
    ///     defaultTTL: .seconds(300),
    ///     coder: BinaryCoder(),
    ///     logger: Logger(label: "shop.cache")
    /// )
    /// ```
    ///
    /// - Parameters:
    ///   - backend: where bytes are stored. The front does not close it.
    ///   - prefix: the first part of every key, to share one backend between apps; `""` for none.
    ///   - defaultTTL: the TTL when an operation passes `nil`; `nil` keeps entries until they are
    ///     deleted or evicted. Must be positive: writes that would use a zero or negative default
    ///     throw ``CacheError/Code/invalidTTL``.
    ///   - coder: how values become bytes; ``JSONCoder`` by default, ``BinaryCoder`` for speed and size.
    ///   - keyBuilder: how calls of cached functions become keys; ``DigestKeyBuilder`` by default.
    ///   - isEnabled: `false` turns the cache off: reads miss, writes are skipped, computations always run.
    ///   - failOpen: whether `getOrSet` and `cached` run the computation when the backend fails,
    ///     rather than throw.
    ///   - maxValueSize: the largest encoded value to store, or `nil` for the backend's own limit.
    ///   - logger: where to log backend failures; silent by default.
    ///   - metricsFactory: where the counters `cache.requests` (dimensions `backend`, `result`)
    ///     and `cache.errors` (`backend`, `operation`) go; `nil` uses the factory bootstrapped
    ///     in `MetricsSystem`.
    public init(
        backend: any CacheBackend,
        prefix: String = "",
        defaultTTL: Duration? = nil,
        coder: any Coder = JSONCoder(),
        keyBuilder: any KeyBuilder = DigestKeyBuilder(),
        isEnabled: Bool = true,
        failOpen: Bool = true,
        maxValueSize: Int? = nil,
        logger: Logger = Logger(label: "swift-caching", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.backend = backend
        self.prefix = prefix
        self.namespaces = []
        self.defaultTTL = defaultTTL
        self.coder = coder
        self.keyBuilder = keyBuilder
        self.failOpen = failOpen
        self.maxValueSize = maxValueSize
        self.logger = logger
        self.scope = prefix.isEmpty ? "" : Self.escape(prefix) + ":"
        self.shared = Shared(enabled: isEnabled, backend: backend, coder: coder, metricsFactory: metricsFactory)
    }

    private init(parent: CacheFront, namespace: String) {
        self.backend = parent.backend
        self.prefix = parent.prefix
        self.namespaces = parent.namespaces + [namespace]
        self.defaultTTL = parent.defaultTTL
        self.coder = parent.coder
        self.keyBuilder = parent.keyBuilder
        self.failOpen = parent.failOpen
        self.maxValueSize = parent.maxValueSize
        self.logger = parent.logger
        self.scope = parent.scope + Self.escape(namespace) + ":"
        self.shared = parent.shared
    }

    /// A front whose keys live in the namespace `name` inside this front's scope.
    ///
    /// Namespaces nest (`cache.namespace("users").namespace("v2")`), share this front's backend,
    /// settings, on/off switch and single-flight table, and are cleared on their own with
    /// ``clear()``. An empty name returns this front unchanged.
    public func namespace(_ name: String) -> CacheFront {
        name.isEmpty ? self : CacheFront(parent: self, namespace: name)
    }

    /// Whether the cache is on. Setting it affects this front and every front made from the
    /// same root with ``namespace(_:)``.
    ///
    /// When off, reads miss, writes are skipped and `getOrSet` and `cached` always compute:
    /// a switch for debugging or for tests of the uncached path.
    public var isEnabled: Bool {
        get { shared.enabled.load(ordering: .relaxed) }
        nonmutating set { shared.enabled.store(newValue, ordering: .relaxed) }
    }

    /// The storage key for `key` in this front's scope (`"shop:users:42"`).
    /// - Throws: ``CacheError/Code/invalidKey`` when `key` is empty.
    public func storageKey(_ key: String) throws(CacheError) -> String {
        if key.isEmpty {
            throw CacheError(.invalidKey, "the cache key is empty; pass a non-empty key")
        }
        return scope + key
    }

    /// Escapes `%` and `:` so that a prefix or namespace name is one unambiguous key segment.
    static func escape(_ segment: String) -> String {
        guard segment.utf8.contains(where: { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "%") }) else {
            return segment
        }
        var out = ""
        for character in segment.unicodeScalars {
            switch character {
            case "%": out += "%25"
            case ":": out += "%3A"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// The TTL to store with: the one asked for, or the default.
    func effectiveTTL(_ ttl: Duration?) throws(CacheError) -> Duration? {
        let chosen = ttl ?? defaultTTL
        try CacheTTL.validate(chosen)
        return chosen
    }
}
