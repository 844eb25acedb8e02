// TEMPORARY: a stand-in with the announced `Caching.CacheFront` API, deleted as soon as
// `git merge main` brings the real one. Only what the HTTP cache needs.
public import Caching

public struct CacheFront: Sendable {
    public let backend: any CacheBackend
    public let prefix: String
    public let defaultTTL: Duration?

    public init(backend: any CacheBackend, prefix: String = "", defaultTTL: Duration? = nil) {
        self.backend = backend
        self.prefix = prefix
        self.defaultTTL = defaultTTL
    }

    public func namespace(_ name: String) -> CacheFront {
        CacheFront(backend: backend, prefix: prefix.isEmpty ? name : prefix + ":" + name, defaultTTL: defaultTTL)
    }

    func full(_ key: String) -> String { prefix.isEmpty ? key : prefix + ":" + key }

    public func get<T: Decodable & Sendable>(_ key: String, as type: T.Type) async throws -> T? {
        guard let entry = try await backend.get(full(key)) else { return nil }
        guard let bytes = entry.value as? T else { throw CacheError(.decodingFailed, "stub supports [UInt8] only") }
        return bytes
    }

    public func set<T: Encodable & Sendable>(_ value: T, forKey key: String, ttl: Duration? = nil) async throws {
        guard let bytes = value as? [UInt8] else { throw CacheError(.encodingFailed, "stub supports [UInt8] only") }
        try await backend.set(full(key), to: bytes, ttl: ttl ?? defaultTTL)
    }

    public func delete(_ key: String) async throws -> Bool { try await backend.delete(full(key)) }

    public func clear() async throws { try await backend.clear(prefix: prefix + ":") }
}
