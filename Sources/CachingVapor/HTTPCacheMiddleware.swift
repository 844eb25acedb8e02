#if Vapor
public import Caching
public import CachingHTTP
import HTTPTypes
import NIOCore
import NIOHTTP1
public import Vapor

/// Vapor 4 middleware that caches responses with an ``HTTPResponseCache`` (RFC 9111).
///
/// Register it globally, or on a route group so that each group has its own
/// ``HTTPCachePolicy`` (methods, TTL, namespace, key, `Cache-Control`, limits).
///
/// ```swift
/// let front = CacheFront(backend: InMemoryBackend(), prefix: "api")
/// let products = app.grouped(HTTPCacheMiddleware(cache: front, policy: HTTPCachePolicy(ttl: .seconds(60), namespace: "products")))
/// products.get("products", ":id") { req async throws -> Product in try await catalog.product(req.parameters.require("id")) }
/// ```
///
/// Per-user pages: build the key from the authenticated user, and opt in to caching requests
/// with credentials.
/// ```swift
/// var policy = HTTPCachePolicy(ttl: .seconds(30), namespace: "me", visibility: .private)
/// policy.cachesRequestsWithAuthorization = true
/// let perUser = HTTPCacheMiddleware(cache: front, policy: policy) { req in
///     guard let user = req.auth.get(User.self) else { return nil }     // anonymous: not cached
///     return "user:\(user.id) " + HTTPCachePolicy.normalizedPath(req.url.string)
/// }
/// app.grouped(UserAuthenticator(), perUser).get("me") { ... }
/// ```
///
/// Bodies: in-memory bodies within ``HTTPCachePolicy/maxBodySize`` are stored, larger ones are
/// passed through. A streamed body (`Response.Body(stream:)`, `asyncStream`, file streams) that
/// declares a length above the limit is passed through untouched; any other stream, of known or
/// unknown length, is collected up to the limit and stored when it ends within it. Past the
/// limit, what was collected and the rest of the stream are sent uncached (MISS), every byte in
/// order, and the producer is held back until the client takes its chunks, so no more than the
/// limit plus a chunk or two is ever buffered.
public struct HTTPCacheMiddleware: AsyncMiddleware {
    /// Builds the resource key from the Vapor request; `nil` leaves the request uncached.
    public typealias KeyBuilder = @Sendable (Request) -> String?

    /// The engine.
    public let cache: HTTPResponseCache
    let key: KeyBuilder?

    /// Makes the middleware from an engine.
    /// - Parameters:
    ///   - cache: The HTTP response cache (front, policy, logger, metrics).
    ///   - key: A resource key builder that can read the Vapor request (its `auth`, `storage`);
    ///     `nil` uses the policy's ``HTTPCachePolicy/keyBuilder``.
    public init(cache: HTTPResponseCache, key: KeyBuilder? = nil) {
        self.cache = cache
        self.key = key
    }

    /// Makes the middleware storing through `front`.
    /// - Parameters:
    ///   - front: Where responses are stored (in `policy.namespace`).
    ///   - policy: What to cache and how.
    ///   - key: A resource key builder that can read the Vapor request; `nil` uses the
    ///     policy's ``HTTPCachePolicy/keyBuilder``.
    public init(cache front: CacheFront, policy: HTTPCachePolicy = HTTPCachePolicy(), key: KeyBuilder? = nil) {
        self.init(cache: HTTPResponseCache(cache: front, policy: policy), key: key)
    }

