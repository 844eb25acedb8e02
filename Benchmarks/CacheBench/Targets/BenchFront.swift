import Caching
import Foundation

/// The typed front the benchmark drives: key prefix, coder, TTL, over a `CacheBackend`.
///
/// PLACEHOLDER until `CacheFront` lands in main: same calls and key layout (`prefix:key`),
/// `[UInt8]` stored as is.
struct BenchFront: Sendable {
    let backend: any CacheBackend
    let prefix: String
    let coder: any Coder

    init(backend: any CacheBackend, prefix: String, coder: any Coder) {
        self.backend = backend
        self.prefix = prefix
        self.coder = coder
    }

    private func key(_ key: String) -> String { prefix + ":" + key }

    private func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let bytes = value as? [UInt8] { return bytes }
        return try coder.encode(value)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        if T.self == [UInt8].self, let value = bytes as? T { return value }
        return try coder.decode(type, from: bytes)
    }

    func get<T: Codable & Sendable>(_ key: String, as type: T.Type) async throws -> T? {
        guard let entry = try await backend.get(self.key(key)) else { return nil }
        return try decode(type, entry.value)
    }

    func get<T: Codable & Sendable>(_ keys: [String], as type: T.Type) async throws -> [T?] {
        let entries = try await backend.get(keys.map { self.key($0) })
        return try entries.map { entry in try entry.map { try decode(type, $0.value) } }
    }

    func set<T: Codable & Sendable>(_ value: T, forKey key: String, ttl: Duration?) async throws {
        try await backend.set(self.key(key), to: encode(value), ttl: ttl)
    }

    func set<T: Codable & Sendable>(_ items: [(key: String, value: T)], ttl: Duration?) async throws {
        try await backend.set(items.map { (key: self.key($0.key), value: try encode($0.value)) }, ttl: ttl)
    }

    func delete(_ key: String) async throws {
        try await backend.delete(self.key(key))
    }

    func delete(_ keys: [String]) async throws {
        try await backend.delete(keys.map { self.key($0) })
    }

    func clear() async throws {
        try await backend.clear(prefix: prefix + ":")
    }
}

/// PLACEHOLDER for `JSONCoder` until it lands in main.
struct FoundationJSONCoder: Coder {
    var name: String { "json" }
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
