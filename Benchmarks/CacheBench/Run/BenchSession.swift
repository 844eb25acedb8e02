import Caching
import Foundation

/// One backend comparison, from finding the servers to printing the report.
struct BenchSession {
    let settings: RunSettings
    private var notes: [String] = []
    private var servers: [ServerPlacement] = []
    private var spawned: [SpawnedServer] = []
    private let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    private let progress: ProgressLine

    init(settings: RunSettings) {
        self.settings = settings
        progress = ProgressLine(enabled: settings.progress)
    }

    mutating func run() async throws {
        if let cpus = settings.pin.tool { try CPUPlacement.pin(to: cpus) }
        let directory = try makeTemporaryDirectory()
        let sqliteDirectory = settings.sqliteDir ?? directory

        // Which backends, and where their servers are.
        let explicit = settings.kinds != nil
        // The opt-in rows only on request.
        var kinds = settings.kinds ?? BackendKind.allCases.filter { $0 != .sqliteExecutor && $0 != .memcachedExecutor }
        var redis: RedisAddress?
        var memcached: [HostPort]?
        if kinds.contains(.redis) {
            redis = try await resolveRedis(explicit: explicit, directory: directory)
            if redis == nil { kinds.removeAll { $0 == .redis } }
        }
        if kinds.contains(.memcached) || kinds.contains(.memcachedExecutor) {
            memcached = try await resolveMemcached(explicit: explicit, directory: directory)
            if memcached == nil { kinds.removeAll { $0 == .memcached || $0 == .memcachedExecutor } }
        }
        let maxKeys = settings.specs.map(\.keyCount).max() ?? 0
        let maxValue = settings.specs.map(\.valueSize.max).max() ?? 0
        let config = BackendConfig(
            redis: redis, memcached: memcached, sqlitePath: sqliteDirectory + "/cache-bench.sqlite",
            connectTimeout: settings.connectTimeout, memoryEntries: maxKeys * 2, memoryBytes: maxKeys * (maxValue + 128) * 2,
            verbose: settings.verbose
        )

        // Open the Swift backends.
        var targets: [BackendTarget] = []
        for kind in kinds {
            progress.show("opening \(kind.rawValue)")
            do {
                let target = try await BackendTarget.open(kind, config: config, detail: detail(kind, config: config))
                targets.append(target)
            } catch {
                let serverGiven = (kind == .redis && settings.redis != nil) || ((kind == .memcached || kind == .memcachedExecutor) && settings.memcached != nil)
                if explicit || serverGiven { throw BenchError("\(kind.rawValue): \(describe(error))") }
                notes.append("\(kind.rawValue) skipped: \(describe(error))")
            }
        }

        // Open the C references.
        var references: [ReferenceTarget] = []
        if settings.reference {
            for kind in kinds {
                progress.show("opening the C reference for \(kind.rawValue)")
                switch kind {
                case .memory: continue
                case .sqlite, .sqliteExecutor:
                    // One C loop is the reference of both SQLite targets.
                    if !references.contains(where: { $0.referenceFor == "sqlite" }) {
                        references.append(try await ReferenceTarget.sqlite(path: sqliteDirectory + "/cache-bench-reference.sqlite"))
                    }
                case .redis:
                    if let redis { references.append(try await ReferenceTarget.redis(redis, timeoutMilliseconds: timeoutMilliseconds)) }
                case .memcached, .memcachedExecutor:
                    // One C loop is the reference of both memcached targets.
                    if let memcached, !references.contains(where: { $0.referenceFor == "memcached" }) {
                        references.append(try await ReferenceTarget.memcached(memcached, timeoutMilliseconds: timeoutMilliseconds))
                    }
                }
            }
        }
        progress.stop()
        guard !targets.isEmpty || !references.isEmpty else {
            throw BenchError("no backend to measure: \(notes.joined(separator: "; "))")
        }

        var report = RunReport(
            command: settings.commandLine, date: ISO8601DateFormatter().string(from: Date()), machine: .current(),
            placement: PlacementInfo(pin: settings.pin.name, toolAllowedCPUs: CPUPlacement.allowedList(), toolRanOn: nil, servers: servers),
            backends: targets.map { BackendInfo(name: $0.label, detail: $0.detail) }
                + references.map { BackendInfo(name: $0.label, detail: "C reference for \($0.referenceFor): one connection, one thread") },
            workloads: [], notes: notes
        )
        if settings.format == .table {
            for line in ReportRenderer.preamble(report) { Terminal.write(line) }
            for note in notes { Terminal.write(note) }
        }

        let sampler = PlacementSampler()
        sampler.start([(name: "tool", pid: nil)] + spawned.map { (name: "\($0.kind)-\($0.pid)", pid: Optional($0.pid)) })
        for (index, spec) in settings.specs.enumerated() {
            let title = "[\(index + 1)/\(settings.specs.count) \(spec.name)]"
            let result = try await runWorkload(spec, title: title, targets: targets, references: references, redis: redis)
            report.workloads.append(result)
            if settings.format == .table {
                Terminal.write("")
                Terminal.write(ReportRenderer.table(result))
            }
        }
        let sampled = sampler.stop()
        report.placement.toolRanOn = sampled["tool"]
        for i in report.placement.servers.indices {
            if let pid = report.placement.servers[i].pid, let kind = spawned.first(where: { $0.pid == pid })?.kind {
                report.placement.servers[i].ranOn = sampled["\(kind)-\(pid)"]
            }
        }

        report.goals = Goals.check(report.workloads)
        for reference in references { await reference.close() }
        for target in targets { try? await target.backend.close() }

        switch settings.format {
        case .table:
            if !report.goals.isEmpty {
                Terminal.write("")
                for line in Goals.lines(report.goals) { Terminal.write(line) }
            }
            Terminal.write("")
            Terminal.write(ReportRenderer.placementLine(report.placement))
        default:
            Terminal.write(try ReportRenderer.render(report, format: settings.format))
        }
        if let chart = settings.chart {
            do {
                try SVGChart.render(report).write(toFile: chart, atomically: true, encoding: .utf8)
                Terminal.note("chart written to \(chart)")
            } catch {
                throw BenchError("cannot write the chart to \(chart): \(error.localizedDescription)")
            }
        }
    }

