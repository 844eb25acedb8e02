/// A sequence of key requests for comparing eviction policies: keys are `Int` identifiers.
///
/// ```swift
/// let trace = EvictionTrace.zipf(keys: 10_000, exponent: 1.0, requests: 200_000, seed: 1)
/// let backend = try InMemoryBackend(maxEntries: 1_000, shardCount: 1)
/// let result = try await EvictionSimulation.replay(trace: trace, into: backend)
/// print(result)   // backend hit ratio vs exact LRU of the same capacity
/// ```
///
/// Every trace is built from seeded generators, so it is the same on every run.
public struct EvictionTrace: Sendable {
    /// A short description, such as `"zipf(1.0)"`.
    public var name: String
    /// The requested key identifiers, in order.
    public var requests: [Int]

    /// Creates a trace from explicit requests.
    /// - Parameters:
    ///   - name: a short description for reports.
    ///   - requests: the requested key identifiers, in order.
    public init(name: String, requests: [Int]) {
        self.name = name
        self.requests = requests
    }

    /// Independent requests over `keys` distinct keys with Zipf popularity.
    /// - Parameters:
    ///   - keys: the number of distinct keys (identifiers `0..<keys`, 0 the most popular).
    ///   - exponent: the Zipf skew, such as 0.8 or 1.0.
    ///   - requests: the length of the trace.
    ///   - seed: the random seed.
    public static func zipf(keys: Int, exponent: Double, requests: Int, seed: UInt64) -> EvictionTrace {
        var zipf = ZipfGenerator(n: keys, s: exponent, seed: seed)
        return EvictionTrace(name: "zipf(\(exponent))", requests: zipf.take(requests))
    }

    /// Zipf requests interrupted by periodic sequential scans of cold keys, as a batch job or
    /// a crawler does: after every `scanEvery` Zipf requests come `scanLength` requests for
    /// consecutive keys that the Zipf part never asks for (identifiers from `keys` up,
    /// continuing where the previous scan stopped, so a scanned key is seen once).
    ///
    /// A scan longer than the cache flushes an LRU; a scan-resistant policy keeps its hot set.
    /// - Parameters:
    ///   - keys: the number of distinct Zipf keys.
    ///   - exponent: the Zipf skew.
    ///   - requests: the number of Zipf requests (the scans come on top).
    ///   - scanEvery: Zipf requests between two scans.
    ///   - scanLength: requests per scan.
    ///   - seed: the random seed.
    public static func zipfWithScans(
        keys: Int, exponent: Double, requests: Int, scanEvery: Int, scanLength: Int, seed: UInt64
    ) -> EvictionTrace {
        precondition(scanEvery >= 1 && scanLength >= 0, "zipfWithScans needs scanEvery >= 1 and scanLength >= 0")
        var zipf = ZipfGenerator(n: keys, s: exponent, seed: seed)
        var result = [Int]()
        result.reserveCapacity(requests + requests / scanEvery * scanLength)
        var cold = keys
        for i in 0..<requests {
            if i > 0 && i % scanEvery == 0 {
                for _ in 0..<scanLength {
                    result.append(cold)
                    cold += 1
                }
            }
            result.append(zipf.next())
        }
        return EvictionTrace(
            name: "zipf(\(exponent))+scan(\(scanLength) every \(scanEvery))", requests: result
        )
    }

    /// The number of distinct keys requested.
    public var distinctKeys: Int { Set(requests).count }
}
