/// Read-through caching: `getOrSet` and the function wrapper `cached`.
extension CacheFront {
    /// The value under `key`, or the result of `compute`, stored for next time.
    ///
    /// ```swift
    /// let user = try await users.getOrSet("42", ttl: .seconds(60)) { try await db.user(42) }
    /// ```
    ///
    /// - Concurrent misses for the same key in this process run `compute` once and share its
    ///   result (single-flight).
    /// - A thrown error is passed to the callers then waiting and is not cached.
    /// - A `nil` result of an optional `T` is cached, and told apart from a miss.
    /// - With ``failOpen`` (the default), a backend failure on the read or the write is logged
    ///   and counted, and the computed value is returned; otherwise it is thrown.
    ///
    /// - Parameters:
    ///   - key: the key inside this front's scope.
    ///   - ttl: how long to keep a computed value; `nil` uses ``defaultTTL``.
    ///   - compute: makes the value on a miss.
    /// - Throws: what `compute` throws; ``CacheError`` for an empty key or a bad TTL, and for
    ///   backend failures when ``failOpen`` is off.
    public func getOrSet<T: Codable & Sendable>(
        _ key: String,
        ttl: Duration? = nil,
        compute: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let front = self
        return try await getOrSet(storageKey: try storageKey(key), ttl: ttl, decode: { try front.decode($0, as: T.self) }, compute: compute)
    }

    /// ``getOrSet(_:ttl:compute:)`` for a ``BinaryCodable`` type: a hit is read field by field
    /// when the coder is a ``BinaryCoder`` (the same value or error as through `Codable`, faster).
    ///
    /// ```swift
    /// let profile = try await profiles.getOrSet("42") { try await db.profile(42) }   // Profile: BinaryCodable
    /// ```
    /// - Throws: as ``getOrSet(_:ttl:compute:)``.
    public func getOrSet<T: BinaryCodable & Sendable>(
        _ key: String,
        ttl: Duration? = nil,
        compute: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let front = self
        return try await getOrSet(storageKey: try storageKey(key), ttl: ttl, decode: { try front.decode($0, as: T.self) }, compute: compute)
    }

    /// Wraps `body` in a function with the same signature that caches its results by arguments:
    /// the Swift counterpart of fastapi-cache's `@cache` decorator.
    ///
    /// ```swift
    /// let user = users.cached(ttl: .seconds(60)) { (id: Int) async throws -> User in
    ///     try await db.user(id)
    /// }
    /// let alice = try await user(1)        // computed, stored
    /// let again = try await user(1)        // from the cache
    /// ```
    ///
    /// The key comes from ``keyBuilder`` with the function's identity and the arguments (see
    /// ``CacheCall``). Every call behaves as ``getOrSet(_:ttl:compute:)``: single-flight,
    /// errors not cached, fail-open by default.
    ///
    /// - Parameters:
    ///   - ttl: how long to keep results; `nil` uses ``defaultTTL``.
    ///   - name: the function's identity in keys. Give one for keys that survive code edits
    ///     and are shared by different builds; by default it is the call site
    ///     (`file:function:line`), which changes when the code moves.
    ///   - body: the function to cache. Its arguments must be `Encodable`, its result `Codable`.
    public func cached<each Argument: Encodable & Sendable, Result: Codable & Sendable>(
        ttl: Duration? = nil,
        name: String? = nil,
        fileID: String = #fileID,
        function: String = #function,
        line: Int = #line,
        _ body: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) -> @Sendable (repeat each Argument) async throws -> Result {
        let front = self
        return cached(ttl: ttl, identity: name ?? "\(fileID):\(function):\(line)", decode: { try front.decode($0, as: Result.self) }, body)
    }

    /// ``cached(ttl:name:fileID:function:line:_:)`` for a function whose result is
    /// ``BinaryCodable``: hits are read field by field when the coder is a ``BinaryCoder``.
    ///
    /// ```swift
    /// let profile = profiles.cached(ttl: .seconds(60)) { (id: Int) async throws -> Profile in
    ///     try await db.profile(id)
    /// }
    /// ```
    public func cached<each Argument: Encodable & Sendable, Result: BinaryCodable & Sendable>(
        ttl: Duration? = nil,
        name: String? = nil,
        fileID: String = #fileID,
        function: String = #function,
        line: Int = #line,
        _ body: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) -> @Sendable (repeat each Argument) async throws -> Result {
        let front = self
        return cached(ttl: ttl, identity: name ?? "\(fileID):\(function):\(line)", decode: { try front.decode($0, as: Result.self) }, body)
    }

