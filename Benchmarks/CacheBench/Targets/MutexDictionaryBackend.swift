import Caching
import Synchronization

/// A `CacheBackend` over one `Mutex<[String: [UInt8]]>`, without TTL enforcement or bounds.
///
/// Used as the "memory" backend until `InMemoryBackend` lands in main.
final class MutexDictionaryBackend: CacheBackend {
    let name = "mutex-dictionary"
    private let storage = Mutex<[String: [UInt8]]>([:])

    func get(_ key: String) async throws -> CacheEntry? {
        storage.withLock { $0[key] }.map { CacheEntry(value: $0, ttl: nil) }
    }

    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        storage.withLock { $0[key] = value }
    }

    func delete(_ key: String) async throws -> Bool {
        storage.withLock { $0.removeValue(forKey: key) } != nil
    }

    func clear(prefix: String) async throws {
        storage.withLock { dictionary in
            dictionary = dictionary.filter { !$0.key.hasPrefix(prefix) }
        }
    }

    func close() async throws {}
}