    private var timeoutMilliseconds: Int { Int(settings.connectTimeout.nanoseconds / 1_000_000) }

    // MARK: One workload

    /// One thing measured in a workload.
    private enum Cell {
        case swift(BackendTarget)
        case reference(ReferenceTarget)
        case redisBenchmark(RedisAddress)
    }

    private func runWorkload(
        _ spec: WorkloadSpec, title: String, targets: [BackendTarget], references: [ReferenceTarget], redis: RedisAddress?
    ) async throws -> WorkloadResult {
        var cells = targets.map(Cell.swift) + references.map(Cell.reference)
        if settings.reference, let redis, spec.concurrency > 1, spec.batch == 1, spec.mix.get == spec.mix.total,
           ServerSpawner.which("redis-benchmark") != nil {
            cells.append(.redisBenchmark(redis))
        }
        // With several rounds, each round starts at a different cell, so that a change in the
        // machine's load does not always hit the same backend; each row is its median round.
        var results = [[BenchResult]](repeating: [], count: cells.count)
        for round in 0..<settings.rounds {
            let roundTitle = settings.rounds > 1 ? "\(title) round \(round + 1)/\(settings.rounds)" : title
            for offset in 0..<cells.count {
                let index = (offset + round) % cells.count
                do {
                    if let result = try await measure(cells[index], spec: spec, title: roundTitle) {
                        results[index].append(result)
                    }
                } catch {
                    // A server that fails in the middle of a run costs its row, not the run.
                    results[index].append(failedRow(cells[index], spec: spec, error: error))
                }
            }
        }
        let rows = results.compactMap { rounds -> BenchResult? in
            guard !rounds.isEmpty else { return nil }
            var median = rounds.sorted { $0.opsPerSecond < $1.opsPerSecond }[rounds.count / 2]
            if rounds.count > 1 {
                let rates = rounds.map(\.opsPerSecond)
                median.roundRates = rates
            }
            return median
        }
        return WorkloadResult(spec: spec, rows: rows, rounds: settings.rounds)
    }

