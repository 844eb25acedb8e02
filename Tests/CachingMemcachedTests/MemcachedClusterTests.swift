import CLibmemcached
import Caching
@testable import CachingMemcached
import Foundation
import Synchronization
import Testing

/// The tests that start their own memcached processes (and stop them by PID whatever happens).
/// Serialized, so that the timing checks of one never run beside another's frozen server.
@Suite(.serialized, .enabled(if: TestEnvironment.runPrivateServerTests, "memcached is not on PATH"))
struct PrivateServerTests {}

extension PrivateServerTests {
    /// Several servers: distribution, a server stopped or frozen mid-test, recovery.
    @Suite struct MemcachedClusterTests {
        /// A backend with short timeouts over `servers`.
        func backend(
            _ servers: [PrivateMemcached], connections: Int = 2, io: Duration = .milliseconds(300), retry: Duration = .milliseconds(500)
        ) throws -> MemcachedBackend {
            var configuration = MemcachedBackend.Configuration(servers: servers.map(\.server))
            configuration.connectTimeout = .milliseconds(300)
            configuration.ioTimeout = io
            configuration.retryTimeout = retry
            configuration.connectionsPerServer = connections
            return try MemcachedBackend(configuration: configuration)
        }

        @Test func keysAreSpreadOverBothServers() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let b = try await PrivateMemcached.start()
            defer { b.stop() }
            let backend = try backend([a, b])
            let keys = (0..<400).map { "spread:k\($0)" }
            try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
            let onA = keys.filter { backend.server(for: $0) == a.server }.count
            // Each server holds its share of the values (plus one generation counter, for "spread:").
            let itemsA = Int(try a.stats()["curr_items"] ?? "0") ?? 0
            let itemsB = Int(try b.stats()["curr_items"] ?? "0") ?? 0
            #expect(itemsA == onA + 1, "server A holds \(itemsA) items, expected \(onA) values and 1 counter")
            #expect(itemsB == keys.count - onA + 1)
            #expect(onA > 120 && onA < 280, "ketama put \(onA) of 400 keys on one of two equal servers")
            #expect(try await backend.get(keys).allSatisfy { $0 != nil })
            try await backend.close()
        }

        @Test func consistentHashingMovesOnlyTheNewServersShare() throws {
            // Routing needs no connection: servers that do not exist are fine here.
            let two = try MemcachedBackend(configuration: .init(servers: [.init(host: "127.0.0.1", port: 1), .init(host: "127.0.0.1", port: 2)]))
            let three = try MemcachedBackend(configuration: .init(servers: [.init(host: "127.0.0.1", port: 1), .init(host: "127.0.0.1", port: 2), .init(host: "127.0.0.1", port: 3)]))
            let keys = (0..<3000).map { "user:\($0)" }
            var moved = 0
            var movedElsewhere = 0
            for key in keys {
                let before = two.server(for: key)
                let after = three.server(for: key)
                if before != after {
                    moved += 1
                    if after.port != 3 { movedElsewhere += 1 }
                }
            }
            #expect(movedElsewhere == 0, "adding a server moved keys between the old servers")
            #expect(moved > 700 && moved < 1300, "adding a third server moved \(moved) of 3000 keys, expected about a third")

            let weighted = try MemcachedBackend(configuration: .init(servers: [.init(host: "127.0.0.1", port: 1, weight: 1), .init(host: "127.0.0.1", port: 2, weight: 3)]))
            let heavy = keys.filter { weighted.server(for: $0).port == 2 }.count
            #expect(heavy > 2000 && heavy < 2500, "a server of weight 3 against 1 got \(heavy) of 3000 keys")
        }

        @Test func aStoppedServerMissesItsKeysWhileTheOtherServes() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let b = try await PrivateMemcached.start()
            defer { b.stop() }
            let backend = try backend([a, b])
            let keys = (0..<100).map { "stop:k\($0)" }
            try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
            let keysOnA = keys.filter { backend.server(for: $0) == a.server }
            let keysOnB = keys.filter { backend.server(for: $0) == b.server }
            #expect(!keysOnA.isEmpty && !keysOnB.isEmpty)

