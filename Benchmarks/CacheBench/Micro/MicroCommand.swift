import ArgumentParser
import Caching
import Foundation
import Synchronization

/// The record of issue 2's coder and front goals: a small struct of five fields.
struct Profile: Codable, Sendable, Equatable {
    var id: Int
    var name: String
    var email: String
    var age: Int
    var active: Bool

    static func sample(_ i: Int) -> Profile {
        Profile(id: 100_000 + i, name: "User Number \(i)", email: "user\(i)@example.com", age: 20 + i % 60, active: i % 3 != 0)
    }
}

/// The same five fields as ``Profile``, also coded field by field (`BinaryCodable`): its
/// `BinaryCoder` bytes are the same as `Profile`'s, so one cached entry reads as either.
struct FieldProfile: Codable, Sendable, Equatable, BinaryCodable {
    var id: Int
    var name: String
    var email: String
    var age: Int
    var active: Bool

    static let binaryFields = BinaryFields("id", "name", "email", "age", "active")

    init(id: Int, name: String, email: String, age: Int, active: Bool) {
        self.id = id
        self.name = name
        self.email = email
        self.age = age
        self.active = active
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(Int.self)
        name = try fields.decode(String.self)
        email = try fields.decode(String.self)
        age = try fields.decode(Int.self)
        active = try fields.decode(Bool.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
        try fields.encode(name)
        try fields.encode(email)
        try fields.encode(age)
        try fields.encode(active)
    }

    static func sample(_ i: Int) -> FieldProfile {
        let p = Profile.sample(i)
        return FieldProfile(id: p.id, name: p.name, email: p.email, age: p.age, active: p.active)
    }
}

/// `cache-bench micro`: the core's hot paths, single task, against in-process baselines.
struct MicroCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "micro",
        abstract: "Measure the core's hot paths: InMemoryBackend get vs a bare Mutex dictionary, CacheFront.get with BinaryCoder, BinaryCoder vs JSONCoder.",
        discussion: "Build in release mode (scripts/bench.sh does): debug builds are 10-50 times slower. Each figure is the median of --rounds rounds of --duration each, one task."
    )

    @Option(help: ArgumentHelp("Time per round of each measurement.", valueName: "duration"))
    var duration: String = "1s"

    @Option(help: "Rounds per measurement; the median is reported.")
    var rounds: Int = 3

    @Option(help: "Distinct keys in the lookup tables.")
    var keys: Int = 10_000

    @Option(help: "Output format: table, json, csv or markdown.")
    var format: OutputFormat = .table

    @Option(help: ArgumentHelp("Pin the tool to CPUs (a list such as 0 or 0-1), or none.", valueName: "cpus"))
    var pin: String = "none"

    @Option(help: ArgumentHelp("Run only the measurements whose name contains this text (for profiling one path, e.g. 'BinaryCoder').", valueName: "text"))
    var only: String?

    @Option(help: ArgumentHelp("A Python with fastapi-cache2 installed: measures fastapi-cache's InMemoryBackend + JsonCoder get-hit on the same keys in the same run, for the 10× goal. Default: $CACHE_BENCH_PYTHON; without either, the goal uses the 266k/s the issue quotes.", valueName: "path"))
    var python: String?

    func run() async throws {
        let (perRound, cpus) = try BenchError.usage { () throws -> (Duration, [Int]?) in
            let perRound = try parseDuration(duration, what: "--duration")
            guard (1...99).contains(rounds) else { throw BenchError("--rounds must be between 1 and 99 (got \(rounds))") }
            guard (1...10_000_000).contains(keys) else { throw BenchError("--keys must be between 1 and 10,000,000 (got \(keys))") }
            return (perRound, pin == "none" ? nil : try CPUPlacement.parseList(pin))
        }
        if let cpus { try CPUPlacement.pin(to: cpus) }
        Cleanup.shared.installSignalHandlers()
        let python = python ?? ProcessInfo.processInfo.environment["CACHE_BENCH_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let bench = MicroBench(perRound: perRound, rounds: rounds, keyCount: keys, only: only, python: python)
        let report = try await bench.run()
        Terminal.write(try MicroReport.render(report, format: format))
    }
}

