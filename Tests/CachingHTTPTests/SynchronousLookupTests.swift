import Caching
import CachingTesting
import HTTPTypes
import MetricsTestKit
import Testing

@testable import CachingHTTP

/// `lookupSynchronously`: fresh hits without suspending; everything else left, untouched, to
/// `lookup(continuing:)`, which finishes from what was read.
@Suite struct SynchronousLookupTests {
    let clock = ManualHTTPCacheClock()
    let calls = CallCounter()
    let metrics = TestMetrics()
    let backend = ReadCountingBackend()

    func makeCache(_ policy: HTTPCachePolicy = HTTPCachePolicy(), backend: (any CacheBackend)? = nil) -> HTTPResponseCache {
        HTTPResponseCache(
            cache: CacheFront(backend: backend ?? self.backend, prefix: "test", metricsFactory: metrics),
            policy: policy, metricsFactory: metrics, clock: clock.clock
        )
    }

    func compute(_ fields: HTTPFields = [:]) -> () async throws -> (HTTPResponse, [UInt8]) {
        { [calls] in
            let n = calls.increment()
            var headers = fields
            headers[.contentType] = "application/json"
            return (HTTPResponse(status: .ok, headerFields: headers), Array(#"{"n":\#(n)}"#.utf8))
        }
    }

    func counter(_ label: String, _ result: String) -> Int64 {
        metrics.counterTotal(label: label, dimensions: [("namespace", "http"), ("result", result)])
    }

    func frontCount(_ result: String, backend: String = "memory") -> Int64 {
        metrics.counterTotal(label: "cache.requests", dimensions: [("backend", backend), ("result", result)])
    }

    /// The reply of a synchronous lookup, or `nil` (recorded as a failure) when it is pending.
    func synchronousReply(_ cache: HTTPResponseCache, _ request: HTTPRequest, sourceLocation: SourceLocation = #_sourceLocation) -> HTTPCacheReply? {
        guard case .respond(let reply) = cache.lookupSynchronously(request) else {
            Issue.record("expected a synchronous reply", sourceLocation: sourceLocation)
            return nil
        }
        return reply
    }

    /// The pending lookup, or `nil` (recorded as a failure) when it answered.
    func pendingLookup(_ cache: HTTPResponseCache, _ request: HTTPRequest, sourceLocation: SourceLocation = #_sourceLocation) -> HTTPCachePendingLookup? {
        guard case .pending(let pending) = cache.lookupSynchronously(request) else {
            Issue.record("expected a pending lookup", sourceLocation: sourceLocation)
            return nil
        }
        return pending
    }

    // MARK: Answered synchronously

    @Test func freshHitIsTheReplyOfTheAsyncLookup() async throws {
        let cache = makeCache(HTTPCachePolicy(ttl: .seconds(60), visibility: .public))
        _ = try await cache.respond(to: request("/a"), compute: compute([.cacheControl: "immutable"]))
        clock.advance(by: .seconds(10))
        let hit = try #require(synchronousReply(cache, request("/a")))
        guard case .respond(let asyncHit) = await cache.lookup(request("/a")) else {
            Issue.record("the async lookup did not answer")
            return
        }
        #expect(hit.cacheStatus == .hit)
        #expect(hit.response == asyncHit.response)
        #expect(hit.body == asyncHit.body && hit.body == Array(#"{"n":1}"#.utf8))
        #expect(hit.response.headerFields[.cacheControl] == "public, max-age=50, immutable")
        #expect(hit.response.headerFields[.contentLength] == "7")
        #expect(backend.synchronousReads.count == 1)
        #expect(backend.asyncReads.count == 2, "the miss and the async lookup; none for the synchronous hit")
        #expect(counter("http.cache.requests", "hit") == 2)
        #expect(frontCount("hit") == 2 && frontCount("miss") == 1)
    }

    @Test func notModifiedHeadAndVariants() async throws {
        let cache = makeCache()
        let stored = try await cache.respond(to: request("/a"), compute: compute([.lastModified: "Sat, 21 Nov 2026 10:00:00 GMT"]))
        let tag = try #require(stored.response.headerFields[.eTag])

        let byTag = try #require(synchronousReply(cache, request("/a", [.ifNoneMatch: tag])))
        #expect(byTag.response.status == .notModified && byTag.body.isEmpty && byTag.cacheStatus == .hit)
        #expect(byTag.response.headerFields[.contentLength] == "7")
        let byDate = try #require(synchronousReply(cache, request("/a", [.ifModifiedSince: "Sat, 21 Nov 2026 10:00:00 GMT"])))
        #expect(byDate.response.status == .notModified)
        let changed = try #require(synchronousReply(cache, request("/a", [.ifModifiedSince: "Sat, 21 Nov 2026 09:59:59 GMT"])))
        #expect(changed.response.status == .ok && changed.body.count == 7)
        #expect(counter("http.cache.requests", "not_modified") == 2)

        let head = try #require(synchronousReply(cache, request("/a", method: .head)))
        #expect(head.response.status == .ok && head.body.isEmpty)
        #expect(head.response.headerFields[.contentLength] == "7")

        // A response with Vary: the record, then the request's variant, both read synchronously.
        _ = try await cache.respond(to: request("/v", [.acceptLanguage: "de"]), compute: compute([.vary: "Accept-Language"]))
        let german = try #require(synchronousReply(cache, request("/v", [.acceptLanguage: "de"])))
        #expect(german.body == Array(#"{"n":2}"#.utf8))
        _ = try #require(pendingLookup(cache, request("/v", [.acceptLanguage: "fr"])))
        #expect(calls.count == 2)
        #expect(backend.asyncReads.count == 2, "only the two misses that stored")
    }

    // MARK: Left to the asynchronous lookup

    @Test func missIsReadOnceAndCountedOnce() async throws {
        let cache = makeCache()
        let pending = try #require(pendingLookup(cache, request("/a")))
        #expect(backend.synchronousReads.count == 1)
        #expect(counter("http.cache.requests", "miss") == 0, "nothing counted until the lookup is finished")
        guard case .forward(let context) = await cache.lookup(continuing: pending) else {
            Issue.record("a miss must be forwarded")
            return
        }
        #expect(context.collectsBody)
        #expect(backend.asyncReads.count == 0, "the asynchronous lookup continued from the synchronous read")
        #expect(counter("http.cache.requests", "miss") == 1)
        #expect(frontCount("miss") == 1)
        let reply = await cache.store(context, response: HTTPResponse(status: .ok), body: [1, 2, 3])
        #expect(reply.cacheStatus == .miss)
        #expect(synchronousReply(cache, request("/a"))?.body == [1, 2, 3])
    }

    @Test func requestsThatMustNotReadAreLeftWithoutSideEffects() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a"), compute: compute())
        let reads = backend.asyncReads.count
        let misses = counter("http.cache.requests", "miss")
        let cases: [(HTTPRequest, HTTPCacheStatus?)] = [
            (request("/a", [.cacheControl: "no-store"]), .bypass),
            (request("/a", [.authorization: "Bearer x"]), .bypass),
            (request("/a", [.cookie: "a=1"]), .bypass),
            (request("/a", [.cacheControl: "no-cache"]), .miss),
            (request("/a", [.cacheControl: "max-age=0"]), .miss),
            (request("/a", [.pragma: "no-cache"]), .miss),
            (request("/a", method: .post), nil),
        ]
        for (request, status) in cases {
            let counted = counter("http.cache.requests", "bypass") + counter("http.cache.requests", "miss")
            let pending = try #require(pendingLookup(cache, request))
            #expect(counter("http.cache.requests", "bypass") + counter("http.cache.requests", "miss") == counted, "nothing counted until the lookup is finished")
            guard case .forward(let context) = await cache.lookup(continuing: pending) else {
                Issue.record("\(request.headerFields) must be forwarded")
                continue
            }
            #expect(context.cacheStatus == status)
        }
        #expect(backend.synchronousReads.count == 0 && backend.asyncReads.count == reads)
        #expect(counter("http.cache.requests", "bypass") == 3)
        #expect(counter("http.cache.requests", "miss") == misses + 3)
    }

    @Test func keyBuilderReturningNilIsABypass() async throws {
        var policy = HTTPCachePolicy()
        policy.keyBuilder = { _ in nil }
        let cache = makeCache(policy)
        let pending = try #require(pendingLookup(cache, request("/a")))
        #expect(pending.resourceKey == nil)
        guard case .forward(let context) = await cache.lookup(continuing: pending) else {
            Issue.record("expected forward")
            return
        }
        #expect(context.cacheStatus == .bypass)
        // A caller-built key is used as given.
        guard case .pending(let keyed) = cache.lookupSynchronously(request("/a"), resourceKey: "tenant-1 /a") else {
            Issue.record("expected a pending lookup")
            return
        }
        #expect(keyed.resourceKey == "tenant-1 /a")
    }

    @Test func staleResponsesAndRequestLimitsGoAsynchronous() async throws {
        let cache = makeCache(HTTPCachePolicy(ttl: .seconds(10), staleWhileRevalidate: .seconds(30)))
        _ = try await cache.respond(to: request("/a"), compute: compute())
        clock.advance(by: .seconds(5))
        // Fresh, but older than the request allows, or too close to expiry.
        _ = try #require(pendingLookup(cache, request("/a", [.cacheControl: "max-age=4"])))
        _ = try #require(pendingLookup(cache, request("/a", [.cacheControl: "min-fresh=6"])))
        #expect(synchronousReply(cache, request("/a", [.cacheControl: "max-age=5"]))?.cacheStatus == .hit)

        clock.advance(by: .seconds(10))   // stale, within stale-while-revalidate
        let first = try #require(pendingLookup(cache, request("/a")))
        let second = try #require(pendingLookup(cache, request("/a")))
        guard case .forward(let leader) = await cache.lookup(continuing: first) else {
            Issue.record("the first request in the window revalidates")
            return
        }
        guard case .respond(let stale) = await cache.lookup(continuing: second) else {
            Issue.record("the others get the stale response")
            return
        }
        #expect(stale.cacheStatus == .stale)
        #expect(stale.response.headerFields[.cacheControl] == "stale-while-revalidate=30, max-age=0")
        _ = await cache.store(leader, response: HTTPResponse(status: .ok), body: [7])
        #expect(synchronousReply(cache, request("/a"))?.body == [7])
        #expect(backend.asyncReads.count == 1, "only the first miss; the pending lookups continued from their reads")
    }

    @Test func onlyIfCachedMissIsAGatewayTimeout() async throws {
        let cache = makeCache()
        let pending = try #require(pendingLookup(cache, request("/a", [.cacheControl: "only-if-cached"])))
        guard case .respond(let reply) = await cache.lookup(continuing: pending) else {
            Issue.record("expected 504")
            return
        }
        #expect(reply.response.status == .gatewayTimeout)
        #expect(calls.count == 0)
    }

    @Test func undecodableEntryIsRemovedByTheAsyncLookupOnce() async throws {
        let cache = makeCache()
        try await backend.set("test:http:GET /a", to: [1, 2, 3], ttl: nil)
        let pending = try #require(pendingLookup(cache, request("/a")))
        #expect(try await backend.inner.get("test:http:GET /a") != nil, "left for the asynchronous lookup")
        #expect(metrics.counterTotal(label: "http.cache.errors", dimensions: [("namespace", "http"), ("operation", "decode")]) == 0)
        guard case .forward = await cache.lookup(continuing: pending) else {
            Issue.record("expected forward")
            return
        }
        #expect(try await backend.inner.get("test:http:GET /a") == nil)
        #expect(metrics.counterTotal(label: "http.cache.errors", dimensions: [("namespace", "http"), ("operation", "decode")]) == 1)
        #expect(counter("http.cache.requests", "miss") == 1)
    }

    @Test func disabledFrontMisses() async throws {
        let front = CacheFront(backend: backend, prefix: "test", metricsFactory: metrics)
        let cache = HTTPResponseCache(cache: front, metricsFactory: metrics, clock: clock.clock)
        _ = try await cache.respond(to: request("/a"), compute: compute())
        front.isEnabled = false
        let pending = try #require(pendingLookup(cache, request("/a")))
        guard case .forward = await cache.lookup(continuing: pending) else {
            Issue.record("a disabled cache forwards")
            return
        }
        front.isEnabled = true
        #expect(synchronousReply(cache, request("/a"))?.cacheStatus == .hit)
    }

    @Test func backendThatCannotReadSynchronouslyKeepsTheAsyncPath() async throws {
        let slow = AsyncOnlyBackend()
        let cache = makeCache(backend: slow)
        _ = try await cache.respond(to: request("/a"), compute: compute())
        #expect(slow.asyncReads.count == 1)
        let pending = try #require(pendingLookup(cache, request("/a")))
        #expect(slow.inner.synchronousReads.count == 0 && slow.asyncReads.count == 1, "nothing read synchronously")
        guard case .respond(let hit) = await cache.lookup(continuing: pending) else {
            Issue.record("the async lookup answers the hit")
            return
        }
        #expect(hit.cacheStatus == .hit && hit.body == Array(#"{"n":1}"#.utf8))
        #expect(slow.asyncReads.count == 2)
        #expect(counter("http.cache.requests", "hit") == 1)
        #expect(frontCount("hit", backend: "async-only") == 1)
    }

    @Test func failingBackendIsLeftToTheAsyncFailOpen() async throws {
        let cache = makeCache(backend: FailingBackend())
        let pending = try #require(pendingLookup(cache, request("/a")))
        guard case .forward(let context) = await cache.lookup(continuing: pending) else {
            Issue.record("expected forward")
            return
        }
        #expect(context.cacheStatus == .miss && !context.collectsBody)
        #expect(metrics.counterTotal(label: "http.cache.errors", dimensions: [("namespace", "http"), ("operation", "lookup")]) == 1)
    }
}