            a.stop()
            let started = ContinuousClock.now
            // Batch reads: B's keys hit, A's miss.
            let entries = try await backend.get(keys)
            for (key, entry) in zip(keys, entries) {
                if backend.server(for: key) == a.server {
                    #expect(entry == nil, "\(key) on the stopped server read as a hit")
                } else {
                    #expect(entry?.value == bytes(key), "\(key) on the running server missed")
                }
            }
            // Single operations on A's keys fail with connectionFailed; on B's keys they work.
            for key in keysOnA.prefix(10) {
                do {
                    _ = try await backend.get(key)
                    Issue.record("get of \(key) on the stopped server did not throw")
                } catch let error as CacheError {
                    #expect(error.code == .connectionFailed || error.code == .timeout, "\(error)")
                }
                await #expect(throws: CacheError.self) { try await backend.set(key, to: [1], ttl: nil) }
            }
            for key in keysOnB.prefix(10) {
                #expect(try await backend.get(key)?.value == bytes(key))
                try await backend.set(key, to: bytes("new"), ttl: nil)
            }
            // Through a fail-open front, getOrSet computes the stopped server's keys and serves the other's.
            let front = CacheFront(backend: backend, failOpen: true)
            #expect(try await front.getOrSet(keysOnA[0]) { "computed" } == "computed")
            #expect(try await front.get(keysOnB[0], as: [UInt8].self) == bytes("new"))
            // clear(prefix:) reports the server it could not reach, and still clears the other.
            do {
                try await backend.clear(prefix: "stop:")
                Issue.record("clear with a server down did not throw")
            } catch let error as CacheError {
                #expect(error.code == .connectionFailed)
                #expect(error.message.contains(a.address))
            }
            #expect(try await backend.get(keysOnB[0]) == nil)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(5), "operations with a server down took \(elapsed)")

