import Caching
import CachingTesting
import Testing

/// S3-FIFO must beat an exact LRU of the same capacity on skewed workloads.
///
/// The traces are seeded, so the outcome is the same on every run: this checks the policy's
/// behaviour, not its speed. 10,000 keys, a cache of 1,000 entries (10 %), 60,000 requests;
/// the scan trace adds a scan of 2,000 never-repeated keys every 3,000 requests.
@Suite("Eviction: S3-FIFO hit ratio versus exact LRU")
struct EvictionHitRatioTests {
    static let keys = 10_000
    static let capacity = 1_000
    static let requests = 60_000

    static let traces: [EvictionTrace] = [
        .zipf(keys: keys, exponent: 0.8, requests: requests, seed: 1),
        .zipf(keys: keys, exponent: 1.0, requests: requests, seed: 2),
        .zipfWithScans(
            keys: keys, exponent: 0.8, requests: requests, scanEvery: 3_000, scanLength: 2 * capacity, seed: 3
        ),
    ]

    @Test(arguments: traces)
    func s3fifoBeatsLRU(trace: EvictionTrace) async throws {
        let backend = try InMemoryBackend(maxEntries: Self.capacity, maxBytes: 1 << 30, shardCount: 1)
        let result = try await EvictionSimulation.replay(trace: trace, into: backend)
        print("hit ratio: \(result)")
        #expect(result.backendHitRatio > result.lruHitRatio, "\(result)")
        #expect(backend.stats().entries == Self.capacity)
    }

    @Test func shardedBackendAlsoBeatsLRU() async throws {
        // The default layout splits the capacity over 16 shards, each with its own queues. The
        // key hash is seeded per process, so the split differs slightly between runs.
        let trace = EvictionTrace.zipf(keys: 20_000, exponent: 0.8, requests: Self.requests, seed: 4)
        let backend = try InMemoryBackend(maxEntries: 4_096, maxBytes: 1 << 30, shardCount: 16)
        #expect(backend.shardCount == 16)
        let result = try await EvictionSimulation.replay(trace: trace, into: backend)
        print("hit ratio, 16 shards: \(result)")
        #expect(result.backendHitRatio > result.lruHitRatio, "\(result)")
    }
}

extension EvictionTrace: CustomTestStringConvertible {
    public var testDescription: String { name }
}
