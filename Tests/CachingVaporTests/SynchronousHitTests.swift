#if Vapor
import Caching
import CachingHTTP
import CachingTesting
import CachingVapor
import MetricsTestKit
import NIOCore
import Synchronization
import Testing
import Vapor
import VaporTesting

/// Whether each reading of the cache's clock happened inside a task: the hit path reads the
/// clock once, so it tells a hit answered without a task from one answered in a task.
final class TaskProbe: Sendable {
    let manual = ManualHTTPCacheClock()
    private let readings = Mutex<[Bool]>([])

    var clock: HTTPCacheClock {
        HTTPCacheClock {
            let inTask = withUnsafeCurrentTask { $0 != nil }
            self.readings.withLock { $0.append(inTask) }
            return self.manual.milliseconds
        }
    }

    /// The readings since the last call.
    func take() -> [Bool] {
        readings.withLock { readings in
            let taken = readings
            readings = []
            return taken
        }
    }
}

@Suite struct VaporSynchronousHitTests {
    let metrics = TestMetrics()
    let probe = TaskProbe()

    func middleware(_ backend: any CacheBackend, policy: HTTPCachePolicy = HTTPCachePolicy()) -> HTTPCacheMiddleware {
        HTTPCacheMiddleware(cache: HTTPResponseCache(
            cache: CacheFront(backend: backend, prefix: "vapor"), policy: policy, metricsFactory: metrics, clock: probe.clock
        ))
    }

    /// Sends a GET for `path` through `middleware` on `eventLoop`'s thread (where Vapor calls
    /// it) and returns the response, whether the future was already complete when
    /// `respond(to:chainingTo:)` returned, and the clock readings made meanwhile.
    func send(
        _ path: String,
        _ headers: HTTPHeaders = [:],
        through middleware: HTTPCacheMiddleware,
        to responder: any Responder,
        app: Application,
        on eventLoop: any EventLoop
    ) async throws -> (response: Response, completedInline: Bool, clockInTask: [Bool]) {
        _ = probe.take()
        let (response, completedInline) = try await eventLoop.flatSubmit {
            let request = Request(application: app, method: .GET, url: URI(path: path), headers: headers, on: eventLoop)
            let future = middleware.respond(to: request, chainingTo: responder)
            let completions = ByteCounter()
            future.whenComplete { _ in completions.add(1) }   // runs at once when already complete
            let completedInline = completions.total == 1
            return future.map { ($0, completedInline) }
        }.get()
        return (response, completedInline, probe.take())
    }

    @Test func freshHitIsAnsweredWithoutATask() async throws {
        let backend = ReadCountingBackend()
        let middleware = middleware(backend)
        let endpoint = CountingResponder()
        try await withApp { (app: Application) async throws in
            let eventLoop = app.eventLoopGroup.any()
            let miss = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(miss.response.headers.first(name: "X-Cache") == "MISS")
            #expect(miss.clockInTask.contains(true), "the miss is stored from a task")
            #expect(backend.asyncReads.count == 0, "the miss was read synchronously, and not again")

            let hit = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(hit.response.headers.first(name: "X-Cache") == "HIT")
            #expect(hit.response.body.string == "response 1")
            #expect(hit.completedInline, "answered before respond(to:chainingTo:) returned")
            #expect(hit.clockInTask == [false], "answered without a task")
            #expect(backend.synchronousReads.count == 2 && backend.asyncReads.count == 0)

            let tag = try #require(hit.response.headers.first(name: .eTag))
            let notModified = try await send("/items", ["If-None-Match": tag], through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(notModified.response.status == .notModified && notModified.completedInline)
            #expect(notModified.clockInTask == [false])
        }
        #expect(endpoint.calls.count == 1)
        #expect(metrics.counterTotal(label: "http.cache.requests", dimensions: [("namespace", "http"), ("result", "hit")]) == 1)
        #expect(metrics.counterTotal(label: "http.cache.requests", dimensions: [("namespace", "http"), ("result", "not_modified")]) == 1)
        #expect(metrics.counterTotal(label: "http.cache.requests", dimensions: [("namespace", "http"), ("result", "miss")]) == 1)
    }

    @Test func staleResponseIsServedFromTheAsyncPath() async throws {
        let backend = ReadCountingBackend()
        let middleware = middleware(backend, policy: HTTPCachePolicy(ttl: .seconds(10), staleWhileRevalidate: .seconds(30)))
        let endpoint = CountingResponder()
        try await withApp { (app: Application) async throws in
            let eventLoop = app.eventLoopGroup.any()
            _ = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            probe.manual.advance(by: .seconds(15))
            let revalidated = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(revalidated.response.headers.first(name: "X-Cache") == "MISS")
            #expect(revalidated.response.body.string == "response 2")
            #expect(revalidated.clockInTask.contains(true))
            let hit = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(hit.response.body.string == "response 2" && hit.clockInTask == [false])
        }
        #expect(backend.asyncReads.count == 0, "every lookup continued from its synchronous read")
    }

    @Test func backendThatCannotReadSynchronouslyStillServesHits() async throws {
        let backend = AsyncOnlyBackend()
        let middleware = middleware(backend)
        let endpoint = CountingResponder()
        try await withApp { (app: Application) async throws in
            let eventLoop = app.eventLoopGroup.any()
            let miss = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(miss.response.headers.first(name: "X-Cache") == "MISS")
            let hit = try await send("/items", through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(hit.response.headers.first(name: "X-Cache") == "HIT")
            #expect(hit.response.body.string == "response 1")
            #expect(hit.clockInTask == [true], "answered from the task, after an asynchronous read")
            let tag = try #require(hit.response.headers.first(name: .eTag))
            let notModified = try await send("/items", ["If-None-Match": tag], through: middleware, to: endpoint, app: app, on: eventLoop)
            #expect(notModified.response.status == .notModified)
        }
        #expect(endpoint.calls.count == 1)
        #expect(backend.inner.asyncReads.count == 3 && backend.inner.synchronousReads.count == 0)
    }

    @Test func asyncResponderEntryPointUsesTheSameHitPath() async throws {
        let backend = ReadCountingBackend()
        let middleware = middleware(backend)
        let calls = CallCounter()
        let next = AsyncBasicResponder { _ in Response(status: .ok, body: .init(string: "response \(calls.increment())")) }
        try await withApp { (app: Application) async throws in
            let eventLoop = app.eventLoopGroup.any()
            let first = try await middleware.respond(to: Request(application: app, method: .GET, url: URI(path: "/a"), on: eventLoop), chainingTo: next)
            let second = try await middleware.respond(to: Request(application: app, method: .GET, url: URI(path: "/a"), on: eventLoop), chainingTo: next)
            #expect(first.headers.first(name: "X-Cache") == "MISS")
            #expect(second.headers.first(name: "X-Cache") == "HIT" && second.body.string == "response 1")
        }
        #expect(calls.count == 1)
        #expect(backend.asyncReads.count == 0 && backend.synchronousReads.count == 2)
    }
}

/// An endpoint answering `response N`, counting its calls.
private struct CountingResponder: Responder {
    let calls = CallCounter()
    func respond(to request: Request) -> EventLoopFuture<Response> {
        request.eventLoop.makeSucceededFuture(Response(status: .ok, body: .init(string: "response \(calls.increment())")))
    }
}
#endif
