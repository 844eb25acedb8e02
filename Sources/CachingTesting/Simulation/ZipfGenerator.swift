#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Draws ranks `0..<n` with Zipf probabilities: rank `k` comes with probability proportional
/// to `1 / (k + 1)^s`. Rank 0 is the most popular.
///
/// Deterministic: it draws from its own ``SplitMix64`` seeded with `seed`, so a trace is the
/// same on every run and machine. It keeps the cumulative distribution (8 bytes per rank) and
/// draws by binary search, so it is exact for any `s`, including 1.
///
/// ```swift
/// var zipf = ZipfGenerator(n: 10_000, s: 1.0, seed: 7)
/// let keys = zipf.take(100_000)     // mostly small ranks
/// ```
public struct ZipfGenerator: Sendable {
    /// The number of ranks.
    public let n: Int
    /// The skew: 0 is uniform; web caches typically see 0.6 to 1.2.
    public let s: Double
    private let cumulative: [Double]
    private var random: SplitMix64

    /// Creates a generator.
    /// - Parameters:
    ///   - n: the number of distinct ranks; at least 1.
    ///   - s: the Zipf exponent; at least 0.
    ///   - seed: the seed of the generator's own random numbers.
    public init(n: Int, s: Double, seed: UInt64) {
        precondition(n >= 1, "ZipfGenerator needs n >= 1, got \(n)")
        precondition(s >= 0 && s.isFinite, "ZipfGenerator needs a finite s >= 0, got \(s)")
        self.n = n
        self.s = s
        var cumulative = [Double]()
        cumulative.reserveCapacity(n)
        var sum = 0.0
        for k in 1...n {
            sum += 1.0 / pow(Double(k), s)
            cumulative.append(sum)
        }
        self.cumulative = cumulative
        self.random = SplitMix64(seed: seed)
    }

    /// The next rank, in `0..<n`.
    public mutating func next() -> Int {
        let target = random.nextUnitInterval() * cumulative[n - 1]
        var low = 0
        var high = n - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > target {
                high = middle
            } else {
                low = middle + 1
            }
        }
        return low
    }

    /// The next `count` ranks.
    public mutating func take(_ count: Int) -> [Int] {
        var result = [Int]()
        result.reserveCapacity(max(0, count))
        for _ in 0..<max(0, count) { result.append(next()) }
        return result
    }
}
