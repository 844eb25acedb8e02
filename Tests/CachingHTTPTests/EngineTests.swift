import Caching
import CachingTesting
import HTTPTypes
import MetricsTestKit
import Testing

@testable import CachingHTTP

/// The engine without a web framework: `respond(to:compute:)` is the flow the adapters follow.
@Suite struct EngineTests {
    let clock = ManualHTTPCacheClock()
    let calls = CallCounter()
    let metrics = TestMetrics()

    func makeCache(_ policy: HTTPCachePolicy = HTTPCachePolicy(), backend: (any CacheBackend)? = nil) -> HTTPResponseCache {
        HTTPResponseCache(
            cache: CacheFront(backend: backend ?? makeBackend(), prefix: "test"),
            policy: policy, metricsFactory: metrics, clock: clock.clock
        )
    }

    func json(_ text: String = #"{"message":"hello"}"#, fields: HTTPFields = [:], status: HTTPResponse.Status = .ok) -> () async throws -> (HTTPResponse, [UInt8]) {
        { [calls] in
            _ = calls.increment()
            var headers = fields
            headers[.contentType] = "application/json"
            return (HTTPResponse(status: status, headerFields: headers), Array(text.utf8))
        }
    }

    @Test func missThenHitWithSameETag() async throws {
        let cache = makeCache()
        let first = try await cache.respond(to: request("/a"), compute: json())
        let second = try await cache.respond(to: request("/a"), compute: json())
        #expect(calls.count == 1)
        #expect(first.cacheStatus == .miss)
        #expect(second.cacheStatus == .hit)
        #expect(first.response.headerFields[.eTag] == #""9b2d43affbf49a367028df2e1414f84c""#)
        #expect(second.response.headerFields[.eTag] == first.response.headerFields[.eTag])
        #expect(second.body == Array(#"{"message":"hello"}"#.utf8))
        #expect(second.response.headerFields[.contentType] == "application/json")
        #expect(second.response.headerFields[HTTPField.Name("X-Cache")!] == "HIT")
        #expect(first.response.headerFields[HTTPField.Name("X-Cache")!] == "MISS")
        #expect(try metrics.expectCounter("http.cache.requests", [("namespace", "http"), ("result", "hit")]).totalValue == 1)
        #expect(try metrics.expectCounter("http.cache.stores", [("namespace", "http"), ("result", "stored")]).totalValue == 1)
    }

    @Test func maxAgeCountsDownWithTheClock() async throws {
        let cache = makeCache(HTTPCachePolicy(ttl: .seconds(60)))
        let first = try await cache.respond(to: request("/a"), compute: json())
        #expect(first.response.headerFields[.cacheControl] == "max-age=60")
        clock.advance(by: .milliseconds(15_500))
        let second = try await cache.respond(to: request("/a"), compute: json())
        #expect(second.response.headerFields[.cacheControl] == "max-age=44")
        clock.advance(by: .seconds(45))
        let third = try await cache.respond(to: request("/a"), compute: json())
        #expect(third.cacheStatus == .miss, "stale by the cache's clock")
        #expect(third.response.headerFields[.cacheControl] == "max-age=60")
        #expect(calls.count == 2)
    }

    @Test func configuredDirectivesAreSent() async throws {
        var policy = HTTPCachePolicy(ttl: .seconds(30), visibility: .public, sharedMaxAge: .seconds(120), staleWhileRevalidate: .seconds(10))
        policy.cacheStatusHeader = HTTPField.Name("X-My-Cache")!
        let cache = makeCache(policy)
        let reply = try await cache.respond(to: request("/a"), compute: json(fields: [.cacheControl: "immutable"]))
        #expect(reply.response.headerFields[.cacheControl] == "public, s-maxage=120, stale-while-revalidate=10, max-age=30, immutable")
        #expect(reply.response.headerFields[HTTPField.Name("X-My-Cache")!] == "MISS")
        let hit = try await cache.respond(to: request("/a"), compute: json())
        #expect(hit.response.headerFields[.cacheControl] == "public, s-maxage=120, stale-while-revalidate=10, max-age=30, immutable")
    }

    @Test func endpointMaxAgeReplacesPolicyTTL() async throws {
        let cache = makeCache(HTTPCachePolicy(ttl: .seconds(60)))
        let reply = try await cache.respond(to: request("/a"), compute: json(fields: [.cacheControl: "max-age=5"]))
        #expect(reply.response.headerFields[.cacheControl] == "max-age=5")
        clock.advance(by: .seconds(6))
        _ = try await cache.respond(to: request("/a"), compute: json())
        #expect(calls.count == 2)
    }

