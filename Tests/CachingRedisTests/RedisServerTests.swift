import Caching
import Foundation
import Synchronization
import Testing

@testable import CachingRedis

/// Tests on private servers that they configure, stop, pause or restart. Serialized: several
/// measure time (timeouts, a heartbeat), which other heavy tests of this suite would disturb.
@Suite(.serialized, .enabled(if: TestEnvironment.privateServersEnabled, "redis-server is not on PATH"))
struct RedisServerTests {
    private func configuration(_ server: RedisServerProcess, commandTimeout: Duration = .seconds(2)) -> RedisConfiguration {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: server.port)
        configuration.commandTimeout = commandTimeout
        configuration.connectTimeout = .seconds(1)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        return configuration
    }

    /// Retries `body` until it succeeds or `limit` passes; returns how long it took.
    private func eventually(within limit: Duration, _ body: () async throws -> Void) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            do {
                try await body()
                return clock.now - start
            } catch {
                if clock.now - start > limit { throw error }
                try await Task.sleep(for: .milliseconds(25))
            }
        }
    }

    // MARK: Authentication and databases

    @Test func authenticatesWithRequirepass() async throws {
        let secret = "pa55-Word-For-Test"
        try await withRedisServer(arguments: ["--requirepass", secret]) { server in
            let backend = try RedisBackend(url: "redis://:\(secret)@127.0.0.1:\(server.port)", logger: testLogger)
            try await backend.set("k", to: [1, 2], ttl: nil)
            #expect(try await backend.get("k")?.value == [1, 2])
            try await backend.close()

            let anonymous = try RedisBackend(configuration: configuration(server), logger: testLogger)
            let noAuth = await cacheError { _ = try await anonymous.get("k") }
            #expect(noAuth?.code == .serverError)
            #expect(noAuth?.message.contains("NOAUTH") == true)
            try await anonymous.close()

            let wrongSecret = "not-the-right-one"
            let wrong = try RedisBackend(url: "redis://:\(wrongSecret)@127.0.0.1:\(server.port)", logger: testLogger)
            let refused = await cacheError { _ = try await wrong.get("k") }
            #expect(refused?.code == .serverError)
            #expect(refused.map { $0.message.contains("WRONGPASS") || $0.message.contains("invalid") } == true)
            #expect(refused.map { !$0.description.contains(wrongSecret) } == true)
            #expect(!wrong.configuration.description.contains(wrongSecret))
            try await wrong.close()
        }
    }

    @Test func authenticatesAnACLUser() async throws {
        try await withRedisServer(arguments: ["--user", "cachebot", "on", ">bot-secret", "~app:*", "+@all"]) { server in
            let backend = try RedisBackend(url: "redis://cachebot:bot-secret@127.0.0.1:\(server.port)", logger: testLogger)
            try await backend.set("app:x", to: [7], ttl: .seconds(10))
            #expect(try await backend.get("app:x")?.value == [7])
            // The ACL limits the user to app:* keys: the server's refusal is reported as is.
            let denied = await cacheError { try await backend.set("other", to: [1], ttl: nil) }
            #expect(denied?.code == .serverError)
            #expect(denied?.message.contains("NOPERM") == true)
            try await backend.close()

            let wrong = try RedisBackend(url: "redis://cachebot:bad-secret@127.0.0.1:\(server.port)", logger: testLogger)
            let refused = await cacheError { _ = try await wrong.get("app:x") }
            #expect(refused?.code == .serverError)
            #expect(refused?.message.contains("WRONGPASS") == true)
            #expect(refused.map { !$0.description.contains("bad-secret") } == true)
            try await wrong.close()
        }
    }

    @Test func selectsTheDatabase() async throws {
        try await withRedisServer { server in
            let db3 = try RedisBackend(url: "redis://127.0.0.1:\(server.port)/3", logger: testLogger)
            let db0 = try RedisBackend(url: "redis://127.0.0.1:\(server.port)", logger: testLogger)
            try await db3.set("shared-name", to: [3], ttl: nil)
            try await db0.set("shared-name", to: [0], ttl: nil)
            #expect(try await db3.get("shared-name")?.value == [3])
            #expect(try await db0.get("shared-name")?.value == [0])
            try await db3.clear(prefix: "")
            #expect(try await db3.get("shared-name") == nil)
            #expect(try await db0.get("shared-name")?.value == [0])
            try await db3.close()
            try await db0.close()

            let outOfRange = try RedisBackend(url: "redis://127.0.0.1:\(server.port)/999", logger: testLogger)
            let error = await cacheError { _ = try await outOfRange.get("k") }
            #expect(error?.code == .serverError)
            #expect(error?.message.contains("out of range") == true)
            try await outOfRange.close()
        }
    }

    @Test func connectsThroughAUnixSocket() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString.prefix(8)).sock").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withRedisServer(arguments: ["--unixsocket", path, "--unixsocketperm", "700"]) { server in
            let backend = try RedisBackend(url: "unix://\(path)?db=2", logger: testLogger)
            try await backend.set("via-socket", to: [42], ttl: .seconds(5))
            #expect(try await backend.get("via-socket")?.value == [42])
            let tcp = try RedisBackend(url: "redis://127.0.0.1:\(server.port)/2", logger: testLogger)
            #expect(try await tcp.get("via-socket")?.value == [42])
            try await backend.close()
            try await tcp.close()
        }
    }

    // MARK: Failures

    @Test func unreachableServerFailsFastWithConnectionFailed() async throws {
        let port = try RedisServerProcess.freePort()
        var options = RedisConfiguration(host: "127.0.0.1", port: port)
        options.reconnectBackoff = .init(initial: .seconds(10), maximum: .seconds(10))
        let backend = try RedisBackend(configuration: options, logger: testLogger)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<5 {
            let error = await cacheError { _ = try await backend.get("k") }
            #expect(error?.code == .connectionFailed)
            #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        }
        // Waiting for the next attempt would take 10 s: the calls fail at once instead.
        #expect(clock.now - start < .seconds(5))
        try await backend.close()
    }

    @Test func reconnectsAfterAServerRestart() async throws {
        let server = try await RedisServerProcess.start()
        var restarted: RedisServerProcess?
        defer {
            server.stop()
            restarted?.stop()
            server.removeFiles()
        }
        let backend = try RedisBackend(configuration: configuration(server), logger: testLogger)
        try await backend.set("before", to: [1], ttl: nil)
        #expect(try await backend.get("before")?.value == [1])

        server.stop()
        let down = await cacheError { _ = try await backend.get("before") }
        #expect(down?.code == .connectionFailed)

        restarted = try await RedisServerProcess.start(port: server.port)
        let recovery = try await eventually(within: .seconds(10)) {
            try await backend.set("after", to: [2], ttl: nil)
        }
        #expect(recovery < .seconds(10))
        #expect(try await backend.get("after")?.value == [2])
        #expect(try await backend.get("before") == nil)  // a fresh server without persistence
        // Every connection of the pool recovers.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 { group.addTask { try await backend.set("k\(index)", to: [1], ttl: nil) } }
            try await group.waitForAll()
        }
        try await backend.close()
    }

    @Test func stoppedServerFailsAtTheCommandTimeout() async throws {
        try await withRedisServer { server in
            let backend = try RedisBackend(configuration: configuration(server, commandTimeout: .milliseconds(300)), logger: testLogger)
            try await backend.set("k", to: [1], ttl: nil)
            server.pause()
            defer { server.resume() }
            let clock = ContinuousClock()
            let start = clock.now
            let error = await cacheError { _ = try await backend.get("k") }
            let elapsed = clock.now - start
            #expect(error?.code == .timeout)
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(5), "failed after \(elapsed)")
            // Later calls do not hang either, while the server stays stopped.
            for _ in 0..<3 {
                let again = clock.now
                let next = await cacheError { _ = try await backend.get("k") }
                #expect(next?.code == .timeout || next?.code == .connectionFailed)
                #expect(clock.now - again < .seconds(5))
            }
            server.resume()
            _ = try await eventually(within: .seconds(10)) { _ = try await backend.get("k") }
            #expect(try await backend.get("k")?.value == [1])
            try await backend.close()
        }
    }

    @Test func cooperativePoolStaysResponsiveWhileCommandsBlock() async throws {
        try await withRedisServer { server in
            let commandTimeout = Duration.seconds(3)
            var options = configuration(server, commandTimeout: commandTimeout)
            options.poolSize = 4
            let backend = try RedisBackend(configuration: options, logger: testLogger)
            try await backend.set("k", to: [1], ttl: nil)
            server.pause()
            defer { server.resume() }

            // Far more blocked calls than cores. If hiredis blocked the cooperative pool, the
            // heartbeat below could not tick until the calls timed out (3 s): it must keep
            // ticking while they wait.
            let clock = ContinuousClock()
            let started = clock.now
            let calls = 200
            async let failures: Int = withTaskGroup(of: Int.self) { group in
                for _ in 0..<calls {
                    group.addTask { (try? await backend.get("k")) == nil ? 1 : 0 }
                }
                return await group.reduce(0, +)
            }
            var ticks = 0
            var longestGap = Duration.zero
            var last = clock.now
            while clock.now - started < .milliseconds(1500) {
                try await Task.sleep(for: .milliseconds(10))
                let now = clock.now
                longestGap = max(longestGap, now - last)
                last = now
                ticks += 1
            }
            let failed = await failures
            let blocked = clock.now - started
            #expect(failed == calls, "\(failed) of \(calls) calls failed")
            // The calls were still blocked when the heartbeat stopped...
            #expect(blocked >= commandTimeout - .milliseconds(100), "the calls failed after only \(blocked)")
            // ...and the heartbeat kept ticking meanwhile (a generous bound for loaded machines).
            #expect(ticks >= 10, "the heartbeat ticked \(ticks) times in 1.5 s")
            #expect(longestGap < .seconds(1), "the heartbeat stalled for \(longestGap)")
            #expect(blocked < commandTimeout * 4, "the blocked calls took \(blocked) to fail")

            server.resume()
            _ = try await eventually(within: .seconds(10)) { _ = try await backend.get("k") }
            try await backend.close()
        }
    }

    @Test func cancelledCallsLeaveTheQueueAtOnce() async throws {
        try await withRedisServer { server in
            // A stopped server accepts the TCP connection but never answers the handshake: the
            // calls queue behind it for the whole command timeout, unless they are cancelled.
            server.pause()
            defer { server.resume() }
            var options = configuration(server, commandTimeout: .seconds(3))
            options.poolSize = 1
            let backend = try RedisBackend(configuration: options, logger: testLogger)
            let queued = (0..<10).map { _ in Task { try await backend.get("k") } }
            try await Task.sleep(for: .milliseconds(100))
            let clock = ContinuousClock()
            let start = clock.now
            for task in queued { task.cancel() }
            for task in queued {
                let error = await cacheError { _ = try await task.value }
                #expect(error?.code == .cancelled)
            }
            #expect(clock.now - start < .seconds(1))
            server.resume()
            _ = try await eventually(within: .seconds(10)) { _ = try await backend.get("k") }
            try await backend.close()
        }
    }

    @Test func closeFailsQueuedCallsAndJoinsTheThreads() async throws {
        try await withRedisServer { server in
            // A stopped server accepts the TCP connection but never answers the handshake, so
            // the calls below stay queued until close().
            server.pause()
            defer { server.resume() }
            var options = configuration(server, commandTimeout: .milliseconds(800))
            options.poolSize = 1
            let backend = try RedisBackend(configuration: options, logger: testLogger)
            let queued = (0..<5).map { _ in Task { try await backend.get("k") } }
            try await Task.sleep(for: .milliseconds(100))
            let clock = ContinuousClock()
            let start = clock.now
            try await backend.close()
            #expect(clock.now - start < .seconds(5))
            for task in queued {
                let error = await cacheError { _ = try await task.value }
                #expect(error?.code == .closed)
            }
            #expect(await cacheError { try await backend.set("k", to: [2], ttl: nil) }?.code == .closed)
        }
    }

    @Test func closeLetsCallsInFlightFinish() async throws {
        try await withRedisServer { server in
            var options = configuration(server, commandTimeout: .seconds(5))
            options.poolSize = 1
            let backend = try RedisBackend(configuration: options, logger: testLogger)
            try await backend.set("k", to: [7], ttl: nil)
            server.pause()
            let inFlight = Task { try await backend.get("k") }
            try await Task.sleep(for: .milliseconds(100))
            async let closing: Void = backend.close()
            try await Task.sleep(for: .milliseconds(200))
            server.resume()
            try await closing
            #expect(try await inFlight.value?.value == [7])
            #expect(await cacheError { _ = try await backend.get("k") }?.code == .closed)
        }
    }

    // MARK: clear(prefix:)

    @Test func clearRemovesOnlyItsNamespaceAmongTenThousandKeys() async throws {
        try await withRedisServer { server in
            var options = configuration(server)
            options.scanCount = 500
            let backend = try RedisBackend(configuration: options, logger: testLogger)
            let namespaces: [(prefix: String, count: Int)] = [
                ("app:users:", 4000), ("app:users2:", 2000), ("app:orders:", 3000), ("app:we*ird?[n]\\s:", 500),
                ("app:we", 300), ("other", 200),
            ]
            for namespace in namespaces {
                let items = (0..<namespace.count).map { (key: namespace.prefix + "\($0)", value: [UInt8(truncatingIfNeeded: $0)]) }
                try await backend.set(items, ttl: .seconds(600))
            }
            #expect(try await dbSize(backend) == 10_000)

            try await backend.clear(prefix: "app:users:")
            #expect(try await dbSize(backend) == 6000)
            #expect(try await backend.get((0..<4000).map { "app:users:\($0)" }).allSatisfy { $0 == nil })
            #expect(try await backend.get((0..<2000).map { "app:users2:\($0)" }).allSatisfy { $0 != nil })

            // Glob characters in the prefix are literal: "app:we*..." must not touch "app:we0".
            try await backend.clear(prefix: "app:we*ird?[n]\\s:")
            #expect(try await dbSize(backend) == 5500)
            #expect(try await backend.get((0..<300).map { "app:we\($0)" }).allSatisfy { $0 != nil })

            try await backend.clear(prefix: "no-such-namespace:")
            #expect(try await dbSize(backend) == 5500)
            try await backend.close()
        }
    }

    private func dbSize(_ backend: RedisBackend) async throws -> Int64 {
        try RedisBackend.integer(await backend.send(RedisCommands("DBSIZE")), "DBSIZE", key: nil)
    }
}
