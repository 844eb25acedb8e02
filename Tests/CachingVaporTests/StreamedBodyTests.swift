#if Vapor
import Caching
import CachingHTTP
import CachingVapor
import NIOCore
import Synchronization
import Testing
import Vapor
import VaporTesting

/// How an endpoint streams its body: Vapor's two stream APIs.
enum StreamKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// `Response.Body(asyncStream:)`.
    case async
    /// `Response.Body(stream:)`, each write waiting for the previous one's future.
    case eventLoop
    /// `Response.Body(stream:)`, every chunk written at once without waiting (promise `nil`).
    case eventLoopUnpaced

    var testDescription: String { rawValue }

    /// A body of unknown length streaming `chunks`; `produced` counts the bytes handed to the
    /// writer (for the async stream, once each write returns).
    func body(_ chunks: [ByteBuffer], produced: ByteCounter? = nil) -> Response.Body {
        switch self {
        case .async:
            return Response.Body(asyncStream: { writer in
                for chunk in chunks {
                    try await writer.write(.buffer(chunk))
                    produced?.add(chunk.readableBytes)
                }
                try await writer.write(.end)
            })
        case .eventLoop:
            return Response.Body(stream: { writer in
                StreamKind.pump(chunks[...], into: writer, produced: produced)
            })
        case .eventLoopUnpaced:
            return Response.Body(stream: { writer in
                for chunk in chunks {
                    writer.write(.buffer(chunk), promise: nil)
                    produced?.add(chunk.readableBytes)
                }
                writer.write(.end, promise: nil)
            })
        }
    }

    /// Writes one chunk, and the next when its future succeeds (how `FileIO` streams).
    static func pump(_ chunks: ArraySlice<ByteBuffer>, into writer: any BodyStreamWriter, produced: ByteCounter?) {
        guard let chunk = chunks.first else {
            writer.write(.end, promise: nil)
            return
        }
        writer.write(.buffer(chunk)).whenSuccess {
            produced?.add(chunk.readableBytes)
            pump(chunks.dropFirst(), into: writer, produced: produced)
        }
    }
}

/// `count` chunks of `size` bytes (`"0000…"`, `"1111…"`, …) and a last one `"|n"`.
func numberedChunks(count: Int, size: Int, call n: Int) -> [ByteBuffer] {
    (0..<count).map { ByteBuffer(string: String(repeating: Character(String($0 % 10)), count: size)) } + [ByteBuffer(string: "|\(n)")]
}

func joined(_ chunks: [ByteBuffer]) -> String {
    chunks.map { String(buffer: $0) }.joined()
}

/// Streamed bodies of unknown length: collected up to the limit and stored within it; past it,
/// passed through whole and uncached without buffering more than the limit.
extension VaporHTTPCacheTests {
    func streamingRoute(_ kind: StreamKind, chunks: Int, size: Int) -> (any RoutesBuilder) -> Void {
        { [calls] routes in
            routes.get("stream") { _ -> Response in
                let n = calls.increment()
                var headers = HTTPHeaders()
                headers.contentType = .plainText
                return Response(status: .ok, headers: headers, body: kind.body(numberedChunks(count: chunks, size: size, call: n)))
            }
        }
    }