    @Test func notModifiedOnHitAndOnMiss() async throws {
        let cache = makeCache()
        let tag = #""9b2d43affbf49a367028df2e1414f84c""#
        let onMiss = try await cache.respond(to: request("/a", [.ifNoneMatch: tag]), compute: json())
        #expect(onMiss.response.status == .notModified)
        #expect(onMiss.body.isEmpty)
        #expect(onMiss.response.headerFields[.eTag] == tag)
        let onHit = try await cache.respond(to: request("/a", [.ifNoneMatch: tag]), compute: json())
        #expect(onHit.response.status == .notModified)
        #expect(onHit.body.isEmpty)
        #expect(onHit.cacheStatus == .hit)
        #expect(onHit.response.headerFields[.contentType] == nil)
        #expect(onHit.response.headerFields[.cacheControl] == "max-age=60")
        let other = try await cache.respond(to: request("/a", [.ifNoneMatch: #""nope""#]), compute: json())
        #expect(other.response.status == .ok)
        #expect(calls.count == 1)
    }

    @Test func varyStoresOneVariantPerHeaderValue() async throws {
        let cache = makeCache()
        func compute(_ language: String) -> () async throws -> (HTTPResponse, [UInt8]) {
            json("hello in \(language)", fields: [.vary: "Accept-Language"])
        }
        let en = try await cache.respond(to: request("/v", [.acceptLanguage: "en"]), compute: compute("en"))
        let fr = try await cache.respond(to: request("/v", [.acceptLanguage: "fr"]), compute: compute("fr"))
        let enAgain = try await cache.respond(to: request("/v", [.acceptLanguage: "en"]), compute: compute("xx"))
        let frAgain = try await cache.respond(to: request("/v", [.acceptLanguage: "fr"]), compute: compute("xx"))
        #expect(en.cacheStatus == .miss && fr.cacheStatus == .miss)
        #expect(enAgain.cacheStatus == .hit && frAgain.cacheStatus == .hit)
        #expect(enAgain.body == Array("hello in en".utf8))
        #expect(frAgain.body == Array("hello in fr".utf8))
        #expect(frAgain.response.headerFields[.vary] == "Accept-Language")
        #expect(calls.count == 2)
    }

    @Test func varyStarIsNotStored() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/v"), compute: json(fields: [.vary: "*"]))
        let again = try await cache.respond(to: request("/v"), compute: json(fields: [.vary: "*"]))
        #expect(again.cacheStatus == .miss)
        #expect(calls.count == 2)
    }

    @Test func failingBackendServesUncachedAndCounts() async throws {
        let cache = makeCache(backend: FailingBackend())
        let first = try await cache.respond(to: request("/a"), compute: json())
        let second = try await cache.respond(to: request("/a"), compute: json())
        #expect(first.response.status == .ok && second.response.status == .ok)
        #expect(second.body == Array(#"{"message":"hello"}"#.utf8))
        #expect(calls.count == 2)
        #expect(try metrics.expectCounter("http.cache.errors", [("namespace", "http"), ("operation", "lookup")]).totalValue == 2)
    }

    @Test func storeFailureStillAnswers() async throws {
        // Reads work (always miss), writes fail.
        struct WriteFailing: CacheBackend {
            let name = "write-failing"
            func get(_ key: String) async throws -> CacheEntry? { nil }
            func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws { throw CacheError(.readOnly, "read-only (test)") }
            func delete(_ key: String) async throws -> Bool { false }
            func clear(prefix: String) async throws {}
            func close() async throws {}
        }
        let cache = makeCache(backend: WriteFailing())
        let reply = try await cache.respond(to: request("/a"), compute: json())
        #expect(reply.response.status == .ok)
        #expect(reply.response.headerFields[.eTag] != nil)
        #expect(try metrics.expectCounter("http.cache.errors", [("namespace", "http"), ("operation", "store")]).totalValue == 1)
    }

    @Test func corruptEntryIsRemovedAndRecomputed() async throws {
        let backend = makeBackend()
        let cache = makeCache(backend: backend)
        try await cache.storage.set(Array("garbage".utf8), forKey: "GET /a", ttl: .seconds(60))
        let reply = try await cache.respond(to: request("/a"), compute: json())
        #expect(reply.cacheStatus == .miss)
        #expect(reply.response.status == .ok)
        #expect(try metrics.expectCounter("http.cache.errors", [("namespace", "http"), ("operation", "decode")]).totalValue == 1)
        let hit = try await cache.respond(to: request("/a"), compute: json())
        #expect(hit.cacheStatus == .hit)
    }

    @Test func requestMaxAgeAndMinFresh() async throws {
        let cache = makeCache(HTTPCachePolicy(ttl: .seconds(60)))
        _ = try await cache.respond(to: request("/a"), compute: json())
        clock.advance(by: .seconds(20))
        let young = try await cache.respond(to: request("/a", [.cacheControl: "max-age=30"]), compute: json())
        #expect(young.cacheStatus == .hit)
        let tooOld = try await cache.respond(to: request("/a", [.cacheControl: "max-age=10"]), compute: json())
        #expect(tooOld.cacheStatus == .miss)
        #expect(calls.count == 2)
        clock.advance(by: .seconds(50))  // 10 s left of the re-stored entry
        let notFreshEnough = try await cache.respond(to: request("/a", [.cacheControl: "min-fresh=20"]), compute: json())
        #expect(notFreshEnough.cacheStatus == .miss)
        #expect(calls.count == 3)
    }

    @Test func onlyIfCachedGives504OnMiss() async throws {
        let cache = makeCache()
        let reply = try await cache.respond(to: request("/a", [.cacheControl: "only-if-cached"]), compute: json())
        #expect(reply.response.status == .gatewayTimeout)
        #expect(calls.count == 0)
        _ = try await cache.respond(to: request("/a"), compute: json())
        let cached = try await cache.respond(to: request("/a", [.cacheControl: "only-if-cached"]), compute: json())
        #expect(cached.response.status == .ok && cached.cacheStatus == .hit)
    }

    @Test func pragmaNoCacheRevalidatesOnlyWithoutCacheControl() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a"), compute: json())
        let pragma = try await cache.respond(to: request("/a", [.pragma: "no-cache"]), compute: json())
        #expect(pragma.cacheStatus == .miss)
        let both = try await cache.respond(to: request("/a", [.pragma: "no-cache", .cacheControl: "max-age=100"]), compute: json())
        #expect(both.cacheStatus == .hit)
    }

    @Test func responseDirectivesPreventStoring() async throws {
        let cache = makeCache()
        for directive in ["no-store", "private", "no-cache", "max-age=0", "s-maxage=0"] {
            _ = try await cache.respond(to: request("/\(directive)"), compute: json(fields: [.cacheControl: directive]))
            let again = try await cache.respond(to: request("/\(directive)"), compute: json(fields: [.cacheControl: directive]))
            #expect(again.cacheStatus == .miss, "\(directive) must not be stored")
        }
    }

    @Test func privateResponsesStoredOnlyWhenOptedIn() async throws {
        var policy = HTTPCachePolicy()
        policy.storesPrivateResponses = true
        let cache = makeCache(policy)
        _ = try await cache.respond(to: request("/p"), compute: json(fields: [.cacheControl: "private"]))
        let again = try await cache.respond(to: request("/p"), compute: json())
        #expect(again.cacheStatus == .hit)
    }

    @Test func uncachedMethodsAreLeftAlone() async throws {
        let cache = makeCache()
        let reply = try await cache.respond(to: request("/a", method: .post), compute: json())
        #expect(reply.response.headerFields[HTTPField.Name("X-Cache")!] == nil)
        #expect(reply.response.headerFields[.eTag] == nil)
    }

    @Test func nonSuccessStatusesNeverStoredEvenWhenOptedIn() async throws {
        var policy = HTTPCachePolicy()
        policy.storesNonSuccessResponses = true
        let cache = makeCache(policy)
        for status in [HTTPResponse.Status.partialContent, .notModified] {
            _ = try await cache.respond(to: request("/\(status.code)"), compute: json(status: status))
            let again = try await cache.respond(to: request("/\(status.code)"), compute: json(status: status))
            #expect(again.cacheStatus == .miss)
        }
        _ = try await cache.respond(to: request("/404"), compute: json(status: .notFound))
        let notFound = try await cache.respond(to: request("/404"), compute: json(status: .notFound))
        #expect(notFound.cacheStatus == .hit && notFound.response.status == .notFound)
    }

    @Test func invalidateAndClear() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/a?x=1"), compute: json())
        _ = try await cache.respond(to: request("/b"), compute: json())
        #expect(try await cache.invalidate(resourceKey: "/a?x=1"))
        #expect(try await cache.respond(to: request("/a?x=1"), compute: json()).cacheStatus == .miss)
        try await cache.clear()
        #expect(try await cache.respond(to: request("/b"), compute: json()).cacheStatus == .miss)
    }

