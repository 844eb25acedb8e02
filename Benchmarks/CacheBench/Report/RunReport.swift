import Foundation

/// Everything one `cache-bench` run found, in the shape `--format json` prints.
struct RunReport: Codable, Sendable {
    var tool = "cache-bench"
    var command: String
    var date: String
    var machine: MachineInfo
    var placement: PlacementInfo
    var backends: [BackendInfo]
    var workloads: [WorkloadResult]
    /// The issues' performance goals that this run's figures can check.
    var goals: [GoalCheck] = []
    var notes: [String]
}

/// The machine the figures come from.
struct MachineInfo: Codable, Sendable {
    var cpus: Int
    var cpuModel: String?
    var kernel: String?
    /// `/proc/loadavg`'s three figures at the start of the run: other work skews results.
    var loadAverageAtStart: String?

    static func current() -> MachineInfo {
        var model: String?
        if let info = CPUPlacement.readSmallFile("/proc/cpuinfo") {
            for line in info.split(separator: "\n") where line.hasPrefix("model name") {
                model = line.split(separator: ":", maxSplits: 1).last?.trimmingWhitespace()
                break
            }
        }
        let kernel = CPUPlacement.readSmallFile("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines)
        let load = CPUPlacement.readSmallFile("/proc/loadavg")?.split(separator: " ").prefix(3).joined(separator: " ")
        return MachineInfo(cpus: CPUPlacement.cpuCount, cpuModel: model, kernel: kernel, loadAverageAtStart: load)
    }
}

/// Where the tool and the servers ran.
struct PlacementInfo: Codable, Sendable {
    /// `--pin` as given (`none`, `split`, `same`, `0/1`).
    var pin: String
    /// The tool's `Cpus_allowed_list` after pinning.
    var toolAllowedCPUs: String?
    /// Sampled CPUs of the tool's running threads over the whole run.
    var toolRanOn: String?
    var servers: [ServerPlacement]
}

/// A server's placement.
struct ServerPlacement: Codable, Sendable {
    var kind: String
    var address: String
    var spawned: Bool
    var pid: Int32?
    var allowedCPUs: String?
    var ranOn: String?
}

/// A backend under test.
struct BackendInfo: Codable, Sendable {
    var name: String
    var detail: String
}

/// One workload's table.
struct WorkloadResult: Codable, Sendable {
    var name: String
    var summary: String
    var mix: String
    var keyCount: Int
    var distribution: String
    var valueSize: String
    var ttl: String?
    var concurrency: Int
    var batch: Int
    var coder: String
    /// Rounds measured per backend (`--rounds`); each row is its median round.
    var rounds: Int
    var rows: [BenchResult]

    init(spec: WorkloadSpec, rows: [BenchResult], rounds: Int = 1) {
        name = spec.name
        summary = spec.summary
        mix = spec.mix.description
        keyCount = spec.keyCount
        distribution = spec.distribution.description
        valueSize = spec.valueSize.description
        ttl = spec.ttl.map { Units.duration($0) }
        concurrency = spec.concurrency
        batch = spec.batch
        coder = spec.coder.rawValue
        self.rounds = rounds
        if rounds > 1 { summary += " · median of \(rounds) rounds" }
        self.rows = rows
        computeRatios()
    }

    /// Fills in each row's ratio to the fastest row and to its C reference (an `-executor` row, the
    /// same backend with callers on its `taskExecutor`, to its backend's).
    mutating func computeRatios() {
        let fastest = rows.map(\.opsPerSecond).max() ?? 0
        for i in rows.indices {
            rows[i].ratioToFastest = fastest > 0 ? rows[i].opsPerSecond / fastest : nil
            let target = rows[i].target
            let backend = target.hasSuffix("-executor") ? String(target.dropLast("-executor".count)) : target
            if rows[i].kind == .swift,
               let reference = rows.first(where: { $0.kind == .reference && $0.referenceFor == backend }),
               reference.opsPerSecond > 0 {
                rows[i].ratioToReference = rows[i].opsPerSecond / reference.opsPerSecond
            } else if rows[i].kind == .reference {
                rows[i].ratioToReference = 1
            }
        }
    }
}
