#if Hummingbird
public import Caching
public import CachingHTTP
public import Hummingbird
import Logging
import NIOCore

/// Hummingbird 2 middleware that caches responses with an ``HTTPResponseCache`` (RFC 9111).
///
/// Add it to a router for every route, or to a route group for some; each instance carries
/// its own ``HTTPCachePolicy`` (methods, TTL, namespace, key, `Cache-Control`, limits).
///
/// ```swift
/// let front = CacheFront(backend: InMemoryBackend(), prefix: "api")
/// let router = Router()
/// router.group("products")
///     .add(middleware: HTTPCacheMiddleware(cache: front, policy: HTTPCachePolicy(ttl: .seconds(60), namespace: "products")))
///     .get(":id") { request, context in try await catalog.product(context.parameters.require("id")) }
/// ```
///
/// Per-user pages: build the key from the authenticated identity in the request context, and
/// opt in to caching requests with credentials.
/// ```swift
/// var policy = HTTPCachePolicy(ttl: .seconds(30), namespace: "me", visibility: .private)
/// policy.cachesRequestsWithAuthorization = true
/// let perUser = HTTPCacheMiddleware<AppContext>(cache: front, policy: policy) { request, context in
///     guard let user = context.identity else { return nil }        // anonymous: not cached
///     return "user:\(user.id) " + HTTPCachePolicy.defaultKey(for: request.head)
/// }
/// ```
///
/// Bodies: a body with a known length within ``HTTPCachePolicy/maxBodySize`` is collected and
/// stored; a known length above it is streamed through untouched. A streamed body of unknown
/// length is collected up to the limit; past it, what was collected and the rest of the stream
/// are passed through uncached, without buffering more.
public struct HTTPCacheMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Builds the resource key from the request and its context; `nil` leaves the request
    /// uncached.
    public typealias KeyBuilder = @Sendable (Request, Context) -> String?

    /// The engine.
    public let cache: HTTPResponseCache
    let key: KeyBuilder?

    /// Makes the middleware from an engine.
    /// - Parameters:
    ///   - cache: The HTTP response cache (front, policy, logger, metrics).
    ///   - key: A resource key builder that can read the request context; `nil` uses the
    ///     policy's ``HTTPCachePolicy/keyBuilder``.
    public init(cache: HTTPResponseCache, key: KeyBuilder? = nil) {
        self.cache = cache
        self.key = key
    }

    /// Makes the middleware storing through `front`.
    /// - Parameters:
    ///   - front: Where responses are stored (in `policy.namespace`).
    ///   - policy: What to cache and how.
    ///   - key: A resource key builder that can read the request context; `nil` uses the
    ///     policy's ``HTTPCachePolicy/keyBuilder``.
    public init(cache front: CacheFront, policy: HTTPCachePolicy = HTTPCachePolicy(), key: KeyBuilder? = nil) {
        self.init(cache: HTTPResponseCache(cache: front, policy: policy), key: key)
    }

    /// Answers from the cache, or calls `next` and stores its response.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard cache.policy.methods.contains(request.method) else {
            return try await next(request, context)
        }
        let lookup: HTTPCacheLookup
        if let key {
            lookup = await cache.lookup(request.head, resourceKey: key(request, context), logger: context.logger)
        } else {
            lookup = await cache.lookup(request.head, logger: context.logger)
        }
        switch lookup {
        case .respond(let reply):
            return Response(reply)
        case .forward(let cacheContext):
            var response = try await next(request, context)
            guard cache.shouldCollectBody(cacheContext, response: response.head) else {
                response.head = cache.passThrough(cacheContext, response: response.head, logger: context.logger)
                return response
            }
            return try await collectAndStore(response, cacheContext: cacheContext, request: request, logger: context.logger)
        }
    }

    private func collectAndStore(
        _ response: Response,
        cacheContext: HTTPCacheContext,
        request: Request,
        logger: Logger
    ) async throws -> Response {
        let limit = cacheContext.maxBodySize
        if let length = response.body.contentLength {
            guard length <= limit else {
                var passed = response
                passed.head = cache.passThrough(cacheContext, response: response.head, logger: logger)
                return passed
            }
            // A declared length within the limit: collect inline, no task needed.
            let collected = BodyCollection(limit: max(limit, length))
            try await response.body.write(InlineCollectingWriter(collection: collected))
            guard !collected.overflowed else {
                throw HTTPError(.internalServerError, message: "The response body is longer than its declared Content-Length.")
            }
            return await finish(response, chunks: collected.chunks, trailers: collected.trailers, cacheContext: cacheContext, logger: logger)
        }

        // Unknown length (a stream): collect up to the limit in a task of its own.
        let body = response.body
        let collector = StreamingBodyCollector<ByteBuffer>(limit: limit, size: { $0.readableBytes }) { sink in
            try await body.write(SinkWriter(sink: sink))
        }
        switch await collector.outcome() {
        case .complete(let chunks, let trailers):
            return await finish(response, chunks: chunks, trailers: trailers, cacheContext: cacheContext, logger: logger)
        case .overflow(let prefix, let remainder):
            let head = cache.passThrough(cacheContext, response: response.head, logger: logger)
            return Response(
                status: head.status,
                headers: head.headerFields,
                body: ResponseBody { writer in
                    try await writer.write(contentsOf: prefix)
                    while let chunk = try await remainder.next() {
                        try await writer.write(chunk)
                    }
                    try await writer.finish(remainder.trailers)
                }
            )
        case .failed(let error):
            throw error
        }
    }

    /// Stores a complete body (unless it ended with trailers, which the cache does not keep)
    /// and builds the response to send.
    private func finish(
        _ response: Response,
        chunks: [ByteBuffer],
        trailers: HTTPFields?,
        cacheContext: HTTPCacheContext,
        logger: Logger
    ) async -> Response {
        if let trailers, !trailers.isEmpty {
            let head = cache.passThrough(cacheContext, response: response.head, logger: logger)
            return Response(
                status: head.status,
                headers: head.headerFields,
                body: ResponseBody { writer in
                    try await writer.write(contentsOf: chunks)
                    try await writer.finish(trailers)
                }
            )
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chunks.reduce(0) { $0 + $1.readableBytes })
        for chunk in chunks { bytes.append(contentsOf: chunk.readableBytesView) }
        let reply = await cache.store(cacheContext, response: response.head, body: bytes, logger: logger)
        return Response(reply)
    }
}

