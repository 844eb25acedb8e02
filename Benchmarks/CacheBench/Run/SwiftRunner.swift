import CReference
import Histogram

/// The timing of one measurement: a warm-up that is not recorded, then the measured part.
struct MeasurementWindow: Sendable {
    /// `nowNanos()` time when recording starts.
    var warmupEnd: UInt64
    /// `nowNanos()` time when a duration run stops; nil for an operation-count run.
    var end: UInt64?
    /// For an operation-count run: the calls each of `concurrency` callers makes.
    var quota: [Int]

    init(spec: WorkloadSpec, warmup: Duration, callers: Int) {
        let start = nowNanos()
        warmupEnd = start + warmup.nanoseconds
        switch spec.stop {
        case .duration(let duration):
            end = warmupEnd + duration.nanoseconds
            quota = Array(repeating: Int.max, count: callers)
        case .operations(let total):
            end = nil
            quota = (0..<callers).map { total / callers + ($0 < total % callers ? 1 : 0) }
        }
    }
}

/// What one caller measured.
private struct CallerResult: Sendable {
    var histogram = makeLatencyHistogram()
    var calls: UInt64 = 0
    var keys: UInt64 = 0
    var hits: UInt64 = 0
    var misses: UInt64 = 0
    var errors: UInt64 = 0
    var firstError: String?
    var lastEnd: UInt64 = 0
    var cpus: [Int: Int] = [:]
}

/// Runs a workload against a ``BenchClient`` with `spec.concurrency` tasks.
enum SwiftRunner {
    static func run(
        client: any BenchClient, label: String, spec: WorkloadSpec, plan: OperationPlan, seed: UInt64,
        variants: Int, warmup: Duration, progress: ProgressLine, title: String, counter: ProgressCounter
    ) async -> BenchResult {
        let window = MeasurementWindow(spec: spec, warmup: warmup, callers: spec.concurrency)
        progress.start(title: title, counter: counter, warmupEnd: window.warmupEnd, end: window.end)
        defer { progress.stop() }

        var total = CallerResult()
        await withTaskGroup(of: CallerResult.self) { group in
            for caller in 0..<spec.concurrency {
                @Sendable func body() async -> CallerResult {
                    await runCaller(
                        client: client, spec: spec, plan: plan, seed: seed &+ UInt64(caller) &* 0x9E37_79B9,
                        variants: variants, window: window, quota: window.quota[caller], counter: counter,
                        yields: spec.concurrency > 1
                    )
                }
                // Only a client that asks for an executor gets a task with a preference: the Swift
                // runtime marks a task created with `executorPreference:` as having one even when it is
                // nil, and then looks the preference up under a lock on every executor switch (about
                // 0.2 µs per call measured with `perf` in the SQLite get path), which a user's task
                // without a preference never pays.
                if let executor = client.taskExecutor {
                    group.addTask(executorPreference: executor) { await body() }
                } else {
                    group.addTask { await body() }
                }
            }
            for await result in group {
                total.histogram.add(result.histogram)
                total.calls += result.calls
                total.keys += result.keys
                total.hits += result.hits
                total.misses += result.misses
                total.errors += result.errors
                total.firstError = total.firstError ?? result.firstError
                total.lastEnd = max(total.lastEnd, result.lastEnd)
                total.cpus.merge(result.cpus, uniquingKeysWith: +)
            }
        }
        let seconds = total.lastEnd > window.warmupEnd ? Double(total.lastEnd - window.warmupEnd) / 1e9 : 0
        return BenchResult(
            target: label, kind: .swift, calls: total.calls, keys: total.keys, seconds: seconds,
            latency: LatencySummary(total.histogram), hits: total.hits, misses: total.misses,
            errors: total.errors, firstError: total.firstError, concurrency: spec.concurrency,
            placement: CPUPlacement.describeSamples(total.cpus, what: "tasks")
        )
    }

    private static func runCaller(
        client: any BenchClient, spec: WorkloadSpec, plan: OperationPlan, seed: UInt64, variants: Int,
        window: MeasurementWindow, quota: Int, counter: ProgressCounter, yields: Bool
    ) async -> CallerResult {
        var rng = Xoshiro256(seed: seed)
        var result = CallerResult()
        var measuring = false
        var iteration = 0
        var pendingKeys: UInt64 = 0
        var lastFlush = nowNanos()
        let batch = spec.batch
        var indices = [Int](repeating: 0, count: batch)
        while true {
            let start = nowNanos()
            if !measuring && start >= window.warmupEnd { measuring = true }
            if measuring {
                if let end = window.end, start >= end { break }
                if result.calls >= UInt64(quota) { break }
            }
            let operation = plan.nextOperation(&rng)
            var hits = 0
            var failed = false
            do {
                if batch == 1 {
                    let index = plan.nextKey(&rng)
                    switch operation {
                    case .get: hits = try await client.get(index) ? 1 : 0
                    case .set: try await client.set(index, variant: rng.next(below: variants))
                    case .delete: try await client.delete(index)
                    }
                } else {
                    for k in 0..<batch { indices[k] = plan.nextKey(&rng) }
                    switch operation {
                    case .get: hits = try await client.getMany(indices)
                    case .set: try await client.setMany(indices, variant: rng.next(below: variants))
                    case .delete: try await client.deleteMany(indices)
                    }
                }
            } catch {
                failed = true
                if measuring {
                    result.errors += 1
                    if result.firstError == nil { result.firstError = describe(error) }
                }
                counter.errors.wrappingAdd(1, ordering: .relaxed)
            }
            let end = nowNanos()
            if measuring {
                result.histogram.recordClamped(end &- start)
                result.calls += 1
                result.keys += UInt64(batch)
                if operation == .get && !failed {
                    result.hits += UInt64(hits)
                    result.misses += UInt64(batch - hits)
                }
                result.lastEnd = end
                pendingKeys += UInt64(batch)
            }
            iteration &+= 1
            if iteration & 255 == 0 || end &- lastFlush > 50_000_000 {
                counter.add(keys: pendingKeys)
                pendingKeys = 0
                lastFlush = end
                if iteration & 1023 == 0 {
                    result.cpus[Int(cref_current_cpu()), default: 0] += 1
                }
                // Let the other tasks run: an in-memory backend may never suspend, and 64
                // "concurrent" tasks that run one after the other would measure nothing.
                if yields { await Task.yield() }
            }
        }
        counter.add(keys: pendingKeys)
        return result
    }
}
