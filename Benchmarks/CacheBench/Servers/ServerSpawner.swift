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
        let taskset = pin == nil ? nil : which("taskset")
        for _ in 0..<3 {
            let port = try Probe.freeLoopbackPort()
            let logPath = "\(directory)/\(kind)-\(port).log"
            var argv = [binary] + arguments(port)
            if let pin, let taskset {
                // taskset execs the server, so the PID stays the server's and every thread it
                // creates inherits the mask.
                argv = [taskset, "-c", CPUPlacement.formatList(pin)] + argv
            }
            let pid = try launch(argv, logPath: logPath)
            let cleanupID = Cleanup.shared.add("stop \(kind) \(pid)") { stop(pid: pid) }
            if let pin, taskset == nil {
                try? CPUPlacement.pin(pid: pid, to: pin)
            }
            // Wait until it accepts connections (or dies: the port may have been taken meanwhile).
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                if hasExited(pid) { break }
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

    /// Starts `argv` with standard input from /dev/null and both outputs to `logPath`.
    /// The tool reaps the process itself (`waitpid`), so it knows for sure when it is gone.
    private static func launch(_ argv: [String], logPath: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The tool ignores SIGINT, SIGTERM and SIGHUP (it handles them on a dispatch source), and
        // ignored signals survive exec: give the server default handling and an empty mask, so
        // that SIGTERM stops it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signalNumber) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else {
            throw BenchError("--spawn-servers: cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Whether `pid` (a child of this process) has exited; reaps it if so.
    private static func hasExited(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        return rc == pid || (rc < 0 && errno == ECHILD)
    }

    /// SIGTERM, then SIGKILL after 2 s; waits until the process is gone and reaped.
    private static func stop(pid: Int32) {
        if hasExited(pid) { return }
        kill(pid, SIGTERM)
        for _ in 0..<200 {
            if hasExited(pid) { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        for _ in 0..<100 {
            if hasExited(pid) { return }
            usleep(10_000)
        }
    }
}
