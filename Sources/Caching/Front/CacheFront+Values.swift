/// Typed reads and writes.
extension CacheFront {
    /// The value stored under `key`, or `nil` on a miss.
    ///
    /// ```swift
    /// let user: User? = try await users.get("42", as: User.self)
    /// ```
    /// A stored value that cannot be decoded as `T` counts as a miss and is removed.
    /// To cache "no value" and tell it from a miss, ask for an optional type:
    /// `get("k", as: User?.self)` returns `.some(nil)` for a stored `nil`.
    ///
    /// The reads (`get`, `getWithTTL`) are `nonisolated(nonsending)` (SE-0461): they run on the
    /// caller's executor, without an executor switch on entry; the backend's own `get` decides
    /// where its I/O runs.
    /// - Throws: ``CacheError`` when the backend fails or `key` is empty.
    @inlinable
    nonisolated(nonsending) public func get<T: Decodable & Sendable>(_ key: String, as type: T.Type = T.self) async throws -> T? {
        // Inlinable so the caller's module specializes it for `T`: this is the hot path.
        try await read(key, as: T.self) { bytes throws in try decode(bytes, as: T.self) }?.value
    }

    /// The value stored under `key`, or `nil` on a miss, for a ``BinaryCodable`` type: the same
    /// as the `Decodable` overload, read field by field when the coder is a ``BinaryCoder``.
    ///
    /// ```swift
    /// let profile: Profile? = try await profiles.get("42", as: Profile.self)   // Profile: BinaryCodable
    /// ```
    /// - Throws: ``CacheError`` when the backend fails or `key` is empty.
    @inlinable
    nonisolated(nonsending) public func get<T: BinaryCodable & Sendable>(_ key: String, as type: T.Type = T.self) async throws -> T? {
        try await read(key, as: T.self) { bytes throws in try decode(bytes, as: T.self) }?.value
    }

    /// The value stored under `key` and its remaining TTL (`nil`: never expires), or `nil` on a miss.
    ///
    /// ```swift
    /// if let (user, ttl) = try await users.getWithTTL("42", as: User.self) { ... }
    /// ```
    /// - Throws: ``CacheError`` when the backend fails or `key` is empty.
    @inlinable
    nonisolated(nonsending) public func getWithTTL<T: Decodable & Sendable>(
        _ key: String,
        as type: T.Type = T.self
    ) async throws -> (value: T, ttl: Duration?)? {
        try await read(key, as: T.self) { bytes throws in try decode(bytes, as: T.self) }
    }

    /// The value stored under `key` and its remaining TTL, or `nil` on a miss, for a
    /// ``BinaryCodable`` type: the same as the `Decodable` overload, read field by field when
    /// the coder is a ``BinaryCoder``.
    /// - Throws: ``CacheError`` when the backend fails or `key` is empty.
    @inlinable
    nonisolated(nonsending) public func getWithTTL<T: BinaryCodable & Sendable>(
        _ key: String,
        as type: T.Type = T.self
    ) async throws -> (value: T, ttl: Duration?)? {
        try await read(key, as: T.self) { bytes throws in try decode(bytes, as: T.self) }
    }

    /// The body of the single-key reads: the entry, counted as a hit or a miss, decoded by
    /// `decode`; an entry it cannot decode is removed and is a miss.
    @inlinable
    nonisolated(nonsending) func read<T>(
        _ key: String, as type: T.Type, decode: ([UInt8]) throws -> T
    ) async throws -> (value: T, ttl: Duration?)? {
        let storageKey = try storageKey(key)
        guard isEnabled else { return nil }
        guard let entry = try await backend.get(storageKey) else {
            recordMiss()
            return nil
        }
        do {
            let value = try decode(entry.value)
            recordHit()
            return (value, entry.ttl)
        } catch {
            await evictUndecodable(key: storageKey, type: T.self, error: error)
            return nil
        }
    }

    /// Stores `value` under `key`.
    ///
    /// ```swift
    /// try await users.set(user, forKey: "42", ttl: .seconds(60))
    /// ```
    /// - Parameters:
    ///   - ttl: how long to keep it; `nil` uses ``defaultTTL``.
    /// - Throws: ``CacheError/Code/invalidTTL`` for a zero or negative TTL,
    ///   ``CacheError/Code/valueTooLarge`` over ``maxValueSize``, ``CacheError/Code/encodingFailed``,
    ///   or the backend's error. Nothing is stored when it throws.
    public func set<T: Encodable & Sendable>(_ value: T, forKey key: String, ttl: Duration? = nil) async throws {
        let storageKey = try storageKey(key)
        let ttl = try effectiveTTL(ttl)
        let bytes = try encode(value, key: storageKey)
        guard isEnabled else { return }
        try await backend.set(storageKey, to: bytes, ttl: ttl)
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        let storageKey = try storageKey(key)
        guard isEnabled else { return false }
        return try await backend.delete(storageKey)
    }

