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
/// Bodies: in-memory bodies within ``HTTPCachePolicy/maxBodySize`` are stored; a streamed body
/// is collected only when it declares a length within the limit. Vapor does not let middleware
/// read a stream of unknown length piecewise, so such streams are passed through uncached
/// (marked MISS) rather than buffered whole.
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

    /// Answers from the cache, or calls `next` and stores its response.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let method = HTTPRequest.Method(request.method.rawValue), cache.policy.methods.contains(method) else {
            return try await next.respond(to: request)
        }
        let head = HTTPRequest(method: method, scheme: nil, authority: nil, path: request.url.string, headerFields: HTTPFields(request.headers))
        let lookup: HTTPCacheLookup
        if let key {
            lookup = await cache.lookup(head, resourceKey: key(request), logger: request.logger)
        } else {
            lookup = await cache.lookup(head, logger: request.logger)
        }
        switch lookup {
        case .respond(let reply):
            return Response(reply)
        case .forward(let context):
            let response = try await next.respond(to: request)
            let responseHead = HTTPResponse(response)
            guard cache.shouldCollectBody(context, response: responseHead) else {
                response.apply(cache.passThrough(context, response: responseHead, logger: request.logger), statusHeader: cache.policy.cacheStatusHeader)
                return response
            }
            let declared = response.body.count
            let buffer: ByteBuffer?
            if let inMemory = response.body.buffer {
                buffer = inMemory
            } else if declared >= 0, declared <= context.maxBodySize {
                buffer = try await response.body.collect(on: request.eventLoop).get() ?? ByteBuffer()
            } else {
                buffer = nil  // a stream over the limit or of unknown length
            }
            guard let buffer, buffer.readableBytes <= context.maxBodySize else {
                response.apply(cache.passThrough(context, response: responseHead, logger: request.logger), statusHeader: cache.policy.cacheStatusHeader)
                return response
            }
            let reply = await cache.store(context, response: responseHead, body: Array(buffer.readableBytesView), logger: request.logger)
            return Response(reply)
        }
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
        self.init(fields.map { ($0.name.rawName, $0.value) })
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
        let headers = HTTPHeaders(reply.response.headerFields)
        if reply.body.isEmpty {
            self.init(status: status, version: .http1_1, headersNoUpdate: headers, body: .empty)
        } else {
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