/// One micro measurement.
struct MicroResult: Codable, Sendable {
    var name: String
    var opsPerSecond: Double
    var nanosecondsPerOp: Double
    /// The spread of the rounds, (max - min) / median.
    var spread: Double
    var bytes: Int?
}

/// A goal of issue 2 checked against the micro figures.
struct MicroGoal: Codable, Sendable {
    var goal: String
    var measured: String
    var met: Bool
}

struct MicroReportData: Codable, Sendable {
    var tool = "cache-bench micro"
    var machine: MachineInfo
    var toolAllowedCPUs: String?
    var results: [MicroResult]
    var goals: [MicroGoal]
    var notes: [String]
}

/// Runs the measurements.
struct MicroBench {
    let perRound: Duration
    let rounds: Int
    let keyCount: Int
    /// When set, only measurements whose name contains it run.
    var only: String? = nil
    /// A Python with fastapi-cache2, for the same-run reference.
    var python: String? = nil

    private func selected(_ name: String) -> Bool {
        guard let only else { return true }
        return name.localizedCaseInsensitiveContains(only)
    }

    func run() async throws -> MicroReportData {
        let progress = ProgressLine(enabled: true)
        defer { progress.stop() }
        let keys = (0..<keyCount).map { "micro:users:\($0)" }
        var order = Array(0..<keyCount)
        var rng = Xoshiro256(seed: 7)
        order.shuffle(using: &rng)
        let lookups = order.map { keys[$0] }
        let value = [UInt8](repeating: 0x61, count: 100)
        var results: [MicroResult] = []
        var notes: [String] = []

        // 1. The baseline: a bare Mutex<[String: [UInt8]]>.
        let dictionary = Mutex<[String: [UInt8]]>([:])
        dictionary.withLock { d in for key in keys { d[key] = value } }
        progress.show("micro: Mutex<[String: [UInt8]]> lookup")
        let bare = try await measure("Mutex<[String: [UInt8]]> lookup (baseline)") { i in
            dictionary.withLock { $0[lookups[i % lookups.count]] } != nil
        }
        if let bare { results.append(bare) }

        // 2. InMemoryBackend get-hit.
        let backend = try InMemoryBackend(maxEntries: max(keyCount * 2, 1000), maxBytes: 1 << 30, shardCount: InMemoryBackend.defaultShardCount)
        for key in keys { try await backend.set(key, to: value, ttl: .seconds(3600)) }
        progress.show("micro: InMemoryBackend.get")
        let memory = try await measureAsync("InMemoryBackend.get hit (100 B)") { i in
            try await backend.get(lookups[i % lookups.count]) != nil
        }
        if let memory { results.append(memory) }

        // 3. CacheFront.get(_:as:) of a 5-field struct, BinaryCoder and JSONCoder.
        var fronts: [(String, CacheFront)] = []
        var fastapiMeasured: Double?
        for (name, coder) in [("BinaryCoder", BinaryCoder() as any Coder), ("JSONCoder", JSONCoder() as any Coder)] {
            let store = try InMemoryBackend(maxEntries: max(keyCount * 2, 1000), maxBytes: 1 << 30, shardCount: InMemoryBackend.defaultShardCount)
            let front = CacheFront(backend: store, prefix: "micro", defaultTTL: .seconds(3600), coder: coder).namespace("users")
            for i in 0..<keyCount { try await front.set(Profile.sample(i), forKey: String(i)) }
            fronts.append((name, front))
        }
        let frontKeys = order.map { String($0) }
        // The front's own cost: the same 100-byte values as step 2, read as raw bytes (no coder).
        let rawFront = CacheFront(backend: backend, prefix: "micro").namespace("users")
        if let result = try await measureAsync("CacheFront.get(_:as: [UInt8]) raw (100 B)", { i in
            try await rawFront.get(frontKeys[i % frontKeys.count], as: [UInt8].self) != nil
        }) {
            results.append(result)
        }
        // The front's batch path: 100 keys per call, reported per key.
        let batches = (0..<64).map { b in (0..<100).map { frontKeys[(b * 100 + $0) % frontKeys.count] } }
        if var result = try await measureAsync("CacheFront.get([100 keys], as: [UInt8]) raw, per key", { i in
            try await rawFront.get(batches[i & 63], as: [UInt8].self).count == 100
        }) {
            result.opsPerSecond *= 100
            result.nanosecondsPerOp /= 100
            results.append(result)
        }
        for (name, front) in fronts {
            progress.show("micro: CacheFront.get with \(name)")
            if let result = try await measureAsync("CacheFront.get(_:as: Profile) with \(name)", { i in
                try await front.get(frontKeys[i % frontKeys.count], as: Profile.self) != nil
            }) {
                results.append(result)
            }
            // The same entries read field by field (`BinaryCodable`), which only BinaryCoder does.
            // With a Python, fastapi-cache's rounds alternate with these (the 10× goal's ratio).
            let goalRow = "CacheFront.get(_:as: Profile) with BinaryCoder, BinaryCodable"
            if name == "BinaryCoder", selected(goalRow) {
                var reference: FastAPICacheReference.Session?
                var referenceRates: [Double] = []
                if let python {
                    progress.show("micro: starting fastapi-cache (Python) on \(keyCount) keys")
                    do {
                        reference = try FastAPICacheReference.Session(python: python, keys: keyCount, seconds: Double(perRound.nanoseconds) / 1e9)
                    } catch {
                        notes.append("fastapi-cache reference not measured: \(error)")
                    }
                }
                progress.show("micro: \(goalRow)" + (reference == nil ? "" : ", alternating with fastapi-cache"))
                let result = try await measureAsync(goalRow, { i in
                    try await front.get(frontKeys[i % frontKeys.count], as: FieldProfile.self) != nil
                }, afterRound: {
                    guard let session = reference else { return }
                    do {
                        referenceRates.append(try session.round())
                    } catch {
                        notes.append("fastapi-cache reference not measured: \(error)")
                        session.stop()
                        reference = nil
                    }
                })
                reference?.stop()
                if let result { results.append(result) }
                if referenceRates.count == rounds {
                    let median = referenceRates.sorted()[rounds / 2]
                    let spread = ((referenceRates.max() ?? 0) - (referenceRates.min() ?? 0)) / median
                    fastapiMeasured = median
                    results.append(MicroResult(name: "fastapi-cache InMemoryBackend.get + JsonCoder (Python, same rounds)", opsPerSecond: median, nanosecondsPerOp: 1e9 / median, spread: spread))
                }
            }
        }

        // 4. Coders: encode + decode of the same struct, and the encoded size.
        let profiles = (0..<64).map(Profile.sample)
        var coderResults: [String: MicroResult] = [:]
        for (name, coder) in [("BinaryCoder", BinaryCoder() as any Coder), ("JSONCoder", JSONCoder() as any Coder)] {
            progress.show("micro: \(name) encode + decode")
            let size = try coder.encode(profiles[1]).count
            if var result = try await measure("\(name) encode + decode (Profile)", { i in
                let profile = profiles[i & 63]
                let bytes = try coder.encode(profile)
                return try coder.decode(Profile.self, from: bytes).id == profile.id
            }) {
                result.bytes = size
                coderResults[name] = result
                results.append(result)
            }
            // Decode alone: the share of a front get that is the coder's.
            let encoded = try profiles.map { try coder.encode($0) }
            if let result = try await measure("\(name) decode (Profile)", { i in
                try coder.decode(Profile.self, from: encoded[i & 63]).id == profiles[i & 63].id
            }) {
                results.append(result)
            }
        }

        // BinaryCoder field by field (`BinaryCodable`): the same bytes as the Codable path.
        let fieldProfiles = (0..<64).map(FieldProfile.sample)
        let binary = BinaryCoder()
        progress.show("micro: BinaryCoder field by field")
        if var result = try await measure("BinaryCoder encode + decode (Profile, BinaryCodable)", { i in
            let profile = fieldProfiles[i & 63]
            let bytes = try binary.encode(profile)
            return try binary.decode(FieldProfile.self, from: bytes).id == profile.id
        }) {
            result.bytes = try binary.encode(fieldProfiles[1]).count
            results.append(result)
        }
        let fieldEncoded = try fieldProfiles.map { try binary.encode($0) }
        if let result = try await measure("BinaryCoder decode (Profile, BinaryCodable)", { i in
            try binary.decode(FieldProfile.self, from: fieldEncoded[i & 63]).id == fieldProfiles[i & 63].id
        }) {
            results.append(result)
        }

        var goals: [MicroGoal] = []
        if let memory, let bare {
            let memoryRatio = memory.opsPerSecond / bare.opsPerSecond
            goals.append(MicroGoal(goal: "InMemoryBackend get-hit ≥ 0.5× bare Mutex dictionary",
                                   measured: "\(Units.fixed(memoryRatio, 2))×", met: memoryRatio >= 0.5))
        }
        // fastapi-cache: measured in this run when a Python with it is given, else the issue's figure.
        let fastapi = fastapiMeasured.map { (rate: $0, label: "\(Units.compact($0))/s measured in the same rounds, \(keyCount) keys") }
            ?? (rate: 266_000.0, label: "266k/s, the issue's figure; not measured in this run")
        if let binaryFront = results.first(where: { $0.name.hasPrefix("CacheFront.get") && $0.name.hasSuffix("BinaryCoder, BinaryCodable") }) {
            let ratio = binaryFront.opsPerSecond / fastapi.rate
            goals.append(MicroGoal(goal: "CacheFront.get + BinaryCoder (BinaryCodable) ≥ 10× fastapi-cache InMemory+JsonCoder (\(fastapi.label))",
                                   measured: "\(Units.compact(binaryFront.opsPerSecond))/s = \(Units.fixed(ratio, 1))×", met: ratio >= 10))
        }
        if let codableFront = results.first(where: { $0.name.hasPrefix("CacheFront.get") && $0.name.hasSuffix("with BinaryCoder") }) {
            let ratio = codableFront.opsPerSecond / fastapi.rate
            notes.append("CacheFront.get + BinaryCoder through Codable alone (no BinaryCodable): \(Units.compact(codableFront.opsPerSecond))/s = \(Units.fixed(ratio, 1))× fastapi-cache")
        }
        if let binary = coderResults["BinaryCoder"], let json = coderResults["JSONCoder"], let bb = binary.bytes, let jb = json.bytes {
            let speed = binary.opsPerSecond / json.opsPerSecond
            let size = Double(bb) / Double(jb)
            goals.append(MicroGoal(goal: "BinaryCoder encode+decode ≥ 3× JSONCoder", measured: "\(Units.fixed(speed, 1))×", met: speed >= 3))
            goals.append(MicroGoal(goal: "BinaryCoder output ≤ 60% of JSONCoder's", measured: "\(bb) B vs \(jb) B = \(Units.fixed(size * 100, 0))%", met: size <= 0.6))
        }
        #if DEBUG
        notes.append("debug build: figures are far below release; build with -c release (scripts/bench.sh does)")
        #endif
        return MicroReportData(machine: .current(), toolAllowedCPUs: CPUPlacement.allowedList(), results: results, goals: goals, notes: notes)
    }

