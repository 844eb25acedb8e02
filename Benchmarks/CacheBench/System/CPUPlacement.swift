import Caching
import CReference
import Foundation
import Synchronization

/// Where the tool and the servers run: allowed CPU lists, sampled CPUs, and pinning.
///
/// On a small machine the placement changes the figures a lot: a client that shares a core
/// with its server wakes it without a cross-core interrupt and can be about three times faster
/// per connection than one on the other core. So every report says where things ran.
enum CPUPlacement {
    /// CPUs configured on this machine.
    static let cpuCount = Int(cref_cpu_count())

    /// `Cpus_allowed_list` of a process (`nil`: this process), such as `0-1`.
    static func allowedList(pid: Int32? = nil) -> String? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/status"
        guard let text = readSmallFile(path) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return line.dropFirst("Cpus_allowed_list:".count).trimmingWhitespace()
        }
        return nil
    }

    /// Parses a CPU list such as `0`, `0,1` or `0-3,6`.
    static func parseList(_ text: String) throws(BenchError) -> [Int] {
        var cpus: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0.trimmingWhitespace()) }
            guard let low = bounds.first ?? nil, let high = bounds.last ?? nil, low >= 0, low <= high else {
                throw BenchError("bad CPU list '\(text)': write CPU numbers such as 0, 0,1 or 0-3")
            }
            guard high < cpuCount else {
                throw BenchError("bad CPU list '\(text)': this machine has CPUs 0-\(cpuCount - 1)")
            }
            cpus.append(contentsOf: low...high)
        }
        guard !cpus.isEmpty else { throw BenchError("bad CPU list '\(text)': it is empty") }
        return Array(Set(cpus)).sorted()
    }

    /// `0-1,3` for `[0, 1, 3]`.
    static func formatList(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = cpus.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// Restricts every thread of process `pid` (`nil`: this process) to `cpus`. Threads created
    /// later inherit the mask from their creator.
    static func pin(pid: Int32? = nil, to cpus: [Int]) throws(BenchError) {
        let base = "/proc/\(pid.map(String.init) ?? "self")/task"
        let tids = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap { Int32($0) }
        let targets = tids.isEmpty ? [pid ?? 0] : tids
        for tid in targets {
            let cpus32 = cpus.map { Int32($0) }
            let result = cref_set_affinity(tid, cpus32, Int32(cpus32.count))
            if result != 0 && result != ESRCH {
                throw BenchError("cannot pin thread \(tid) to CPUs \(formatList(cpus)): \(String(cString: strerror(result)))")
            }
        }
    }

    /// `tasks on cpu0 52%, cpu1 48%` from CPU sample counts.
    static func describeSamples(_ samples: [Int: Int], what: String) -> String? {
        shares(samples).map { "\(what) on \($0)" }
    }

    /// `cpu0 52%, cpu1 48%` from CPU sample counts.
    static func shares(_ samples: [Int: Int]) -> String? {
        let total = samples.filter { $0.key >= 0 }.values.reduce(0, +)
        guard total > 0 else { return nil }
        let parts = samples.filter { $0.key >= 0 }.sorted { $0.key < $1.key }.map { cpu, count in
            "cpu\(cpu) \(Int((Double(count) * 100 / Double(total)).rounded()))%"
        }
        return parts.joined(separator: ", ")
    }

    /// A file from /proc, read whole (their size reads as 0, so read until the end).
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// For each thread of `pid` that is running now (state R): the CPU it is on.
    static func runningThreadCPUs(pid: Int32?) -> [Int] {
        let base = "/proc/\(pid.map(String.init) ?? "self")/task"
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: base) else { return [] }
        var cpus: [Int] = []
        for tid in tids {
            guard let stat = readSmallFile("\(base)/\(tid)/stat"), let close = stat.lastIndex(of: ")") else { continue }
            // Fields after "(comm)": state is field 3, processor is field 39.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 36, fields[0] == "R", let cpu = Int(fields[36]) else { continue }
            cpus.append(cpu)
        }
        return cpus
    }
}

/// How `--pin` places the tool and the servers it spawns.
struct PinSpec: Sendable, Equatable, CustomStringConvertible {
    var tool: [Int]?
    var servers: [Int]?
    var name: String

    static let none = PinSpec(tool: nil, servers: nil, name: "none")

    /// Parses `none`, `split` (tool on CPU 0, servers on the last CPU), `same` (all on CPU 0),
    /// or `TOOL/SERVERS` CPU lists such as `0/1` or `0-1/1` (either side may be empty).
    static func parse(_ text: String) throws(BenchError) -> PinSpec {
        let last = CPUPlacement.cpuCount - 1
        switch text.lowercased() {
        case "none", "": return .none
        case "split":
            guard last > 0 else { throw BenchError("--pin split needs at least 2 CPUs; this machine has 1") }
            return PinSpec(tool: [0], servers: [last], name: "split")
        case "same": return PinSpec(tool: [0], servers: [0], name: "same")
        default:
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw BenchError("bad --pin '\(text)': use split, same, none or TOOL/SERVERS CPU lists such as 0/1")
            }
            let tool = parts[0].isEmpty ? nil : try CPUPlacement.parseList(String(parts[0]))
            let servers = parts[1].isEmpty ? nil : try CPUPlacement.parseList(String(parts[1]))
            return PinSpec(tool: tool, servers: servers, name: text)
        }
    }

    var description: String {
        if tool == nil && servers == nil { return "not pinned" }
        let t = tool.map { "tool on CPU \(CPUPlacement.formatList($0))" } ?? "tool not pinned"
        let s = servers.map { "spawned servers on CPU \(CPUPlacement.formatList($0))" } ?? "servers not pinned"
        return "\(t), \(s)"
    }
}

/// Samples, every 50 ms on its own thread, which CPUs the running threads of this process and
/// of the given server processes are on.
final class PlacementSampler: Sendable {
    private let worker = BlockingWorker(name: "cache-bench-sampler")
    private let running = Atomic<Bool>(false)
    private let samples = Mutex<[String: [Int: Int]]>([:])

    /// Starts sampling `processes` (name → pid; `nil` pid: this process).
    func start(_ processes: [(name: String, pid: Int32?)]) {
        running.store(true, ordering: .relaxed)
        samples.withLock { $0 = [:] }
        let list = processes.map { SampledProcess(name: $0.name, pid: $0.pid) }
        Task.detached { [self] in
            _ = try? await worker.run { [self] in
                while running.load(ordering: .relaxed) {
                    for process in list {
                        let cpus = CPUPlacement.runningThreadCPUs(pid: process.pid)
                        samples.withLock { all in
                            for cpu in cpus { all[process.name, default: [:]][cpu, default: 0] += 1 }
                        }
                    }
                    usleep(50_000)
                }
            }
        }
    }

    /// Stops sampling and returns `name: cpu0 70%, cpu1 30%` lines.
    func stop() -> [String: String] {
        running.store(false, ordering: .relaxed)
        let all = samples.withLock { $0 }
        var result: [String: String] = [:]
        for (name, counts) in all {
            result[name] = CPUPlacement.shares(counts)
        }
        return result
    }

    private struct SampledProcess: Sendable {
        var name: String
        var pid: Int32?
    }
}