            // A new memcached on A's port: after the retry timeout A's keys work again (empty).
            let restarted = try await PrivateMemcached.start(port: a.port)
            defer { restarted.stop() }
            var stored = false
            let deadline = ContinuousClock.now + .seconds(5)
            while !stored && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                stored = (try? await backend.set(keysOnA[0], to: bytes("again"), ttl: nil)) != nil
            }
            #expect(stored, "the restarted server was not used again")
            #expect(try await backend.get(keysOnA[0])?.value == bytes("again"))
            #expect(try await backend.get(keysOnA[1]) == nil)
            try await backend.close()
        }

        @Test func aServerThatComesBackIsUsedAgain() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let b = try await PrivateMemcached.start()
            defer { b.stop() }
            let backend = try backend([a, b], retry: .milliseconds(300))
            let keyOnA = try #require((0..<1000).map { "back:k\($0)" }.first { backend.server(for: $0) == a.server })
            try await backend.set(keyOnA, to: bytes("before"), ttl: nil)
            a.pause()
            await #expect(throws: CacheError.self) { _ = try await backend.get(keyOnA) }   // times out, marks A down
            let refusedAt = ContinuousClock.now
            await #expect(throws: CacheError.self) { _ = try await backend.get(keyOnA) }   // refused at once
            #expect(ContinuousClock.now - refusedAt < .milliseconds(100), "a server marked down was waited for")
            a.resume()
            // After the retry timeout one request tries A again, and it answers.
            var value: [UInt8]?
            let deadline = ContinuousClock.now + .seconds(5)
            while value == nil && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                value = try? await backend.get(keyOnA)?.value
            }
            #expect(value == bytes("before"), "server A was not used again after it came back")
            try await backend.close()
        }

        @Test func aFrozenServerNeitherHangsCallsNorBlocksTheCooperativePool() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let b = try await PrivateMemcached.start()
            defer { b.stop() }
            // Eight connections to A: eight blocking calls at once, more than this machine's cores.
            let backend = try backend([a, b], connections: 8, io: .seconds(1), retry: .seconds(30))
            let keys = (0..<200).map { "frozen:k\($0)" }
            try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
            let keysOnA = keys.filter { backend.server(for: $0) == a.server }
            let keysOnB = keys.filter { backend.server(for: $0) == b.server }
            // Warm every connection to A so each holds an open socket to the frozen process.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for key in keysOnA.prefix(64) { group.addTask { _ = try await backend.get(key) } }
                try await group.waitForAll()
            }

            a.pause()
            let heartbeat = Heartbeat()
            let ticker = Task { await heartbeat.run(every: .milliseconds(10)) }
            let started = ContinuousClock.now
            let outcomes = await withTaskGroup(of: (Bool, Duration).self) { group in
                for key in keysOnA.prefix(64) {
                    group.addTask {
                        let begin = ContinuousClock.now
                        let failed = (try? await backend.get(key)) == nil
                        return (failed, ContinuousClock.now - begin)
                    }
                }
                var outcomes: [(Bool, Duration)] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            let blockedFor = ContinuousClock.now - started
            // The other server keeps serving.
            for key in keysOnB.prefix(20) { #expect(try await backend.get(key)?.value == bytes(key)) }
            ticker.cancel()
            let maxGap = await heartbeat.maxGap
            let ticks = await heartbeat.ticks
            a.resume()

            #expect(outcomes.allSatisfy { $0.0 }, "a read from the frozen server succeeded")
            let slowest = outcomes.map(\.1).max() ?? .zero
            #expect(slowest < .seconds(3), "a call to the frozen server took \(slowest)")
            #expect(blockedFor >= .milliseconds(900), "the calls did not block (took \(blockedFor)); the test proves nothing")
            // Blocked cooperative threads would stall the heartbeat for the whole second.
            #expect(maxGap < .milliseconds(500), "the heartbeat stalled for \(maxGap) while C calls blocked: the cooperative pool was blocked")
            #expect(ticks >= 20)
            print("frozen server: 64 reads failed within \(slowest) (all within \(blockedFor)); heartbeat max gap \(maxGap) over \(ticks) ticks")
            try await backend.close()
        }

        @Test func cancelledReadsDoNotWaitForAFrozenServer() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let backend = try backend([a], connections: 1, retry: .seconds(30))
            try await backend.set("cancel:k", to: [1], ttl: nil)
            a.pause()
            // The first read occupies the only connection until the I/O timeout; the queued ones are cancelled.
            let first = Task { try await backend.get("cancel:k") }
            try await Task.sleep(for: .milliseconds(50))
            let queued = (0..<10).map { _ in Task { try await backend.get("cancel:k") } }
            try await Task.sleep(for: .milliseconds(20))
            for task in queued { task.cancel() }
            for task in queued {
                do {
                    _ = try await task.value
                    Issue.record("a cancelled read returned a value")
                } catch let error as CacheError {
                    #expect(error.code == .cancelled || error.code == .connectionFailed || error.code == .timeout, "\(error)")
                }
            }
            _ = try? await first.value
            a.resume()
            try await backend.close()
        }
    }

    /// What libmemcached 1.1 itself does with a failed server, which is why the backend keeps its
    /// own health state per server. (These call the handle directly, blocking the test's thread.)
    @Suite struct LibmemcachedFailureBehaviourTests {
        func handle(port: Int) throws -> MemcachedHandle {
            var configuration = MemcachedBackend.Configuration(servers: [MemcachedServer(host: "127.0.0.1", port: port)])
            configuration.connectTimeout = .milliseconds(200)
            configuration.ioTimeout = .milliseconds(200)
            configuration.retryTimeout = .seconds(5)
            return try MemcachedHandle(server: configuration.servers[0], configuration: configuration)
        }

        @Test func aRefusedConnectIsBackedOffForTheRetryTimeout() async throws {
            let port = try PrivateMemcached.freePort()
            let handle = try handle(port: port)
            let key = MemcachedKey(Array("k".utf8))
            #expect(throws: MemcachedStatus.self) { _ = try handle.get([key]) }   // refused
            let server = try await PrivateMemcached.start(port: port)
            defer { server.stop() }
            // The server is up now, but libmemcached does not try it until RETRY_TIMEOUT passes.
            do {
                _ = try handle.get([key])
                Issue.record("libmemcached tried the server again within its retry timeout")
            } catch {
                #expect(error.code == MEMCACHED_SERVER_TEMPORARILY_DISABLED, "\(error)")
            }
            // What the backend does when its own retry time comes: end libmemcached's back-off.
            handle.allowRetry()
            let items = try handle.get([key])
            #expect(items.count == 1 && items[0] == nil)
        }

        @Test func aServerThatStopsAnsweringIsNeverBackedOff() async throws {
            let server = try await PrivateMemcached.start()
            defer { server.stop() }
            let handle = try handle(port: server.port)
            let key = MemcachedKey(Array("k".utf8))
            _ = try handle.get([key])        // connected
            server.pause()
            for _ in 0..<2 {
                let started = ContinuousClock.now
                do {
                    _ = try handle.get([key])
                    Issue.record("a get from a frozen server succeeded")
                } catch {
                    // Each call waits the whole poll timeout again: libmemcached does not mark it.
                    #expect(error.code == MEMCACHED_TIMEOUT, "\(error)")
                    #expect(ContinuousClock.now - started >= .milliseconds(150))
                }
                handle.reset()
            }
            server.resume()
        }
    }

}

/// Ticks on the cooperative pool and records the longest gap between ticks.
actor Heartbeat {
    private(set) var ticks = 0
    private(set) var maxGap: Duration = .zero
    private var last = ContinuousClock.now

    func run(every interval: Duration) async {
        last = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            maxGap = max(maxGap, now - last - interval)
            last = now
            ticks += 1
        }
    }
}