    /// The body of both `cached` overloads; `decode` reads a hit.
    func cached<each Argument: Encodable & Sendable, Result: Codable & Sendable>(
        ttl: Duration?,
        identity: String,
        decode: @escaping @Sendable ([UInt8]) throws -> Result,
        _ body: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) -> @Sendable (repeat each Argument) async throws -> Result {
        let front = self
        return { (argument: repeat each Argument) async throws -> Result in
            var arguments: [CacheArgument] = []
            for value in repeat each argument {
                arguments.append(try CacheArgument(value))
            }
            let call = CacheCall(scope: front.scope, function: identity, arguments: arguments)
            let key = front.keyBuilder.key(for: call)
            return try await front.getOrSet(storageKey: key, ttl: ttl, decode: decode) {
                try await body(repeat each argument)
            }
        }
    }

    /// `getOrSet` for a key that is already a full storage key (from a ``KeyBuilder``); `decode`
    /// reads a hit (the `Codable` or the ``BinaryCodable`` path).
    func getOrSet<T: Codable & Sendable>(
        storageKey: String,
        ttl: Duration?,
        decode: @escaping @Sendable ([UInt8]) throws -> T,
        compute: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard !storageKey.isEmpty else {
            throw CacheError(.invalidKey, "the key builder returned an empty key; return a non-empty key that starts with call.scope")
        }
        let ttl = try effectiveTTL(ttl)
        guard isEnabled else { return try await compute() }
        let recheck: Bool
        switch try await readThrough(storageKey, decode: decode) {
        case .hit(let value): return value
        case .miss: recheck = true
        case .failed: recheck = false   // the backend is failing: don't ask it twice
        }
        let front = self
        return try await shared.flights.run(key: storageKey) { () async throws -> T in
            // Another flight for this key may have stored the value between our read and now.
            if recheck, case .hit(let value) = try await front.readThrough(storageKey, countMiss: false, decode: decode) {
                return value
            }
            let value = try await compute()
            try await front.writeThrough(value, key: storageKey, ttl: ttl)
            return value
        }.value
    }

    /// What a fail-open read found.
    enum ReadResult<T> {
        case hit(T)
        case miss
        case failed
    }

    /// A read that counts hits and misses, evicts undecodable entries, and fails open.
    func readThrough<T: Sendable>(
        _ storageKey: String,
        countMiss: Bool = true,
        decode: ([UInt8]) throws -> T
    ) async throws -> ReadResult<T> {
        let entry: CacheEntry?
        do {
            entry = try await backend.get(storageKey)
        } catch {
            shared.metrics.readErrors.increment()
            guard failOpen else { throw error }
            logger.warning(
                "cache read failed; computing without the cache",
                metadata: ["cache.backend": "\(backend.name)", "error": "\(error)"]
            )
            return .failed
        }
        guard let entry else {
            if countMiss { shared.metrics.misses.increment() }
            return .miss
        }
        let value: T
        do {
            value = try decode(entry.value)
        } catch {
            await evictUndecodable(key: storageKey, type: T.self, error: error)
            return .miss
        }
        shared.metrics.hits.increment()
        return .hit(value)
    }

    /// A write that fails open.
    func writeThrough<T: Encodable & Sendable>(_ value: T, key storageKey: String, ttl: Duration?) async throws {
        do {
            let bytes = try encode(value, key: storageKey)
            try await backend.set(storageKey, to: bytes, ttl: ttl)
        } catch {
            shared.metrics.writeErrors.increment()
            guard failOpen else { throw error }
            logger.warning(
                "cache write failed; returning the computed value uncached",
                metadata: ["cache.backend": "\(backend.name)", "error": "\(error)"]
            )
        }
    }
}