    /// Answers from the cache, or calls `next` and stores its response: the path Vapor takes.
    ///
    /// Vapor runs an `AsyncMiddleware` in a new task on the cooperative thread pool and hops
    /// back to the event loop with its response: two thread switches per request, which cost a
    /// hit more than the cache lookup itself. This middleware avoids both, and the task too
    /// when it can:
    /// - A fresh hit from a backend that reads without suspending (`InMemoryBackend`) is
    ///   answered on the request's event loop with
    ///   ``HTTPResponseCache/lookupSynchronously(_:resourceKey:)``, returning an already
    ///   succeeded future: no task at all.
    /// - Everything else (misses, stale responses, coalescing, bypasses, network backends)
    ///   goes on in a task started on the event loop with `Task.immediate`, which runs until it
    ///   first suspends before this method returns, and finishes the lookup from what the
    ///   synchronous one read. An await that does suspend (a network backend, the endpoint on a
    ///   miss) resumes on the cooperative pool, as in an `AsyncMiddleware`. (Pinning the task to
    ///   the event loop with a task executor preference would save that hop too, but makes
    ///   every `await` of every request look the preference up under a lock.)
    public func respond(to request: Request, chainingTo next: any Responder) -> EventLoopFuture<Response> {
        guard let method = HTTPRequest.Method(request.method.rawValue), cache.policy.methods.contains(method) else {
            return next.respond(to: request)
        }
        let pending: HTTPCachePendingLookup
        switch lookupSynchronously(request, method: method) {
        case .respond(let reply):
            return request.eventLoop.makeSucceededFuture(Response(reply))
        case .pending(let lookup):
            pending = lookup
        }
        let promise = request.eventLoop.makePromise(of: Response.self)
        let operation: @Sendable () async -> Void = {
            do {
                let response = try await self.respond(to: request, continuing: pending) { request in
                    try await next.respond(to: request).get()
                }
                promise.succeed(response)
            } catch {
                promise.fail(error)
            }
        }
        if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
            Task.immediate(operation: operation)
        } else {
            Task(operation: operation)
        }
        return promise.futureResult
    }

    /// Answers from the cache, or calls `next` and stores its response (for callers holding an
    /// `AsyncResponder`; Vapor itself calls ``respond(to:chainingTo:)-(_,any Responder)``).
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let method = HTTPRequest.Method(request.method.rawValue), cache.policy.methods.contains(method) else {
            return try await next.respond(to: request)
        }
        switch lookupSynchronously(request, method: method) {
        case .respond(let reply):
            return Response(reply)
        case .pending(let pending):
            return try await respond(to: request, continuing: pending) { request in try await next.respond(to: request) }
        }
    }

    /// The synchronous part of the lookup: a reply for a fresh hit from a backend that reads
    /// without suspending, else what the asynchronous part needs (the request head and key).
    private func lookupSynchronously(_ request: Request, method: HTTPRequest.Method) -> HTTPCacheSynchronousLookup {
        let head = HTTPRequest(method: method, scheme: nil, authority: nil, path: RequestTarget.path(of: request.url), headerFields: HTTPFields(request.headers))
        if let key {
            return cache.lookupSynchronously(head, resourceKey: key(request))
        }
        return cache.lookupSynchronously(head)
    }

    nonisolated(nonsending) private func respond(
        to request: Request,
        continuing pending: HTTPCachePendingLookup,
        next: @Sendable (Request) async throws -> Response
    ) async throws -> Response {
        switch await cache.lookup(continuing: pending, logger: request.logger) {
        case .respond(let reply):
            return Response(reply)
        case .forward(let context):
            let response = try await next(request)
            let responseHead = HTTPResponse(response)
            guard cache.shouldCollectBody(context, response: responseHead) else {
                response.apply(cache.passThrough(context, response: responseHead, logger: request.logger), statusHeader: cache.policy.cacheStatusHeader)
                return response
            }
            return try await collectAndStore(response, head: responseHead, context: context, request: request)
        }
    }

    /// Collects the endpoint's body up to the policy's limit and stores it, or passes the
    /// response through uncached when the body is over the limit.
    private func collectAndStore(_ response: Response, head: HTTPResponse, context: HTTPCacheContext, request: Request) async throws -> Response {
        let limit = context.maxBodySize
        let body = response.body
        let declared = body.count
        let passThrough = { () -> Response in
            response.apply(cache.passThrough(context, response: head, logger: request.logger), statusHeader: cache.policy.cacheStatusHeader)
            return response
        }
        if let buffer = body.buffer {
            guard buffer.readableBytes <= limit else { return passThrough() }
            return Response(await cache.store(context, response: head, body: Array(buffer.readableBytesView), logger: request.logger))
        }
        if let stream = StreamedBody(body) {
            guard declared <= limit else { return passThrough() }
            switch await stream.collect(limit: limit, eventLoop: request.eventLoop).outcome() {
            case .complete(let chunks, _):
                var bytes: [UInt8] = []
                bytes.reserveCapacity(chunks.reduce(0) { $0 + $1.readableBytes })
                for chunk in chunks { bytes.append(contentsOf: chunk.readableBytesView) }
                return Response(await cache.store(context, response: head, body: bytes, logger: request.logger))
            case .overflow(let prefix, let remainder):
                // Over the limit: what was collected, then the rest as the producer writes it.
                response.body = Response.Body(asyncStream: { writer in
                    do {
                        for chunk in prefix { try await writer.writeBuffer(chunk) }
                        while let chunk = try await remainder.next() { try await writer.writeBuffer(chunk) }
                    } catch {
                        try await writer.write(.error(error))
                        return
                    }
                    try await writer.write(.end)
                }, count: declared)
                return passThrough()
            case .failed(let error):
                throw error
            }
        }
        // No body, or a body this adapter cannot read piecewise: collected only when its
        // declared length is within the limit.
        guard declared >= 0, declared <= limit else { return passThrough() }
        let buffer = try await body.collect(on: request.eventLoop).get() ?? ByteBuffer()
        guard buffer.readableBytes <= limit else { return passThrough() }
        return Response(await cache.store(context, response: head, body: Array(buffer.readableBytesView), logger: request.logger))
    }
}

