import Caching
import Foundation
import Logging
import Testing

@testable import CachingRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The logger for backends in tests: quiet (connection losses are expected here) unless
/// `CACHING_TEST_LOGS=1`.
let testLogger: Logger = {
    var logger = Logger(label: "caching-redis-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["CACHING_TEST_LOGS"] == "1" ? .debug : .critical
    return logger
}()

/// The environment the tests run in.
enum TestEnvironment {
    static let variables = ProcessInfo.processInfo.environment
    /// `CI=true`: tests that need a server must run and fail rather than skip.
    static let isCI = variables["CI"] == "true"
    /// The shared server started by `scripts/test.sh`.
    static let sharedRedisURL = variables["CACHING_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    /// The `redis-server` executable on `PATH`, for private servers.
    static let redisServerPath: String? = {
        for directory in (variables["PATH"] ?? "/usr/bin:/usr/local/bin").split(separator: ":") {
            let candidate = "\(directory)/redis-server"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }()

    /// Whether tests on private servers should run: when `redis-server` is installed, and always in CI.
    static var privateServersEnabled: Bool { redisServerPath != nil || isCI }

    /// Whether tests on the shared server should run: when it is configured and answers, and always in CI.
    static let sharedServerEnabled: Bool = {
        if isCI { return true }
        guard let url = sharedRedisURL, let configuration = try? RedisConfiguration(url: url) else { return false }
        guard case .tcp(let host, let port) = configuration.endpoint else { return true }
        return RedisServerProcess.answers(host: host, port: port)
    }()

    /// A backend on the shared server, or a recorded failure (CI) / thrown skip reason.
    static func sharedBackend(poolSize: Int? = nil) throws -> RedisBackend {
        guard let url = sharedRedisURL else {
            Issue.record("CACHING_REDIS_URL is not set; scripts/test.sh starts a server and sets it")
            throw CacheError(.configuration, "CACHING_REDIS_URL is not set")
        }
        var configuration = try RedisConfiguration(url: url)
        if let poolSize { configuration.poolSize = poolSize }
        return try RedisBackend(configuration: configuration, logger: testLogger)
    }
}

/// A private `redis-server` on a free loopback port, for tests that stop, pause or
/// reconfigure it. Always stop it by calling ``stop()`` (use `defer`): it sends `SIGCONT` then
/// `SIGKILL` to its PID.
///
/// `@unchecked Sendable`: `process` is only used through thread-safe `Process` methods, and
/// the rest is immutable.
final class RedisServerProcess: @unchecked Sendable {
    let port: Int
    let directory: String
    let process: Process
    var pid: Int32 { process.processIdentifier }
    var url: String { "redis://127.0.0.1:\(port)" }

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// Starts a server and waits until it answers.
    /// - Parameters:
    ///   - port: the port, or `nil` for a free one.
    ///   - arguments: extra `redis-server` options, such as `["--requirepass", "pw"]`.
    static func start(port: Int? = nil, arguments: [String] = []) async throws -> RedisServerProcess {
        guard let executable = TestEnvironment.redisServerPath else {
            Issue.record("redis-server is not on PATH; install redis-server")
            throw CacheError(.configuration, "redis-server is not on PATH")
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("caching-redis-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError = ""
        for _ in 0..<5 {
            let chosen = try port ?? freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "--port", "\(chosen)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", directory, "--logfile", "\(directory)/redis.log",
            ] + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let server = RedisServerProcess(port: chosen, directory: directory, process: process)
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline && process.isRunning {
                if answers(host: "127.0.0.1", port: chosen) { return server }
                try await Task.sleep(for: .milliseconds(20))
            }
            lastError = (try? String(contentsOfFile: "\(directory)/redis.log", encoding: .utf8)) ?? ""
            server.stop()
            if port != nil { break }
        }
        throw CacheError(.connectionFailed, "redis-server did not start: \(lastError.suffix(500))")
    }

    /// Kills the server (`SIGCONT`, then `SIGKILL`) and waits for it to exit.
    func stop() {
        if process.isRunning {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Stops the server from answering (`SIGSTOP`); the kernel still accepts connections.
    func pause() { kill(pid, SIGSTOP) }

    /// Lets a paused server run again (`SIGCONT`).
    func resume() { kill(pid, SIGCONT) }

    /// Removes the temporary directory (after ``stop()``).
    func removeFiles() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A free TCP port on 127.0.0.1, from the kernel.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CacheError(.internalError, "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw CacheError(.internalError, "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether a Redis server answers `PING` (with any reply, `NOAUTH` included) within 200 ms.
    static func answers(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return false }
        let ping = Array("PING\r\n".utf8)
        guard send(fd, ping, ping.count, Int32(MSG_NOSIGNAL)) == ping.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let received = recv(fd, &buffer, buffer.count, 0)
        return received > 0 && (buffer[0] == UInt8(ascii: "+") || buffer[0] == UInt8(ascii: "-"))
    }
}

/// Runs `body` with a private server, stopping it whatever happens.
func withRedisServer<T>(
    arguments: [String] = [],
    _ body: (RedisServerProcess) async throws -> T
) async throws -> T {
    let server = try await RedisServerProcess.start(arguments: arguments)
    defer {
        server.stop()
        server.removeFiles()
    }
    return try await body(server)
}

/// A key prefix unique to one test, so tests can share a server.
func uniquePrefix(_ name: String) -> String {
    "caching-redis-test:\(name):\(UUID().uuidString.prefix(8)):"
}

/// Runs `body` and returns the `CacheError` it throws, or records an issue if it throws none.
func cacheError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> CacheError? {
    do {
        try await body()
        Issue.record("expected a CacheError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as CacheError {
        return error
    } catch {
        Issue.record("expected a CacheError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
