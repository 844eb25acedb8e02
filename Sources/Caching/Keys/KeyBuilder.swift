/// Turns a call of a cached function into the key it is stored under.
///
/// Pick one when you make a ``CacheFront``. The default, ``DigestKeyBuilder``, gives short
/// fixed-length keys; ``ReadableKeyBuilder`` gives keys a person can type into `redis-cli`;
/// ``ClosureKeyBuilder`` takes a closure for anything else.
///
/// ```swift
/// let cache = CacheFront(backend: InMemoryBackend(), prefix: "shop", keyBuilder: .readable)
/// let lookup = cache.namespace("users").cached(name: "user") { (id: Int) in try await db.user(id) }
/// _ = try await lookup(42)      // stored under "shop:users:user:42"
/// ```
///
/// Rules for a builder:
/// - Start every key with ``CacheCall/scope``, or ``CacheFront/clear()`` will not find it.
/// - Be deterministic: the same call gives the same key in every process, on every machine.
///   Never use `hashValue` or `Hasher`, which are seeded per process.
public protocol KeyBuilder: Sendable {
    /// The storage key for `call`.
    func key(for call: CacheCall) -> String
}

/// The default key builder: `scope` + a SHA-256 digest of the function and its arguments.
///
/// Keys look like `shop:users:3f1c…` (32 hexadecimal digits: the first 128 bits of the
/// digest). They have a fixed length whatever the arguments, which suits memcached's 250-byte
/// limit, and different arguments practically never collide.
public struct DigestKeyBuilder: KeyBuilder {
    /// Creates the builder.
    public init() {}

    public func key(for call: CacheCall) -> String {
        var digest = SHA256()
        // Length-prefix every part, so ("ab", "c") and ("a", "bc") never give the same input.
        func feed(_ part: String) {
            digest.update(String(part.utf8.count))
            digest.update(":")
            digest.update(part)
        }
        feed(call.function)
        for argument in call.arguments { feed(argument.canonical) }
        return call.scope + SHA256.hexString(Array(digest.finalize().prefix(16)))
    }
}

/// Keys a person can read and type: `scope` + function + each argument, joined by `:`.
///
/// `cached(name: "user")` called with `42` is stored under `shop:users:user:42`, so you can look
/// at it with `redis-cli GET shop:users:user:42`. Arguments that are strings and numbers appear
/// as they are, so the string `"42"` and the integer `42` share a key; other values appear as
/// JSON. Long or unusual keys are fine for the in-memory, SQLite and Redis backends; the
/// memcached backend maps keys it cannot store to a digest form itself.
public struct ReadableKeyBuilder: KeyBuilder {
    /// Creates the builder.
    public init() {}

    public func key(for call: CacheCall) -> String {
        var key = call.scope + call.function
        for argument in call.arguments {
            key += ":"
            key += argument.readable
        }
        return key
    }
}

/// A key builder made from a closure, for keys with your own shape.
///
/// ```swift
/// let perTenant = ClosureKeyBuilder { call in
///     call.scope + "tenant-\(Tenant.current.id):" + DigestKeyBuilder().key(for: call).dropFirst(call.scope.count)
/// }
/// ```
public struct ClosureKeyBuilder: KeyBuilder {
    private let build: @Sendable (CacheCall) -> String

    /// Creates a builder that calls `build` for every key.
    public init(_ build: @escaping @Sendable (CacheCall) -> String) {
        self.build = build
    }

    public func key(for call: CacheCall) -> String { build(call) }
}

extension KeyBuilder where Self == DigestKeyBuilder {
    /// The default builder: `scope` + a digest of the function and its arguments.
    public static var digest: DigestKeyBuilder { DigestKeyBuilder() }
}

extension KeyBuilder where Self == ReadableKeyBuilder {
    /// Readable keys: `scope` + function + arguments, joined by `:`.
    public static var readable: ReadableKeyBuilder { ReadableKeyBuilder() }
}

extension KeyBuilder where Self == ClosureKeyBuilder {
    /// A builder made from a closure.
    public static func custom(_ build: @escaping @Sendable (CacheCall) -> String) -> ClosureKeyBuilder {
        ClosureKeyBuilder(build)
    }
}
