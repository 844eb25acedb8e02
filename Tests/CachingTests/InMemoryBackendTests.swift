import Caching
import Testing

/// Helpers shared by the in-memory backend's test files.
enum InMemoryTestSupport {
    /// Fails unless `body` throws a ``CacheError`` with `code`.
    static func expectError(
        _ code: CacheError.Code,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            Issue.record("expected CacheError.\(code), but nothing was thrown", sourceLocation: sourceLocation)
        } catch let error as CacheError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected CacheError.\(code), got \(error)", sourceLocation: sourceLocation)
        }
    }

    struct DeadlineExceeded: Error, CustomStringConvertible {
        var limit: Duration
        var description: String { "did not finish within \(limit)" }
    }

    private enum Outcome<T: Sendable>: Sendable {
        case value(T)
        case timerFired
    }

    /// Runs `body`, and throws ``DeadlineExceeded`` (cancelling it) if it takes longer than
    /// `limit`. If the calling task is cancelled, `body` is cancelled too and awaited.
    static func withDeadline<T: Sendable>(
        _ limit: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Outcome<T>.self) { group in
            group.addTask { .value(try await body()) }
            group.addTask {
                try? await Task.sleep(for: limit)
                return .timerFired
            }
            while let outcome = try await group.next() {
                switch outcome {
                case .value(let value):
                    group.cancelAll()
                    return value
                case .timerFired:
                    if Task.isCancelled { continue }  // cancelled from outside: wait for body
                    group.cancelAll()
                    throw DeadlineExceeded(limit: limit)
                }
            }
            throw DeadlineExceeded(limit: limit)
        }
    }

    /// Polls `condition` every few milliseconds until it holds or `limit` passes.
    static func eventually(
        within limit: Duration = .seconds(10), _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return try await condition()
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
}

@Suite("InMemoryBackend: reads, writes and limits")
struct InMemoryBackendTests {
    typealias Support = InMemoryTestSupport

    // MARK: Basics

    @Test func setGetOverwriteDelete() async throws {
        let backend = InMemoryBackend()
        #expect(backend.name == "memory")
        #expect(try await backend.get("missing") == nil)

        try await backend.set("greeting", to: Support.bytes("hello"), ttl: nil)
        #expect(try await backend.get("greeting") == CacheEntry(value: Support.bytes("hello"), ttl: nil))

        try await backend.set("greeting", to: Support.bytes("bonjour"), ttl: nil)
        #expect(try await backend.get("greeting")?.value == Support.bytes("bonjour"))

        #expect(try await backend.delete("greeting"))
        #expect(try await backend.get("greeting") == nil)
        #expect(try await backend.delete("greeting") == false)
    }

    @Test func binaryEmptyAndLargeValues() async throws {
        let backend = InMemoryBackend()
        let binary: [UInt8] = [0, 255, 0, 1, 0, 0, 13, 10]
        try await backend.set("binary", to: binary, ttl: nil)
        try await backend.set("empty", to: [], ttl: nil)
        let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await backend.set("large", to: large, ttl: .seconds(60))

        #expect(try await backend.get("binary")?.value == binary)
        #expect(try await backend.get("empty") == CacheEntry(value: [], ttl: nil))
        #expect(try await backend.get("large")?.value == large)
        #expect(backend.stats().bytes == 6 + 8 + 5 + 5 + (1 << 20))
    }

    @Test func unusualKeys() async throws {
        let backend = InMemoryBackend()
        let keys = [
            "with space", "new\nline", "tab\tand\r\n", "émoji 🎉", "日本語", "*?[]:{}%",
            String(repeating: "k", count: 300), "\u{0}nul",
        ]
        for (i, key) in keys.enumerated() {
            try await backend.set(key, to: [UInt8(i)], ttl: nil)
        }
        for (i, key) in keys.enumerated() {
            #expect(try await backend.get(key)?.value == [UInt8(i)], "key \(key.debugDescription)")
        }
    }

    @Test func keysAreComparedByteForByte() async throws {
        // NFC and NFD spellings of "café" are equal Swift Strings, but different keys in
        // Redis or memcached; the in-memory backend keeps them apart too.
        let backend = InMemoryBackend()
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        #expect(composed == decomposed)
        try await backend.set(composed, to: [1], ttl: nil)
        try await backend.set(decomposed, to: [2], ttl: nil)
        #expect(try await backend.get(composed)?.value == [1])
        #expect(try await backend.get(decomposed)?.value == [2])
        #expect(backend.stats().entries == 2)
    }

