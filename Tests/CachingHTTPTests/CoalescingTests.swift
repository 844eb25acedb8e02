import Caching
import CachingTesting
import HTTPTypes
import MetricsTestKit
import Synchronization
import Testing

@testable import CachingHTTP

/// Waits (bounded) until `condition` holds.
func eventually(_ what: Comment, within limit: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting: \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// Concurrent misses for one key call the endpoint once (request coalescing).
@Suite(.timeLimit(.minutes(1))) struct CoalescingTests {
    let calls = CallCounter()
    let metrics = TestMetrics()

    func makeCache(_ policy: HTTPCachePolicy = HTTPCachePolicy()) -> HTTPResponseCache {
        HTTPResponseCache(cache: CacheFront(backend: makeBackend(), prefix: "test"), policy: policy, metricsFactory: metrics)
    }

    /// Starts `count` concurrent requests for `/a`; the first to compute waits at `gate`, which
    /// opens once the others wait for it (or, when coalescing is off, once all have computed).
    func burst(
        _ cache: HTTPResponseCache,
        count: Int,
        waitFor expectedWaiters: Int,
        response: HTTPResponse = HTTPResponse(status: .ok),
        fail: Bool = false
    ) async throws -> [Result<HTTPCacheReply, any Error>] {
        let gate = Latch()
        let calls = self.calls
        struct Failed: Error {}
        return try await withThrowingTaskGroup(of: Result<HTTPCacheReply, any Error>.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        return .success(
                            try await cache.respond(to: request("/a")) {
                                let n = calls.increment()
                                if n == 1 {
                                    await gate.wait()
                                    if fail { throw Failed() }
                                }
                                return (response, Array("body \(n)".utf8))
                            })
                    } catch {
                        return .failure(error)
                    }
                }
            }
            try await eventually("\(expectedWaiters) waiters") { cache.coalescer.waiterCount("GET /a") == expectedWaiters }
            gate.open()
            var results: [Result<HTTPCacheReply, any Error>] = []
            for try await result in group { results.append(result) }
            return results
        }
    }

    @Test func concurrentMissesComputeOnce() async throws {
        let cache = makeCache()
        let results = try await burst(cache, count: 20, waitFor: 19)
        let replies = try results.map { try $0.get() }
        #expect(calls.count == 1)
        #expect(replies.allSatisfy { $0.body == Array("body 1".utf8) })
        #expect(replies.filter { $0.cacheStatus == .miss }.count == 1)
        #expect(replies.filter { $0.cacheStatus == .hit }.count == 19)
        #expect(try metrics.expectCounter("http.cache.requests", [("namespace", "http"), ("result", "coalesced")]).totalValue == 19)
        #expect(try metrics.expectCounter("http.cache.requests", [("namespace", "http"), ("result", "miss")]).totalValue == 1)
        #expect(!cache.coalescer.isInFlight("GET /a"))
    }

    @Test func waitersComputeTheirOwnWhenTheLeaderFails() async throws {
        let cache = makeCache()
        let results = try await burst(cache, count: 5, waitFor: 4, fail: true)
        #expect(results.filter { (try? $0.get()) == nil }.count == 1, "only the leader's request fails")
        // The waiters are released and look again without waiting: each computes, or reads
        // what a faster one of them stored.
        #expect((2...5).contains(calls.count))
        #expect(!cache.coalescer.isInFlight("GET /a"))
    }

    @Test func waitersComputeTheirOwnWhenTheResponseIsNotStorable() async throws {
        let cache = makeCache()
        let results = try await burst(cache, count: 5, waitFor: 4, response: HTTPResponse(status: .ok, headerFields: [.cacheControl: "no-store"]))
        #expect(results.allSatisfy { (try? $0.get())?.cacheStatus == .miss })
        #expect(calls.count == 5)
    }

    @Test func waitersGiveUpAfterTheTimeout() async throws {
        var policy = HTTPCachePolicy()
        policy.coalescingTimeout = .milliseconds(50)
        let cache = makeCache(policy)
        let gate = Latch()
        let calls = self.calls
        let leader = Task {
            try await cache.respond(to: request("/a")) {
                _ = calls.increment()
                await gate.wait()
                return (HTTPResponse(status: .ok), Array("slow".utf8))
            }
        }
        try await eventually("the leader computes") { calls.count == 1 }
        let follower = try await cache.respond(to: request("/a")) {
            _ = calls.increment()
            return (HTTPResponse(status: .ok), Array("fast".utf8))
        }
        #expect(follower.body == Array("fast".utf8), "the follower computed its own after the timeout")
        gate.open()
        #expect(try await leader.value.body == Array("slow".utf8))
        #expect(calls.count == 2)
    }

    @Test func cancelledWaiterStopsWaiting() async throws {
        let cache = makeCache()
        let gate = Latch()
        let calls = self.calls
        let leader = Task {
            try await cache.respond(to: request("/a")) {
                _ = calls.increment()
                await gate.wait()
                return (HTTPResponse(status: .ok), Array("slow".utf8))
            }
        }
        try await eventually("the leader computes") { calls.count == 1 }
        let waiter = Task { await cache.lookup(request("/a")) }
        try await eventually("one waiter") { cache.coalescer.waiterCount("GET /a") == 1 }
        waiter.cancel()
        if case .respond = await waiter.value { Issue.record("a cancelled waiter was answered from the cache") }
        #expect(cache.coalescer.waiterCount("GET /a") == 0)
        gate.open()
        _ = try await leader.value
    }

    @Test func coalescingCanBeTurnedOff() async throws {
        var policy = HTTPCachePolicy()
        policy.coalescesMisses = false
        let cache = makeCache(policy)
        let gate = Latch()
        let calls = self.calls
        try await withThrowingTaskGroup(of: HTTPCacheReply.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    try await cache.respond(to: request("/a")) {
                        let n = calls.increment()
                        await gate.wait()
                        return (HTTPResponse(status: .ok), Array("body \(n)".utf8))
                    }
                }
            }
            try await eventually("every request computes") { calls.count == 5 }
            gate.open()
            for try await reply in group { #expect(reply.cacheStatus == .miss) }
        }
    }

    @Test func headAndRevalidatingRequestsDoNotWait() async throws {
        let cache = makeCache()
        let gate = Latch()
        let calls = self.calls
        let leader = Task {
            try await cache.respond(to: request("/a")) {
                _ = calls.increment()
                await gate.wait()
                return (HTTPResponse(status: .ok), Array("slow".utf8))
            }
        }
        try await eventually("the leader computes") { calls.count == 1 }
        let head = await cache.lookup(request("/a", method: .head))
        let noCache = await cache.lookup(request("/a", [.cacheControl: "no-cache"]))
        guard case .forward = head, case .forward = noCache else {
            Issue.record("expected both to be forwarded at once")
            return
        }
        gate.open()
        _ = try await leader.value
    }
}