    /// Whether `key` holds a live entry.
    public func exists(_ key: String) async throws -> Bool {
        let storageKey = try storageKey(key)
        guard isEnabled else { return false }
        return try await backend.exists(storageKey)
    }

    /// Stores `value` only if `key` holds nothing; returns whether it stored it.
    ///
    /// Atomic on every backend of swift-caching, so it can serve as a simple lock:
    /// ```swift
    /// if try await jobs.add("nightly-report", value: hostname, ttl: .seconds(600)) { try await runReport() }
    /// ```
    public func add<T: Encodable & Sendable>(_ key: String, value: T, ttl: Duration? = nil) async throws -> Bool {
        let storageKey = try storageKey(key)
        let ttl = try effectiveTTL(ttl)
        let bytes = try encode(value, key: storageKey)
        guard isEnabled else { return false }
        return try await backend.add(storageKey, value: bytes, ttl: ttl)
    }

    /// Adds `delta` to the counter at `key` and returns the new value; a missing counter starts at 0.
    ///
    /// ```swift
    /// let hits = try await stats.increment("page:/home", ttl: .seconds(3600))
    /// ```
    /// A new counter gets `ttl` (or the default); an existing one keeps its expiry. Counters are
    /// stored as decimal text: read one with `get(key, as: String.self)`.
    /// - Throws: ``CacheError/Code/notANumber`` when the key holds something else.
    public func increment(_ key: String, by delta: Int64 = 1, ttl: Duration? = nil) async throws -> Int64 {
        let storageKey = try storageKey(key)
        let ttl = try effectiveTTL(ttl)
        return try await backend.increment(storageKey, by: delta, ttl: ttl)
    }

    /// Gives `key` a new TTL (`nil`: the default); returns whether the key was there.
    @discardableResult
    public func touch(_ key: String, ttl: Duration? = nil) async throws -> Bool {
        let storageKey = try storageKey(key)
        let ttl = try effectiveTTL(ttl)
        guard isEnabled else { return false }
        return try await backend.touch(storageKey, ttl: ttl)
    }

    /// The values for `keys`, in the same order, `nil` for each miss, in one backend round trip
    /// where the backend supports it.
    ///
    /// ```swift
    /// let found = try await users.get(["1", "2", "3"], as: User.self)   // [User?]
    /// ```
    @inlinable
    public func get<T: Decodable & Sendable>(_ keys: [String], as type: T.Type = T.self) async throws -> [T?] {
        try await readMany(keys, as: T.self) { bytes throws in try decode(bytes, as: T.self) }
    }

    /// The values for `keys` of a ``BinaryCodable`` type, in the same order, `nil` for each miss:
    /// the same as the `Decodable` overload, read field by field when the coder is a
    /// ``BinaryCoder``.
    ///
    /// ```swift
    /// let found = try await profiles.get(["1", "2"], as: Profile.self)   // Profile: BinaryCodable
    /// ```
    @inlinable
    public func get<T: BinaryCodable & Sendable>(_ keys: [String], as type: T.Type = T.self) async throws -> [T?] {
        try await readMany(keys, as: T.self) { bytes throws in try decode(bytes, as: T.self) }
    }

    /// The body of the batch reads: entries decoded by `decode`, hits and misses counted, entries
    /// that do not decode removed (and `nil`).
    @inlinable
    func readMany<T>(_ keys: [String], as type: T.Type, decode: ([UInt8]) throws -> T) async throws -> [T?] {
        // Inlinable so the caller's module specializes it for `T`; the loop decodes without
        // suspending, and only entries that fail to decode (rare) cost an await afterwards.
        // The backend adds the scope to each key (`get(_:prefix:)`), which spares building a
        // storage key string per key on the hot path; only the checks of `storageKey` run here.
        for key in keys where key.isEmpty { _ = try storageKey(key) }
        guard isEnabled else { return Array(repeating: nil, count: keys.count) }
        let entries = try await backend.get(keys, prefix: scope)
        guard entries.count == keys.count else { throw batchCountMismatch(entries.count, keys.count) }
        var result: [T?] = []
        result.reserveCapacity(keys.count)
        var hits = 0
        var misses = 0
        var undecodable: [(index: Int, error: any Error)] = []
        for index in entries.indices {
            guard let entry = entries[index] else {
                misses += 1
                result.append(nil)
                continue
            }
            do {
                result.append(try decode(entry.value))
                hits += 1
            } catch {
                undecodable.append((index, error))
                result.append(nil)
            }
        }
        recordHits(hits)
        recordMisses(misses)
        for (index, error) in undecodable {
            await evictUndecodable(key: scope + keys[index], type: T.self, error: error)
        }
        return result
    }