extension Response {
    /// A Hummingbird response from a cache reply. `Content-Length` comes from the reply, so a
    /// HEAD or `304` reply keeps the length of the full representation.
    init(_ reply: HTTPCacheReply) {
        let body = reply.body.isEmpty ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: reply.body))
        self.init(status: reply.response.status, headers: reply.response.headerFields, body: body)
    }
}

/// Accumulates a body written inline; a reference so it survives the writer being consumed.
final class BodyCollection {
    let limit: Int
    var chunks: [ByteBuffer] = []
    var size = 0
    var trailers: HTTPFields?
    var overflowed = false

    init(limit: Int) {
        self.limit = limit
    }
}

/// Collects into a ``BodyCollection``, refusing to grow past its limit.
struct InlineCollectingWriter: ResponseBodyWriter {
    let collection: BodyCollection

    mutating func write(_ buffer: ByteBuffer) async throws {
        guard collection.size + buffer.readableBytes <= collection.limit else {
            collection.overflowed = true
            return
        }
        collection.size += buffer.readableBytes
        collection.chunks.append(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        collection.trailers = trailingHeaders
    }
}

/// Forwards a Hummingbird body into a ``StreamingBodyCollector``.
struct SinkWriter: ResponseBodyWriter {
    let sink: StreamingBodyCollector<ByteBuffer>.Sink

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await sink.write(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        sink.finish(trailers: trailingHeaders)
    }
}
#endif
