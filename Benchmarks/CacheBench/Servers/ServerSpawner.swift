import Foundation

/// A `redis-server` or `memcached` that this run started on a free loopback port.
struct SpawnedServer: Sendable {
    var kind: String
    var pid: Int32
    var port: Int
    var logPath: String
    var cleanupID: Int
    var address: HostPort { HostPort(host: "127.0.0.1", port: port) }
}

/// Starts private servers for `--spawn-servers` and stops them by PID when the run ends,
/// whatever way it ends (normal end, error, Ctrl-C: see ``Cleanup``).
enum ServerSpawner {
    /// The full path of `name` on `PATH`, or nil.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin"]
        for dir in dirs {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Starts `redis-server` on a free loopback port with persistence off.
    static func redis(pin: [Int]?, directory: String) async throws -> SpawnedServer {
        guard let binary = which("redis-server") else {
            throw BenchError("--spawn-servers: redis-server is not installed (scripts/ensure-deps.sh installs it)")
        }
        return try await spawn(kind: "redis-server", binary: binary, pin: pin, directory: directory) { port in
            ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning", "--dir", directory]
        }
    }

    /// Starts `memcached` on a free loopback port (UDP off, 1 GiB, 4 worker threads).
    static func memcached(pin: [Int]?, directory: String) async throws -> SpawnedServer {
        guard let binary = which("memcached") else {
            throw BenchError("--spawn-servers: memcached is not installed (scripts/ensure-deps.sh installs it)")
        }
        return try await spawn(kind: "memcached", binary: binary, pin: pin, directory: directory) { port in
            var args = ["-l", "127.0.0.1", "-p", "\(port)", "-U", "0", "-m", "1024", "-t", "4"]
            if getuid() == 0 { args += ["-u", "root"] }
            return args
        }
    }

    private static func spawn(
        kind: String, binary: String, pin: [Int]?, directory: String, arguments: (Int) -> [String]
    ) async throws -> SpawnedServer {
        var lastError = ""
        for _ in 0..<3 {
            let port = try Probe.freeLoopbackPort()
            let logPath = "\(directory)/\(kind)-\(port).log"
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let process = Process()
            var args = arguments(port)
            if let pin, let taskset = which("taskset") {
                // taskset execs the server, so the PID stays the server's and every thread it
                // creates inherits the mask.
                process.executableURL = URL(fileURLWithPath: taskset)
                args = ["-c", CPUPlacement.formatList(pin), binary] + args
            } else {
                process.executableURL = URL(fileURLWithPath: binary)
            }
            process.arguments = args
            process.standardInput = FileHandle.nullDevice
            let log = FileHandle(forWritingAtPath: logPath)
            process.standardOutput = log ?? FileHandle.nullDevice
            process.standardError = log ?? FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                throw BenchError("--spawn-servers: cannot start \(binary): \(error)")
            }
            let pid = process.processIdentifier
            let cleanupID = Cleanup.shared.add("stop \(kind) \(pid)") { stop(pid: pid, process: process) }
            if let pin, which("taskset") == nil {
                try? CPUPlacement.pin(pid: pid, to: pin)
            }
            // Wait until it accepts connections (or dies: the port may have been taken meanwhile).
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                if !process.isRunning { break }
                if await Probe.tcp(HostPort(host: "127.0.0.1", port: port), timeout: .milliseconds(200)) == nil {
                    return SpawnedServer(kind: kind, pid: pid, port: port, logPath: logPath, cleanupID: cleanupID)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            Cleanup.shared.run(cleanupID)
            let tail = (CPUPlacement.readSmallFile(logPath) ?? "").split(separator: "\n").last.map(String.init) ?? ""
            lastError = tail.isEmpty ? "it did not accept connections on 127.0.0.1:\(port) within 5 s" : tail
        }
        throw BenchError("--spawn-servers: \(kind) did not start: \(lastError)")
    }

    /// SIGTERM, then SIGKILL after 2 s; waits for the process to be gone.
    private static func stop(pid: Int32, process: Process) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        for _ in 0..<200 {
            if !process.isRunning { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        for _ in 0..<100 {
            if !process.isRunning { return }
            usleep(10_000)
        }
    }
}