/// `stale-while-revalidate`: one request revalidates a stale response while the others get
/// it at once.
@Suite(.timeLimit(.minutes(1))) struct StaleWhileRevalidateTests {
    let clock = ManualHTTPCacheClock()
    let calls = CallCounter()
    let metrics = TestMetrics()

    func makeCache(swr: Duration? = .seconds(30)) -> HTTPResponseCache {
        HTTPResponseCache(
            cache: CacheFront(backend: makeBackend(), prefix: "test"),
            policy: HTTPCachePolicy(ttl: .seconds(10), staleWhileRevalidate: swr), metricsFactory: metrics, clock: clock.clock
        )
    }

    func version(_ fields: HTTPFields = [:]) -> () async throws -> (HTTPResponse, [UInt8]) {
        { [calls] in (HTTPResponse(status: .ok, headerFields: fields), Array("v\(calls.increment())".utf8)) }
    }

    @Test func oneRevalidatesWhileOthersGetTheStaleResponse() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a"), compute: version())
        clock.advance(by: .seconds(15))  // stale, 5 s into the 30 s window
        let gate = Latch()
        let calls = self.calls
        let revalidation = Task {
            try await cache.respond(to: request("/a")) {
                await gate.wait()
                return (HTTPResponse(status: .ok), Array("v\(calls.increment())".utf8))
            }
        }
        try await eventually("the revalidation starts") { cache.coalescer.isInFlight("GET /a") }
        let stale = try await cache.respond(to: request("/a"), compute: version())
        #expect(stale.cacheStatus == .stale && stale.body == Array("v1".utf8))
        #expect(stale.response.headerFields[HTTPField.Name("X-Cache")!] == "STALE")
        #expect(stale.response.headerFields[.cacheControl] == "stale-while-revalidate=30, max-age=0")
        gate.open()
        let fresh = try await revalidation.value
        #expect(fresh.cacheStatus == .miss && fresh.body == Array("v2".utf8))
        let hit = try await cache.respond(to: request("/a"), compute: version())
        #expect(hit.cacheStatus == .hit && hit.body == Array("v2".utf8))
        #expect(calls.count == 2)
        #expect(try metrics.expectCounter("http.cache.requests", [("namespace", "http"), ("result", "stale")]).totalValue == 1)
    }

    @Test func beyondTheWindowIsAMiss() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a"), compute: version())
        clock.advance(by: .seconds(41))
        let reply = try await cache.respond(to: request("/a"), compute: version())
        #expect(reply.cacheStatus == .miss && reply.body == Array("v2".utf8))
    }

    @Test func withoutAWindowStaleIsAMiss() async throws {
        let cache = makeCache(swr: nil)
        _ = try await cache.respond(to: request("/a"), compute: version())
        clock.advance(by: .seconds(11))
        let reply = try await cache.respond(to: request("/a"), compute: version())
        #expect(reply.cacheStatus == .miss && reply.body == Array("v2".utf8))
    }

    @Test func mustRevalidateIsNeverServedStale() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a"), compute: version([.cacheControl: "must-revalidate"]))
        clock.advance(by: .seconds(15))
        let gate = Latch()
        let calls = self.calls
        let first = Task {
            try await cache.respond(to: request("/a")) {
                await gate.wait()
                return (HTTPResponse(status: .ok, headerFields: [.cacheControl: "must-revalidate"]), Array("v\(calls.increment())".utf8))
            }
        }
        try await eventually("the first request computes") { cache.coalescer.isInFlight("GET /a") }
        let waiting = Task { try await cache.respond(to: request("/a"), compute: version()) }
        try await eventually("the second waits instead of getting a stale response") { cache.coalescer.waiterCount("GET /a") == 1 }
        gate.open()
        #expect(try await first.value.body == Array("v2".utf8))
        let second = try await waiting.value
        #expect(second.cacheStatus == .hit && second.body == Array("v2".utf8))
    }
}
