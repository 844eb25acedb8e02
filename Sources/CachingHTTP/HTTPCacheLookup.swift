public import HTTPTypes

/// What ``HTTPResponseCache/lookup(_:logger:)`` decided for a request.
///
/// An adapter does one of two things:
/// ```swift
/// switch await cache.lookup(request.head) {
/// case .respond(let reply):
///     return makeResponse(reply.response, reply.body)         // hit, 304, or 504 for only-if-cached
/// case .forward(let context):
///     let response = try await next(request)
///     guard cache.shouldCollectBody(context, response: response.head),
///           let body = collect(response.body, upTo: context.maxBodySize) else {
///         return response.with(head: cache.passThrough(context, response: response.head))   // streamed as is
///     }
///     let reply = await cache.store(context, response: response.head, body: body)
///     return makeResponse(reply.response, reply.body)
/// }
/// ```
public enum HTTPCacheLookup: Sendable {
    /// Answer with this reply; the endpoint is not called.
    case respond(HTTPCacheReply)
    /// Call the endpoint, then give its response to ``HTTPResponseCache/store(_:response:body:logger:)``
    /// (when ``HTTPResponseCache/shouldCollectBody(_:response:)`` and the body fits) or
    /// ``HTTPResponseCache/passThrough(_:response:logger:)``.
    case forward(HTTPCacheContext)
}

/// The value of the cache status header.
public enum HTTPCacheStatus: String, Sendable, Hashable {
    /// Answered from the cache (including a `304` from a stored response).
    case hit = "HIT"
    /// Answered from a stale stored response, within the policy's
    /// ``HTTPCachePolicy/staleWhileRevalidate`` window, while another request revalidates it.
    case stale = "STALE"
    /// Computed by the endpoint (and stored when it could be).
    case miss = "MISS"
    /// The request asked not to use the cache (`no-store`) or carried credentials or cookies
    /// the policy does not cache.
    case bypass = "BYPASS"
}

/// A response the cache answers with: the head (status and every header) and the body bytes.
public struct HTTPCacheReply: Sendable {
    /// Status and header fields, including `ETag`, `Cache-Control` and the cache status header.
    /// For a HEAD request, `Content-Length` is the length of the GET body.
    public var response: HTTPResponse
    /// The body to send: empty for `304` and for HEAD requests.
    public var body: [UInt8]
    /// HIT, MISS or BYPASS.
    public var cacheStatus: HTTPCacheStatus

    /// Makes a reply.
    /// - Parameters:
    ///   - response: Status and header fields.
    ///   - body: The body bytes to send.
    ///   - cacheStatus: The cache status.
    public init(response: HTTPResponse, body: [UInt8], cacheStatus: HTTPCacheStatus) {
        self.response = response
        self.body = body
        self.cacheStatus = cacheStatus
    }
}

/// What the cache remembers about a forwarded request until the endpoint has answered.
public struct HTTPCacheContext: Sendable {
    enum Mode: Sendable {
        /// The method is not cached by the policy: leave the response untouched.
        case ignore
        /// Not cached because of the request; marked BYPASS.
        case bypass
        /// A miss that will not be stored (HEAD, backend failure); marked MISS.
        case uncached
        /// A miss to store once the endpoint has answered.
        case store
    }

    let mode: Mode
    /// The key of the resource (method class and resource key), empty unless `mode == .store`.
    let key: String
    /// The claim of a coalescing leader: concurrent requests for `key` wait until it lands
    /// (when the response is stored or passed through, or when this context is released).
    let flight: MissCoalescer.Flight?
    let requestFields: HTTPFields
    let ifNoneMatch: IfNoneMatch?
    /// `If-Modified-Since` in seconds since the epoch, when it applies (no `If-None-Match`).
    let ifModifiedSince: Int64?

    /// Whether the request is a miss to store, so that the body (up to ``maxBodySize`` bytes)
    /// is worth collecting. ``HTTPResponseCache/shouldCollectBody(_:response:)`` also checks the
    /// response head.
    public var collectsBody: Bool { mode == .store }

    /// The largest body the cache stores, from the policy.
    public let maxBodySize: Int

    /// The cache status this request ends with when it is not answered from the cache, or
    /// `nil` when the cache leaves the response untouched.
    public var cacheStatus: HTTPCacheStatus? {
        switch mode {
        case .ignore: nil
        case .bypass: .bypass
        case .uncached, .store: .miss
        }
    }
}