    /// A row for a cell whose measurement could not run.
    private func failedRow(_ cell: Cell, spec: WorkloadSpec, error: any Error) -> BenchResult {
        let (label, kind, referenceFor): (String, TargetKind, String?) = switch cell {
        case .swift(let target): (target.label, .swift, nil)
        case .reference(let reference): (reference.label, .reference, reference.referenceFor)
        case .redisBenchmark: ("redis-benchmark", .external, "redis")
        }
        return BenchResult(
            target: label, kind: kind, referenceFor: referenceFor, calls: 0, keys: 0, seconds: 0,
            latency: LatencySummary(makeLatencyHistogram()), hits: 0, misses: 0, errors: 1,
            firstError: "not measured: " + describe(error), concurrency: spec.concurrency
        )
    }

    private func measure(_ cell: Cell, spec: WorkloadSpec, title: String) async throws -> BenchResult? {
        let plan = OperationPlan(spec: spec, seed: settings.seed)
        let sizes = ValueVariants.sizes(for: spec, seed: settings.seed)
        switch cell {
        case .swift(let target):
            let prefix = "cache-bench-\(runID)"
            let (client, front) = try target.makeClient(spec: spec, prefix: prefix, valueSizes: sizes)
            let counter = ProgressCounter()
            let watchdog = Watchdog(stall: .seconds(30), counter: counter, what: "\(target.label) (\(spec.name))")
            defer { watchdog.cancel() }
            progress.show("\(title) \(target.label)  preloading \(Units.grouped(Double(spec.keyCount))) keys")
            do {
                try await client.preload { _ in counter.add(keys: 0) }
            } catch {
                throw BenchError("\(target.label): preloading \(spec.keyCount) keys failed: \(describe(error))")
            }
            var measurement = await SwiftRunner.run(
                client: client, label: target.label, spec: spec, plan: plan, seed: settings.seed, variants: sizes.count,
                warmup: settings.warmup, progress: progress, title: "\(title) \(target.label)", counter: counter
            )
            measurement.note = target.detail
            progress.show("\(title) \(target.label)  removing the workload's keys")
            try? await front.clear()
            return measurement
        case .reference(let reference):
            let counter = ProgressCounter()
            let watchdog = Watchdog(stall: .seconds(30), counter: counter, what: "\(reference.label) (\(spec.name))")
            defer { watchdog.cancel() }
            progress.show("\(title) \(reference.label)  preloading")
            let keys = try await reference.makeKeys(prefix: "cache-bench-\(runID)-ref:\(spec.name):k", count: spec.keyCount)
            let values = ValueVariants.bytes(sizes: [spec.valueSize.max])[0]
            try await reference.preload(keys: keys, spec: spec, values: values)
            let measurement = try await reference.run(
                keys: keys, spec: spec, plan: plan, seed: settings.seed, values: values, warmup: settings.warmup,
                progress: progress, title: "\(title) \(reference.label)", counter: counter
            )
            await reference.clear(keys: keys)
            return measurement
        case .redisBenchmark(let redis):
            return try await RedisBenchmarkTool.run(address: redis, spec: spec, clients: 50, progress: progress, title: title)
        }
    }

    // MARK: Servers