    @Test func emptyKeyIsRefused() async throws {
        let backend = InMemoryBackend()
        await Support.expectError(.invalidKey) { _ = try await backend.get("") }
        await Support.expectError(.invalidKey) { try await backend.set("", to: [1], ttl: nil) }
        await Support.expectError(.invalidKey) { _ = try await backend.add("", value: [1], ttl: nil) }
        await Support.expectError(.invalidKey) { _ = try await backend.increment("", by: 1, ttl: nil) }
        await Support.expectError(.invalidKey) { try await backend.set([("ok", [1]), ("", [2])], ttl: nil) }
        #expect(try await backend.get("ok") == nil)
        #expect(backend.stats().entries == 0)
    }

    // MARK: Configuration

    @Test func defaults() {
        let backend = InMemoryBackend()
        #expect(backend.maxEntries == 100_000)
        #expect(backend.maxBytes == 64 << 20)
        #expect(backend.maxValueSize == 4 << 20)
        #expect(backend.shardCount == 16)
        #expect(backend.clock is SystemCacheClock)
    }

    @Test func smallCachesUseFewerShards() throws {
        // Each shard keeps at least 256 entries and maxValueSize bytes.
        #expect(try InMemoryBackend(maxEntries: 1_000).shardCount == 2)
        #expect(try InMemoryBackend(maxEntries: 100).shardCount == 1)
        let bytesBound = try InMemoryBackend(maxBytes: 1 << 20)
        #expect(bytesBound.maxValueSize == 1 << 20)
        #expect(bytesBound.shardCount == 1)
        // 64 MiB over 64 shards: 1 MiB each, the default maxValueSize.
        let wide = try InMemoryBackend(maxEntries: 1 << 20, shardCount: 64)
        #expect(wide.shardCount == 64)
        #expect(wide.maxValueSize == 1 << 20)
        // A larger maxValueSize needs larger, so fewer, shards.
        #expect(try InMemoryBackend(maxEntries: 1 << 20, maxValueSize: 4 << 20, shardCount: 64).shardCount == 16)
    }

    @Test func invalidConfigurationIsRefused() async {
        await Support.expectError(.configuration) { _ = try InMemoryBackend(maxEntries: 0) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(maxBytes: 0) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(maxValueSize: -1) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(maxBytes: 100, maxValueSize: 101) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(shardCount: 0) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(shardCount: 12) }
        await Support.expectError(.configuration) { _ = try InMemoryBackend(shardCount: 8192) }
    }

    // MARK: Limits and eviction

    @Test func entryLimitEvicts() async throws {
        let backend = try InMemoryBackend(maxEntries: 100, shardCount: 1)
        for i in 0..<1_000 {
            try await backend.set("k\(i)", to: [1], ttl: nil)
        }
        let stats = backend.stats()
        #expect(stats.entries == 100)
        #expect(stats.evictions == 900)
        var present = 0
        for i in 0..<1_000 where try await backend.exists("k\(i)") { present += 1 }
        #expect(present == 100)
        // Nothing was ever read, so the newest entries are the ones kept.
        #expect(try await backend.exists("k999"))
        #expect(try await backend.exists("k900"))
        #expect(try await backend.exists("k0") == false)
    }

    @Test func entryLimitHoldsAcrossShards() async throws {
        let backend = try InMemoryBackend(maxEntries: 8_192, shardCount: 16)
        #expect(backend.shardCount == 16)
        for i in 0..<20_000 {
            try await backend.set("key:\(i)", to: [UInt8(truncatingIfNeeded: i)], ttl: nil)
        }
        let stats = backend.stats()
        // Every shard received more keys than its 512 slots, so every shard is full.
        #expect(stats.entries == 8_192)
        #expect(stats.evictions == 20_000 - 8_192)
    }

    @Test func byteLimitEvicts() async throws {
        let backend = try InMemoryBackend(maxBytes: 10_000, shardCount: 1)
        let value = [UInt8](repeating: 7, count: 96)
        for i in 0..<500 {
            try await backend.set("k\(10_000 + i)", to: value, ttl: nil)  // 6 + 96 = 102 bytes
        }
        var stats = backend.stats()
        #expect(stats.bytes <= 10_000)
        #expect(stats.entries == 10_000 / 102)
        #expect(stats.bytes == stats.entries * 102)
        #expect(try await backend.get("k10499")?.value == value)

        // One large entry makes room for itself by evicting as many small ones as needed.
        let large = [UInt8](repeating: 1, count: 5_000)
        try await backend.set("large", to: large, ttl: nil)
        stats = backend.stats()
        #expect(stats.bytes <= 10_000)
        #expect(try await backend.get("large")?.value == large)
    }

