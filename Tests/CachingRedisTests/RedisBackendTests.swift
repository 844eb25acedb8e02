import Caching
import Foundation
import Testing

@testable import CachingRedis

/// The backend's operations against the shared server (`CACHING_REDIS_URL`).
@Suite(.enabled(if: TestEnvironment.sharedServerEnabled, "CACHING_REDIS_URL is not set or its server does not answer"))
struct RedisBackendTests {
    /// Runs `body` with a backend on the shared server and a unique key prefix; closes it after.
    func withBackend(poolSize: Int? = nil, _ body: (RedisBackend, String) async throws -> Void) async throws {
        let backend = try TestEnvironment.sharedBackend(poolSize: poolSize)
        let prefix = uniquePrefix("backend")
        do {
            try await body(backend, prefix)
        } catch {
            try? await backend.clear(prefix: prefix)
            try? await backend.close()
            throw error
        }
        try await backend.clear(prefix: prefix)
        try await backend.close()
    }

    @Test func setAndGetWithTTL() async throws {
        try await withBackend { backend, prefix in
            let clock = ContinuousClock()
            let start = clock.now
            try await backend.set(prefix + "a", to: Array("hello".utf8), ttl: .seconds(10))
            let entry = try #require(try await backend.get(prefix + "a"))
            let elapsed = clock.now - start
            #expect(entry.value == Array("hello".utf8))
            let ttl = try #require(entry.ttl)
            // The server counts down from SET to PTTL, which both happened within `elapsed`.
            #expect(ttl <= .seconds(10) && ttl >= .seconds(10) - elapsed - .milliseconds(1), "ttl \(ttl) after \(elapsed)")
            #expect(try await backend.get(prefix + "missing") == nil)
        }
    }

    @Test func setWithoutTTLNeverExpires() async throws {
        try await withBackend { backend, prefix in
            try await backend.set(prefix + "forever", to: [1, 2, 3], ttl: nil)
            let entry = try #require(try await backend.get(prefix + "forever"))
            #expect(entry.value == [1, 2, 3])
            #expect(entry.ttl == nil)
        }
    }

    @Test func overwriteReplacesValueAndTTL() async throws {
        try await withBackend { backend, prefix in
            try await backend.set(prefix + "k", to: [1], ttl: .seconds(100))
            try await backend.set(prefix + "k", to: [2], ttl: nil)
            let entry = try #require(try await backend.get(prefix + "k"))
            #expect(entry.value == [2])
            #expect(entry.ttl == nil)
        }
    }