extension HTTPFields {
    /// Converts Vapor's (NIO) headers; names that are not valid field names are skipped.
    init(_ headers: HTTPHeaders) {
        self.init()
        self.reserveCapacity(headers.count)
        for (name, value) in headers {
            guard let fieldName = HTTPField.Name(name) else { continue }
            self.append(HTTPField(name: fieldName, value: value))
        }
    }
}

extension HTTPHeaders {
    /// Converts swift-http-types fields to Vapor's (NIO) headers.
    init(_ fields: HTTPFields) {
        self.init()
        self.reserveCapacity(fields.count)
        for field in fields { self.add(name: field.name.rawName, value: field.value) }
    }
}

extension HTTPResponse {
    /// The head of a Vapor response.
    init(_ response: Response) {
        self.init(
            status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
            headerFields: HTTPFields(response.headers)
        )
    }
}

extension Response {
    /// A Vapor response from a cache reply. `304` and HEAD keep the `Content-Length` of the full
    /// representation: Vapor's usual initializer would reset it to the (empty) body's length.
    convenience init(_ reply: HTTPCacheReply) {
        let status = HTTPResponseStatus(statusCode: reply.response.status.code, reasonPhrase: reply.response.status.reasonPhrase)
        let fields = reply.response.headerFields
        let headers = HTTPHeaders(fields)
        if reply.body.isEmpty {
            self.init(status: status, version: .http1_1, headersNoUpdate: headers, body: .empty)
        } else if fields.contains(.contentLength), !fields.contains(.transferEncoding) {
            // Hits and stored misses carry their Content-Length: no need to recompute it.
            self.init(status: status, version: .http1_1, headersNoUpdate: headers, body: .init(buffer: ByteBuffer(bytes: reply.body)))
        } else {
            // The endpoint's own head (a response not stored): frame it for the collected body.
            self.init(status: status, headers: headers, body: .init(buffer: ByteBuffer(bytes: reply.body)))
        }
    }

    /// Copies the cache status header of `head` (what ``HTTPResponseCache/passThrough(_:response:logger:)``
    /// adds) onto this response, leaving its body and framing headers alone.
    func apply(_ head: HTTPResponse, statusHeader: HTTPField.Name) {
        guard let value = head.headerFields[statusHeader] else { return }
        headers.replaceOrAdd(name: statusHeader.rawName, value: value)
    }
}
#endif