    @Test func growingOverwriteStaysWithinLimitAndKeepsTheKey() async throws {
        let backend = try InMemoryBackend(maxBytes: 2_000, shardCount: 1)
        for i in 0..<19 {
            try await backend.set("k\(100 + i)", to: [UInt8](repeating: 0, count: 96), ttl: nil)  // 100 bytes each
        }
        #expect(backend.stats().bytes == 1_900)
        let bigger = [UInt8](repeating: 9, count: 500)
        try await backend.set("k105", to: bigger, ttl: nil)
        let stats = backend.stats()
        #expect(stats.bytes <= 2_000)
        #expect(try await backend.get("k105")?.value == bigger)
        // Shrinking in place frees bytes without evicting anything.
        let evictions = stats.evictions
        try await backend.set("k105", to: [1], ttl: nil)
        #expect(backend.stats().bytes == stats.bytes - 499)
        #expect(backend.stats().evictions == evictions)
    }

    @Test func valueTooLargeChangesNothing() async throws {
        let backend = try InMemoryBackend(maxBytes: 10_000, maxValueSize: 1_000, shardCount: 1)
        try await backend.set("a", to: [1, 2, 3], ttl: nil)
        let before = backend.stats()

        let tooLarge = [UInt8](repeating: 0, count: 1_001)
        await Support.expectError(.valueTooLarge) { try await backend.set("big", to: tooLarge, ttl: nil) }
        await Support.expectError(.valueTooLarge) { try await backend.set("a", to: tooLarge, ttl: nil) }
        await Support.expectError(.valueTooLarge) { _ = try await backend.add("big", value: tooLarge, ttl: nil) }
        await Support.expectError(.valueTooLarge) {
            try await backend.set([("b", [1]), ("big", tooLarge)], ttl: nil)
        }

        #expect(try await backend.get("a")?.value == [1, 2, 3])
        #expect(try await backend.exists("big") == false)
        #expect(try await backend.exists("b") == false)
        let after = backend.stats()
        #expect(after.entries == before.entries)
        #expect(after.bytes == before.bytes)
        #expect(after.evictions == 0)

        // Exactly at the limit is fine.
        try await backend.set("max", to: [UInt8](repeating: 0, count: 1_000), ttl: nil)
        #expect(try await backend.get("max")?.value.count == 1_000)
    }

    @Test func valueOverTheByteLimitIsRefused() async throws {
        let backend = try InMemoryBackend(maxBytes: 1_000, shardCount: 1)
        #expect(backend.maxValueSize == 1_000)
        await Support.expectError(.valueTooLarge) {
            try await backend.set("v", to: [UInt8](repeating: 0, count: 1_001), ttl: nil)
        }
        // The key counts too: key + value must fit in the shard.
        await Support.expectError(.valueTooLarge) {
            try await backend.set("key", to: [UInt8](repeating: 0, count: 1_000), ttl: nil)
        }
        #expect(backend.stats().entries == 0)
        do {
            try await backend.set("v", to: [UInt8](repeating: 0, count: 1_001), ttl: nil)
        } catch let error as CacheError {
            #expect(error.message.contains("1001"))
            #expect(error.message.contains("1000"))
        }
    }

    @Test func hitsKeepEntriesThroughAScan() async throws {
        // S3-FIFO's scan resistance: entries read twice survive a long run of one-time keys,
        // which would flush an LRU cache of the same size.
        let backend = try InMemoryBackend(maxEntries: 100, shardCount: 1)
        for i in 0..<50 {
            try await backend.set("hot\(i)", to: [1], ttl: nil)
            _ = try await backend.get("hot\(i)")
        }
        for i in 0..<1_000 {
            try await backend.set("scan\(i)", to: [2], ttl: nil)
        }
        for i in 0..<50 {
            #expect(try await backend.exists("hot\(i)"), "hot\(i) was evicted by the scan")
        }
        #expect(backend.stats().entries == 100)
    }

    @Test func ghostHitGoesToTheMainQueue() async throws {
        // A key evicted from the small queue and set again soon after is admitted to the main
        // queue, where a scan of new keys no longer evicts it.
        let backend = try InMemoryBackend(maxEntries: 100, shardCount: 1)
        try await backend.set("returning", to: [1], ttl: nil)
        for i in 0..<100 { try await backend.set("fill\(i)", to: [0], ttl: nil) }
        #expect(try await backend.exists("returning") == false)
        #expect(backend.stats().ghostEntries > 0)

        try await backend.set("returning", to: [1], ttl: nil)  // ghost hit: straight to main
        for i in 0..<500 { try await backend.set("scan\(i)", to: [2], ttl: nil) }
        #expect(try await backend.get("returning")?.value == [1])
    }

    // MARK: Prefix clear