    private mutating func resolveRedis(explicit: Bool, directory: String) async throws -> RedisAddress? {
        if let given = settings.redis {
            let problem: String?
            if let path = given.unixPath {
                problem = await Probe.unix(path)
            } else {
                problem = await Probe.tcp(HostPort(host: given.host, port: given.port), timeout: settings.connectTimeout, handshake: .redis)
            }
            if let problem { throw BenchError("cannot reach Redis at \(given.display): \(problem)") }
            servers.append(ServerPlacement(kind: "redis", address: given.display, spawned: false, pid: nil, allowedCPUs: nil, ranOn: nil))
            return given
        }
        if settings.spawnServers {
            progress.show("starting redis-server")
            let server = try await ServerSpawner.redis(pin: settings.pin.servers, directory: directory)
            spawned.append(server)
            servers.append(ServerPlacement(kind: "redis-server", address: server.address.description, spawned: true, pid: server.pid,
                                           allowedCPUs: CPUPlacement.allowedList(pid: server.pid), ranOn: nil))
            return try RedisAddress.parse("redis://127.0.0.1:\(server.port)")
        }
        let standard = HostPort(host: "127.0.0.1", port: 6379)
        if await Probe.tcp(standard, timeout: .milliseconds(300), handshake: .redis) == nil {
            servers.append(ServerPlacement(kind: "redis", address: standard.description + " (found on the default port)", spawned: false, pid: nil, allowedCPUs: nil, ranOn: nil))
            return try RedisAddress.parse("redis://127.0.0.1:6379")
        }
        if explicit {
            throw BenchError("redis: no server: nothing answers on 127.0.0.1:6379; give --redis URL or --spawn-servers")
        }
        notes.append("redis skipped: nothing answers on 127.0.0.1:6379 (give --redis URL or --spawn-servers)")
        return nil
    }

    private mutating func resolveMemcached(explicit: Bool, directory: String) async throws -> [HostPort]? {
        if let given = settings.memcached {
            for server in given {
                if let problem = await Probe.tcp(server, timeout: settings.connectTimeout, handshake: .memcached) {
                    throw BenchError("cannot reach memcached at \(server): \(problem)")
                }
            }
            servers.append(ServerPlacement(kind: "memcached", address: given.map(\.description).joined(separator: ","), spawned: false, pid: nil, allowedCPUs: nil, ranOn: nil))
            return given
        }
        if settings.spawnServers {
            progress.show("starting memcached")
            let server = try await ServerSpawner.memcached(pin: settings.pin.servers, directory: directory)
            spawned.append(server)
            servers.append(ServerPlacement(kind: "memcached", address: server.address.description, spawned: true, pid: server.pid,
                                           allowedCPUs: CPUPlacement.allowedList(pid: server.pid), ranOn: nil))
            return [server.address]
        }
        let standard = HostPort(host: "127.0.0.1", port: 11211)
        if await Probe.tcp(standard, timeout: .milliseconds(300), handshake: .memcached) == nil {
            servers.append(ServerPlacement(kind: "memcached", address: standard.description + " (found on the default port)", spawned: false, pid: nil, allowedCPUs: nil, ranOn: nil))
            return [standard]
        }
        if explicit {
            throw BenchError("memcached: no server: nothing answers on 127.0.0.1:11211; give --memcached SERVERS or --spawn-servers")
        }
        notes.append("memcached skipped: nothing answers on 127.0.0.1:11211 (give --memcached SERVERS or --spawn-servers)")
        return nil
    }

    private func detail(_ kind: BackendKind, config: BackendConfig) -> String {
        switch kind {
        case .memory: return "in-process"
        case .sqlite: return "file \(config.sqlitePath)"
        case .sqliteExecutor: return "file \(config.sqlitePath(.sqliteExecutor)), callers prefer its taskExecutor"
        case .redis:
            let server = spawned.first { $0.kind == "redis-server" }
            return (config.redis?.display ?? "?") + (server.map { " (spawned, pid \($0.pid))" } ?? "")
        case .memcached, .memcachedExecutor:
            let server = spawned.first { $0.kind == "memcached" }
            return (config.memcached?.map(\.description).joined(separator: ",") ?? "?") + (server.map { " (spawned, pid \($0.pid))" } ?? "")
                + (kind == .memcachedExecutor ? ", callers prefer its taskExecutor" : "")
        }
    }

    private func makeTemporaryDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let path = "\(base)/cache-bench-\(getpid())-\(runID)"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw BenchError("cannot create a temporary directory \(path): \(error.localizedDescription)")
        }
        Cleanup.shared.add("remove \(path)") { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
