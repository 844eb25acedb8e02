import Caching
import CachingMemcached
import CachingRedis
import CachingSQLite
import Foundation
import Logging

/// The backends `cache-bench` knows.
enum BackendKind: String, CaseIterable, Sendable {
    case memory
    case sqlite
    /// The SQLite backend with its callers opted in to ``SQLiteBackend/taskExecutor``: each caller task
    /// runs on the backend's reader thread and its reads run inline, with no thread hop.
    case sqliteExecutor = "sqlite-executor"
    case redis
    case memcached
    /// The memcached backend with its callers opted in to ``MemcachedBackend/taskExecutor``: each
    /// caller task runs on the backend's executor thread and its calls run inline, with no thread hop.
    case memcachedExecutor = "memcached-executor"

    /// Parses a comma-separated list such as `memory,redis`.
    static func parseList(_ text: String) throws(BenchError) -> [BackendKind] {
        var kinds: [BackendKind] = []
        for name in text.split(separator: ",").map({ $0.trimmingWhitespace().lowercased() }) where !name.isEmpty {
            guard let kind = BackendKind(rawValue: name) ?? (name == "inmemory" || name == "in-memory" ? .memory : nil) else {
                throw BenchError("unknown backend '\(name)': choose from memory, sqlite, sqlite-executor, redis, memcached, memcached-executor")
            }
            if !kinds.contains(kind) { kinds.append(kind) }
        }
        guard !kinds.isEmpty else { throw BenchError("--backends is empty: choose from memory, sqlite, sqlite-executor, redis, memcached, memcached-executor") }
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
    /// Whether the backends' own log messages (reconnects, timeouts) go to standard error.
    var verbose: Bool

    /// The file of an SQLite target: each has its own, so both can run in one session.
    func sqlitePath(_ kind: BackendKind) -> String {
        kind == .sqliteExecutor ? sqlitePath.replacingOccurrences(of: ".sqlite", with: "-executor.sqlite") : sqlitePath
    }

    /// The logger handed to backends: silent unless `--verbose`, since failures already show
    /// as errors in the tables and log lines would break the progress line and the output.
    func logger(_ label: String) -> Logger {
        if verbose {
            var logger = Logger(label: label)
            logger.logLevel = .warning
            return logger
        }
        return Logger(label: label, factory: { _ in SwiftLogNoOpLogHandler() })
    }
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
        case .sqlite, .sqliteExecutor:
            // The defaults a user gets: WAL, synchronous=NORMAL, one reader connection, no size limit.
            let path = config.sqlitePath(kind)
            try? FileManager.default.removeItem(atPath: path)
            backend = try await SQLiteBackend(path: path, logger: config.logger("swift-caching.sqlite"))
        case .redis:
            guard let address = config.redis else { throw BenchError("redis: no server address") }
            var configuration = try RedisConfiguration(url: address.url)
            configuration.connectTimeout = config.connectTimeout
            backend = try RedisBackend(configuration: configuration, logger: config.logger("swift-caching.redis"))
        case .memcached, .memcachedExecutor:
            guard let servers = config.memcached else { throw BenchError("memcached: no server address") }
            var configuration = MemcachedBackend.Configuration(servers: servers.map { MemcachedServer(host: $0.host, port: $0.port) })
            configuration.connectTimeout = config.connectTimeout
            try Self.tune(&configuration)
            backend = try MemcachedBackend(configuration: configuration, logger: config.logger("swift-caching.memcached"))
        }
        return BackendTarget(kind: kind, backend: backend, detail: detail)
    }

    /// Profiling knob: `CACHE_BENCH_MEMCACHED=replyWait=100,replySpin=100,idleSpin=50,connections=2` (µs and
    /// a count) overrides those settings, to compare them on one machine. Unset: the defaults.
    static func tune(_ configuration: inout MemcachedBackend.Configuration) throws {
        guard let text = ProcessInfo.processInfo.environment["CACHE_BENCH_MEMCACHED"], !text.isEmpty else { return }
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard pair.count == 2, let number = Int(pair[1]), number >= 0 else {
                throw BenchError("CACHE_BENCH_MEMCACHED: bad setting '\(part)': write name=number")
            }
            switch pair[0] {
            case "replyWait": configuration.replyWait = .microseconds(number)
            case "idleSpin": configuration.idleSpin = .microseconds(number)
            case "connections": configuration.connectionsPerServer = number
            case "replySpin": configuration.replySpin = .microseconds(number)
            case "executorReplySpin": configuration.executorReplySpin = .microseconds(number)
            default: throw BenchError("CACHE_BENCH_MEMCACHED: unknown setting '\(pair[0])' (replyWait, replySpin, executorReplySpin, idleSpin, connections)")
            }
        }
    }

    /// A client for one workload: its own namespace, the workload's coder and values.
    func makeClient(spec: WorkloadSpec, prefix: String, valueSizes: [Int]) throws -> (client: any BenchClient, front: CacheFront) {
        let keys = (0..<spec.keyCount).map { "k\($0)" }
        let coder: any Coder = spec.coder == .json ? JSONCoder() : BinaryCoder()
        let front = CacheFront(backend: backend, prefix: prefix, defaultTTL: nil, coder: coder).namespace(spec.name)
        let executor: (any TaskExecutor)? = switch kind {
        case .sqliteExecutor: (backend as? SQLiteBackend)?.taskExecutor
        case .memcachedExecutor: (backend as? MemcachedBackend)?.taskExecutor
        default: nil
        }
        switch spec.coder {
        case .raw where kind == .memcached && ProcessInfo.processInfo.environment["CACHE_BENCH_MEMCACHED_DIRECT"] == "1":
            // Profiling knob: the same keys and values straight through the backend, without
            // CacheFront, to measure what the front costs.
            let client = DirectBackendClient(backend: backend, keys: keys.map { front.scope + $0 }, values: ValueVariants.bytes(sizes: valueSizes), ttl: spec.ttl)
            return (client, front)
        case .raw:
            return (FrontClient(front: front, keys: keys, values: ValueVariants.bytes(sizes: valueSizes), ttl: spec.ttl, taskExecutor: executor), front)
        case .binary, .json:
            let values = try valueSizes.enumerated().map { index, size in
                try BenchRecord.sized(size, id: Int64(index)) { try coder.encode($0) }
            }
            return (FrontClient(front: front, keys: keys, values: values, ttl: spec.ttl, taskExecutor: executor), front)
        }
    }
}

