// http-cache-hitpath: what one cache HIT costs inside the process, without HTTP or a network.
//
//   swift run -c release http-cache-hitpath [iterations]
//
// Prints nanoseconds per operation for the whole `HTTPResponseCache.lookup` of a hit, its
// synchronous twin `lookupSynchronously` (what the Vapor middleware runs), and for its parts
// (the `CacheFront` read, decoding the stored record, building the reply), so a regression
// in the hit path shows up as a number rather than as noise in a wrk run.
import Caching
import CachingHTTP
import HTTPTypes

let iterations = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 200_000

nonisolated func measure(_ name: String, _ body: () async throws -> Void) async rethrows {
    for _ in 0..<(iterations / 10) { try await body() }  // warm-up
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<iterations { try await body() }
    let elapsed = clock.now - start
    let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
    print(name.padding(toLength: 44, withPad: " ", startingAt: 0), String(format: "%8.0f ns/op", nanoseconds / Double(iterations)))
}

/// Runs off the main actor: top-level code is main-actor isolated, and calling nonisolated
/// async functions from it would measure two executor hops per call.
nonisolated func run() async throws {
    let front = CacheFront(backend: InMemoryBackend(), prefix: "bench")
    let cache = HTTPResponseCache(cache: front, policy: HTTPCachePolicy(ttl: .seconds(600), visibility: .public))
    let body = Array(#"{"message":"hello","items":[1,2,3]}"#.utf8)
    let request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1:8080", path: "/cached/hello", headerFields: [
        .userAgent: "wrk", .accept: "*/*",
    ])
    _ = try await cache.respond(to: request) {
        (HTTPResponse(status: .ok, headerFields: [.contentType: "application/json", .contentLength: String(body.count)]), body)
    }
    guard case .respond(let reply) = await cache.lookup(request), reply.cacheStatus == .hit else {
        print("the warm-up did not store the response"); return
    }
    let stored = try await cache.storage.get("GET /cached/hello", as: [UInt8].self) ?? []

    print("iterations: \(iterations)")
    await measure("HTTPResponseCache.lookup (hit)") {
        _ = await cache.lookup(request)
    }
    await measure("HTTPResponseCache.lookupSynchronously (hit)") {
        _ = cache.lookupSynchronously(request)
    }
    try await measure("CacheFront.get ([UInt8])") {
        _ = try await cache.storage.get("GET /cached/hello", as: [UInt8].self)
    }
    try await measure("CacheFront.getSynchronously ([UInt8])") {
        _ = try cache.storage.getSynchronously("GET /cached/hello", as: [UInt8].self)
    }
    try await measure("InMemoryBackend.get") {
        _ = try await front.backend.get("bench:http:GET /cached/hello")
    }
    try await measure("CachedHTTPResponse(serialized:)") {
        _ = try CachedHTTPResponse(serialized: stored)
    }
    let record = try CachedHTTPResponse(serialized: stored)
    await measure("CachedHTTPResponse.headerFields") {
        _ = record.headerFields
    }
    await measure("HTTPCachePolicy.defaultKey") {
        _ = HTTPCachePolicy.defaultKey(for: request)
    }
}

try await Task.detached { try await run() }.value
