import Caching
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@Suite("InMemoryBackend: TTL, clocks and the sweeper")
struct InMemoryExpiryTests {
    typealias Support = InMemoryTestSupport

    // MARK: TTL

    @Test func ttlCountsDownAndExpiresToTheMillisecond() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("session", to: [1], ttl: .milliseconds(1500))
        #expect(try await backend.get("session") == CacheEntry(value: [1], ttl: .milliseconds(1500)))

        clock.advance(by: .seconds(1))
        #expect(try await backend.get("session")?.ttl == .milliseconds(500))
        clock.advance(by: .milliseconds(499))
        #expect(try await backend.get("session")?.ttl == .milliseconds(1))
        #expect(backend.stats().expirations == 0)

        clock.advance(by: .milliseconds(1))
        #expect(try await backend.get("session") == nil)
        // Removed on access, not merely hidden.
        let stats = backend.stats()
        #expect(stats.entries == 0)
        #expect(stats.bytes == 0)
        #expect(stats.expirations == 1)
        #expect(stats.misses == 1)
    }

    @Test("entries without a TTL are read without the clock, and the first TTL written turns it on")
    func clockIsReadOnceTTLsExist() async throws {
        let clock = CountingClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("forever", to: [1], ttl: nil)
        for _ in 0..<10 { #expect(try await backend.get("forever") == CacheEntry(value: [1], ttl: nil)) }
        #expect(try await backend.get("absent") == nil)
        #expect(clock.reads.load(ordering: .relaxed) == 0)
        // The first entry with a TTL: from then on reads take the time, and expiry works, for
        // this entry and for one written by increment and touch.
        try await backend.set("brief", to: [2], ttl: .milliseconds(10))
        #expect(try await backend.get("brief") == CacheEntry(value: [2], ttl: .milliseconds(10)))
        #expect(try await backend.get("forever") == CacheEntry(value: [1], ttl: nil))
        #expect(try await backend.increment("count", by: 1, ttl: .milliseconds(20)) == 1)
        #expect(try await backend.touch("forever", ttl: .milliseconds(30)))
        let readsBefore = clock.reads.load(ordering: .relaxed)
        clock.advance(by: .milliseconds(10))
        #expect(try await backend.get("brief") == nil)
        #expect(try await backend.get("count")?.ttl == .milliseconds(10))
        #expect(try await backend.get("forever")?.ttl == .milliseconds(20))
        clock.advance(by: .milliseconds(20))
        #expect(try await backend.get("count") == nil)
        #expect(try await backend.get("forever") == nil)
        #expect(clock.reads.load(ordering: .relaxed) > readsBefore)
    }

    @Test func ttlRoundsUpToWholeMilliseconds() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("a", to: [1], ttl: .microseconds(1500))
        try await backend.set("b", to: [1], ttl: .nanoseconds(1))
        #expect(try await backend.get("a")?.ttl == .milliseconds(2))
        #expect(try await backend.get("b")?.ttl == .milliseconds(1))
        clock.advance(by: .microseconds(999))
        #expect(try await backend.exists("b"))
        clock.advance(by: .microseconds(1))
        #expect(try await backend.exists("b") == false)
        #expect(try await backend.exists("a"))
    }

    @Test func nilTTLNeverExpiresAndOverwriteReplacesTheTTL() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("forever", to: [1], ttl: nil)
        try await backend.set("renewed", to: [1], ttl: .seconds(1))
        clock.advance(by: .milliseconds(900))
        try await backend.set("renewed", to: [2], ttl: .seconds(1))
        #expect(try await backend.get("renewed") == CacheEntry(value: [2], ttl: .seconds(1)))
        try await backend.set("renewed", to: [3], ttl: nil)

        clock.advance(by: .seconds(86_400 * 365))
        #expect(try await backend.get("forever") == CacheEntry(value: [1], ttl: nil))
        #expect(try await backend.get("renewed") == CacheEntry(value: [3], ttl: nil))
    }

    @Test func hugeTTLIsKept() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        try await backend.set("k", to: [1], ttl: .seconds(Int64.max))
        clock.advance(by: .seconds(86_400 * 365 * 100))
        let ttl = try #require(try await backend.get("k")?.ttl)
        #expect(ttl > .seconds(86_400 * 365 * 1000))
    }

    @Test func invalidTTLIsRefusedAndChangesNothing() async throws {
        let backend = try InMemoryBackend(clock: ManualClock())
        try await backend.set("k", to: [1], ttl: .seconds(10))
        for ttl in [Duration.zero, .milliseconds(-5), .seconds(-1)] {
            await Support.expectError(.invalidTTL) { try await backend.set("k", to: [2], ttl: ttl) }
            await Support.expectError(.invalidTTL) { try await backend.set("new", to: [2], ttl: ttl) }
            await Support.expectError(.invalidTTL) { try await backend.set([("new", [2])], ttl: ttl) }
            await Support.expectError(.invalidTTL) { _ = try await backend.add("new", value: [2], ttl: ttl) }
            await Support.expectError(.invalidTTL) { _ = try await backend.increment("n", by: 1, ttl: ttl) }
            await Support.expectError(.invalidTTL) { _ = try await backend.touch("k", ttl: ttl) }
        }
        #expect(try await backend.get("k") == CacheEntry(value: [1], ttl: .seconds(10)))
        #expect(try await backend.exists("new") == false)
        #expect(try await backend.exists("n") == false)
    }

    @Test func expiryOnTheSystemClock() async throws {
        let backend = InMemoryBackend()
        try await backend.set("short", to: [1], ttl: .milliseconds(200))
        try await backend.set("long", to: [1], ttl: .seconds(60))
        let short = try #require(try await backend.get("short")?.ttl)
        #expect(short <= .milliseconds(200))
        #expect(short > .zero)
        let long = try #require(try await backend.get("long")?.ttl)
        #expect(long <= .seconds(60))
        #expect(long > .seconds(59))

        try await Task.sleep(for: .milliseconds(250))
        #expect(try await backend.get("short") == nil)
        #expect(try await backend.exists("long"))
    }

    @Test func evictionPrefersExpiredEntries() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(maxEntries: 10, shardCount: 1, clock: clock)
        for i in 0..<10 {
            try await backend.set("k\(i)", to: [1], ttl: i < 5 ? .seconds(1) : nil)
            _ = try await backend.get("k\(i)")
        }
        clock.advance(by: .seconds(2))
        for i in 0..<5 {
            try await backend.set("new\(i)", to: [1], ttl: nil)
        }
        let stats = backend.stats()
        #expect(stats.entries == 10)
        #expect(stats.expirations == 5)
        #expect(stats.evictions == 0)
        for i in 5..<10 {
            #expect(try await backend.exists("k\(i)"))
        }
    }

    // MARK: Sweep

    @Test func sweepRemovesOnlyExpiredEntries() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(shardCount: 1, clock: clock)  // thousands of slots in one shard
        for i in 0..<2_000 { try await backend.set("t\(i)", to: [1], ttl: .seconds(1)) }
        for i in 0..<500 { try await backend.set("p\(i)", to: [1], ttl: nil) }
        for i in 0..<100 { try await backend.set("later\(i)", to: [1], ttl: .seconds(10)) }
        #expect(backend.sweepExpired() == 0)

        clock.advance(by: .seconds(2))
        #expect(backend.stats().entries == 2_600)  // nothing read them yet
        #expect(backend.sweepExpired() == 2_000)
        let stats = backend.stats()
        #expect(stats.entries == 600)
        #expect(stats.expirations == 2_000)
        #expect(backend.sweepExpired() == 0)
        #expect(try await backend.exists("p0"))
        #expect(try await backend.exists("later99"))

        // Freed slots are reused.
        for i in 0..<2_000 { try await backend.set("again\(i)", to: [1], ttl: nil) }
        #expect(backend.stats().entries == 2_600)
    }

    @Test func sweeperRunsPeriodicallyUntilGracefulShutdown() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        for i in 0..<100 { try await backend.set("a\(i)", to: [1], ttl: .seconds(1)) }
        try await backend.set("keep", to: [1], ttl: nil)
        clock.advance(by: .seconds(2))

        let sweeper = try backend.sweeper(interval: .milliseconds(5))
        let group = ServiceGroup(services: [sweeper], logger: Logger(label: "InMemoryExpiryTests"))
        let finished = InMemoryCompletionFlag()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await Support.withDeadline(.seconds(20)) { try await group.run() }
                finished.set()
            }
            #expect(try await Support.eventually { backend.stats().entries == 1 })

            // A later batch of expired entries is swept by a later pass.
            for i in 0..<100 { try await backend.set("b\(i)", to: [1], ttl: .seconds(1)) }
            clock.advance(by: .seconds(2))
            #expect(try await Support.eventually { backend.stats().entries == 1 })
            #expect(backend.stats().expirations == 200)
            #expect(finished.isSet == false, "the sweeper stopped on its own")

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()  // rethrows a group failure or a missed deadline
        }
        #expect(finished.isSet)
        #expect(try await backend.exists("keep"))
    }

    @Test func sweeperStopsOnCancellation() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        for i in 0..<50 { try await backend.set("a\(i)", to: [1], ttl: .milliseconds(10)) }
        clock.advance(by: .milliseconds(10))
        let sweeper = try InMemoryBackend.Sweeper(backend: backend, interval: .seconds(3600))
        #expect(sweeper.interval == .seconds(3600))
        #expect(sweeper.description.contains("Sweeper"))

        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await Support.withDeadline(.seconds(20)) { await sweeper.run() }
            }
            // The first pass runs at once; the next would be an hour later.
            #expect(try await Support.eventually { backend.stats().entries == 0 })
            tasks.cancelAll()
            try await tasks.waitForAll()
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func sweeperOnAClosedBackendKeepsRunningUntilStopped() async throws {
        let backend = InMemoryBackend()
        try await backend.close()
        let sweeper = try backend.sweeper(interval: .milliseconds(1))
        let finished = InMemoryCompletionFlag()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await Support.withDeadline(.seconds(20)) { await sweeper.run() }
                finished.set()
            }
            try await Task.sleep(for: .milliseconds(50))
            // Returning would end the app's whole service group.
            #expect(finished.isSet == false)
            tasks.cancelAll()
            try await tasks.waitForAll()
        }
        #expect(finished.isSet)
    }

    @Test func sweeperRefusesATooShortInterval() async {
        let backend = InMemoryBackend()
        await Support.expectError(.invalidArgument) { _ = try backend.sweeper(interval: .zero) }
        await Support.expectError(.invalidArgument) { _ = try backend.sweeper(interval: .microseconds(999)) }
        await Support.expectError(.invalidArgument) {
            _ = try InMemoryBackend.Sweeper(backend: backend, interval: .seconds(-1))
        }
    }

    // MARK: Clocks

    @Test func manualClockMovesOnlyWhenTold() {
        let clock = ManualClock()
        #expect(clock.now() == 0)
        clock.advance(by: .microseconds(600))
        #expect(clock.now() == 0)
        clock.advance(by: .microseconds(600))
        #expect(clock.now() == 1)
        #expect(clock.elapsed == .microseconds(1200))
        clock.advance(by: .seconds(-5))  // ignored: clocks never go back
        #expect(clock.elapsed == .microseconds(1200))
        let started = ManualClock(start: .seconds(10))
        #expect(started.now() == 10_000)
    }

    @Test func systemClockIsMonotonicMilliseconds() async throws {
        let clock: any CacheClock = .system
        let first = clock.now()
        try await Task.sleep(for: .milliseconds(20))
        let second = clock.now()
        #expect(second - first >= 19)
        #expect(second - first < 10_000)
    }
}

/// A flag that a child task sets when it finishes.
final class InMemoryCompletionFlag: Sendable {
    private let done = Atomic<Bool>(false)

    func set() { done.store(true, ordering: .releasing) }
    var isSet: Bool { done.load(ordering: .acquiring) }
}

/// A manual clock that counts its readings.
private final class CountingClock: CacheClock {
    let reads = Atomic<Int>(0)
    private let base = ManualClock()

    func now() -> Int64 {
        reads.add(1, ordering: .relaxed)
        return base.now()
    }

    func advance(by duration: Duration) { base.advance(by: duration) }
}
