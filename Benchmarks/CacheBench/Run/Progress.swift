import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Counters that running tasks bump and the progress line reads.
final class ProgressCounter: Sendable {
    let keys = Atomic<UInt64>(0)
    let errors = Atomic<UInt64>(0)
    /// `nowNanos()` of the last report from any caller, warm-up included: the watchdog's pulse.
    let lastActivity = Atomic<UInt64>(nowNanos())

    func add(keys count: UInt64) {
        keys.wrappingAdd(count, ordering: .relaxed)
        lastActivity.store(nowNanos(), ordering: .relaxed)
    }
}

/// Draws a progress line on the terminal while one measurement runs, every quarter second.
///
/// Only on a terminal (``Terminal/stderrIsTTY``) and unless `--no-progress`; never mixes with
/// results because ``Terminal`` erases it before writing anything else.
final class ProgressLine: Sendable {
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)
    let enabled: Bool

    init(enabled: Bool) {
        self.enabled = enabled && Terminal.stderrIsTTY
    }

    /// Starts drawing `title` with the rate of `counter`; `warmupEnd` and `end` are `nowNanos()` times
    /// (`end` nil for operation-count runs).
    func start(title: String, counter: ProgressCounter, warmupEnd: UInt64, end: UInt64?) {
        guard enabled else { return }
        stop()
        let handle = Task.detached(priority: .low) {
            var lastKeys: UInt64 = 0
            var lastTime = nowNanos()
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                if Task.isCancelled { break }
                let now = nowNanos()
                let keys = counter.keys.load(ordering: .relaxed)
                let rate = Double(keys &- lastKeys) / (Double(now &- lastTime) / 1e9)
                lastKeys = keys
                lastTime = now
                var line = title + "  "
                if now < warmupEnd {
                    Terminal.progress(line + "warming up")
                    continue
                } else if let end {
                    let total = Double(end &- warmupEnd) / 1e9
                    let elapsed = min(total, Double(now &- warmupEnd) / 1e9)
                    line += Units.fixed(elapsed, 1) + "s/" + Units.fixed(total, 1) + "s"
                } else {
                    line += Units.grouped(Double(keys)) + " keys"
                }
                line += "  " + Units.compact(rate) + " ops/s"
                let errors = counter.errors.load(ordering: .relaxed)
                if errors > 0 { line += "  \(errors) errors" }
                Terminal.progress(line)
            }
        }
        task.withLock { $0 = handle }
    }

    /// Shows a fixed message (for set-up steps).
    func show(_ text: String) {
        guard enabled else { return }
        Terminal.progress(text)
    }

    /// Stops drawing and erases the line.
    func stop() {
        let handle = task.withLock { current -> Task<Void, Never>? in
            defer { current = nil }
            return current
        }
        handle?.cancel()
        Terminal.clearProgress()
    }
}

/// Ends the process with a clear error if a measurement stops making progress: a backend that
/// stops answering must never hang the tool.
final class Watchdog: Sendable {
    private let task: Task<Void, Never>

    /// Fires when `counter` shows no activity for `stall`.
    init(stall: Duration, counter: ProgressCounter, what: String) {
        task = Task.detached {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: .seconds(1))
                } catch {
                    return
                }
                let idle = nowNanos() &- counter.lastActivity.load(ordering: .relaxed)
                if idle > stall.nanoseconds && idle < UInt64.max / 2 {
                    await Self.fire("\(what) made no progress for \(Units.duration(stall))")
                }
            }
        }
    }

    private static func fire(_ text: String) async {
        Terminal.writeError("cache-bench: error: \(text) (a server stopped answering?); giving up")
        await Cleanup.shared.runAll()
        exit(1)
    }

    func cancel() {
        task.cancel()
    }
}
