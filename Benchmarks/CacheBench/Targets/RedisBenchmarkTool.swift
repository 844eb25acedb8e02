import Foundation

/// Runs `redis-benchmark` (the C client that ships with Redis) for a concurrent get workload,
/// so the Swift backend's concurrent figure sits next to the figure issue 4 names
/// (`redis-benchmark -c 50 -P 1`).
enum RedisBenchmarkTool {
    static func run(address: RedisAddress, spec: WorkloadSpec, clients: Int, progress: ProgressLine, title: String) async throws -> BenchResult? {
        guard let binary = ServerSpawner.which("redis-benchmark") else { return nil }
        let seconds = {
            if case .duration(let d) = spec.stop { return d.seconds }
            return 2.0
        }()
        let requests = max(20_000, Int(seconds * 90_000))
        var args = ["-c", "\(clients)", "-P", "1", "-t", "set,get", "-d", "\(spec.valueSize.max)",
                    "-r", "\(spec.keyCount)", "-n", "\(requests)", "--csv"]
        if let path = address.unixPath {
            args += ["-s", path]
        } else {
            args += ["-h", address.host, "-p", "\(address.port)"]
        }
        if address.database > 0 { args += ["--dbnum", "\(address.database)"] }
        if let user = address.username { args += ["--user", user] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = args
        var environment = ProcessInfo.processInfo.environment
        if let password = address.password {
            // REDISCLI_AUTH keeps the password off the command line (and out of `ps`).
            environment["REDISCLI_AUTH"] = password
        }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        progress.show(title + "  running redis-benchmark -c \(clients) -P 1")
        defer { progress.stop() }
        try process.run()
        let pid = process.processIdentifier
        let cleanup = Cleanup.shared.add("stop redis-benchmark") { if process.isRunning { kill(pid, SIGKILL) } }
        // redis-benchmark has no timeout of its own: a server that stops answering would hold
        // it forever. Kill it after five times the expected time.
        let limit = Duration.seconds(Int64(seconds * 5) + 20)
        let killer = Task.detached {
            try? await Task.sleep(for: limit)
            if !Task.isCancelled { kill(pid, SIGKILL) }
        }
        let output = await readAll(pipe)
        killer.cancel()
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        Cleanup.shared.run(cleanup)
        // "GET","87719.30","0.302","0.088","0.279","0.463","0.599","2.087"
        for line in output.split(separator: "\n") where line.hasPrefix("\"GET\"") {
            let fields = line.split(separator: ",").map { Double($0.replacingOccurrences(of: "\"", with: "")) }
            guard fields.count >= 8, let rps = fields[1], let avg = fields[2], let p50 = fields[4], let p99 = fields[6], let max = fields[7] else { break }
            let ms = 1_000_000.0
            let callSeconds = Double(requests) / rps
            return BenchResult(
                target: "redis-benchmark", kind: .external, referenceFor: "redis", calls: UInt64(requests), keys: UInt64(requests),
                seconds: callSeconds, latency: LatencySummary(p50: p50 * ms, p90: 0, p99: p99 * ms, p999: p99 * ms, max: max * ms, mean: avg * ms),
                hits: 0, misses: 0, errors: 0, firstError: nil, concurrency: clients,
                note: "redis-benchmark -c \(clients) -P 1 -t get -d \(spec.valueSize.max): \(clients) connections, C event loop; p99.9 shows p99 (the tool reports no p99.9)"
            )
        }
        if process.terminationReason == .uncaughtSignal {
            throw BenchError("redis-benchmark did not finish within \(Units.duration(limit)) and was stopped (a server stopped answering?)")
        }
        throw BenchError("redis-benchmark printed no GET result: \(output.prefix(200))")
    }

    /// Reads a pipe to its end on a dedicated thread (the read blocks).
    private static func readAll(_ pipe: Pipe) async -> String {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
            thread.start()
        }
    }
}