    /// Rounds of a synchronous body; the median round, or `nil` when `--only` excludes it.
    private func measure(_ name: String, _ body: (Int) throws -> Bool) async throws -> MicroResult? {
        guard selected(name) else { return nil }
        var rates: [Double] = []
        var sink = 0
        for _ in 0..<rounds {
            let end = nowNanos() + perRound.nanoseconds
            let start = nowNanos()
            var i = 0
            var now = start
            while now < end {
                for _ in 0..<1024 {
                    if try body(i) { sink &+= 1 }
                    i &+= 1
                }
                now = nowNanos()
            }
            rates.append(Double(i) / (Double(now - start) / 1e9))
            await Task.yield()
        }
        return try summarize(name, rates, sink: sink)
    }

    /// Rounds of an async body; the median round, or `nil` when `--only` excludes it.
    private func measureAsync(
        _ name: String, _ body: (Int) async throws -> Bool, afterRound: () async throws -> Void = {}
    ) async throws -> MicroResult? {
        guard selected(name) else { return nil }
        var rates: [Double] = []
        var sink = 0
        for _ in 0..<rounds {
            let end = nowNanos() + perRound.nanoseconds
            let start = nowNanos()
            var i = 0
            var now = start
            while now < end {
                for _ in 0..<1024 {
                    if try await body(i) { sink &+= 1 }
                    i &+= 1
                }
                now = nowNanos()
            }
            rates.append(Double(i) / (Double(now - start) / 1e9))
            try await afterRound()
        }
        return try summarize(name, rates, sink: sink)
    }