/// A client that calls a backend directly with the storage keys a front would use
/// (`CACHE_BENCH_MEMCACHED_DIRECT=1`, with `--coder raw`): the front's share of a call is the
/// difference with ``FrontClient``.
struct DirectBackendClient: BenchClient {
    let backend: any CacheBackend
    let keys: [String]
    let values: [[UInt8]]
    let ttl: Duration?

    nonisolated(nonsending) func get(_ index: Int) async throws -> Bool {
        try await backend.get(keys[index]) != nil
    }

    nonisolated(nonsending) func getMany(_ indices: [Int]) async throws -> Int {
        var hits = 0
        for entry in try await backend.get(indices.map { keys[$0] }) where entry != nil { hits += 1 }
        return hits
    }

    nonisolated(nonsending) func set(_ index: Int, variant: Int) async throws {
        try await backend.set(keys[index], to: values[variant], ttl: ttl)
    }

    nonisolated(nonsending) func setMany(_ indices: [Int], variant: Int) async throws {
        try await backend.set(indices.map { (key: keys[$0], value: values[variant]) }, ttl: ttl)
    }

    nonisolated(nonsending) func delete(_ index: Int) async throws {
        _ = try await backend.delete(keys[index])
    }

    nonisolated(nonsending) func deleteMany(_ indices: [Int]) async throws {
        _ = try await backend.delete(indices.map { keys[$0] })
    }

    func preload(progress: @Sendable (Int) -> Void) async throws {
        var start = 0
        while start < keys.count {
            let end = min(keys.count, start + 100)
            try await backend.set((start..<end).map { (key: keys[$0], value: values[$0 % values.count]) }, ttl: ttl)
            start = end
            progress(start)
        }
    }
}