    @Test func entriesExpire() async throws {
        try await withBackend { backend, prefix in
            let clock = ContinuousClock()
            let start = clock.now
            try await backend.set(prefix + "short", to: [9], ttl: .milliseconds(400))
            let present = try await backend.exists(prefix + "short")
            if clock.now - start < .milliseconds(350) { #expect(present) }
            try await Task.sleep(until: start + .milliseconds(700))
            #expect(try await backend.get(prefix + "short") == nil)
            #expect(try await !backend.exists(prefix + "short"))
        }
    }

    @Test func invalidTTLAndKeyAreRefused() async throws {
        try await withBackend { backend, prefix in
            #expect(await cacheError { try await backend.set(prefix + "x", to: [1], ttl: .zero) }?.code == .invalidTTL)
            #expect(await cacheError { try await backend.set(prefix + "x", to: [1], ttl: .seconds(-1)) }?.code == .invalidTTL)
            #expect(await cacheError { _ = try await backend.add(prefix + "x", value: [1], ttl: .zero) }?.code == .invalidTTL)
            #expect(await cacheError { try await backend.set("", to: [1], ttl: nil) }?.code == .invalidKey)
            let stored = try await backend.get(prefix + "x")
            #expect(stored == nil)
        }
    }

    @Test func deleteAndExists() async throws {
        try await withBackend { backend, prefix in
            try await backend.set(prefix + "d", to: [1], ttl: nil)
            #expect(try await backend.exists(prefix + "d"))
            #expect(try await backend.delete(prefix + "d"))
            #expect(try await !backend.delete(prefix + "d"))
            #expect(try await !backend.exists(prefix + "d"))
        }
    }

    @Test func batchSetGetDelete() async throws {
        try await withBackend { backend, prefix in
            let items = (0..<100).map { (key: prefix + "batch\($0)", value: Array("value \($0)".utf8)) }
            try await backend.set(items, ttl: .seconds(60))
            var keys = items.map(\.key)
            keys.insert(prefix + "absent-1", at: 10)
            keys.append(prefix + "absent-2")
            let entries = try await backend.get(keys)
            #expect(entries.count == keys.count)
            #expect(entries[10] == nil)
            #expect(entries.last! == nil)
            for (index, key) in keys.enumerated() where !key.contains("absent") {
                let number = Int(key.split(separator: "h").last!)!
                #expect(entries[index]?.value == Array("value \(number)".utf8))
                #expect(entries[index]?.ttl == nil)  // not read by default
            }
            #expect(try await backend.get([String]()) == [])
            // The same batch with the prefix passed apart (the keys are written straight into the MGET).
            let unprefixed = keys.map { String($0.dropFirst(prefix.count)) }
            let viaPrefix = try await backend.get(unprefixed, prefix: prefix)
            #expect(viaPrefix.map { $0?.value } == entries.map { $0?.value })
            #expect(try await backend.get([String](), prefix: prefix) == [])
            #expect(try await backend.get([""], prefix: prefix) == [nil])
            await #expect(throws: CacheError.self) { try await backend.get([""], prefix: "") }
            #expect(try await backend.delete(keys) == 100)
            #expect(try await backend.delete(keys) == 0)
            #expect(try await backend.delete([String]()) == 0)
            try await backend.set([(key: prefix + "one", value: [1])], ttl: nil)
            #expect(try await backend.get(prefix + "one")?.value == [1])
        }
    }

    @Test func batchGetReadsTTLsWhenAsked() async throws {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.sharedRedisURL))
        configuration.batchGetReadsTTL = true
        let backend = try RedisBackend(configuration: configuration, logger: testLogger)
        let prefix = uniquePrefix("batch-ttl")
        try await backend.set([(key: prefix + "a", value: [1]), (key: prefix + "b", value: [2])], ttl: .seconds(60))
        try await backend.set(prefix + "forever", to: [3], ttl: nil)
        let entries = try await backend.get([prefix + "a", prefix + "missing", prefix + "forever", prefix + "b"])
        #expect(entries.map { $0?.value } == [[1], nil, [3], [2]])
        #expect(entries[0]?.ttl.map { $0 > .seconds(50) && $0 <= .seconds(60) } == true)
        #expect(entries[3]?.ttl.map { $0 > .seconds(50) && $0 <= .seconds(60) } == true)
        #expect(entries[2]?.ttl == nil)
        let viaPrefix = try await backend.get(["a", "missing", "forever", "b"], prefix: prefix)
        #expect(viaPrefix.map { $0?.value } == [[1], nil, [3], [2]])
        #expect(viaPrefix[0]?.ttl.map { $0 > .seconds(50) && $0 <= .seconds(60) } == true)
        #expect(viaPrefix[2]?.ttl == nil)
        try await backend.clear(prefix: prefix)
        try await backend.close()
    }

    @Test func deleteOfMoreThanOneThousandKeys() async throws {
        try await withBackend { backend, prefix in
            let items = (0..<2500).map { (key: prefix + "many\($0)", value: [UInt8(truncatingIfNeeded: $0)]) }
            try await backend.set(items, ttl: .seconds(60))
            #expect(try await backend.delete(items.map(\.key) + [prefix + "none"]) == 2500)
        }
    }

    @Test func addOnlyWhenAbsent() async throws {
        try await withBackend { backend, prefix in
            let clock = ContinuousClock()
            let start = clock.now
            #expect(try await backend.add(prefix + "lock", value: [1], ttl: .seconds(1)))
            let second = try await backend.add(prefix + "lock", value: [2], ttl: .seconds(1))
            let afterSecond = clock.now
            let stored = try await backend.get(prefix + "lock")
            if clock.now - start < .milliseconds(900) {
                #expect(!second)
                #expect(stored?.value == [1])
            }
            // On a very loaded machine the first entry may have expired before the second add,
            // which then stored [2]: wait until whichever entry is there has expired too.
            try await Task.sleep(until: (second ? afterSecond : start) + .milliseconds(1300))
            #expect(try await backend.add(prefix + "lock", value: [3], ttl: nil))
            let entry = try #require(try await backend.get(prefix + "lock"))
            #expect(entry.value == [3])
            #expect(entry.ttl == nil)
        }
    }

    @Test func incrementCounters() async throws {
        try await withBackend { backend, prefix in
            #expect(try await backend.increment(prefix + "n", by: 5, ttl: .seconds(30)) == 5)
            #expect(try await backend.increment(prefix + "n", by: -7, ttl: .seconds(1000)) == -2)
            let entry = try #require(try await backend.get(prefix + "n"))
            #expect(entry.value == Array("-2".utf8))
            // An existing counter keeps its expiry.
            #expect(entry.ttl.map { $0 <= .seconds(30) && $0 > .seconds(25) } == true)

            #expect(try await backend.increment(prefix + "plain", by: 1, ttl: nil) == 1)
            #expect(try await backend.get(prefix + "plain")?.ttl == nil)

            try await backend.set(prefix + "text", to: Array("abc".utf8), ttl: nil)
            #expect(await cacheError { _ = try await backend.increment(prefix + "text", by: 1, ttl: .seconds(1)) }?.code == .notANumber)
            try await backend.set(prefix + "big", to: Array(String(Int64.max).utf8), ttl: nil)
            #expect(await cacheError { _ = try await backend.increment(prefix + "big", by: 1, ttl: nil) }?.code == .notANumber)
        }
    }

    @Test func concurrentIncrementsAreAtomic() async throws {
        try await withBackend(poolSize: 3) { backend, prefix in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<200 {
                    group.addTask { _ = try await backend.increment(prefix + "hits", by: 1, ttl: .seconds(60)) }
                }
                try await group.waitForAll()
            }
            #expect(try await backend.get(prefix + "hits")?.value == Array("200".utf8))
        }
    }

    @Test func touchChangesTheTTL() async throws {
        try await withBackend { backend, prefix in
            #expect(try await !backend.touch(prefix + "missing", ttl: .seconds(5)))
            #expect(try await !backend.touch(prefix + "missing", ttl: nil))
            try await backend.set(prefix + "t", to: [1], ttl: .seconds(5))
            #expect(try await backend.touch(prefix + "t", ttl: .seconds(100)))
            #expect(try await backend.get(prefix + "t")?.ttl.map { $0 > .seconds(95) } == true)
            #expect(try await backend.touch(prefix + "t", ttl: nil))
            #expect(try await backend.get(prefix + "t")?.ttl == nil)
            // A key without a TTL is still "there" for touch(nil).
            #expect(try await backend.touch(prefix + "t", ttl: nil))
        }
    }

    @Test func binarySafeValues() async throws {
        try await withBackend { backend, prefix in
            let allBytes = (0...255).map { UInt8($0) } + [0, 0, 13, 10, 0]
            // Every byte value, zero bytes included, in a pattern that does not repeat every 256 bytes.
            let megabyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            let values: [String: [UInt8]] = ["all": allBytes, "zeros": [0, 0, 0], "empty": [], "mib": megabyte]
            for (name, value) in values {
                try await backend.set(prefix + name, to: value, ttl: .seconds(60))
            }
            for (name, value) in values {
                #expect(try await backend.get(prefix + name)?.value == value, "value \(name)")
            }
            let batch = try await backend.get(values.keys.map { prefix + $0 })
            #expect(batch.map { $0?.value } == values.keys.map { values[$0] })
        }
    }

    @Test func valuesLargerThanTheSocketBuffers() async throws {
        // 16 MiB does not fit in the socket's send buffer: the caller's write is partial and
        // the connection's thread finishes it when the socket is writable, while small calls
        // queue behind it on the same connection.
        try await withBackend(poolSize: 1) { backend, prefix in
            let block = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
            var big: [UInt8] = []
            big.reserveCapacity(16 << 20)
            for index in 0..<256 {
                big.append(contentsOf: block)
                big[big.count - 1 - index] = UInt8(index)  // no two blocks alike
            }
            let value = big
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await backend.set(prefix + "big", to: value, ttl: .seconds(60)) }
                for index in 0..<20 {
                    group.addTask { try await backend.set(prefix + "small\(index)", to: [UInt8(index)], ttl: .seconds(60)) }
                }
                try await group.waitForAll()
            }
            let entry = try await backend.get(prefix + "big")
            #expect(entry?.value.count == value.count)
            #expect(entry?.value == value)
            let smalls = try await backend.get((0..<20).map { prefix + "small\($0)" })
            #expect(smalls.map { $0?.value } == (0..<20).map { [UInt8($0)] })
            // Several large values in one pipelined batch.
            let items = (0..<4).map { (key: prefix + "many\($0)", value: [UInt8](repeating: UInt8($0), count: 3 << 20)) }
            try await backend.set(items, ttl: .seconds(60))
            let many = try await backend.get(items.map(\.key))
            #expect(many.map { $0?.value } == items.map(\.value))
        }
    }

    @Test func unusualKeys() async throws {
        try await withBackend { backend, prefix in
            let keys = [
                "with space", "new\nline", "tab\tand\r\nCRLF", "Ünïcödé 🗝️ ключ", String(repeating: "k", count: 400),
                "glob*?[x]\\", "nul\u{0}byte",
            ].map { prefix + $0 }
            for (index, key) in keys.enumerated() {
                try await backend.set(key, to: [UInt8(index)], ttl: .seconds(60))
            }
            for (index, key) in keys.enumerated() {
                #expect(try await backend.get(key)?.value == [UInt8(index)], "key \(key.debugDescription)")
            }
            #expect(try await backend.delete(keys) == keys.count)
        }
    }

    @Test func errorRepliesCarryTheServerMessage() async throws {
        try await withBackend { backend, prefix in
            let key = prefix + "list"
            let pushed = try await backend.send(RedisCommands("LPUSH", arguments: 2) {
                $0.argument(key)
                $0.argument("item")
            })
            guard case .integer(1) = pushed else {
                Issue.record("LPUSH answered \(pushed)")
                return
            }
            let getError = await cacheError { _ = try await backend.get(key) }
            #expect(getError?.code == .serverError)
            #expect(getError?.message.contains("WRONGTYPE") == true)
            let incrementError = await cacheError { _ = try await backend.increment(key, by: 1, ttl: nil) }
            #expect(incrementError?.code == .serverError)
            #expect(incrementError?.message.contains("WRONGTYPE") == true)
            // MGET answers nil for a key of another type.
            #expect(try await backend.get([key]) == [nil])
            // SET replaces a key of any type.
            try await backend.set(key, to: [1], ttl: nil)
            #expect(try await backend.get(key)?.value == [1])
            let unknown = try await backend.send(RedisCommands("NO-SUCH-COMMAND"))
            guard case .error(let message) = unknown else {
                Issue.record("expected an error reply, got \(unknown)")
                return
            }
            #expect(message.contains("unknown command"))
        }
    }

    @Test func concurrentCallsSharePipelinedRoundTrips() async throws {
        try await withBackend(poolSize: 1) { backend, prefix in
            let count = 1000
            try await backend.set((0..<count).map { (key: prefix + "p\($0)", value: Array("\($0)".utf8)) }, ttl: .seconds(60))
            let before = backend.roundTrips
            let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<count {
                    group.addTask {
                        let entry = try await backend.get(prefix + "p\(index)")
                        return entry?.value == Array("\(index)".utf8) ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
            let roundTrips = backend.roundTrips - before
            #expect(mismatches == 0)
            #expect(roundTrips < count, "\(count) concurrent gets took \(roundTrips) round trips")
        }
    }

    @Test func repliesStayMatchedUnderCancellationAndMixedCommands() async throws {
        // Many tasks on two connections, mixing single and multi-command requests, some of them
        // cancelled at random: every call that completes must get its own key's answer.
        try await withBackend(poolSize: 2) { backend, prefix in
            let count = 400
            try await backend.set((0..<count).map { (key: prefix + "m\($0)", value: Array("v\($0)".utf8)) }, ttl: .seconds(60))
            let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
                var tasks: [Task<Int, any Error>] = []
                for round in 0..<5 {
                    for index in 0..<count {
                        let task = Task<Int, any Error> {
                            switch (index + round) % 4 {
                            case 0:
                                return try await backend.get(prefix + "m\(index)")?.value == Array("v\(index)".utf8) ? 0 : 1
                            case 1:
                                let pair = try await backend.get([prefix + "m\(index)", prefix + "none"])
                                return pair.map { $0?.value } == [Array("v\(index)".utf8), nil] ? 0 : 1
                            case 2:
                                return try await backend.exists(prefix + "m\(index)") ? 0 : 1
                            default:
                                let n = try await backend.increment(prefix + "n\(index)", by: 1, ttl: .seconds(60))
                                return n >= 1 && n <= 5 ? 0 : 1
                            }
                        }
                        tasks.append(task)
                        if index % 7 == 3 { task.cancel() }
                    }
                }
                for task in tasks {
                    group.addTask {
                        do { return try await task.value } catch let error as CacheError where error.code == .cancelled { return 0 }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(wrong == 0, "\(wrong) calls got another call's answer")
        }
    }

    @Test func pingAndClose() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let rtt = try await backend.ping()
        #expect(rtt < .seconds(2))
        try await backend.close()
        try await backend.close()
        #expect(await cacheError { _ = try await backend.get("k") }?.code == .closed)
        #expect(await cacheError { try await backend.ping() }?.code == .closed)
    }
}

/// Connection threads end when the backend is closed, or released without closing.
@Suite(.enabled(if: TestEnvironment.sharedServerEnabled, "CACHING_REDIS_URL is not set or its server does not answer"))
struct RedisThreadLifecycleTests {
    /// How many of this process's threads belong to the backends numbered `serials` (Linux
    /// only; nil elsewhere). Threads are named `redis<serial>.<connection>`.
    private func threadCount(of serials: [Int]) -> Int? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        let names = Set(serials.flatMap { serial in (0..<3).map { "redis\(serial).\($0)" } })
        return tasks.filter { task in
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return names.contains(comm.trimmingCharacters(in: .whitespacesAndNewlines))
        }.count
    }

    @Test func closeAndReleaseEndTheThreads() async throws {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.sharedRedisURL))
        configuration.poolSize = 3
        var serials: [Int] = []
        for _ in 0..<5 {
            let backend = try RedisBackend(configuration: configuration, logger: testLogger)
            serials.append(backend.serial)
            try await backend.ping()
            // Each thread names itself when it starts: give a loaded machine a moment.
            var running = threadCount(of: [backend.serial]) ?? 3
            let started = ContinuousClock.now
            while running < 3 && ContinuousClock.now - started < .seconds(5) {
                try await Task.sleep(for: .milliseconds(10))
                running = threadCount(of: [backend.serial]) ?? 3
            }
            #expect(running == 3)
            try await backend.close()
            if let left = threadCount(of: [backend.serial]) { #expect(left == 0, "close() left \(left) threads") }
        }
        do {
            let released = try RedisBackend(configuration: configuration, logger: testLogger)
            serials.append(released.serial)
            try await released.ping()
        }
        // The released backend's threads stop on their own.
        let deadline = ContinuousClock.now + .seconds(5)
        var left = threadCount(of: serials) ?? 0
        while left > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            left = threadCount(of: serials) ?? 0
        }
        #expect(left == 0, "\(left) connection threads are left")
    }
}
