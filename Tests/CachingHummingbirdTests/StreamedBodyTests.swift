#if Hummingbird
import Caching
import CachingHTTP
import CachingHummingbird
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// A request context made from a logger alone, for calling the middleware directly.
struct DirectContext: RequestContext {
    struct Source: RequestContextSource {
        var logger: Logger
    }

    var coreContext: CoreRequestContextStorage

    init(source: Source) {
        self.coreContext = .init(source: source)
    }
}

/// Counts bytes a producer has handed over.
final class ByteCounter: Sendable {
    let count = Mutex(0)
    func add(_ bytes: Int) { count.withLock { $0 += bytes } }
    var total: Int { count.withLock { $0 } }
}

/// Collects a response body written to it.
struct CollectingWriter: ResponseBodyWriter {
    let sink: ByteSink

    final class ByteSink: Sendable {
        let bytes = Mutex<[UInt8]>([])
        var value: [UInt8] { bytes.withLock { $0 } }
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        sink.bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// A streamed body whose producer fails part way, and one whose client reads nothing for a
/// while: what the cache must do with each.
extension HummingbirdHTTPCacheTests {
    /// The middleware returns an overflowing response once the limit is passed; until the
    /// client reads the rest, the producer gets no further than a chunk or two ahead.
    @Test(.timeLimit(.minutes(1))) func overflowingStreamIsNotBufferedBeyondTheLimit() async throws {
        var policy = HTTPCachePolicy()
        policy.maxBodySize = 1_000
        let middleware = HTTPCacheMiddleware<DirectContext>(cache: cache(policy))
        let produced = ByteCounter()
        let chunks = (0..<100).map { ByteBuffer(string: String(repeating: Character(String($0 % 10)), count: 100)) }
        let request = Request(head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: "/stream"), body: .init(buffer: ByteBuffer()))
        let context = DirectContext(source: .init(logger: Logger(label: "test")))
        let response = try await middleware.handle(request, context: context) { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                for chunk in chunks {
                    try await writer.write(chunk)
                    produced.add(chunk.readableBytes)
                }
                try await writer.finish(nil)
            })
        }
        #expect(response.headers[xCache] == "MISS")
        for _ in 0..<20 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(100))
        let ahead = produced.total
        #expect(ahead <= 1_000 + 3 * 100, "the producer ran \(ahead) bytes ahead of a client that reads nothing")
        let sink = CollectingWriter.ByteSink()
        try await response.body.write(CollectingWriter(sink: sink))
        #expect(sink.value == chunks.flatMap { Array($0.readableBytesView) })
        #expect(produced.total == 100 * 100)
    }

    /// A producer that fails before the limit fails the request rather than caching a
    /// truncated body.
    @Test func streamFailingBeforeTheLimitIsNotStored() async throws {
        struct Broken: Error {}
        try await withApp(cache(), configure: { [calls] router in
            router.get("/broken") { _, _ -> Response in
                _ = calls.increment()
                return Response(status: .ok, body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "partial"))
                    throw Broken()
                })
            }
        }) { client in
            let first = try await client.execute(uri: "/broken", method: .get)
            let second = try await client.execute(uri: "/broken", method: .get)
            #expect(first.status == .internalServerError && second.status == .internalServerError)
            #expect(first.headers[xCache] != "HIT" && second.headers[xCache] != "HIT")
        }
        #expect(calls.count == 2)
    }
}
#endif
