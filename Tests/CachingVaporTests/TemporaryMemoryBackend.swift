#if Vapor
// TEMPORARY until `InMemoryBackend` lands in main: then `makeBackend()` returns
// `InMemoryBackend()` and this file goes.
import Caching
import Synchronization

final class TemporaryMemoryBackend: CacheBackend {
    let name = "memory"
    let entries = Mutex<[String: (value: [UInt8], expiry: ContinuousClock.Instant?)]>([:])

    func get(_ key: String) async throws -> CacheEntry? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if let expiry = entry.expiry {
                let now = ContinuousClock.now
                guard expiry > now else { entries[key] = nil; return nil }
                return CacheEntry(value: entry.value, ttl: expiry - now)
            }
            return CacheEntry(value: entry.value, ttl: nil)
        }
    }

    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws {
        try CacheTTL.validate(ttl)
        entries.withLock { $0[key] = (value, ttl.map { ContinuousClock.now + $0 }) }
    }

    func delete(_ key: String) async throws -> Bool {
        entries.withLock { $0.removeValue(forKey: key) != nil }
    }

    func clear(prefix: String) async throws {
        entries.withLock { entries in
            for key in entries.keys where key.hasPrefix(prefix) { entries[key] = nil }
        }
    }

    func close() async throws {}
}


#endif