    private func summarize(_ name: String, _ rates: [Double], sink: Int) throws -> MicroResult {
        let sorted = rates.sorted()
        let median = sorted[sorted.count / 2]
        // `sink` counts hits: a lookup that found nothing means the measurement is wrong.
        guard sink > 0 else { throw BenchError("micro benchmark \(name) found nothing: the set-up is broken") }
        let spread = median > 0 ? ((sorted.last ?? 0) - (sorted.first ?? 0)) / median : 0
        return MicroResult(name: name, opsPerSecond: median, nanosecondsPerOp: 1e9 / median, spread: spread, bytes: nil)
    }
}

/// Output of the micro report.
enum MicroReport {
    static func render(_ report: MicroReportData, format: OutputFormat) throws -> String {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(report), as: UTF8.self)
        case .csv:
            var out = ["measurement,ops_per_sec,ns_per_op,spread,bytes"]
            for r in report.results {
                out.append("\"\(r.name)\",\(Units.fixed(r.opsPerSecond, 0)),\(Units.fixed(r.nanosecondsPerOp, 1)),\(Units.fixed(r.spread, 3)),\(r.bytes.map(String.init) ?? "")")
            }
            return out.joined(separator: "\n")
        case .markdown:
            var out = ["| measurement | ops/s | ns/op | bytes |", "| --- | ---: | ---: | ---: |"]
            for r in report.results {
                out.append("| \(r.name) | \(Units.grouped(r.opsPerSecond)) | \(Units.fixed(r.nanosecondsPerOp, 1)) | \(r.bytes.map(String.init) ?? "") |")
            }
            out.append("")
            out.append("| goal (issue 2) | measured | result |")
            out.append("| --- | --- | --- |")
            for g in report.goals { out.append("| \(g.goal) | \(g.measured) | \(g.met ? "met" : "missed") |") }
            out.append(contentsOf: report.notes.map { "\n- " + $0 })
            return out.joined(separator: "\n")
        case .table:
            let width = report.results.map(\.name.count).max() ?? 10
            var out = ["machine: \(report.machine.cpus) CPUs\(report.machine.cpuModel.map { " (\($0))" } ?? ""), load \(report.machine.loadAverageAtStart ?? "?"); tool allowed CPUs \(report.toolAllowedCPUs ?? "?")", ""]
            out.append("measurement".padding(toLength: width, withPad: " ", startingAt: 0) + "        ops/s     ns/op   spread  bytes")
            out.append(String(repeating: "-", count: width + 42))
            for r in report.results {
                let ops = Units.grouped(r.opsPerSecond)
                let ns = Units.fixed(r.nanosecondsPerOp, 1)
                let spread = Units.fixed(r.spread * 100, 0) + "%"
                out.append(r.name.padding(toLength: width, withPad: " ", startingAt: 0)
                           + String(repeating: " ", count: max(1, 13 - ops.count)) + ops
                           + String(repeating: " ", count: max(1, 10 - ns.count)) + ns
                           + String(repeating: " ", count: max(1, 9 - spread.count)) + spread
                           + (r.bytes.map { "  " + String($0) } ?? ""))
            }
            out.append("")
            out.append("goals (issue 2):")
            for g in report.goals { out.append("  \(g.goal): \(g.measured) (\(g.met ? "met" : "MISSED"))") }
            if !report.notes.isEmpty { out.append(""); out.append(contentsOf: report.notes) }
            return out.joined(separator: "\n")
        }
    }
}
