import Caching
import CachingTesting
import Testing

@Suite struct CacheFrontTests {
    let backend = InMemoryBackend()
    var cache: CacheFront { CacheFront(backend: backend, prefix: "shop", defaultTTL: .seconds(300)) }

    @Test func typedSetGetDelete() async throws {
        let users = cache.namespace("users")
        try await users.set(Person.alice, forKey: "1")
        #expect(try await users.get("1", as: Person.self) == Person.alice)
        #expect(try await users.exists("1"))
        #expect(try await users.get("2", as: Person.self) == nil)
        #expect(try await users.delete("1"))
        #expect(try await users.get("1", as: Person.self) == nil)
    }

    @Test func keysCarryPrefixAndNamespace() async throws {
        try await cache.namespace("users").namespace("v2").set("x", forKey: "42")
        #expect(try await backend.get("shop:users:v2:42")?.value == Array("x".utf8))
    }

    @Test func namespacesAreIsolatedAndClearedAlone() async throws {
        let users = cache.namespace("users")
        let orders = cache.namespace("orders")
        // A namespace containing ':' must not overlap namespace "users" with key "v2:1".
        let tricky = cache.namespace("users:v2")
        try await users.set("u", forKey: "1")
        try await users.set("nested", forKey: "v2:1")
        try await orders.set("o", forKey: "1")
        try await tricky.set("t", forKey: "1")
        #expect(try await tricky.get("1", as: String.self) == "t")
        #expect(try await users.get("v2:1", as: String.self) == "nested")

        try await tricky.clear()
        #expect(try await tricky.get("1", as: String.self) == nil)
        #expect(try await users.get("v2:1", as: String.self) == "nested")

        try await cache.clear(namespace: "users")
        #expect(try await users.get("1", as: String.self) == nil)
        #expect(try await orders.get("1", as: String.self) == "o")
    }

    @Test func stringsAndBytesAreStoredRaw() async throws {
        try await cache.set("plain text", forKey: "s")
        try await cache.set([0, 1, 2, 255] as [UInt8], forKey: "b")
        #expect(try await backend.get("shop:s")?.value == Array("plain text".utf8))
        #expect(try await backend.get("shop:b")?.value == [0, 1, 2, 255])
        #expect(try await cache.get("b", as: [UInt8].self) == [0, 1, 2, 255])
    }

    @Test func ttlDefaultsAndRemaining() async throws {
        try await cache.set(Person.bob, forKey: "default")
        let (value, ttl) = try #require(try await cache.getWithTTL("default", as: Person.self))
        #expect(value == Person.bob)
        let remaining = try #require(ttl)
        #expect(remaining <= .seconds(300) && remaining > .seconds(290))

        try await cache.set(Person.bob, forKey: "short", ttl: .seconds(5))
        let short = try #require(try await cache.getWithTTL("short", as: Person.self)?.ttl)
        #expect(short <= .seconds(5))

        let forever = CacheFront(backend: backend, prefix: "forever")
        try await forever.set(1, forKey: "k")
        let entry = try #require(try await forever.getWithTTL("k", as: Int.self))
        #expect(entry.ttl == nil)
    }

    @Test func badInputIsRejectedAndLosesNothing() async throws {
        try await cache.set("kept", forKey: "k")
        await #expect(throws: CacheError.self) { try await cache.set("x", forKey: "k", ttl: .seconds(-1)) }
        await #expect(throws: CacheError.self) { try await cache.set("x", forKey: "k", ttl: .zero) }
        await #expect(throws: CacheError.self) { try await cache.set("x", forKey: "") }
        let limited = CacheFront(backend: backend, prefix: "shop", maxValueSize: 8)
        do {
            try await limited.set("far more than eight bytes", forKey: "k")
            Issue.record("an oversized value was accepted")
        } catch let error as CacheError {
            #expect(error.code == .valueTooLarge)
            #expect(error.message.contains("8 bytes"))
        }
        #expect(try await cache.get("k", as: String.self) == "kept")

        let badDefault = CacheFront(backend: backend, defaultTTL: .seconds(-3))
        do {
            try await badDefault.set(1, forKey: "k")
            Issue.record("a negative default TTL was accepted")
        } catch let error as CacheError {
            #expect(error.code == .invalidTTL)
        }
    }

