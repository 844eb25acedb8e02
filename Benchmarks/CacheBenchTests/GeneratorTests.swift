import Caching
import Testing

@testable import CacheBench

@Suite struct GeneratorTests {
    @Test func zipfFollowsItsLaw() {
        // With s = 1 over 1,000 ranks, rank 1 has probability 1 / H(1000) ≈ 0.1336 and rank 2 half of it.
        let sampler = ZipfSampler(n: 1_000, exponent: 1.0)
        var rng = Xoshiro256(seed: 3)
        var counts = [Int](repeating: 0, count: 1_001)
        let draws = 200_000
        for _ in 0..<draws { counts[sampler.sample(&rng)] += 1 }
        #expect(counts[0] == 0)
        let first = Double(counts[1]) / Double(draws)
        #expect(abs(first - 0.1336) < 0.005, "rank 1 share \(first)")
        let ratio = Double(counts[1]) / Double(counts[2])
        #expect(abs(ratio - 2) < 0.1, "rank 1 / rank 2 = \(ratio)")
    }

    @Test func zipfStaysInRange() {
        for exponent in [0.2, 0.99, 1.0, 1.5, 4] {
            let sampler = ZipfSampler(n: 37, exponent: exponent)
            var rng = Xoshiro256(seed: 11)
            for _ in 0..<20_000 {
                let rank = sampler.sample(&rng)
                #expect((1...37).contains(rank))
                if !(1...37).contains(rank) { return }
            }
        }
    }

    @Test func planFollowsTheMix() throws {
        let spec = WorkloadPreset.mixed.spec(defaultStop: .operations(1))
        let plan = OperationPlan(spec: spec, seed: 5)
        var rng = Xoshiro256(seed: 9)
        var counts: [OperationKind: Int] = [:]
        for _ in 0..<100_000 {
            counts[plan.nextOperation(&rng), default: 0] += 1
            let key = plan.nextKey(&rng)
            #expect(key >= 0 && key < spec.keyCount)
            let size = plan.nextValueSize(&rng)
            #expect(size >= 64 && size <= 512)
        }
        #expect(abs(Double(counts[.get] ?? 0) / 100_000 - 0.90) < 0.01)
        #expect(abs(Double(counts[.set] ?? 0) / 100_000 - 0.08) < 0.01)
        #expect(abs(Double(counts[.delete] ?? 0) / 100_000 - 0.02) < 0.005)
    }

    @Test func recordsHaveTheRequestedEncodedSize() throws {
        let coder = BinaryCoder()
        for size in [60, 100, 1000] {
            let record = try BenchRecord.sized(size, id: 1) { try coder.encode($0) }
            let encoded = try coder.encode(record).count
            #expect(abs(encoded - size) <= 3, "asked \(size), got \(encoded)")
        }
    }
}
