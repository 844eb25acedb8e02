import Caching
import Foundation

// Stand-ins for core pieces that are not in main yet. Each is removed when the real one lands;
// the bench module's own declarations shadow the imported ones, so the switch is a deletion.

/// STAND-IN for `BinaryCoder` (not in main yet): JSON, so that `--coder binary` runs.
struct BinaryCoder: Coder {
    static let isStandIn = true
    var name: String { "binary(stand-in: json)" }
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] { try JSONCoder().encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T { try JSONCoder().decode(type, from: bytes) }
}

/// STAND-IN for `InMemoryBackend` (not in main yet): an unbounded mutex dictionary.
final class InMemoryBackend: CacheBackend {
    static let isStandIn = true
    static let defaultShardCount = 16
    let maxEntries: Int
    private let storage = MutexDictionaryBackend()
    var name: String { "memory(stand-in)" }

    convenience init() { self.init(entries: 100_000) }
    private init(entries: Int) { maxEntries = entries }
    convenience init(maxEntries: Int, maxBytes: Int, shardCount: Int) throws(CacheError) { self.init(entries: maxEntries) }

    func get(_ key: String) async throws -> CacheEntry? { try await storage.get(key) }
    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws { try await storage.set(key, to: value, ttl: ttl) }
    func delete(_ key: String) async throws -> Bool { try await storage.delete(key) }
    func clear(prefix: String) async throws { try await storage.clear(prefix: prefix) }
    func close() async throws {}
}

/// STAND-IN for `CachingTesting.EvictionTrace` (not in main yet).
struct EvictionTrace: Sendable {
    var name: String
    var requests: [Int]

    static func zipf(keys: Int, exponent: Double, requests: Int, seed: UInt64) -> EvictionTrace {
        let sampler = ZipfSampler(n: keys, exponent: exponent)
        var rng = Xoshiro256(seed: seed)
        return EvictionTrace(name: "zipf(\(exponent))", requests: (0..<requests).map { _ in sampler.sample(&rng) - 1 })
    }

    static func zipfWithScans(keys: Int, exponent: Double, requests: Int, scanEvery: Int, scanLength: Int, seed: UInt64) -> EvictionTrace {
        let base = zipf(keys: keys, exponent: exponent, requests: requests, seed: seed).requests
        var result: [Int] = []
        var cold = keys
        for (i, id) in base.enumerated() {
            if i > 0 && i % scanEvery == 0 {
                for _ in 0..<scanLength { result.append(cold); cold += 1 }
            }
            result.append(id)
        }
        return EvictionTrace(name: "zipf(\(exponent))+scan(\(scanLength) every \(scanEvery))", requests: result)
    }
}

/// STAND-IN for `CachingTesting.EvictionSimulation` (not in main yet).
enum EvictionSimulation {
    struct Result: Sendable {
        var trace: String
        var requests: Int
        var backendHits: Int
        var lruHits: Int
        var capacity: Int
        var backendHitRatio: Double { requests == 0 ? 0 : Double(backendHits) / Double(requests) }
        var lruHitRatio: Double { requests == 0 ? 0 : Double(lruHits) / Double(requests) }
    }

    static func replay(trace: EvictionTrace, into backend: InMemoryBackend, valueSize: Int = 8) async throws -> Result {
        throw BenchError("InMemoryBackend and the eviction simulation are not in this build yet")
    }
}
