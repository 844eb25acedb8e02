#if Vapor
import Caching
import CachingTesting
import CachingHTTP
import CachingVapor
import MetricsTestKit
import NIOCore
import Testing
import Vapor
import VaporTesting

/// Every rule of the HTTP cache, through Vapor's own test client (VaporTesting).
@Suite struct VaporHTTPCacheTests {
    let calls = CallCounter()
    let metrics = TestMetrics()
    let clock = ManualHTTPCacheClock()

    func cache(_ policy: HTTPCachePolicy = HTTPCachePolicy(), backend: (any CacheBackend)? = nil) -> HTTPResponseCache {
        HTTPResponseCache(cache: CacheFront(backend: backend ?? makeBackend(), prefix: "vapor"), policy: policy, metricsFactory: metrics, clock: clock.clock)
    }

    /// An app with the middleware on a group holding a counting JSON endpoint at `/items`
    /// (echoing the query), plus whatever `configure` adds to the group.
    func withCachedApp(
        _ cache: HTTPResponseCache,
        key: HTTPCacheMiddleware.KeyBuilder? = nil,
        configure: (any RoutesBuilder) -> Void = { _ in },
        _ test: (Application) async throws -> Void
    ) async throws {
        try await withApp { (app: Application) async throws in
            let cached = app.grouped(HTTPCacheMiddleware(cache: cache, key: key))
            let calls = self.calls
            cached.get("items") { request -> Response in
                let n = calls.increment()
                var headers = HTTPHeaders()
                headers.contentType = .json
                return Response(status: .ok, headers: headers, body: .init(string: #"{"n":\#(n),"query":"\#(request.url.query ?? "")"}"#))
            }
            configure(cached)
            try await test(app)
        }
    }

    func send(_ app: Application, _ path: String, _ headers: HTTPHeaders = [:], method: HTTPMethod = .GET) async throws -> TestingHTTPResponse {
        var captured: TestingHTTPResponse?
        try await app.testing().test(method, path, headers: headers) { captured = $0 }
        return try #require(captured)
    }

    // MARK: MISS, HIT, ETag, 304

    @Test func missThenHitWithSameETag() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let first = try await send(app, "/items")
            let second = try await send(app, "/items")
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.headers.first(name: "X-Cache") == "MISS")
            #expect(second.headers.first(name: "X-Cache") == "HIT")
            #expect(first.headers.first(name: .eTag) != nil)
            #expect(second.headers.first(name: .eTag) == first.headers.first(name: .eTag))
            #expect(second.body.string == #"{"n":1,"query":""}"#)
            #expect(second.headers.first(name: .contentType) == "application/json; charset=utf-8")
            #expect(first.headers.first(name: .cacheControl) == "max-age=60")
            #expect(second.headers.first(name: .eTag) == EntityTag.strong(forBody: second.body.readableBytesView).headerValue)
        }
        #expect(calls.count == 1)
    }

    @Test func notModifiedOnHit() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let tag = try #require(try await send(app, "/items").headers.first(name: .eTag))
            let second = try await send(app, "/items", ["If-None-Match": tag])
            #expect(second.status == .notModified)
            #expect(second.body.readableBytes == 0)
            #expect(second.headers.first(name: .eTag) == tag)
            #expect(second.headers.first(name: "X-Cache") == "HIT")
        }
        #expect(calls.count == 1)
    }

    @Test func notModifiedOnMiss() async throws {
        let tag = EntityTag.strong(forBody: Array(#"{"n":1,"query":""}"#.utf8)).headerValue
        try await withCachedApp(cache()) { (app: Application) async throws in
            let response = try await send(app, "/items", ["If-None-Match": tag])
            #expect(response.status == .notModified)
            #expect(response.body.readableBytes == 0)
            #expect(response.headers.first(name: "X-Cache") == "MISS")
            let next = try await send(app, "/items")
            #expect(next.headers.first(name: "X-Cache") == "HIT")
            #expect(next.headers.first(name: .eTag) == tag)
        }
        #expect(calls.count == 1)
    }

    @Test func ifNoneMatchListStarAndWeak() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let tag = try #require(try await send(app, "/items").headers.first(name: .eTag))
            #expect(try await send(app, "/items", ["If-None-Match": #""other", \#(tag)"#]).status == .notModified)
            #expect(try await send(app, "/items", ["If-None-Match": "*"]).status == .notModified)
            #expect(try await send(app, "/items", ["If-None-Match": "W/" + tag]).status == .notModified)
            let mismatch = try await send(app, "/items", ["If-None-Match": #"W/"nope""#])
            #expect(mismatch.status == .ok && mismatch.body.readableBytes > 0)
        }
        #expect(calls.count == 1)
    }

    // MARK: HEAD, keys, Vary

    @Test func headIsAnsweredFromCachedGet() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let get = try await send(app, "/items")
            let head = try await send(app, "/items", method: .HEAD)
            #expect(head.status == .ok)
            #expect(head.headers.first(name: "X-Cache") == "HIT")
            #expect(head.body.readableBytes == 0)
            #expect(head.headers.first(name: .eTag) == get.headers.first(name: .eTag))
            #expect(head.headers.first(name: .contentLength) == String(get.body.readableBytes))
        }
        #expect(calls.count == 1)
    }

    @Test func headMissIsNotStored() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let head = try await send(app, "/items", method: .HEAD)
            #expect(head.status == .ok)
            #expect(head.headers.first(name: "X-Cache") == "MISS")
            let get = try await send(app, "/items")
            #expect(get.headers.first(name: "X-Cache") == "MISS")
        }
        #expect(calls.count == 2)
    }

    @Test func queryOrderIsNormalised() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            #expect(try await send(app, "/items?b=2&a=1").headers.first(name: "X-Cache") == "MISS")
            #expect(try await send(app, "/items?a=1&b=2").headers.first(name: "X-Cache") == "HIT")
            #expect(try await send(app, "/items?a=1&b=3").headers.first(name: "X-Cache") == "MISS")
        }
        #expect(calls.count == 2)
    }

    @Test func varyHeaderSelectsVariants() async throws {
        try await withCachedApp(cache(), configure: { [calls] routes in
            routes.get("greeting") { request -> Response in
                _ = calls.increment()
                let french = request.headers.first(name: .acceptLanguage) == "fr"
                return Response(status: .ok, headers: ["Vary": "Accept-Language"], body: .init(string: french ? "bonjour" : "hello"))
            }
        }) { (app: Application) async throws in
            let en = try await send(app, "/greeting", ["Accept-Language": "en"])
            let fr = try await send(app, "/greeting", ["Accept-Language": "fr"])
            let enAgain = try await send(app, "/greeting", ["Accept-Language": "en"])
            let frAgain = try await send(app, "/greeting", ["Accept-Language": "fr"])
            #expect(en.headers.first(name: "X-Cache") == "MISS" && fr.headers.first(name: "X-Cache") == "MISS")
            #expect(enAgain.headers.first(name: "X-Cache") == "HIT" && frAgain.headers.first(name: "X-Cache") == "HIT")
            #expect(enAgain.body.string == "hello")
            #expect(frAgain.body.string == "bonjour")
        }
        #expect(calls.count == 2)
    }

    @Test func customKeyBuilderSeparatesTenants() async throws {
        try await withCachedApp(cache(), key: { request in
            guard let tenant = request.headers.first(name: "X-Tenant") else { return nil }
            return "tenant:\(tenant) " + HTTPCachePolicy.normalizedPath(request.url.string)
        }) { (app: Application) async throws in
            let a1 = try await send(app, "/items", ["X-Tenant": "a"])
            let b1 = try await send(app, "/items", ["X-Tenant": "b"])
            let a2 = try await send(app, "/items", ["X-Tenant": "a"])
            let none = try await send(app, "/items")
            #expect(a1.headers.first(name: "X-Cache") == "MISS" && b1.headers.first(name: "X-Cache") == "MISS")
            #expect(a2.headers.first(name: "X-Cache") == "HIT")
            #expect(a2.body.string == a1.body.string)
            #expect(b1.body.string != a1.body.string)
            #expect(none.headers.first(name: "X-Cache") == "BYPASS")
        }
        #expect(calls.count == 3)
    }

    // MARK: Request directives

    @Test func requestNoStoreBypassesCompletely() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let bypass = try await send(app, "/items", ["Cache-Control": "no-store"])
            #expect(bypass.headers.first(name: "X-Cache") == "BYPASS")
            #expect(bypass.headers.first(name: .eTag) == nil)
            #expect(try await send(app, "/items").headers.first(name: "X-Cache") == "MISS")
            let again = try await send(app, "/items", ["Cache-Control": "no-store"])
            #expect(again.headers.first(name: "X-Cache") == "BYPASS")
            #expect(again.body.string.contains(#""n":3"#))
        }
        #expect(calls.count == 3)
    }

    @Test func requestNoCacheAndMaxAgeZeroRevalidate() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            _ = try await send(app, "/items")
            let noCache = try await send(app, "/items", ["Cache-Control": "no-cache"])
            #expect(noCache.headers.first(name: "X-Cache") == "MISS")
            #expect(noCache.body.string.contains(#""n":2"#))
            let stored = try await send(app, "/items")
            #expect(stored.headers.first(name: "X-Cache") == "HIT" && stored.body.string.contains(#""n":2"#))
            let maxAgeZero = try await send(app, "/items", ["Cache-Control": "max-age=0"])
            #expect(maxAgeZero.body.string.contains(#""n":3"#))
            #expect(try await send(app, "/items").body.string.contains(#""n":3"#))
        }
        #expect(calls.count == 3)
    }

    // MARK: Response directives and security defaults

    func endpoint(_ path: String, headers: HTTPHeaders, status: HTTPResponseStatus = .ok) -> (any RoutesBuilder) -> Void {
        { [calls] routes in
            routes.get(PathComponent(stringLiteral: path)) { _ -> Response in
                Response(status: status, headers: headers, body: .init(string: "call \(calls.increment())"))
            }
        }
    }

    @Test(arguments: ["no-store", "private", "no-cache", "max-age=0"])
    func endpointCacheControlIsRespected(_ directive: String) async throws {
        try await withCachedApp(cache(), configure: endpoint("x", headers: ["Cache-Control": directive])) { (app: Application) async throws in
            let first = try await send(app, "/x")
            let second = try await send(app, "/x")
            #expect(first.headers.first(name: "X-Cache") == "MISS" && second.headers.first(name: "X-Cache") == "MISS")
            #expect(second.body.string == "call 2")
            #expect(second.headers.first(name: .cacheControl) == directive)
        }
    }

    @Test func setCookieIsNotStoredUnlessOptedIn() async throws {
        try await withCachedApp(cache(), configure: endpoint("x", headers: ["Set-Cookie": "session=abc"])) { (app: Application) async throws in
            _ = try await send(app, "/x")
            let second = try await send(app, "/x")
            #expect(second.headers.first(name: "X-Cache") == "MISS" && second.body.string == "call 2")
        }
        var policy = HTTPCachePolicy()
        policy.storesResponsesWithSetCookie = true
        try await withCachedApp(cache(policy), configure: endpoint("y", headers: ["Set-Cookie": "theme=dark"])) { (app: Application) async throws in
            _ = try await send(app, "/y")
            let second = try await send(app, "/y")
            #expect(second.headers.first(name: "X-Cache") == "HIT")
            #expect(second.headers.first(name: .setCookie) == "theme=dark")
        }
    }

    @Test func authorizationIsNotCachedUnlessOptedIn() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            _ = try await send(app, "/items")
            let authorized = try await send(app, "/items", ["Authorization": "Bearer t"])
            #expect(authorized.headers.first(name: "X-Cache") == "BYPASS")
            #expect(authorized.body.string.contains(#""n":2"#))
        }
        var policy = HTTPCachePolicy()
        policy.cachesRequestsWithAuthorization = true
        try await withCachedApp(cache(policy), key: { request in
            (request.headers.first(name: .authorization) ?? "anonymous") + " " + HTTPCachePolicy.normalizedPath(request.url.string)
        }) { (app: Application) async throws in
            _ = try await send(app, "/items", ["Authorization": "Bearer t"])
            #expect(try await send(app, "/items", ["Authorization": "Bearer t"]).headers.first(name: "X-Cache") == "HIT")
            #expect(try await send(app, "/items", ["Authorization": "Bearer u"]).headers.first(name: "X-Cache") == "MISS")
        }
    }

    @Test func cookieRequestsAreNotCachedUnlessOptedIn() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            #expect(try await send(app, "/items", ["Cookie": "a=1"]).headers.first(name: "X-Cache") == "BYPASS")
            #expect(try await send(app, "/items", ["Cookie": "a=1"]).headers.first(name: "X-Cache") == "BYPASS")
        }
        var policy = HTTPCachePolicy()
        policy.cachesRequestsWithCookies = true
        try await withCachedApp(cache(policy)) { (app: Application) async throws in
            _ = try await send(app, "/items", ["Cookie": "a=1"])
            #expect(try await send(app, "/items", ["Cookie": "a=1"]).headers.first(name: "X-Cache") == "HIT")
        }
    }

    @Test func nonSuccessIsNotStoredUnlessOptedIn() async throws {
        try await withCachedApp(cache(), configure: endpoint("gone", headers: [:], status: .notFound)) { (app: Application) async throws in
            _ = try await send(app, "/gone")
            let second = try await send(app, "/gone")
            #expect(second.status == .notFound && second.headers.first(name: "X-Cache") == "MISS")
            #expect(second.body.string == "call 2")
        }
        var policy = HTTPCachePolicy()
        policy.storesNonSuccessResponses = true
        try await withCachedApp(cache(policy), configure: endpoint("gone", headers: [:], status: .notFound)) { (app: Application) async throws in
            _ = try await send(app, "/gone")
            let second = try await send(app, "/gone")
            #expect(second.status == .notFound && second.headers.first(name: "X-Cache") == "HIT")
        }
    }

    // MARK: TTL, limits, failures

    @Test func maxAgeReflectsRemainingTTL() async throws {
        try await withCachedApp(cache(HTTPCachePolicy(ttl: .seconds(100)))) { (app: Application) async throws in
            #expect(try await send(app, "/items").headers.first(name: .cacheControl) == "max-age=100")
            clock.advance(by: .seconds(30))
            #expect(try await send(app, "/items").headers.first(name: .cacheControl) == "max-age=70")
            clock.advance(by: .seconds(71))
            let expired = try await send(app, "/items")
            #expect(expired.headers.first(name: "X-Cache") == "MISS")
            #expect(expired.headers.first(name: .cacheControl) == "max-age=100")
        }
    }

    @Test func configuredCacheControlDirectives() async throws {
        let policy = HTTPCachePolicy(ttl: .seconds(60), visibility: .public, sharedMaxAge: .seconds(300), staleWhileRevalidate: .seconds(15))
        try await withCachedApp(cache(policy)) { (app: Application) async throws in
            #expect(try await send(app, "/items").headers.first(name: .cacheControl) == "public, s-maxage=300, stale-while-revalidate=15, max-age=60")
        }
    }

    @Test func bodiesOverTheLimitAreNotStored() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 100
        let big = String(repeating: "x", count: 101)
        try await withCachedApp(cache(policy), configure: { [calls] routes in
            routes.get("big") { _ -> String in
                _ = calls.increment()
                return big
            }
        }) { (app: Application) async throws in
            _ = try await send(app, "/big")
            let second = try await send(app, "/big")
            #expect(second.body.string == big)
            #expect(second.headers.first(name: "X-Cache") == "MISS")
            #expect(second.headers.first(name: .eTag) == nil)
        }
        #expect(calls.count == 2)
    }

    @Test func streamedBodies() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withCachedApp(cache(policy), configure: { [calls] routes in
            // Declared length within the limit: collected and stored.
            routes.get("sized") { _ -> Response in
                let n = calls.increment()
                let text = String(repeating: "s", count: 498) + "|\(n)"
                return Response(body: .init(asyncStream: { writer in
                    try await writer.write(.buffer(ByteBuffer(string: text)))
                    try await writer.write(.end)
                }, count: text.utf8.count))
            }
            // Unknown length: passed through uncached, whole.
            routes.get("unsized") { _ -> Response in
                let n = calls.increment()
                return Response(body: .init(asyncStream: { writer in
                    for _ in 0..<20 { try await writer.write(.buffer(ByteBuffer(string: String(repeating: "u", count: 100)))) }
                    try await writer.write(.buffer(ByteBuffer(string: "|\(n)")))
                    try await writer.write(.end)
                }))
            }
        }) { (app: Application) async throws in
            let sized1 = try await send(app, "/sized")
            let sized2 = try await send(app, "/sized")
            #expect(sized1.headers.first(name: "X-Cache") == "MISS" && sized2.headers.first(name: "X-Cache") == "HIT")
            #expect(sized2.body.string == sized1.body.string && sized1.body.readableBytes == 500)
            let unsized1 = try await send(app, "/unsized")
            let unsized2 = try await send(app, "/unsized")
            #expect(unsized1.headers.first(name: "X-Cache") == "MISS" && unsized2.headers.first(name: "X-Cache") == "MISS")
            #expect(unsized1.body.string == String(repeating: "u", count: 2_000) + "|2")
        }
    }

    @Test func failingBackendStillServesAndCounts() async throws {
        try await withCachedApp(cache(backend: FailingBackend())) { (app: Application) async throws in
            let first = try await send(app, "/items")
            let second = try await send(app, "/items")
            #expect(first.status == .ok && second.status == .ok)
            #expect(second.body.string == #"{"n":2,"query":""}"#)
            #expect(second.headers.first(name: "X-Cache") == "MISS")
        }
        #expect(metrics.counterTotal(label: "http.cache.errors", dimensions: [("namespace", "http"), ("operation", "lookup")]) == 2)
    }

    // MARK: Scope

    @Test func perRouteGroupPolicies() async throws {
        let shortCache = cache(HTTPCachePolicy(ttl: .seconds(5), namespace: "short"))
        let longCache = cache(HTTPCachePolicy(ttl: .seconds(500), namespace: "long"))
        let calls = self.calls
        try await withApp { (app: Application) async throws in
            app.grouped(HTTPCacheMiddleware(cache: shortCache)).get("short") { _ in "short \(calls.increment())" }
            app.grouped(HTTPCacheMiddleware(cache: longCache)).get("long") { _ in "long \(calls.increment())" }
            app.get("plain") { _ in "plain \(calls.increment())" }
            #expect(try await send(app, "/short").headers.first(name: .cacheControl) == "max-age=5")
            #expect(try await send(app, "/long").headers.first(name: .cacheControl) == "max-age=500")
            #expect(try await send(app, "/plain").headers.first(name: "X-Cache") == nil)
            clock.advance(by: .seconds(10))
            #expect(try await send(app, "/short").headers.first(name: "X-Cache") == "MISS")
            #expect(try await send(app, "/long").headers.first(name: "X-Cache") == "HIT")
        }
    }

    @Test func otherMethodsAreLeftAlone() async throws {
        try await withCachedApp(cache(), configure: { [calls] routes in
            routes.post("items") { _ in "posted \(calls.increment())" }
        }) { (app: Application) async throws in
            let first = try await send(app, "/items", method: .POST)
            let second = try await send(app, "/items", method: .POST)
            #expect(first.headers.first(name: "X-Cache") == nil && second.body.string == "posted 2")
        }
    }

    /// A hit from the in-memory backend is answered on the request's event loop before the
    /// middleware returns: no task hop to the cooperative pool and back.
    @Test func hitCompletesOnTheEventLoopWithoutAHop() async throws {
        guard #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) else { return }
        let middleware = HTTPCacheMiddleware(cache: cache())
        try await withApp { (app: Application) async throws in
            let eventLoop = app.eventLoopGroup.any()
            let responder: any Responder = StreamingResponder(body: .init(string: "payload"))
            let miss = try await middleware.respond(to: Request(application: app, method: .GET, url: URI(path: "/inline"), on: eventLoop), chainingTo: responder).get()
            #expect(miss.headers.first(name: "X-Cache") == "MISS")
            let (completedInline, status) = try await eventLoop.flatSubmit {
                let future = middleware.respond(to: Request(application: app, method: .GET, url: URI(path: "/inline"), on: eventLoop), chainingTo: responder)
                let completions = ByteCounter()
                future.whenComplete { _ in completions.add(1) }  // runs at once when already complete
                let completedInline = completions.total == 1
                return future.map { (completedInline, $0.headers.first(name: "X-Cache")) }
            }.get()
            #expect(status == "HIT")
            #expect(completedInline, "the hit was answered before respond(to:chainingTo:) returned")
        }
    }

    /// Over a real socket: HEAD and 304 carry no body and a correct `Content-Length`.
    @Test func onTheWire() async throws {
        try await withCachedApp(cache()) { (app: Application) async throws in
            let tester = try app.testing(method: .running(hostname: "127.0.0.1", port: 0))
            var tag: String?
            var length: String?
            try await tester.test(.GET, "/items") { response in
                tag = response.headers.first(name: .eTag)
                length = response.headers.first(name: .contentLength)
                #expect(response.headers.first(name: "X-Cache") == "MISS")
            }
            try await tester.test(.HEAD, "/items") { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 0)
                #expect(response.headers.first(name: "X-Cache") == "HIT")
                #expect(response.headers.first(name: .contentLength) == length)
            }
            try await tester.test(.GET, "/items", headers: ["If-None-Match": tag ?? ""]) { response in
                #expect(response.status == .notModified)
                #expect(response.body.readableBytes == 0)
            }
            try await tester.test(.GET, "/items") { response in
                #expect(response.status == .ok)
                #expect(response.body.string == #"{"n":1,"query":""}"#)
            }
        }
    }
}
#endif