    @Test func undecodableEntryIsAMissAndIsRemoved() async throws {
        try await backend.set("shop:garbage", to: [0xde, 0xad, 0xbe, 0xef], ttl: nil)
        #expect(try await cache.get("garbage", as: Person.self) == nil)
        #expect(try await backend.get("shop:garbage") == nil)
    }

    @Test func cachedNilIsToldApartFromAMiss() async throws {
        let calls = CallCounter()
        let compute: @Sendable () async throws -> Person? = { calls.increment(); return nil }
        #expect(try await cache.getOrSet("nobody", compute: compute) == nil)
        #expect(try await cache.getOrSet("nobody", compute: compute) == nil)
        #expect(calls.count == 1)
        let stored = try await cache.get("nobody", as: Person?.self)
        #expect(stored == .some(nil))
        #expect(try await cache.get("never-set", as: Person?.self) == nil)
    }

    @Test func concurrentMissesComputeOnce() async throws {
        let calls = CallCounter()
        let front = cache
        let results = try await withThrowingTaskGroup(of: Person.self) { group in
            for _ in 0..<1000 {
                group.addTask {
                    try await front.getOrSet("cold") {
                        calls.increment()
                        try await Task.sleep(for: .milliseconds(50))
                        return Person.alice
                    }
                }
            }
            var results: [Person] = []
            for try await user in group { results.append(user) }
            return results
        }
        #expect(results.count == 1000)
        #expect(results.allSatisfy { $0 == Person.alice })
        #expect(calls.count == 1)
    }

    @Test func errorsAreNotCached() async throws {
        let calls = CallCounter()
        await #expect(throws: TestFailure.self) {
            _ = try await cache.getOrSet("flaky") { () async throws -> Int in calls.increment(); throw TestFailure() }
        }
        let value = try await cache.getOrSet("flaky") { () async throws -> Int in calls.increment(); return 7 }
        #expect(value == 7)
        #expect(calls.count == 2)
    }

    @Test func failOpenByDefaultAndRethrowWhenAsked() async throws {
        let open = CacheFront(backend: FailingBackend())
        #expect(try await open.getOrSet("k") { 5 } == 5)
        let lookup = open.cached(name: "double") { (x: Int) in x * 2 }
        #expect(try await lookup(21) == 42)

        let strict = CacheFront(backend: FailingBackend(), failOpen: false)
        await #expect(throws: CacheError.self) { _ = try await strict.getOrSet("k") { 5 } }
        // Direct operations always report the failure.
        await #expect(throws: CacheError.self) { _ = try await open.get("k", as: Int.self) }
    }

    @Test func cachedWrapsAFunctionByArguments() async throws {
        let calls = CallCounter()
        let square = cache.namespace("math").cached(ttl: .seconds(60), name: "square") { (x: Int) async throws -> Int in
            calls.increment()
            return x * x
        }
        #expect(try await square(3) == 9)
        #expect(try await square(3) == 9)
        #expect(try await square(4) == 16)
        #expect(calls.count == 2)

        let concat = cache.cached(name: "concat") { (a: String, b: String) in a + b }
        #expect(try await concat("ab", "c") == "abc")
        #expect(try await concat("a", "bc") == "abc")

        let readable = CacheFront(backend: backend, prefix: "shop", keyBuilder: .readable)
        let user = readable.namespace("users").cached(name: "user") { (id: Int) in Person(id: id, name: "n", email: "e", score: 0, active: true) }
        _ = try await user(42)
        #expect(try await backend.exists("shop:users:user:42"))
    }

    @Test func disabledCacheAlwaysComputes() async throws {
        let front = cache
        let users = front.namespace("users")
        try await users.set("stored", forKey: "k")
        front.isEnabled = false
        #expect(users.isEnabled == false)
        #expect(try await users.get("k", as: String.self) == nil)
        let calls = CallCounter()
        _ = try await users.getOrSet("k") { calls.increment(); return "computed" }
        _ = try await users.getOrSet("k") { calls.increment(); return "computed" }
        #expect(calls.count == 2)
        front.isEnabled = true
        #expect(try await users.get("k", as: String.self) == "stored")
    }

    @Test func batchOperations() async throws {
        let users = cache.namespace("users")
        try await users.set(["1": Person.alice, "2": Person.bob], ttl: .seconds(60))
        let found = try await users.get(["1", "3", "2"], as: Person.self)
        #expect(found == [Person.alice, nil, Person.bob])
        #expect(try await users.delete(["1", "3"]) == 1)
    }

    @Test func countersAndAdd() async throws {
        #expect(try await cache.increment("hits") == 1)
        #expect(try await cache.increment("hits", by: 4) == 5)
        #expect(try await cache.get("hits", as: String.self) == "5")
        #expect(try await cache.add("lock", value: "me", ttl: .seconds(10)))
        #expect(try await cache.add("lock", value: "you", ttl: .seconds(10)) == false)
        #expect(try await cache.get("lock", as: String.self) == "me")
    }

    @Test func health() async throws {
        let good = await cache.health()
        #expect(good.isHealthy)
        #expect(good.error == nil)
        let bad = await CacheFront(backend: FailingBackend()).health()
        #expect(!bad.isHealthy)
        #expect(bad.error?.code == .connectionFailed)
    }

    @Test func frontsLiveSideBySide() async throws {
        let other = InMemoryBackend()
        let a = CacheFront(backend: backend, prefix: "a")
        let b = CacheFront(backend: other, prefix: "a", coder: JSONCoder())
        try await a.set(1, forKey: "k")
        #expect(try await b.get("k", as: Int.self) == nil)
        try await b.set(2, forKey: "k")
        #expect(try await a.get("k", as: Int.self) == 1)
    }
}

