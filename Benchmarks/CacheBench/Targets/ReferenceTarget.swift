import Caching
import CReference
import Histogram

/// A C reference connection (`--reference`): hiredis, libmemcached or sqlite3 driven from one
/// dedicated thread, with the same operation plan as the Swift backends.
///
/// `@unchecked Sendable`: the C handle is touched only by `worker`'s single thread (every use
/// goes through `worker.run`), which is the rule hiredis, libmemcached and sqlite3 need.
final class ReferenceTarget: @unchecked Sendable {
    /// The row label, such as `C hiredis`.
    let label: String
    /// The backend this is the C limit of: `redis`, `memcached` or `sqlite`.
    let referenceFor: String
    private let handle: OpaquePointer
    private let worker: BlockingWorker
    private var keySets: [OpaquePointer] = []

    private init(label: String, referenceFor: String, handle: OpaquePointer, worker: BlockingWorker) {
        self.label = label
        self.referenceFor = referenceFor
        self.handle = handle
        self.worker = worker
    }

    /// Opens a worker thread and the C handle on it.
    private static func open(
        label: String, referenceFor: String, _ body: @escaping @Sendable (UnsafeMutablePointer<CChar>, Int) -> OpaquePointer?
    ) async throws -> ReferenceTarget {
        let worker = BlockingWorker(name: "cref-\(referenceFor)")
        let opened = try await worker.run { () -> SendableHandle in
            var err = [CChar](repeating: 0, count: 512)
            let pointer = err.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
            guard let pointer else {
                throw BenchError("C reference for \(referenceFor): " + String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return SendableHandle(pointer: pointer)
        }
        return ReferenceTarget(label: label, referenceFor: referenceFor, handle: opened.pointer, worker: worker)
    }

    static func redis(_ address: RedisAddress, timeoutMilliseconds: Int) async throws -> ReferenceTarget {
        try await open(label: "C hiredis", referenceFor: "redis") { err, length in
            cref_open_redis(address.host, Int32(address.port), address.unixPath, address.username, address.password,
                            Int32(address.database), Int32(timeoutMilliseconds), err, length)
        }
    }

    static func memcached(_ servers: [HostPort], timeoutMilliseconds: Int) async throws -> ReferenceTarget {
        let list = servers.map { "\($0.host):\($0.port)" }.joined(separator: ",")
        return try await open(label: "C libmemcached", referenceFor: "memcached") { err, length in
            cref_open_memcached(list, Int32(timeoutMilliseconds), err, length)
        }
    }

    static func sqlite(path: String) async throws -> ReferenceTarget {
        try await open(label: "C sqlite3", referenceFor: "sqlite") { err, length in
            cref_open_sqlite(path, 0, err, length)
        }
    }

    /// Builds the key space `prefix0 ... prefix(count-1)` on the C side.
    func makeKeys(prefix: String, count: Int) async throws -> ReferenceKeys {
        let keys = try await worker.run { () -> SendableHandle in
            guard let keys = cref_keys_new(prefix, UInt32(count)) else { throw BenchError("C reference: out of memory") }
            return SendableHandle(pointer: keys)
        }
        return ReferenceKeys(pointer: keys.pointer, count: count)
    }

    /// Writes every key once (values of `size` bytes), so that gets hit.
    func preload(keys: ReferenceKeys, spec: WorkloadSpec, values: [UInt8]) async throws {
        let handle = SendableHandle(pointer: handle)
        try await worker.run {
            let batch = 100
            var stats = cref_stats()
            var start = 0
            while start < keys.count {
                let n = min(batch, keys.count - start)
                let ops = [UInt8](repeating: OperationKind.set.rawValue, count: 1)
                let idx = (start..<(start + n)).map { UInt32($0) }
                let sizes = [UInt32(spec.valueSize.max)]
                var latency = [UInt64](repeating: 0, count: 1)
                cref_run(handle.pointer, keys.pointer, ops, idx, sizes, 1, n, values, ttlMilliseconds(spec.ttl), &latency, &stats)
                if stats.errors > 0 {
                    throw BenchError("C reference \(self.label): preload failed: \(Self.lastError(&stats))")
                }
                start += n
            }
        }
    }

    /// Runs the workload (one connection, one thread) and measures it.
    func run(
        keys: ReferenceKeys, spec: WorkloadSpec, plan: OperationPlan, seed: UInt64, values: [UInt8],
        warmup: Duration, progress: ProgressLine, title: String, counter: ProgressCounter
    ) async throws -> BenchResult {
        let window = MeasurementWindow(spec: spec, warmup: warmup, callers: 1)
        progress.start(title: title, counter: counter, warmupEnd: window.warmupEnd, end: window.end)
        defer { progress.stop() }
        let handle = SendableHandle(pointer: handle)
        // The reference is always one connection; say so where the workload has many callers.
        let label = spec.concurrency > 1 ? self.label + " (1 conn)" : self.label
        let referenceFor = self.referenceFor
        return try await worker.run {
            var rng = Xoshiro256(seed: seed)
            var histogram = makeLatencyHistogram()
            var measured = cref_stats()
            var discarded = cref_stats()
            let batch = spec.batch
            let chunk = max(4, min(512, 4096 / batch))
            var ops = [UInt8](repeating: 0, count: chunk)
            var idx = [UInt32](repeating: 0, count: chunk * batch)
            var sizes = [UInt32](repeating: 0, count: chunk)
            var latency = [UInt64](repeating: 0, count: chunk)
            var cpus: [Int: Int] = [:]
            var lastEnd: UInt64 = 0
            let quota = UInt64(window.quota[0])
            let ttl = ttlMilliseconds(spec.ttl)
            while true {
                let now = nowNanos()
                let measuring = now >= window.warmupEnd
                var n = chunk
                if measuring {
                    if let end = window.end, now >= end { break }
                    if measured.calls >= quota { break }
                    n = Int(min(UInt64(chunk), quota - measured.calls))
                }
                for i in 0..<n {
                    ops[i] = plan.nextOperation(&rng).rawValue
                    for k in 0..<batch { idx[i * batch + k] = UInt32(plan.nextKey(&rng)) }
                    sizes[i] = UInt32(plan.nextValueSize(&rng))
                }
                if measuring {
                    cref_run(handle.pointer, keys.pointer, ops, idx, sizes, n, batch, values, ttl, &latency, &measured)
                    for i in 0..<n { histogram.recordClamped(latency[i]) }
                    lastEnd = nowNanos()
                    counter.add(keys: UInt64(n * batch))
                    cpus[Int(cref_current_cpu()), default: 0] += 1
                } else {
                    cref_run(handle.pointer, keys.pointer, ops, idx, sizes, n, batch, values, ttl, &latency, &discarded)
                    counter.add(keys: 0)
                }
            }
            let seconds = lastEnd > window.warmupEnd ? Double(lastEnd - window.warmupEnd) / 1e9 : 0
            return BenchResult(
                target: label, kind: .reference, referenceFor: referenceFor, calls: measured.calls, keys: measured.keys,
                seconds: seconds, latency: LatencySummary(histogram), hits: measured.hits, misses: measured.misses,
                errors: measured.errors, firstError: measured.errors > 0 ? Self.lastError(&measured) : nil,
                concurrency: 1, placement: CPUPlacement.describeSamples(cpus, what: "thread"),
                note: "one connection, one thread"
            )
        }
    }

    /// Deletes the key space from the store and frees it.
    func clear(keys: ReferenceKeys) async {
        let handle = SendableHandle(pointer: handle)
        _ = try? await worker.run {
            var err = [CChar](repeating: 0, count: 256)
            _ = cref_clear(handle.pointer, keys.pointer, &err, err.count)
            cref_keys_free(keys.pointer)
        }
    }

    /// Closes the C handle and ends the thread.
    func close() async {
        let handle = SendableHandle(pointer: handle)
        _ = try? await worker.run { cref_close(handle.pointer) }
        worker.shutdown()
    }

    private static func lastError(_ stats: inout cref_stats) -> String {
        withUnsafeBytes(of: &stats.last_error) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// A C key space (`cref_keys`).
///
/// `@unchecked Sendable`: it is read-only after creation and used only on the reference worker.
struct ReferenceKeys: @unchecked Sendable {
    let pointer: OpaquePointer
    let count: Int
}

/// A C pointer passed to and from a worker thread.
///
/// `@unchecked Sendable`: the pointee is used by one thread at a time (the worker's).
struct SendableHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Milliseconds for the C side; 0 means no TTL.
func ttlMilliseconds(_ ttl: Duration?) -> Int64 {
    ttl.map { CacheTTL.milliseconds($0) } ?? 0
}
