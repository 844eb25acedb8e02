import Caching

/// The backends `cache-bench` knows.
enum BackendKind: String, CaseIterable, Sendable {
    case memory
    case sqlite
    case redis
    case memcached

    /// Parses a comma-separated list such as `memory,redis`.
    static func parseList(_ text: String) throws(BenchError) -> [BackendKind] {
        var kinds: [BackendKind] = []
        for name in text.split(separator: ",").map({ $0.trimmingWhitespace().lowercased() }) where !name.isEmpty {
            guard let kind = BackendKind(rawValue: name) ?? (name == "inmemory" || name == "in-memory" ? .memory : nil) else {
                throw BenchError("unknown backend '\(name)': choose from memory, sqlite, redis, memcached")
            }
            if !kinds.contains(kind) { kinds.append(kind) }
        }
        guard !kinds.isEmpty else { throw BenchError("--backends is empty: choose from memory, sqlite, redis, memcached") }
        return kinds
    }
}

/// How to reach each backend's store.
struct BackendConfig: Sendable {
    var redis: RedisAddress?
    var memcached: [HostPort]?
    var sqlitePath: String
    var connectTimeout: Duration
    /// Entries and bytes the in-memory backend needs to hold every key of the run (twice over).
    var memoryEntries: Int
    var memoryBytes: Int
}

/// One backend instance under test.
struct BackendTarget: Sendable {
    let kind: BackendKind
    let backend: any CacheBackend
    /// Where it is, for the report (`redis://127.0.0.1:40123 (spawned, pid 4242)`).
    let detail: String

    var label: String { kind.rawValue }

    /// Opens the backend of `kind`.
    static func open(_ kind: BackendKind, config: BackendConfig, detail: String) async throws -> BackendTarget {
        let backend: any CacheBackend
        switch kind {
        case .memory:
            // Big enough to hold every key of the run, as the servers do: the comparison is
            // about speed; `cache-bench eviction` is about what a bounded cache keeps.
            backend = try InMemoryBackend(
                maxEntries: max(InMemoryBackend.defaultMaxEntries, config.memoryEntries),
                maxBytes: max(InMemoryBackend.defaultMaxBytes, config.memoryBytes)
            )
        case .sqlite:
            throw BenchError("the SQLite backend is not in this build yet (CachingSQLite is still a placeholder)")
        case .redis:
            throw BenchError("the Redis backend is not in this build yet (CachingRedis is still a placeholder)")
        case .memcached:
            throw BenchError("the memcached backend is not in this build yet (CachingMemcached is still a placeholder)")
        }
        return BackendTarget(kind: kind, backend: backend, detail: detail)
    }

    /// A client for one workload: its own namespace, the workload's coder and values.
    func makeClient(spec: WorkloadSpec, prefix: String, valueSizes: [Int]) throws -> (client: any BenchClient, front: CacheFront) {
        let keys = (0..<spec.keyCount).map { "k\($0)" }
        let coder: any Coder = spec.coder == .json ? JSONCoder() : BinaryCoder()
        let front = CacheFront(backend: backend, prefix: prefix, defaultTTL: nil, coder: coder).namespace(spec.name)
        switch spec.coder {
        case .raw:
            return (FrontClient(front: front, keys: keys, values: ValueVariants.bytes(sizes: valueSizes), ttl: spec.ttl), front)
        case .binary, .json:
            let values = try valueSizes.enumerated().map { index, size in
                try BenchRecord.sized(size, id: Int64(index)) { try coder.encode($0) }
            }
            return (FrontClient(front: front, keys: keys, values: values, ttl: spec.ttl), front)
        }
    }
}