    /// Stores many values with one TTL in one call (in one round trip or transaction where the
    /// backend supports it): the way to warm a cache.
    ///
    /// ```swift
    /// try await users.set(["1": alice, "2": bob], ttl: .seconds(300))
    /// ```
    /// Every value is encoded and checked before anything is written.
    public func set<T: Encodable & Sendable>(_ values: [String: T], ttl: Duration? = nil) async throws {
        let ttl = try effectiveTTL(ttl)
        var items: [(key: String, value: [UInt8])] = []
        items.reserveCapacity(values.count)
        for (key, value) in values {
            let storageKey = try storageKey(key)
            items.append((storageKey, try encode(value, key: storageKey)))
        }
        guard isEnabled, !items.isEmpty else { return }
        try await backend.set(items, ttl: ttl)
    }

    /// Removes `keys`; returns how many were there.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        let storageKeys = try keys.map { key throws(CacheError) in try storageKey(key) }
        guard isEnabled, !storageKeys.isEmpty else { return 0 }
        return try await backend.delete(storageKeys)
    }

    /// Removes every entry of this front's scope: this namespace and those inside it, nothing else.
    ///
    /// On a front with no prefix and no namespace this clears the whole backend.
    public func clear() async throws {
        try await backend.clear(prefix: scope)
    }

    /// Removes every entry of the namespace `name` inside this front's scope.
    public func clear(namespace name: String) async throws {
        try await namespace(name).clear()
    }

    // MARK: Coding

    /// The bytes for `value`: raw for `[UInt8]` and `String`, the coder's otherwise.
    func encode<T: Encodable>(_ value: T, key: String) throws -> [UInt8] {
        let bytes: [UInt8]
        if T.self == [UInt8].self, let raw = value as? [UInt8] {
            bytes = raw
        } else if T.self == String.self, let string = value as? String {
            bytes = Array(string.utf8)
        } else {
            do {
                bytes = try coder.encode(value)
            } catch let error as CacheError {
                throw error
            } catch {
                throw CacheError(.encodingFailed, "the \(coder.name) coder could not encode a \(T.self): \(error)", underlying: error)
            }
        }
        if let maxValueSize, bytes.count > maxValueSize {
            throw CacheError.valueTooLarge(size: bytes.count, limit: maxValueSize, key: key)
        }
        return bytes
    }

    /// Counts, logs and removes an entry the coder could not read as `type`: a miss.
    @usableFromInline
    func evictUndecodable(key: String, type: Any.Type, error: any Error) async {
        shared.metrics.decodeErrors.increment()
        shared.metrics.misses.increment()
        logger.warning(
            "cache entry could not be decoded; removing it",
            metadata: ["cache.key": "\(key)", "cache.type": "\(type)", "error": "\(error)"]
        )
        _ = try? await backend.delete(key)
    }

    @usableFromInline
    func recordHit() { shared.metrics.hits.increment() }

    @usableFromInline
    func recordMiss() { shared.metrics.misses.increment() }

    /// Counts `count` hits in one metrics call (nothing when zero).
    @usableFromInline
    func recordHits(_ count: Int) { if count > 0 { shared.metrics.hits.increment(by: count) } }

    /// Counts `count` misses in one metrics call (nothing when zero).
    @usableFromInline
    func recordMisses(_ count: Int) { if count > 0 { shared.metrics.misses.increment(by: count) } }

    /// The error for a backend whose batch get answered with the wrong number of entries.
    @usableFromInline
    func batchCountMismatch(_ got: Int, _ expected: Int) -> CacheError {
        CacheError(.internalError, "the \(backend.name) backend returned \(got) entries for \(expected) keys")
    }

    /// `bytes` as a ``BinaryCodable`` `T`: field by field when the coder is a ``BinaryCoder``
    /// (the same value or error as through `Codable`), through the coder otherwise.
    @inlinable
    func decode<T: BinaryCodable>(_ bytes: [UInt8], as type: T.Type) throws -> T {
        if let binary = shared.binaryCoder { return try binary.decode(T.self, from: bytes) }
        return try coder.decode(type, from: bytes)
    }

    /// `bytes` as a `T`: raw for `[UInt8]` and `String`, through the coder otherwise.
    @inlinable
    func decode<T: Decodable>(_ bytes: [UInt8], as type: T.Type) throws -> T {
        if T.self == [UInt8].self, let raw = bytes as? T { return raw }
        if T.self == String.self {
            guard let string = String(validating: bytes, as: UTF8.self), let typed = string as? T else {
                throw CacheError(.decodingFailed, "the stored bytes are not valid UTF-8 text")
            }
            return typed
        }
        return try coder.decode(type, from: bytes)
    }
}