    @Test(arguments: StreamKind.allCases)
    func streamedBodyOfUnknownLengthWithinLimitIsStored(_ kind: StreamKind) async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withCachedApp(cache(policy), configure: streamingRoute(kind, chunks: 10, size: 50)) { (app: Application) async throws in
            let first = try await send(app, "/stream")
            let second = try await send(app, "/stream")
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.headers.first(name: "X-Cache") == "MISS")
            #expect(second.headers.first(name: "X-Cache") == "HIT")
            #expect(first.body.string == joined(numberedChunks(count: 10, size: 50, call: 1)))
            #expect(second.body.string == first.body.string)
            #expect(first.headers.first(name: .contentLength) == "502", "the stored body is sent with its length")
            #expect(first.headers.first(name: .eTag) != nil && second.headers.first(name: .eTag) == first.headers.first(name: .eTag))
        }
        #expect(calls.count == 1)
    }

    @Test(arguments: StreamKind.allCases)
    func streamedBodyOfUnknownLengthOverLimitPassesThroughWhole(_ kind: StreamKind) async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withCachedApp(cache(policy), configure: streamingRoute(kind, chunks: 100, size: 100)) { (app: Application) async throws in
            let first = try await send(app, "/stream")
            #expect(first.status == .ok)
            #expect(first.headers.first(name: "X-Cache") == "MISS")
            #expect(first.headers.first(name: .eTag) == nil)
            #expect(first.body.string == joined(numberedChunks(count: 100, size: 100, call: 1)), "every byte, in order")
            let second = try await send(app, "/stream")
            #expect(second.headers.first(name: "X-Cache") == "MISS")
            #expect(second.body.string == joined(numberedChunks(count: 100, size: 100, call: 2)))
        }
        #expect(calls.count == 2)
    }

    /// Over a real socket: a stored stream goes out with `Content-Length`, an overflowing one
    /// chunked and whole.
    @Test func streamedBodiesOnTheWire() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        try await withCachedApp(cache(policy), configure: { routes in
            self.streamingRoute(.async, chunks: 10, size: 50)(routes.grouped("small"))
            self.streamingRoute(.eventLoop, chunks: 100, size: 100)(routes.grouped("large"))
        }) { (app: Application) async throws in
            let tester = try app.testing(method: .running(hostname: "127.0.0.1", port: 0))
            for expected in ["MISS", "HIT"] {
                try await tester.test(.GET, "/small/stream") { response in
                    #expect(response.headers.first(name: "X-Cache") == expected)
                    #expect(response.headers.first(name: .contentLength) == "502")
                    #expect(response.body.string == joined(numberedChunks(count: 10, size: 50, call: 1)))
                }
            }
            try await tester.test(.GET, "/large/stream") { response in
                #expect(response.headers.first(name: "X-Cache") == "MISS")
                #expect(response.headers.first(name: .transferEncoding) == "chunked")
                #expect(response.body.string == joined(numberedChunks(count: 100, size: 100, call: 2)))
            }
        }
    }

    /// The middleware returns an overflowing response once the limit is passed; until the
    /// client reads the rest, a paced producer gets no further than a chunk or two ahead.
    @Test(.timeLimit(.minutes(1)), arguments: [StreamKind.async, StreamKind.eventLoop])
    func overflowingStreamIsNotBufferedBeyondTheLimit(_ kind: StreamKind) async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        let middleware = HTTPCacheMiddleware(cache: cache(policy))
        let produced = ByteCounter()
        let chunks = numberedChunks(count: 100, size: 100, call: 1)
        try await withApp { (app: Application) async throws in
            let request = Request(application: app, method: .GET, url: URI(path: "/stream"), on: app.eventLoopGroup.any())
            let response = try await middleware.respond(to: request, chainingTo: StreamingResponder(body: kind.body(chunks, produced: produced)))
            #expect(response.headers.first(name: "X-Cache") == "MISS")
            // Give an unpaced producer every chance to run ahead before checking.
            for _ in 0..<20 { await Task.yield() }
            try await Task.sleep(for: .milliseconds(100))
            let ahead = produced.total
            #expect(ahead <= 1_000 + 3 * 100, "the producer ran \(ahead) bytes ahead of a client that reads nothing")
            let body = try await response.body.collect(on: request.eventLoop).get()
            #expect(body.map { String(buffer: $0) } == joined(chunks))
        }
    }

    /// A producer that fails before the limit fails the request rather than caching a
    /// truncated body.
    @Test func streamFailingBeforeTheLimitIsNotStored() async throws {
        struct Broken: Error {}
        try await withCachedApp(cache(), configure: { [calls] routes in
            routes.get("broken") { _ -> Response in
                _ = calls.increment()
                return Response(body: .init(asyncStream: { writer in
                    try await writer.write(.buffer(ByteBuffer(string: "partial")))
                    try await writer.write(.error(Broken()))
                }))
            }
        }) { (app: Application) async throws in
            let first = try await send(app, "/broken")
            let second = try await send(app, "/broken")
            #expect(first.status == .internalServerError && second.status == .internalServerError)
            #expect(first.headers.first(name: "X-Cache") != "HIT" && second.headers.first(name: "X-Cache") != "HIT")
        }
        #expect(calls.count == 2)
    }
}

/// Counts bytes a producer has handed over.
final class ByteCounter: Sendable {
    let count = Mutex(0)
    func add(_ bytes: Int) { count.withLock { $0 += bytes } }
    var total: Int { count.withLock { $0 } }
}

/// Answers every request with a fresh response around `body`.
struct StreamingResponder: AsyncResponder {
    let body: Response.Body

    func respond(to request: Request) async throws -> Response {
        Response(status: .ok, body: body)
    }
}
#endif
