/// Default implementations built from the five essentials.
///
/// They are correct for a single process but not atomic: `add` and `increment` read, then
/// write. Backends with native commands (all of ours) override them.
extension CacheBackend {
    public func exists(_ key: String) async throws -> Bool {
        try await get(key) != nil
    }

    public func get(_ keys: [String]) async throws -> [CacheEntry?] {
        var result: [CacheEntry?] = []
        result.reserveCapacity(keys.count)
        for key in keys { result.append(try await get(key)) }
        return result
    }

    public func get(_ keys: [String], prefix: String) async throws -> [CacheEntry?] {
        if prefix.isEmpty { return try await get(keys) }
        return try await get(keys.map { prefix + $0 })
    }

    public func set(_ items: [(key: String, value: [UInt8])], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        for item in items { try await set(item.key, to: item.value, ttl: ttl) }
    }

    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        var count = 0
        for key in keys where try await delete(key) { count += 1 }
        return count
    }

    public func add(_ key: String, value: [UInt8], ttl: Duration?) async throws -> Bool {
        try CacheTTL.validate(ttl)
        if try await get(key) != nil { return false }
        try await set(key, to: value, ttl: ttl)
        return true
    }

    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        try CacheTTL.validate(ttl)
        guard let entry = try await get(key) else {
            try await set(key, to: Array(String(delta).utf8), ttl: ttl)
            return delta
        }
        let next = try CacheCounter.add(delta, to: entry.value, key: key)
        try await set(key, to: Array(String(next).utf8), ttl: entry.ttl)
        return next
    }

    @discardableResult
    public func touch(_ key: String, ttl: Duration?) async throws -> Bool {
        try CacheTTL.validate(ttl)
        guard let entry = try await get(key) else { return false }
        try await set(key, to: entry.value, ttl: ttl)
        return true
    }
}

/// Parsing of the ASCII decimal counters that ``CacheBackend/increment(_:by:ttl:)`` keeps.
public enum CacheCounter {
    /// The counter stored in `bytes` plus `delta`.
    /// - Throws: ``CacheError/Code/notANumber`` when `bytes` is not a decimal `Int64` or the sum overflows.
    public static func add(_ delta: Int64, to bytes: [UInt8], key: String) throws(CacheError) -> Int64 {
        guard bytes.count <= 20, let text = String(validating: bytes, as: UTF8.self), let current = Int64(text) else {
            throw CacheError(
                .notANumber,
                "the value at key \(String(reflecting: String(key.prefix(80)))) is not a decimal integer; delete it or use another key"
            )
        }
        let (sum, overflow) = current.addingReportingOverflow(delta)
        if overflow {
            throw CacheError(.notANumber, "incrementing \(current) by \(delta) overflows Int64")
        }
        return sum
    }
}
