import ArgumentParser
import Caching
import Foundation

extension OutputFormat: ExpressibleByArgument {}

/// The backend comparison: `cache-bench` with no subcommand.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compare backends on workloads (the default command).",
        discussion: "Workloads (--workload, default all): \(WorkloadPreset.allCases.map { "\($0.rawValue): \($0.purpose)" }.joined(separator: "; ")). Any of --mix, --keys, --distribution, --value-size, --ttl, --concurrency, --duration, --ops, --batch and --coder changes every selected workload; without --workload they define one workload named 'custom'."
    )

    // MARK: Backends

    @Option(help: ArgumentHelp("Backends to compare, comma-separated: memory, sqlite, sqlite-executor, redis, memcached, memcached-executor.", discussion: "Default: memory and sqlite, plus redis and memcached when a server is given, spawned or found on its default port. The -executor variants are the same backends with the caller tasks opted in to the backend's taskExecutor (SE-0417); they are reported apart, never as the backend's figure.", valueName: "list"))
    var backends: String?

    @Option(help: ArgumentHelp("Redis server URL: redis://[user:password@]host[:port][/db] or unix:///path.", valueName: "url"))
    var redis: String?

    @Option(help: ArgumentHelp("memcached servers: host:port[,host:port...].", valueName: "servers"))
    var memcached: String?

    @Flag(help: "Start private redis-server and memcached processes on free 127.0.0.1 ports for the run, and stop them at the end.")
    var spawnServers = false

    @Flag(help: "Also run every workload straight through the C libraries (hiredis, libmemcached, sqlite3) and show each backend as a ratio to that C limit.")
    var reference = false

    @Option(help: ArgumentHelp("Directory for the SQLite database files (default: a temporary directory).", valueName: "dir"))
    var sqliteDir: String?

    @Option(help: ArgumentHelp("Connect timeout for servers.", valueName: "duration"))
    var connectTimeout: String = "1s"

    // MARK: Workloads

    @Option(help: ArgumentHelp("Workloads to run, comma-separated: \(WorkloadPreset.allCases.map(\.rawValue).joined(separator: ", ")) (default: all).", valueName: "list"))
    var workload: String?

    @Option(help: ArgumentHelp("Operation mix as GET:SET:DELETE weights, e.g. 90:8:2 or get=90,set=10.", valueName: "mix"))
    var mix: String?

    @Option(help: ArgumentHelp("Number of distinct keys.", valueName: "n"))
    var keys: Int?

    @Option(help: ArgumentHelp("Key distribution: uniform, zipf or zipf:S (S > 0, e.g. zipf:0.99).", valueName: "dist"))
    var distribution: String?

    @Option(help: ArgumentHelp("Value size in bytes, fixed (100, 4k) or a range (64-1024).", valueName: "size"))
    var valueSize: String?

    @Option(help: ArgumentHelp("TTL of written values (e.g. 300s, 5m) or 'none'.", valueName: "duration"))
    var ttl: String?

    @Option(help: ArgumentHelp("Concurrent tasks.", valueName: "n"))
    var concurrency: Int?

    @Option(help: ArgumentHelp("Measured time per workload and backend (default 2s).", valueName: "duration"))
    var duration: String?

    @Option(help: ArgumentHelp("Measure a number of calls instead of a duration.", valueName: "n"))
    var ops: Int?

    @Option(help: ArgumentHelp("Keys per call (batch get/set/delete).", valueName: "n"))
    var batch: Int?

    @Option(help: ArgumentHelp("Value coder: binary (BinaryCoder), json (JSONCoder) or raw (bytes as they are).", valueName: "coder"))
    var coder: String?

    @Option(help: ArgumentHelp("Unrecorded warm-up before each measurement.", valueName: "duration"))
    var warmup: String = "0.5s"

    @Option(help: "Seed for the key and operation draws.")
    var seed: UInt64 = 42

    @Option(help: ArgumentHelp("Measure every backend this many times per workload, in rotating order, and report the median round (for busy machines).", valueName: "n"))
    var rounds: Int = 1

    // MARK: Output and placement

    @Option(help: "Output format: table, json, csv or markdown.")
    var format: OutputFormat = .table

    @Option(help: ArgumentHelp("Also write an SVG chart of throughput and latency to this file.", valueName: "file"))
    var chart: String?

    @Option(help: ArgumentHelp("Pin the tool and spawned servers to CPUs: split (tool CPU 0, servers last CPU), same (all on CPU 0), none, or TOOL/SERVERS lists such as 0/1.", valueName: "placement"))
    var pin: String = "none"

    @Flag(help: "Do not draw the progress line (it is drawn only on a terminal anyway).")
    var noProgress = false

    @Flag(help: "Show the backends' own warnings (reconnects, timeouts) on standard error.")
    var verbose = false

    // MARK: Run

    func run() async throws {
        let settings = try BenchError.usage { try validatedSettings() }
        Cleanup.shared.installSignalHandlers()
        var session = BenchSession(settings: settings)
        try await session.run()
    }

    /// Checks every argument before anything starts, so a mistake costs nothing.
    func validatedSettings() throws -> RunSettings {
        var kinds: [BackendKind]?
        if let backends { kinds = try BackendKind.parseList(backends) }
        let redisAddress = try redis.map { try RedisAddress.parse($0) }
        let memcachedServers = try memcached.map { try HostPort.parseMemcached($0) }
        let timeout = try parseDuration(connectTimeout, what: "--connect-timeout")
        guard timeout <= .seconds(30) else { throw BenchError("--connect-timeout must be at most 30s") }
        let warmupDuration: Duration = warmup == "0" || warmup == "0s" ? .zero : try parseDuration(warmup, what: "--warmup")
        let pinSpec = try PinSpec.parse(pin)
        guard (1...99).contains(rounds) else { throw BenchError("--rounds must be between 1 and 99 (got \(rounds))") }

        var stop: StopRule = .duration(.seconds(2))
        if let duration, ops != nil {
            throw BenchError("give --duration or --ops, not both (got --duration \(duration))")
        }
        if let duration { stop = .duration(try parseDuration(duration, what: "--duration")) }
        if let ops {
            guard ops >= 1 else { throw BenchError("--ops must be at least 1 (got \(ops))") }
            stop = .operations(ops)
        }
        if let concurrency {
            guard concurrency >= 1 else { throw BenchError("--concurrency must be at least 1 (got \(concurrency))") }
            guard concurrency <= 10_000 else { throw BenchError("--concurrency must be at most 10000 (got \(concurrency))") }
        }
        if let keys {
            guard keys >= 1 else { throw BenchError("--keys must be at least 1 (got \(keys))") }
            guard keys <= 50_000_000 else { throw BenchError("--keys must be at most 50,000,000 (got \(keys))") }
        }
        if let batch {
            guard batch >= 1 else { throw BenchError("--batch must be at least 1 (got \(batch))") }
            guard batch <= 10_000 else { throw BenchError("--batch must be at most 10000 (got \(batch))") }
        }
        let parsedMix = try mix.map { try OperationMix.parse($0) }
        let parsedDistribution = try distribution.map { try KeyDistribution.parse($0) }
        let parsedSize = try valueSize.map { try ValueSize.parse($0) }
        var parsedTTL: Duration??
        if let ttl {
            parsedTTL = ttl.lowercased() == "none" ? .some(nil) : .some(try parseDuration(ttl, what: "--ttl"))
        }
        let parsedCoder = try coder.map { name throws(BenchError) -> CoderChoice in
            guard let choice = CoderChoice(rawValue: name.lowercased()) else {
                throw BenchError("unknown coder '\(name)': choose binary, json or raw")
            }
            return choice
        }

        let customized = mix != nil || keys != nil || distribution != nil || valueSize != nil || ttl != nil
            || concurrency != nil || batch != nil || coder != nil
        var presets: [WorkloadPreset]
        if let workload {
            presets = []
            for name in workload.split(separator: ",").map({ $0.trimmingWhitespace().lowercased() }) where !name.isEmpty {
                guard let preset = WorkloadPreset(rawValue: name) else {
                    throw BenchError("unknown workload '\(name)': choose from \(WorkloadPreset.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                presets.append(preset)
            }
            guard !presets.isEmpty else { throw BenchError("--workload is empty") }
        } else {
            presets = customized ? [.mixed] : WorkloadPreset.allCases
        }
        var specs = presets.map { $0.spec(defaultStop: stop) }
        for i in specs.indices {
            if workload == nil && customized { specs[i].name = "custom" }
            if let parsedMix { specs[i].mix = parsedMix }
            if let keys { specs[i].keyCount = keys }
            if let parsedDistribution { specs[i].distribution = parsedDistribution }
            if let parsedSize { specs[i].valueSize = parsedSize }
            if let parsedTTL { specs[i].ttl = parsedTTL }
            if let concurrency { specs[i].concurrency = concurrency }
            if let batch { specs[i].batch = batch }
            if let parsedCoder { specs[i].coder = parsedCoder }
        }
        if let chart {
            let directory = (chart as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            if !directory.isEmpty && !(FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue) {
                throw BenchError("--chart \(chart): the directory \(directory) does not exist")
            }
        }
        if let sqliteDir {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: sqliteDir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw BenchError("--sqlite-dir \(sqliteDir) is not a directory")
            }
        }
        return RunSettings(
            kinds: kinds, redis: redisAddress, memcached: memcachedServers, spawnServers: spawnServers,
            reference: reference, sqliteDir: sqliteDir, connectTimeout: timeout, specs: specs,
            warmup: warmupDuration, seed: seed, rounds: rounds, format: format, chart: chart, pin: pinSpec,
            progress: !noProgress, verbose: verbose, commandLine: CommandLine.arguments.map { RedisAddress.maskPassword($0) }.joined(separator: " ")
        )
    }
}

/// The validated arguments of a run.
struct RunSettings: Sendable {
    var kinds: [BackendKind]?
    var redis: RedisAddress?
    var memcached: [HostPort]?
    var spawnServers: Bool
    var reference: Bool
    var sqliteDir: String?
    var connectTimeout: Duration
    var specs: [WorkloadSpec]
    var warmup: Duration
    var seed: UInt64
    var rounds: Int
    var format: OutputFormat
    var chart: String?
    var pin: PinSpec
    var progress: Bool
    var verbose: Bool
    var commandLine: String
}
