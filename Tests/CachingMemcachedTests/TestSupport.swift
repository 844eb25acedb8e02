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
/// `@unchecked Sendable`: the process handle is only used from the test that owns the server,
/// one call at a time.
final class PrivateMemcached: @unchecked Sendable {
    let port: Int
    private let process: Process
    private var stopped = false

    var pid: Int32 { process.processIdentifier }
    var address: String { "127.0.0.1:\(port)" }
    var server: MemcachedServer { MemcachedServer(host: "127.0.0.1", port: port) }

    /// Starts `memcached -l 127.0.0.1 -p PORT -U 0` and waits until it accepts connections.
    init(extraArguments: [String] = []) throws {
        guard let executable = TestEnvironment.memcachedPath else { throw TestError("memcached is not on PATH") }
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try Self.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            var arguments = ["-l", "127.0.0.1", "-p", "\(port)", "-U", "0", "-m", "64", "-I", "2m"]
            if geteuid() == 0 { arguments += ["-u", "root"] }
            process.arguments = arguments + extraArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                lastError = error
                continue
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline && process.isRunning {
                if TestEnvironment.canConnect(host: "127.0.0.1", port: port) {
                    self.port = port
                    self.process = process
                    return
                }
                usleep(20_000)
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            lastError = TestError("memcached on port \(port) did not start")
        }
        throw lastError ?? TestError("memcached did not start")
    }

    deinit {
        stop()
    }

    /// Stops the process (continuing it first if it was paused) and waits for it.
    func stop() {
        if stopped { return }
        stopped = true
        let pid = process.processIdentifier
        guard process.isRunning else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(3)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    func pause() { kill(process.processIdentifier, SIGSTOP) }

    /// Lets a paused server run again (SIGCONT).
    func resume() { kill(process.processIdentifier, SIGCONT) }

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
