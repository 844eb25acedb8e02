import Caching
import CachingTesting
import Testing

@Suite("Eviction simulation helpers")
struct EvictionSimulationTests {
    @Test func splitMix64IsDeterministic() {
        var a = CachingTesting.SplitMix64(seed: 42)
        var b = CachingTesting.SplitMix64(seed: 42)
        var c = CachingTesting.SplitMix64(seed: 43)
        let first = (0..<8).map { _ in a.next() }
        #expect(first == (0..<8).map { _ in b.next() })
        #expect(first != (0..<8).map { _ in c.next() })
        // The published first output of SplitMix64 seeded with 0.
        var zero = CachingTesting.SplitMix64(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
        for _ in 0..<1_000 {
            let x = a.nextUnitInterval()
            #expect(x >= 0 && x < 1)
        }
    }

    @Test func zipfIsDeterministicAndSkewed() {
        var one = ZipfGenerator(n: 1_000, s: 1.0, seed: 7)
        var two = ZipfGenerator(n: 1_000, s: 1.0, seed: 7)
        let sample = one.take(50_000)
        #expect(sample == two.take(50_000))
        var other = ZipfGenerator(n: 1_000, s: 1.0, seed: 8)
        #expect(sample != other.take(50_000))

        #expect(sample.allSatisfy { (0..<1_000).contains($0) })
        var counts = [Int](repeating: 0, count: 1_000)
        for rank in sample { counts[rank] += 1 }
        // P(rank 0) = 1 / H(1000) ≈ 0.1336 for s = 1.
        let share = Double(counts[0]) / Double(sample.count)
        #expect(abs(share - 0.1336) < 0.01)
        #expect(counts[0] > counts[1])
        #expect(counts[1] > counts[10])
        #expect(counts[10] > counts[500])
    }

    @Test func zipfWithExponentZeroIsUniform() {
        var uniform = ZipfGenerator(n: 10, s: 0, seed: 1)
        var counts = [Int](repeating: 0, count: 10)
        for rank in uniform.take(100_000) { counts[rank] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 600 })
    }

    @Test func scanTraceInterleavesColdSequentialKeys() {
        let trace = EvictionTrace.zipfWithScans(
            keys: 100, exponent: 1.0, requests: 1_000, scanEvery: 100, scanLength: 30, seed: 5
        )
        #expect(trace.requests.count == 1_000 + 9 * 30)
        let cold = trace.requests.filter { $0 >= 100 }
        #expect(cold == Array(100..<(100 + 9 * 30)))  // consecutive, each seen once
        // The first scan comes right after the first 100 Zipf requests.
        #expect(trace.requests[100..<130] == ArraySlice(100..<130))
        #expect(trace.requests[0..<100].allSatisfy { $0 < 100 })
        #expect(trace.name.contains("scan"))
        #expect(trace.distinctKeys <= 100 + 270)
    }

    @Test func exactLRUEvictsTheLeastRecentlyUsed() {
        var lru = ExactLRU<String>(capacity: 2)
        let hits = ["a", "b", "a", "c"].map { lru.access($0) }  // the second "a" makes it the most recent
        #expect(hits == [false, false, true, false])  // "c" evicts "b"
        #expect(lru.contains("a"))
        #expect(lru.contains("b") == false)
        #expect(lru.contains("c"))
        #expect(lru.count == 2)
        lru.insert("d")  // evicts a
        #expect(lru.contains("a") == false)
        #expect(lru.hits == 1)
        #expect(lru.misses == 3)
        #expect(lru.hitRatio == 0.25)
    }

    @Test func exactLRUAgreesWithANaiveModel() {
        var lru = ExactLRU<Int>(capacity: 50)
        var model: [Int] = []  // most recent last
        var random = CachingTesting.SplitMix64(seed: 11)
        for _ in 0..<20_000 {
            let key = Int(random.next() % 120)
            let expected = model.contains(key)
            let hit = lru.access(key)
            #expect(hit == expected)
            model.removeAll { $0 == key }
            model.append(key)
            if model.count > 50 { model.removeFirst() }
        }
        #expect(lru.count == 50)
    }

    @Test func replayCountsHitsForBothCaches() async throws {
        let backend = try InMemoryBackend(maxEntries: 10, shardCount: 1)
        let trace = EvictionTrace(name: "tiny", requests: [1, 2, 1, 3, 1, 2])
        let result = try await EvictionSimulation.replay(trace: trace, into: backend)
        #expect(result.requests == 6)
        #expect(result.capacity == 10)
        #expect(result.backendHits == 3)  // everything fits: every repeat is a hit
        #expect(result.lruHits == 3)
        #expect(result.backendHitRatio == 0.5)
        #expect(result.description.contains("tiny"))
        #expect(try await backend.get("k3")?.value.count == 8)
    }
}