import MetricsTestKit

@Suite struct CacheFrontMetricsTests {
    @Test func hitsMissesAndErrorsAreCounted() async throws {
        let metrics = TestMetrics()
        let cache = CacheFront(backend: InMemoryBackend(), metricsFactory: metrics)
        _ = try await cache.get("absent", as: Int.self)
        try await cache.set(1, forKey: "present")
        _ = try await cache.get("present", as: Int.self)
        _ = try await cache.get("present", as: Int.self)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "hit")]) == 2)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 1)

        let failing = CacheFront(backend: FailingBackend(), metricsFactory: metrics)
        _ = try await failing.getOrSet("k") { 1 }
        #expect(metrics.counterTotal(label: "cache.errors", dimensions: [("backend", "failing"), ("operation", "read")]) == 1)
        #expect(metrics.counterTotal(label: "cache.errors", dimensions: [("backend", "failing"), ("operation", "write")]) == 1)
    }

    @Test func batchGetCountsEveryKeyAndEvictsOnlyTheUndecodable() async throws {
        let metrics = TestMetrics()
        let backend = InMemoryBackend()
        let cache = CacheFront(backend: backend, metricsFactory: metrics).namespace("n")
        try await cache.set(["a": 1, "c": 3], ttl: .seconds(60))
        try await backend.set("n:b", to: [0xde, 0xad], ttl: nil)
        let found = try await cache.get(["a", "b", "c", "d"], as: Int.self)
        #expect(found == [1, nil, 3, nil])
        #expect(try await backend.get("n:b") == nil)
        #expect(try await backend.get("n:a") != nil)
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "hit")]) == 2)
        // "d" is absent and "b" could not be decoded: both are misses.
        #expect(metrics.counterTotal(label: "cache.requests", dimensions: [("backend", "memory"), ("result", "miss")]) == 2)
        #expect(metrics.counterTotal(label: "cache.errors", dimensions: [("backend", "memory"), ("operation", "decode")]) == 1)
    }
}