    @Test func clearPrefixIsLiteral() async throws {
        let backend = InMemoryBackend()
        let keys = [
            "a:*:1", "a:*:2", "a:?:1", "a:[x]:1", "a::1", "a:", "a:*", "a*", "ab:*:1", "b:a:*:1", "A:*:1",
            "caf\u{E9}:1", "cafe\u{301}:1",
        ]
        for key in keys { try await backend.set(key, to: [1], ttl: nil) }

        func present() async throws -> Set<String> {
            var result = Set<String>()
            for key in keys where try await backend.exists(key) { result.insert(key) }
            return result
        }

        try await backend.clear(prefix: "a:*:")
        #expect(try await present() == Set(keys).subtracting(["a:*:1", "a:*:2"]))

        try await backend.clear(prefix: "a:[")
        try await backend.clear(prefix: "a:?")
        #expect(try await present() == Set(keys).subtracting(["a:*:1", "a:*:2", "a:[x]:1", "a:?:1"]))

        try await backend.clear(prefix: "a:")
        #expect(try await present() == ["a*", "ab:*:1", "b:a:*:1", "A:*:1", "caf\u{E9}:1", "cafe\u{301}:1"])

        // Byte for byte: the composed prefix does not match the decomposed key.
        try await backend.clear(prefix: "caf\u{E9}")
        #expect(try await present() == ["a*", "ab:*:1", "b:a:*:1", "A:*:1", "cafe\u{301}:1"])

        try await backend.clear(prefix: "nothing-matches")
        #expect(backend.stats().entries == 5)
        try await backend.clear(prefix: "")
        #expect(backend.stats().entries == 0)
    }

    @Test func clearPrefixOnManyKeysAcrossLockHolds() async throws {
        let backend = try InMemoryBackend(shardCount: 1)  // one shard: thousands of slots in one slab
        for i in 0..<3_000 {
            try await backend.set("users:\(i)", to: [1], ttl: nil)
            try await backend.set("orders:\(i)", to: [2], ttl: nil)
        }
        try await backend.clear(prefix: "users:")
        #expect(backend.stats().entries == 3_000)
        for i in stride(from: 0, to: 3_000, by: 7) {
            #expect(try await backend.exists("users:\(i)") == false)
            #expect(try await backend.get("orders:\(i)")?.value == [2])
        }
    }

    // MARK: Close

    @Test func closeDropsEverythingAndLaterCallsThrow() async throws {
        let backend = InMemoryBackend()
        try await backend.set("k", to: [1], ttl: nil)
        try await backend.close()
        #expect(backend.isClosed)
        #expect(backend.stats().entries == 0)
        #expect(backend.stats().bytes == 0)
        #expect(backend.sweepExpired() == 0)

        await Support.expectError(.closed) { _ = try await backend.get("k") }
        await Support.expectError(.closed) { try await backend.set("k", to: [1], ttl: nil) }
        await Support.expectError(.closed) { _ = try await backend.delete("k") }
        await Support.expectError(.closed) { try await backend.clear(prefix: "k") }
        await Support.expectError(.closed) { try await backend.clear(prefix: "") }
        await Support.expectError(.closed) { _ = try await backend.exists("k") }
        await Support.expectError(.closed) { _ = try await backend.get(["k"]) }
        await Support.expectError(.closed) { try await backend.set([("k", [1])], ttl: nil) }
        await Support.expectError(.closed) { _ = try await backend.delete(["k"]) }
        await Support.expectError(.closed) { _ = try await backend.add("k", value: [1], ttl: nil) }
        await Support.expectError(.closed) { _ = try await backend.increment("k", by: 1, ttl: nil) }
        await Support.expectError(.closed) { _ = try await backend.touch("k", ttl: nil) }

        try await backend.close()  // twice is harmless
    }

    // MARK: Statistics

    @Test func statsCountHitsMissesAndSize() async throws {
        let backend = InMemoryBackend()
        #expect(backend.stats() == InMemoryBackend.Stats())
        #expect(backend.stats().hitRatio == 0)
        try await backend.set("a", to: [1, 2], ttl: nil)
        try await backend.set("bb", to: [3], ttl: nil)
        _ = try await backend.get("a")
        _ = try await backend.get("a")
        _ = try await backend.get("zz")
        _ = try await backend.get(["bb", "zz"])
        _ = try await backend.exists("a")  // not a read for statistics
        let stats = backend.stats()
        #expect(stats.entries == 2)
        #expect(stats.bytes == 3 + 3)
        #expect(stats.hits == 3)
        #expect(stats.misses == 2)
        #expect(stats.hitRatio == 0.6)
        #expect(stats.description.contains("hits: 3"))
    }
}
