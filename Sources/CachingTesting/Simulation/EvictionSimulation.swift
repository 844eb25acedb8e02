import Caching

/// Replays an ``EvictionTrace`` into a cache backend and into an ``ExactLRU`` of the same
/// capacity, and reports both hit ratios.
///
/// Each request is a `get`; a miss is followed by a `set` (the cache-aside pattern), with no
/// TTL. Keys are `"k<id>"`; values are `valueSize` bytes.
///
/// ```swift
/// let backend = try InMemoryBackend(maxEntries: 1_000, shardCount: 1)
/// let trace = EvictionTrace.zipf(keys: 10_000, exponent: 0.8, requests: 100_000, seed: 3)
/// let result = try await EvictionSimulation.replay(trace: trace, into: backend)
/// #expect(result.backendHitRatio > result.lruHitRatio)
/// ```
public enum EvictionSimulation {
    /// The outcome of one replay.
    public struct Result: Sendable, CustomStringConvertible {
        /// The trace's name.
        public var trace: String
        /// How many requests were replayed.
        public var requests: Int
        /// Requests the backend answered with a hit.
        public var backendHits: Int
        /// Requests the exact LRU answered with a hit.
        public var lruHits: Int
        /// The capacity the LRU was given, in entries.
        public var capacity: Int

        /// Creates a result.
        /// - Parameters:
        ///   - trace: the trace's name.
        ///   - requests: how many requests were replayed.
        ///   - backendHits: the backend's hits.
        ///   - lruHits: the exact LRU's hits.
        ///   - capacity: the LRU's capacity in entries.
        public init(trace: String, requests: Int, backendHits: Int, lruHits: Int, capacity: Int) {
            self.trace = trace
            self.requests = requests
            self.backendHits = backendHits
            self.lruHits = lruHits
            self.capacity = capacity
        }

        /// The backend's hits over all requests.
        public var backendHitRatio: Double { requests == 0 ? 0 : Double(backendHits) / Double(requests) }
        /// The exact LRU's hits over all requests.
        public var lruHitRatio: Double { requests == 0 ? 0 : Double(lruHits) / Double(requests) }

        public var description: String {
            func percent(_ x: Double) -> String {
                let tenths = Int((x * 1000).rounded())
                return "\(tenths / 10).\(tenths % 10)%"
            }
            return "\(trace), \(requests) requests, capacity \(capacity): backend \(percent(backendHitRatio)), exact LRU \(percent(lruHitRatio))"
        }
    }

    /// Replays `trace` into `backend` (get, and set on a miss) and into an exact LRU holding
    /// `lruCapacity` keys.
    ///
    /// - Parameters:
    ///   - trace: the requests.
    ///   - backend: the cache under test; it should start empty and hold about `lruCapacity`
    ///     entries.
    ///   - lruCapacity: the LRU's capacity in entries.
    ///   - valueSize: the size of each stored value in bytes.
    /// - Throws: what the backend throws.
    public static func replay(
        trace: EvictionTrace, into backend: some CacheBackend, lruCapacity: Int, valueSize: Int = 8
    ) async throws -> Result {
        let value = [UInt8](repeating: 0x2A, count: max(0, valueSize))
        var lru = ExactLRU<Int>(capacity: lruCapacity)
        var backendHits = 0
        var names: [Int: String] = [:]
        for id in trace.requests {
            let key: String
            if let name = names[id] {
                key = name
            } else {
                key = "k\(id)"
                names[id] = key
            }
            if try await backend.get(key) != nil {
                backendHits += 1
            } else {
                try await backend.set(key, to: value, ttl: nil)
            }
            lru.access(id)
        }
        return Result(
            trace: trace.name, requests: trace.requests.count, backendHits: backendHits, lruHits: lru.hits,
            capacity: lruCapacity
        )
    }

    /// Replays `trace` into an ``InMemoryBackend`` and into an exact LRU of the backend's
    /// `maxEntries`.
    ///
    /// Give the backend a `maxBytes` large enough that only the entry count binds.
    /// - Parameters:
    ///   - trace: the requests.
    ///   - backend: an empty in-memory backend.
    ///   - valueSize: the size of each stored value in bytes.
    /// - Throws: what the backend throws.
    public static func replay(
        trace: EvictionTrace, into backend: InMemoryBackend, valueSize: Int = 8
    ) async throws -> Result {
        try await replay(trace: trace, into: backend, lruCapacity: backend.maxEntries, valueSize: valueSize)
    }
}
