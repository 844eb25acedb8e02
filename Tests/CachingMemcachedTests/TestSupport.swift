import Caching
import CachingMemcached
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The test environment: the shared servers named by `CACHING_MEMCACHED_SERVERS`, and whether
/// this is CI (where tests that need a server must fail rather than skip).
enum TestEnvironment {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// `CACHING_MEMCACHED_SERVERS`, e.g. `127.0.0.1:21211,127.0.0.1:21212`.
    static let sharedServers: String? = {
        guard let value = ProcessInfo.processInfo.environment["CACHING_MEMCACHED_SERVERS"], !value.isEmpty else { return nil }
        return value
    }()

    /// Why the shared-server tests cannot run, or `nil` when they can.
    static let sharedServersProblem: String? = {
        guard let list = sharedServers else { return "CACHING_MEMCACHED_SERVERS is not set (scripts/test.sh starts two memcached and sets it)" }
        guard let servers = try? MemcachedServer.parseList(list) else { return "CACHING_MEMCACHED_SERVERS=\(list) is not a server list" }
        if servers.count < 2 { return "CACHING_MEMCACHED_SERVERS=\(list) names fewer than two servers" }
        for server in servers where !canConnect(host: server.host, port: server.port) {
            return "memcached at \(server) (CACHING_MEMCACHED_SERVERS) is not reachable"
        }
        return nil
    }()

    /// Run shared-server tests when the servers are there, and always on CI (where they fail if not).
    static let runSharedTests = sharedServersProblem == nil || isCI

    /// The memcached executable, from PATH.
    static let memcachedPath: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/memcached"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    static let runPrivateServerTests = memcachedPath != nil || isCI

    /// A backend on the shared servers, with room for the 1 MiB values of the conformance suite
    /// (the test script starts them with `-I 2m`).
    static func sharedBackend(_ adjust: (inout MemcachedBackend.Configuration) -> Void = { _ in }) throws -> MemcachedBackend {
        guard let list = sharedServers else {
            throw CacheError(.configuration, sharedServersProblem ?? "no shared memcached servers")
        }
        var configuration = try MemcachedBackend.Configuration(url: list)
        configuration.maxValueSize = 2 * 1_048_576 - 1024
        adjust(&configuration)
        return try MemcachedBackend(configuration: configuration)
    }

    /// True when something accepts TCP connections at host:port.
    static func canConnect(host: String, port: Int) -> Bool {
        guard let fd = connectSocket(host: host, port: port) else { return false }
        close(fd)
        return true
    }

    /// A connected TCP socket to an IPv4 address, or `nil`.
    static func connectSocket(host: String, port: Int) -> Int32? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            close(fd)
            return nil
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    /// The `stats` of the memcached at host:port, read over a plain TCP connection.
    static func stats(host: String = "127.0.0.1", port: Int) throws -> [String: String] {
        guard let fd = connectSocket(host: host, port: port) else { throw TestError("cannot connect to memcached at \(host):\(port)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let command = Array("stats\r\n".utf8)
        guard send(fd, command, command.count, 0) == command.count else { throw TestError("cannot send stats") }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !received.suffix(5).elementsEqual("END\r\n".utf8) {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw TestError("stats: connection closed or timed out") }
            received += chunk[0..<n]
        }
        var stats: [String: String] = [:]
        for line in String(decoding: received, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 3, parts[0] == "STAT" { stats[String(parts[1])] = String(parts[2]) }
        }
        return stats
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A memcached process this test starts on a free loopback port and stops by PID.
///
/// Started with `posix_spawn` and reaped with `waitpid`, so no run loop or helper thread is
/// involved. `@unchecked Sendable`: `stopped` is only touched by the test that owns the server.
final class PrivateMemcached: @unchecked Sendable {
    let port: Int
    let pid: pid_t
    private var stopped = false

    var address: String { "127.0.0.1:\(port)" }
    var server: MemcachedServer { MemcachedServer(host: "127.0.0.1", port: port) }

    private init(port: Int, pid: pid_t) {
        self.port = port
        self.pid = pid
    }

    /// Starts `memcached -l 127.0.0.1 -p PORT -U 0` and waits (without blocking a thread)
    /// until it accepts connections.
    static func start(port fixedPort: Int? = nil, extraArguments: [String] = []) async throws -> PrivateMemcached {
        guard let executable = TestEnvironment.memcachedPath else { throw TestError("memcached is not on PATH") }
        for _ in 0..<5 {
            let port = try fixedPort ?? freePort()
            var arguments = [executable, "-l", "127.0.0.1", "-p", "\(port)", "-U", "0", "-m", "64", "-I", "2m"]
            if geteuid() == 0 { arguments += ["-u", "root"] }
            let pid = try spawn(arguments + extraArguments)
            let server = PrivateMemcached(port: port, pid: pid)
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline && server.isRunning {
                if TestEnvironment.canConnect(host: "127.0.0.1", port: port) { return server }
                try await Task.sleep(for: .milliseconds(10))
            }
            server.stop()
        }
        throw TestError("memcached did not start")
    }

    private static func spawn(_ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else { throw TestError("posix_spawn(memcached) failed: \(rc)") }
        return pid
    }

    deinit {
        stop()
    }

    /// Whether the process has not exited (reaps it if it has).
    var isRunning: Bool {
        if stopped { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            stopped = true
            return false
        }
        return rc == 0
    }

    /// Stops the process (continuing it first if it was paused) and reaps it.
    func stop() {
        guard isRunning else { return }
        stopped = true
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<300 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(1_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
    }

    /// Freezes the server (SIGSTOP) and waits until the kernel reports it stopped:
    /// connections stay open but nothing answers.
    func pause() {
        guard !stopped else { return }
        kill(pid, SIGSTOP)
        for _ in 0..<1000 where processState != "T" { usleep(1_000) }
    }

    /// The state letter in /proc/PID/stat (`T` when stopped), or `nil` off Linux.
    private var processState: Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }

    /// Lets a paused server run again (SIGCONT).
    func resume() { if !stopped { kill(pid, SIGCONT) } }

    func stats() throws -> [String: String] { try TestEnvironment.stats(port: port) }

    /// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
    static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A unique prefix per test, so tests on the shared servers never see each other's keys.
func uniquePrefix(_ name: String = #function) -> String {
    let word = name.prefix { $0.isLetter || $0.isNumber }
    return "t-\(word)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36)):"
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
