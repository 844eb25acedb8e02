import Caching
import Testing

@Suite("InMemoryBackend: atomic, batch and concurrent operations")
struct InMemoryAtomicTests {
    typealias Support = InMemoryTestSupport

    // MARK: add

    @Test func addStoresOnlyWhenAbsent() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        #expect(try await backend.add("lock", value: [1], ttl: .seconds(5)))
        #expect(try await backend.add("lock", value: [2], ttl: .seconds(50)) == false)
        #expect(try await backend.get("lock") == CacheEntry(value: [1], ttl: .seconds(5)))

        clock.advance(by: .seconds(5))  // expired: counts as absent
        #expect(try await backend.add("lock", value: [3], ttl: nil))
        #expect(try await backend.get("lock") == CacheEntry(value: [3], ttl: nil))
    }

    // MARK: increment

    @Test func incrementStartsMissingCountersAtZeroWithTheTTL() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        #expect(try await backend.increment("hits", by: 5, ttl: .seconds(10)) == 5)
        #expect(try await backend.get("hits") == CacheEntry(value: Support.bytes("5"), ttl: .seconds(10)))
        #expect(try await backend.increment("down", by: -3, ttl: nil) == -3)
        #expect(try await backend.get("down") == CacheEntry(value: Support.bytes("-3"), ttl: nil))
    }

    @Test func incrementKeepsTheExistingExpiry() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        _ = try await backend.increment("c", by: 1, ttl: .seconds(10))
        clock.advance(by: .seconds(4))
        #expect(try await backend.increment("c", by: 41, ttl: .seconds(100)) == 42)
        #expect(try await backend.get("c") == CacheEntry(value: Support.bytes("42"), ttl: .seconds(6)))

        try await backend.set("plain", to: Support.bytes("7"), ttl: nil)
        #expect(try await backend.increment("plain", by: 1, ttl: .seconds(1)) == 8)
        #expect(try await backend.get("plain")?.ttl == nil)

        clock.advance(by: .seconds(6))  // "c" expired: starts again with the new TTL
        #expect(try await backend.increment("c", by: 1, ttl: .seconds(3)) == 1)
        #expect(try await backend.get("c")?.ttl == .seconds(3))
    }

    @Test func incrementOfANonNumberThrowsAndKeepsTheValue() async throws {
        let backend = InMemoryBackend()
        for (key, value) in [
            ("text", Support.bytes("abc")), ("empty", []), ("float", Support.bytes("1.5")),
            ("binary", [0, 1, 2]), ("spaces", Support.bytes(" 1")), ("huge", Support.bytes("99999999999999999999")),
        ] {
            try await backend.set(key, to: value, ttl: nil)
            await Support.expectError(.notANumber) { _ = try await backend.increment(key, by: 1, ttl: nil) }
            #expect(try await backend.get(key)?.value == value)
        }
        try await backend.set("max", to: Support.bytes(String(Int64.max)), ttl: nil)
        await Support.expectError(.notANumber) { _ = try await backend.increment("max", by: 1, ttl: nil) }
        #expect(try await backend.get("max")?.value == Support.bytes(String(Int64.max)))
        #expect(try await backend.increment("max", by: -1, ttl: nil) == Int64.max - 1)
    }

    // MARK: touch

    @Test func touchSetsANewTTL() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        #expect(try await backend.touch("missing", ttl: .seconds(1)) == false)
        #expect(try await backend.exists("missing") == false)

        try await backend.set("k", to: [1], ttl: .seconds(2))
        #expect(try await backend.touch("k", ttl: .seconds(30)))
        #expect(try await backend.get("k")?.ttl == .seconds(30))
        #expect(try await backend.touch("k", ttl: nil))
        #expect(try await backend.get("k") == CacheEntry(value: [1], ttl: nil))
        #expect(try await backend.touch("k", ttl: .milliseconds(10)))
        clock.advance(by: .milliseconds(10))
        #expect(try await backend.touch("k", ttl: .seconds(30)) == false)  // expired first
        #expect(try await backend.exists("k") == false)
    }

    // MARK: exists and delete

    @Test func existsAndDeleteIgnoreExpiredEntries() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("k", to: [1], ttl: .seconds(1))
        #expect(try await backend.exists("k"))
        clock.advance(by: .seconds(1))
        #expect(try await backend.exists("k") == false)
        try await backend.set("j", to: [1], ttl: .seconds(1))
        clock.advance(by: .seconds(1))
        #expect(try await backend.delete("j") == false)
        #expect(backend.stats().entries == 0)
    }

    // MARK: Batch

    @Test func batchOperations() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set([("a", [1]), ("b", [2]), ("c", [3])], ttl: .seconds(10))
        try await backend.set([], ttl: nil)
        let entries = try await backend.get(["c", "missing", "a", "a"])
        #expect(
            entries == [
                CacheEntry(value: [3], ttl: .seconds(10)), nil,
                CacheEntry(value: [1], ttl: .seconds(10)), CacheEntry(value: [1], ttl: .seconds(10)),
            ])
        #expect(try await backend.get([]) == [])

        // Later items win, like a sequence of single sets.
        try await backend.set([("d", [4]), ("d", [5])], ttl: nil)
        #expect(try await backend.get("d")?.value == [5])

        #expect(try await backend.delete(["a", "missing", "b", "a"]) == 2)
        #expect(try await backend.get(["a", "b", "c"]).map { $0?.value } == [nil, nil, [3]])
        #expect(try await backend.delete([]) == 0)

        await Support.expectError(.invalidKey) { _ = try await backend.get(["c", ""]) }
        await Support.expectError(.invalidKey) { _ = try await backend.delete(["c", ""]) }
        #expect(try await backend.exists("c"), "a refused batch delete removed nothing")
    }

    // MARK: Concurrency

    @Test func thousandConcurrentOperations() async throws {
        let backend = try InMemoryBackend(maxEntries: 100_000)
        let tasks = 50
        let operationsPerTask = 20  // 1,000 operations in all
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in 0..<operationsPerTask {
                        switch i % 4 {
                        case 0:
                            _ = try await backend.increment("shared-counter", by: 1, ttl: nil)
                        case 1:
                            try await backend.set("task\(t):\(i)", to: [UInt8(t), UInt8(i)], ttl: .seconds(60))
                        case 2:
                            let entry = try await backend.get("task\(t):\(i - 1)")
                            #expect(entry?.value == [UInt8(t), UInt8(i - 1)])
                        default:
                            _ = try await backend.add("claimed", value: [UInt8(t)], ttl: nil)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let counter = try #require(try await backend.get("shared-counter"))
        #expect(counter.value == Support.bytes(String(tasks * operationsPerTask / 4)))
        #expect(try await backend.get("claimed")?.value.count == 1)
        #expect(backend.stats().entries == 2 + tasks * operationsPerTask / 4)
    }

    @Test func concurrentIncrementsAreNotLost() async throws {
        let backend = InMemoryBackend()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<1_000 {
                group.addTask { _ = try await backend.increment("n", by: 1, ttl: .seconds(60)) }
            }
            try await group.waitForAll()
        }
        #expect(try await backend.get("n")?.value == Support.bytes("1000"))
    }

    @Test func concurrentWritersUnderEvictionKeepTheLimits() async throws {
        let backend = try InMemoryBackend(maxEntries: 512, maxBytes: 64 << 10, maxValueSize: 1_000, shardCount: 2)
        #expect(backend.shardCount == 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<500 {
                        let key = "w\(t):\(i)"
                        try await backend.set(key, to: [UInt8](repeating: UInt8(t), count: 100), ttl: nil)
                        if i % 3 == 0 { _ = try await backend.get("w\(t):\(i / 2)") }
                        if i % 50 == 0 { try await backend.clear(prefix: "w\(t):1") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = backend.stats()
        #expect(stats.entries <= 512)
        #expect(stats.bytes <= 64 << 10)
        #expect(stats.entries > 0)
    }
}
