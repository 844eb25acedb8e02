import Caching
import CachingTesting
import MetricsTestKit
import Testing

@Suite("CacheFront: synchronous reads")
struct CacheFrontSynchronousTests {
    @Test func hitReturnsTheValueAndTheRemainingTTLOfTheAsyncRead() async throws {
        let clock = ManualClock()
        let backend = try InMemoryBackend(clock: clock)
        let users = CacheFront(backend: backend, prefix: "shop", coder: BinaryCoder()).namespace("users")
        try await users.set(Person.alice, forKey: "1", ttl: .seconds(30))
        clock.advance(by: .seconds(10))

        #expect(users.readsSynchronously)
        #expect(try users.getSynchronously("1", as: Person.self) == .hit(Person.alice, ttl: .seconds(20)))
        let asyncRead = try #require(try await users.getWithTTL("1", as: Person.self))
        #expect(asyncRead.value == Person.alice && asyncRead.ttl == .seconds(20))
        // The same key as the asynchronous API: prefix and namespace included.
        #expect(try backend.getSynchronously("shop:users:1") != nil)
    }

    @Test func rawValuesAndEntriesWithoutTTL() async throws {
        let cache = CacheFront(backend: InMemoryBackend())
        try await cache.set([0, 1, 255] as [UInt8], forKey: "bytes")
        try await cache.set("text", forKey: "string")
        #expect(try cache.getSynchronously("bytes", as: [UInt8].self) == .hit([0, 1, 255], ttl: nil))
        #expect(try cache.getSynchronously("string", as: String.self) == .hit("text", ttl: nil))
    }

    @Test func missAndExpiry() async throws {
        let clock = ManualClock()
        let cache = CacheFront(backend: try InMemoryBackend(clock: clock))
        #expect(try cache.getSynchronously("absent", as: Int.self) == .miss)
        try await cache.set(7, forKey: "short", ttl: .milliseconds(10))
        #expect(try cache.getSynchronously("short", as: Int.self) == .hit(7, ttl: .milliseconds(10)))
        clock.advance(by: .milliseconds(10))
        #expect(try cache.getSynchronously("short", as: Int.self) == .miss)
    }

    @Test func hitsAndMissesAreCountedAsTheAsyncReadCountsThem() async throws {
        let metrics = TestMetrics()
        let cache = CacheFront(backend: InMemoryBackend(), metricsFactory: metrics)
        try await cache.set(1, forKey: "present")
        _ = try cache.getSynchronously("present", as: Int.self)
        _ = try cache.getSynchronously("present", as: Int.self)
        _ = try cache.getSynchronously("absent", as: Int.self)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "hit")]) == 2)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 1)
    }

    @Test func disabledFrontMissesWithoutCountingOrReading() async throws {
        let metrics = TestMetrics()
        let backend = InMemoryBackend()
        let cache = CacheFront(backend: backend, metricsFactory: metrics)
        try await cache.set(1, forKey: "present")
        cache.isEnabled = false
        #expect(try cache.getSynchronously("present", as: Int.self) == .miss)
        #expect(backend.stats().hits == 0)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 0)
        cache.isEnabled = true
        #expect(try cache.getSynchronously("present", as: Int.self) == .hit(1, ttl: nil))
    }

    @Test func backendThatCannotReadSynchronouslyIsUnavailableNotAMiss() async throws {
        let metrics = TestMetrics()
        let cache = CacheFront(backend: AsyncOnlyBackend(), metricsFactory: metrics)
        try await cache.set(1, forKey: "present")
        #expect(!cache.readsSynchronously)
        #expect(try cache.getSynchronously("present", as: Int.self) == .unavailable)
        #expect(try cache.getSynchronously("absent", as: Int.self) == .unavailable)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "async-only"), ("result", "miss")]) == 0)
        // A failing network backend is not even asked.
        #expect(try CacheFront(backend: FailingBackend()).getSynchronously("k", as: Int.self) == .unavailable)
    }

    @Test func undecodableEntryIsLeftToTheAsyncReadWhichCountsAndRemovesItOnce() async throws {
        let metrics = TestMetrics()
        let backend = InMemoryBackend()
        let cache = CacheFront(backend: backend, coder: JSONCoder(), metricsFactory: metrics)
        try await backend.set("bad", to: [0xde, 0xad], ttl: nil)

        #expect(try cache.getSynchronously("bad", as: Person.self) == .unavailable)
        #expect(try backend.getSynchronously("bad") != nil)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 0)

        #expect(try await cache.getWithTTL("bad", as: Person.self) == nil)
        #expect(try backend.getSynchronously("bad") == nil)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 1)
        #expect(metrics.counterTotal(label: "cache.errors", dimensions: [("backend", "memory"), ("operation", "decode")]) == 1)
        #expect(try cache.getSynchronously("bad", as: Person.self) == .miss)
    }

    @Test func errorsAreTheAsyncReadsErrors() async throws {
        let backend = InMemoryBackend()
        let cache = CacheFront(backend: backend)
        #expect(throws: CacheError.self) { try cache.getSynchronously("", as: Int.self) }
        #expect(throws: CacheError.self) { try backend.getSynchronously("") }
        try await backend.close()
        let closed = try #require(throws: CacheError.self) { try cache.getSynchronously("k", as: Int.self) }
        #expect(closed.code == .closed)
    }
}
