#if Hummingbird
import Caching
import CachingTesting
import CachingHTTP
import CachingHummingbird
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MetricsTestKit
import NIOCore
import Synchronization
import Testing

/// Every rule of the HTTP cache, through Hummingbird's own test client.
@Suite struct HummingbirdHTTPCacheTests {
    let calls = CallCounter()
    let metrics = TestMetrics()
    let clock = ManualHTTPCacheClock()
    let xCache = HTTPField.Name("X-Cache")!

    func cache(_ policy: HTTPCachePolicy = HTTPCachePolicy(), backend: (any CacheBackend)? = nil) -> HTTPResponseCache {
        HTTPResponseCache(cache: CacheFront(backend: backend ?? makeBackend(), prefix: "hb"), policy: policy, metricsFactory: metrics, clock: clock.clock)
    }

    /// An app with the middleware on the router and a counting JSON endpoint at `/items` (echoing
    /// the query), plus whatever `configure` adds.
    func withApp(
        _ cache: HTTPResponseCache,
        key: HTTPCacheMiddleware<BasicRequestContext>.KeyBuilder? = nil,
        configure: (Router<BasicRequestContext>) -> Void = { _ in },
        _ test: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: HTTPCacheMiddleware(cache: cache, key: key))
        let calls = self.calls
        router.get("/items") { request, _ -> Response in
            let n = calls.increment()
            return Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"n":\#(n),"query":"\#(request.uri.query ?? "")"}"#))
            )
        }
        configure(router)
        try await Application(router: router).test(.router, test)
    }

    // MARK: MISS, HIT, ETag, 304

    @Test func missThenHitWithSameETag() async throws {
        try await withApp(cache()) { client in
            let first = try await client.execute(uri: "/items", method: .get)
            let second = try await client.execute(uri: "/items", method: .get)
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.headers[xCache] == "MISS")
            #expect(second.headers[xCache] == "HIT")
            #expect(first.headers[.eTag] != nil)
            #expect(second.headers[.eTag] == first.headers[.eTag])
            #expect(String(buffer: second.body) == String(buffer: first.body))
            #expect(String(buffer: second.body) == #"{"n":1,"query":""}"#)
            #expect(second.headers[.contentType] == "application/json; charset=utf-8")
            #expect(second.headers[.contentLength] == String(first.body.readableBytes))
            #expect(first.headers[.cacheControl] == "max-age=60")
        }
        #expect(calls.count == 1)
    }

    @Test func etagIsTheBodyDigest() async throws {
        try await withApp(cache()) { client in
            let response = try await client.execute(uri: "/items", method: .get)
            #expect(response.headers[.eTag] == EntityTag.strong(forBody: response.body.readableBytesView).headerValue)
        }
    }

    @Test func notModifiedOnHit() async throws {
        try await withApp(cache()) { client in
            let first = try await client.execute(uri: "/items", method: .get)
            let tag = try #require(first.headers[.eTag])
            let second = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: tag])
            #expect(second.status == .notModified)
            #expect(second.body.readableBytes == 0)
            #expect(second.headers[.eTag] == tag)
            #expect(second.headers[xCache] == "HIT")
            #expect(second.headers[.cacheControl] == "max-age=60")
        }
        #expect(calls.count == 1)
    }

    @Test func notModifiedOnMiss() async throws {
        // The ETag of the body the endpoint will produce, computed in advance.
        let tag = EntityTag.strong(forBody: Array(#"{"n":1,"query":""}"#.utf8)).headerValue
        try await withApp(cache()) { client in
            let response = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: tag])
            #expect(response.status == .notModified)
            #expect(response.body.readableBytes == 0)
            #expect(response.headers[xCache] == "MISS")
            // It was computed and stored all the same.
            let next = try await client.execute(uri: "/items", method: .get)
            #expect(next.headers[xCache] == "HIT")
            #expect(next.headers[.eTag] == tag)
        }
        #expect(calls.count == 1)
    }

    @Test func ifNoneMatchListStarAndWeak() async throws {
        try await withApp(cache()) { client in
            let tag = try #require(try await client.execute(uri: "/items", method: .get).headers[.eTag])
            let list = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: #""other", \#(tag), "more""#])
            #expect(list.status == .notModified)
            let star = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: "*"])
            #expect(star.status == .notModified)
            let weak = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: "W/" + tag])
            #expect(weak.status == .notModified)
            let mismatch = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: #""other", W/"nope""#])
            #expect(mismatch.status == .ok)
            #expect(mismatch.body.readableBytes > 0)
        }
        #expect(calls.count == 1)
    }

    // MARK: HEAD, keys, Vary

    @Test func headIsAnsweredFromCachedGet() async throws {
        try await withApp(cache()) { client in
            let get = try await client.execute(uri: "/items", method: .get)
            let head = try await client.execute(uri: "/items", method: .head)
            #expect(head.status == .ok)
            #expect(head.headers[xCache] == "HIT")
            #expect(head.body.readableBytes == 0)
            #expect(head.headers[.eTag] == get.headers[.eTag])
            #expect(head.headers[.contentLength] == String(get.body.readableBytes))
        }
        #expect(calls.count == 1)
    }

    @Test func headMissIsNotStored() async throws {
        try await withApp(cache()) { client in
            let head = try await client.execute(uri: "/items", method: .head)
            #expect(head.status == .ok)
            #expect(head.headers[xCache] == "MISS")
            #expect(head.body.readableBytes == 0)
            let get = try await client.execute(uri: "/items", method: .get)
            #expect(get.headers[xCache] == "MISS", "a HEAD response (no body) must not be stored as the GET")
            #expect(get.body.readableBytes > 0)
        }
        #expect(calls.count == 2)
    }

    @Test func queryOrderIsNormalised() async throws {
        try await withApp(cache()) { client in
            let first = try await client.execute(uri: "/items?b=2&a=1", method: .get)
            let second = try await client.execute(uri: "/items?a=1&b=2", method: .get)
            let other = try await client.execute(uri: "/items?a=1&b=3", method: .get)
            #expect(first.headers[xCache] == "MISS")
            #expect(second.headers[xCache] == "HIT")
            #expect(other.headers[xCache] == "MISS")
        }
        #expect(calls.count == 2)
    }

    @Test func varyHeaderSelectsVariants() async throws {
        try await withApp(cache(), configure: { router in
            router.get("/greeting") { [calls] request, _ -> Response in
                _ = calls.increment()
                let language = request.headers[.acceptLanguage] ?? "en"
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/plain", .vary: "Accept-Language"],
                    body: .init(byteBuffer: ByteBuffer(string: language == "fr" ? "bonjour" : "hello"))
                )
            }
        }) { client in
            let en = try await client.execute(uri: "/greeting", method: .get, headers: [.acceptLanguage: "en"])
            let fr = try await client.execute(uri: "/greeting", method: .get, headers: [.acceptLanguage: "fr"])
            let enAgain = try await client.execute(uri: "/greeting", method: .get, headers: [.acceptLanguage: "en"])
            let frAgain = try await client.execute(uri: "/greeting", method: .get, headers: [.acceptLanguage: "fr"])
            #expect(en.headers[xCache] == "MISS" && fr.headers[xCache] == "MISS")
            #expect(enAgain.headers[xCache] == "HIT" && frAgain.headers[xCache] == "HIT")
            #expect(String(buffer: enAgain.body) == "hello")
            #expect(String(buffer: frAgain.body) == "bonjour")
            #expect(frAgain.headers[.vary] == "Accept-Language")
            #expect(enAgain.headers[.eTag] != frAgain.headers[.eTag])
        }
        #expect(calls.count == 2)
    }

    @Test func customKeyBuilderSeparatesTenants() async throws {
        let tenant = HTTPField.Name("X-Tenant")!
        try await withApp(cache(), key: { request, _ in
            guard let id = request.headers[tenant] else { return nil }  // no tenant: not cached
            return "tenant:\(id) " + HTTPCachePolicy.defaultKey(for: request.head)
        }) { client in
            let a1 = try await client.execute(uri: "/items", method: .get, headers: [tenant: "a"])
            let b1 = try await client.execute(uri: "/items", method: .get, headers: [tenant: "b"])
            let a2 = try await client.execute(uri: "/items", method: .get, headers: [tenant: "a"])
            let none = try await client.execute(uri: "/items", method: .get)
            #expect(a1.headers[xCache] == "MISS" && b1.headers[xCache] == "MISS")
            #expect(a2.headers[xCache] == "HIT")
            #expect(String(buffer: a2.body) == String(buffer: a1.body))
            #expect(String(buffer: b1.body) != String(buffer: a1.body))
            #expect(none.headers[xCache] == "BYPASS")
        }
        #expect(calls.count == 3)
    }

    // MARK: Request directives

    @Test func requestNoStoreBypassesCompletely() async throws {
        try await withApp(cache()) { client in
            let bypass = try await client.execute(uri: "/items", method: .get, headers: [.cacheControl: "no-store"])
            #expect(bypass.headers[xCache] == "BYPASS")
            #expect(bypass.headers[.eTag] == nil)
            let plain = try await client.execute(uri: "/items", method: .get)
            #expect(plain.headers[xCache] == "MISS", "no-store must not have stored anything")
            let bypassAgain = try await client.execute(uri: "/items", method: .get, headers: [.cacheControl: "no-store"])
            #expect(bypassAgain.headers[xCache] == "BYPASS", "no-store must not read the cache either")
            #expect(String(buffer: bypassAgain.body).contains(#""n":3"#))
        }
        #expect(calls.count == 3)
    }

    @Test func requestNoCacheAndMaxAgeZeroRevalidate() async throws {
        try await withApp(cache()) { client in
            _ = try await client.execute(uri: "/items", method: .get)
            let noCache = try await client.execute(uri: "/items", method: .get, headers: [.cacheControl: "no-cache"])
            #expect(noCache.headers[xCache] == "MISS")
            #expect(String(buffer: noCache.body).contains(#""n":2"#))
            let stored = try await client.execute(uri: "/items", method: .get)
            #expect(stored.headers[xCache] == "HIT")
            #expect(String(buffer: stored.body).contains(#""n":2"#), "the revalidated response replaced the old one")
            let maxAgeZero = try await client.execute(uri: "/items", method: .get, headers: [.cacheControl: "max-age=0"])
            #expect(String(buffer: maxAgeZero.body).contains(#""n":3"#))
            let storedAgain = try await client.execute(uri: "/items", method: .get)
            #expect(String(buffer: storedAgain.body).contains(#""n":3"#))
        }
        #expect(calls.count == 3)
    }

    // MARK: Response directives and security defaults

    func endpoint(_ path: RouterPath, headers: HTTPFields, status: HTTPResponse.Status = .ok) -> (Router<BasicRequestContext>) -> Void {
        { [calls] router in
            router.get(path) { _, _ -> Response in
                let n = calls.increment()
                return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "call \(n)")))
            }
        }
    }

    @Test(arguments: ["no-store", "private", "no-cache", "max-age=0"])
    func endpointCacheControlIsRespected(_ directive: String) async throws {
        try await withApp(cache(), configure: endpoint("/x", headers: [.cacheControl: directive])) { client in
            let first = try await client.execute(uri: "/x", method: .get)
            let second = try await client.execute(uri: "/x", method: .get)
            #expect(first.headers[xCache] == "MISS" && second.headers[xCache] == "MISS")
            #expect(String(buffer: second.body) == "call 2")
            #expect(second.headers[.cacheControl] == directive, "the endpoint's own Cache-Control is left as it was")
        }
    }

    @Test func setCookieIsNotStoredUnlessOptedIn() async throws {
        try await withApp(cache(), configure: endpoint("/x", headers: [.setCookie: "session=abc"])) { client in
            _ = try await client.execute(uri: "/x", method: .get)
            let second = try await client.execute(uri: "/x", method: .get)
            #expect(second.headers[xCache] == "MISS")
            #expect(String(buffer: second.body) == "call 2")
        }
        var policy = HTTPCachePolicy()
        policy.storesResponsesWithSetCookie = true
        try await withApp(cache(policy), configure: endpoint("/y", headers: [.setCookie: "theme=dark"])) { client in
            _ = try await client.execute(uri: "/y", method: .get)
            let second = try await client.execute(uri: "/y", method: .get)
            #expect(second.headers[xCache] == "HIT")
            #expect(second.headers[.setCookie] == "theme=dark")
        }
    }

    @Test func authorizationIsNotCachedUnlessOptedIn() async throws {
        try await withApp(cache()) { client in
            _ = try await client.execute(uri: "/items", method: .get)  // stored for anonymous users
            let authorized = try await client.execute(uri: "/items", method: .get, headers: [.authorization: "Bearer t"])
            #expect(authorized.headers[xCache] == "BYPASS", "never served another user's (or the public) copy")
            #expect(String(buffer: authorized.body).contains(#""n":2"#))
        }
        var policy = HTTPCachePolicy()
        policy.cachesRequestsWithAuthorization = true
        try await withApp(cache(policy), key: { request, _ in
            (request.headers[.authorization] ?? "anonymous") + " " + HTTPCachePolicy.defaultKey(for: request.head)
        }) { client in
            _ = try await client.execute(uri: "/items", method: .get, headers: [.authorization: "Bearer t"])
            let again = try await client.execute(uri: "/items", method: .get, headers: [.authorization: "Bearer t"])
            #expect(again.headers[xCache] == "HIT")
            let otherUser = try await client.execute(uri: "/items", method: .get, headers: [.authorization: "Bearer u"])
            #expect(otherUser.headers[xCache] == "MISS")
        }
    }

    @Test func cookieRequestsAreNotCachedUnlessOptedIn() async throws {
        try await withApp(cache()) { client in
            let first = try await client.execute(uri: "/items", method: .get, headers: [.cookie: "a=1"])
            let second = try await client.execute(uri: "/items", method: .get, headers: [.cookie: "a=1"])
            #expect(first.headers[xCache] == "BYPASS" && second.headers[xCache] == "BYPASS")
        }
        var policy = HTTPCachePolicy()
        policy.cachesRequestsWithCookies = true
        try await withApp(cache(policy)) { client in
            _ = try await client.execute(uri: "/items", method: .get, headers: [.cookie: "a=1"])
            let second = try await client.execute(uri: "/items", method: .get, headers: [.cookie: "a=1"])
            #expect(second.headers[xCache] == "HIT")
        }
    }

    @Test func nonSuccessIsNotStoredUnlessOptedIn() async throws {
        try await withApp(cache(), configure: endpoint("/gone", headers: [:], status: .notFound)) { client in
            _ = try await client.execute(uri: "/gone", method: .get)
            let second = try await client.execute(uri: "/gone", method: .get)
            #expect(second.status == .notFound)
            #expect(second.headers[xCache] == "MISS")
            #expect(String(buffer: second.body) == "call 2")
        }
        var policy = HTTPCachePolicy()
        policy.storesNonSuccessResponses = true
        try await withApp(cache(policy), configure: endpoint("/gone", headers: [:], status: .notFound)) { client in
            _ = try await client.execute(uri: "/gone", method: .get)
            let second = try await client.execute(uri: "/gone", method: .get)
            #expect(second.status == .notFound)
            #expect(second.headers[xCache] == "HIT")
        }
    }

    // MARK: TTL, limits, failures

    @Test func maxAgeReflectsRemainingTTL() async throws {
        try await withApp(cache(HTTPCachePolicy(ttl: .seconds(100)))) { client in
            let first = try await client.execute(uri: "/items", method: .get)
            #expect(first.headers[.cacheControl] == "max-age=100")
            clock.advance(by: .seconds(30))
            let second = try await client.execute(uri: "/items", method: .get)
            #expect(second.headers[.cacheControl] == "max-age=70")
            clock.advance(by: .milliseconds(69_500))
            let third = try await client.execute(uri: "/items", method: .get)
            #expect(third.headers[.cacheControl] == "max-age=0")
            clock.advance(by: .seconds(1))
            let fourth = try await client.execute(uri: "/items", method: .get)
            #expect(fourth.headers[xCache] == "MISS")
            #expect(fourth.headers[.cacheControl] == "max-age=100")
        }
    }

    @Test func configuredCacheControlDirectives() async throws {
        let policy = HTTPCachePolicy(ttl: .seconds(60), visibility: .private, sharedMaxAge: .seconds(300), staleWhileRevalidate: .seconds(15))
        try await withApp(cache(policy)) { client in
            let first = try await client.execute(uri: "/items", method: .get)
            #expect(first.headers[.cacheControl] == "private, s-maxage=300, stale-while-revalidate=15, max-age=60")
        }
    }

    @Test func bodiesOverTheLimitAreNotStored() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 100
        let big = String(repeating: "x", count: 101)
        try await withApp(cache(policy), configure: { [calls] router in
            router.get("/big") { _, _ -> Response in
                _ = calls.increment()
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: big)))
            }
        }) { client in
            let first = try await client.execute(uri: "/big", method: .get)
            let second = try await client.execute(uri: "/big", method: .get)
            #expect(String(buffer: second.body) == big)
            #expect(first.headers[xCache] == "MISS" && second.headers[xCache] == "MISS")
            #expect(second.headers[.eTag] == nil)
        }
        #expect(calls.count == 2)
    }

    func streamingEndpoint(chunks: Int, chunkSize: Int) -> (Router<BasicRequestContext>) -> Void {
        { [calls] router in
            router.get("/stream") { _, _ -> Response in
                let n = calls.increment()
                return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody { writer in
                    for index in 0..<chunks {
                        try await writer.write(ByteBuffer(string: String(repeating: Character(String(index % 10)), count: chunkSize)))
                    }
                    try await writer.write(ByteBuffer(string: "|\(n)"))
                    try await writer.finish(nil)
                })
            }
        }
    }

    @Test func streamedBodyWithinLimitIsStored() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withApp(cache(policy), configure: streamingEndpoint(chunks: 10, chunkSize: 50)) { client in
            let first = try await client.execute(uri: "/stream", method: .get)
            let second = try await client.execute(uri: "/stream", method: .get)
            #expect(first.headers[xCache] == "MISS" && second.headers[xCache] == "HIT")
            #expect(String(buffer: second.body) == String(buffer: first.body))
            #expect(first.body.readableBytes == 502)
            #expect(first.headers[.eTag] == second.headers[.eTag])
        }
        #expect(calls.count == 1)
    }

    @Test func streamedBodyOverLimitPassesThroughWhole() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withApp(cache(policy), configure: streamingEndpoint(chunks: 100, chunkSize: 100)) { client in
            let first = try await client.execute(uri: "/stream", method: .get)
            #expect(first.status == .ok)
            #expect(first.headers[xCache] == "MISS")
            #expect(first.headers[.eTag] == nil)
            let expected = (0..<100).map { String(repeating: Character(String($0 % 10)), count: 100) }.joined() + "|1"
            #expect(String(buffer: first.body) == expected, "every byte after the limit arrives, in order")
            let second = try await client.execute(uri: "/stream", method: .get)
            #expect(second.headers[xCache] == "MISS")
            #expect(String(buffer: second.body).hasSuffix("|2"))
        }
    }

    @Test func failingBackendStillServesAndCounts() async throws {
        try await withApp(cache(backend: FailingBackend())) { client in
            let first = try await client.execute(uri: "/items", method: .get)
            let second = try await client.execute(uri: "/items", method: .get)
            #expect(first.status == .ok && second.status == .ok)
            #expect(String(buffer: second.body) == #"{"n":2,"query":""}"#)
            #expect(second.headers[xCache] == "MISS")
        }
        #expect(calls.count == 2)
        #expect(metrics.counterTotal(label: "http.cache.errors", dimensions: [("namespace", "http"), ("operation", "lookup")]) == 2)
    }

    // MARK: Scope

    @Test func perRouteGroupPolicies() async throws {
        let shortCache = cache(HTTPCachePolicy(ttl: .seconds(5), namespace: "short"))
        let longCache = cache(HTTPCachePolicy(ttl: .seconds(500), namespace: "long"))
        let router = Router()
        let calls = self.calls
        router.group("short").add(middleware: HTTPCacheMiddleware(cache: shortCache)).get("value") { _, _ in "short \(calls.increment())" }
        router.group("long").add(middleware: HTTPCacheMiddleware(cache: longCache)).get("value") { _, _ in "long \(calls.increment())" }
        router.get("plain") { _, _ in "plain \(calls.increment())" }
        try await Application(router: router).test(.router) { client in
            let short = try await client.execute(uri: "/short/value", method: .get)
            let long = try await client.execute(uri: "/long/value", method: .get)
            let plain = try await client.execute(uri: "/plain", method: .get)
            #expect(short.headers[.cacheControl] == "max-age=5")
            #expect(long.headers[.cacheControl] == "max-age=500")
            #expect(plain.headers[xCache] == nil && plain.headers[.eTag] == nil)
            clock.advance(by: .seconds(10))
            #expect(try await client.execute(uri: "/short/value", method: .get).headers[xCache] == "MISS")
            #expect(try await client.execute(uri: "/long/value", method: .get).headers[xCache] == "HIT")
            #expect(try await client.execute(uri: "/plain", method: .get).headers[xCache] == nil)
        }
        try await shortCache.clear()
        #expect(try await longCache.storage.get("GET /long/value", as: [UInt8].self) != nil, "clearing one namespace leaves the other")
    }

    @Test func otherMethodsAreLeftAlone() async throws {
        try await withApp(cache(), configure: { [calls] router in
            router.post("/items") { _, _ in "posted \(calls.increment())" }
        }) { client in
            let first = try await client.execute(uri: "/items", method: .post)
            let second = try await client.execute(uri: "/items", method: .post)
            #expect(first.headers[xCache] == nil && second.headers[xCache] == nil)
            #expect(String(buffer: second.body) == "posted 2")
        }
    }

    /// Over a real socket (`.live`): HEAD and 304 carry no body and keep the representation's
    /// `Content-Length`; a streamed response over the limit arrives whole.
    @Test func onTheWire() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: HTTPCacheMiddleware(cache: cache(policy)))
        let calls = self.calls
        router.get("/items") { _, _ in "item \(calls.increment())" }
        streamingEndpoint(chunks: 100, chunkSize: 100)(router)
        try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { client in
            let get = try await client.execute(uri: "/items", method: .get)
            let tag = try #require(get.headers[.eTag])
            let head = try await client.execute(uri: "/items", method: .head)
            #expect(head.status == .ok && head.headers[xCache] == "HIT")
            #expect(head.body.readableBytes == 0)
            #expect(head.headers[.contentLength] == String(get.body.readableBytes))
            let notModified = try await client.execute(uri: "/items", method: .get, headers: [.ifNoneMatch: tag])
            #expect(notModified.status == .notModified && notModified.body.readableBytes == 0)
            let again = try await client.execute(uri: "/items", method: .get)
            #expect(String(buffer: again.body) == "item 1")
            let stream = try await client.execute(uri: "/stream", method: .get)
            #expect(stream.body.readableBytes == 100 * 100 + 2)
            #expect(stream.headers[xCache] == "MISS")
        }
    }
}
#endif