    @Test func storedHeadersDropHopByHopAndFraming() async throws {
        let cache = makeCache()
        let fields: HTTPFields = [.connection: "close", .date: "Mon, 01 Jan 2024 00:00:00 GMT", .contentLength: "19", .age: "5", .expires: "0", HTTPField.Name("X-Custom")!: "kept"]
        _ = try await cache.respond(to: request("/h"), compute: json(fields: fields))
        let hit = try await cache.respond(to: request("/h"), compute: json())
        #expect(hit.response.headerFields[.connection] == nil)
        #expect(hit.response.headerFields[.date] == nil)
        #expect(hit.response.headerFields[.age] == nil)
        #expect(hit.response.headerFields[.expires] == nil)
        #expect(hit.response.headerFields[HTTPField.Name("X-Custom")!] == "kept")
        #expect(hit.response.headerFields[.contentLength] == "19")
    }

    @Test func endpointETagIsKept() async throws {
        let cache = makeCache()
        let first = try await cache.respond(to: request("/e"), compute: json(fields: [.eTag: #"W/"v7""#]))
        #expect(first.response.headerFields[.eTag] == #"W/"v7""#)
        let conditional = try await cache.respond(to: request("/e", [.ifNoneMatch: #""v7""#]), compute: json())
        #expect(conditional.response.status == .notModified)
    }
}
