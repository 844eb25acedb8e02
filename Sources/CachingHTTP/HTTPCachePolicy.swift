public import HTTPTypes

/// What to cache and how: one value per route or route group.
///
/// The defaults follow RFC 9111 and are safe for a shared cache: GET and HEAD only, 60 seconds,
/// only 2xx responses, nothing involving credentials or cookies, bodies up to 1 MiB.
///
/// ```swift
/// var policy = HTTPCachePolicy(ttl: .seconds(300), namespace: "catalog")
/// policy.visibility = .public
/// policy.sharedMaxAge = .seconds(600)            // s-maxage for CDNs
/// policy.staleWhileRevalidate = .seconds(30)
/// ```
///
/// ## Per-user pages
/// Responses to requests with `Authorization` or `Cookie` are not cached by default, because a
/// key made of method, path and query would hand one user's page to another. To cache
/// authenticated pages, put the user in the key and opt in:
///
/// ```swift
/// var policy = HTTPCachePolicy(ttl: .seconds(30), namespace: "me")
/// policy.cachesRequestsWithAuthorization = true
/// policy.visibility = .private                   // browsers may keep it, shared caches not
/// policy.keyBuilder = { request in
///     // Prefer the authenticated identity from your framework's context (see the
///     // `key:` parameter of the Hummingbird and Vapor middleware); a digest of the
///     // credential itself also works and never stores the secret:
///     guard let credential = request.headerFields[.authorization] else { return nil }
///     return "user:" + SHA256.hex(Array(credential.utf8)) + " " + HTTPCachePolicy.defaultKey(for: request)
/// }
/// ```
public struct HTTPCachePolicy: Sendable {
    /// `public` or `private` in the `Cache-Control` the cache sends.
    public enum Visibility: String, Sendable, Hashable {
        /// Any cache (CDN, proxy, browser) may store the response.
        case `public`
        /// Only the user's own browser may store the response.
        case `private`
    }

    /// Builds the part of the key that identifies the resource, or returns `nil` to leave the
    /// request uncached. The engine adds the method class and the `Vary` headers itself.
    public typealias KeyBuilder = @Sendable (HTTPRequest) -> String?

    /// Methods answered from the cache. HEAD is answered from the stored GET response; other
    /// methods (say an idempotent POST search) are keyed on their own. Default: GET and HEAD.
    public var methods: Set<HTTPRequest.Method>
    /// How long a response stays fresh in the cache. A response's own `s-maxage` or `max-age`
    /// replaces it for that response. Default: 60 seconds.
    public var ttl: Duration
    /// The namespace under the ``HTTPResponseCache``'s `CacheFront` where responses live, so
    /// that `clear()` on it drops only these. Default: `"http"`.
    public var namespace: String
    /// The resource part of the key. Default: ``defaultKey(for:)`` (path plus query with its
    /// parameters in a normalised order).
    public var keyBuilder: KeyBuilder
    /// `public`/`private` added to the `Cache-Control` sent to clients, or `nil` for neither.
    public var visibility: Visibility?
    /// `s-maxage` sent to clients (a shared cache's freshness), or `nil`.
    public var sharedMaxAge: Duration?
    /// `stale-while-revalidate`: sent to clients, and honoured by this cache. A response is
    /// kept this long past its freshness; a request for it in that window is answered by the
    /// endpoint and stored afresh, while concurrent requests for the same key get the stale
    /// response at once (`X-Cache: STALE`) instead of waiting. Responses marked
    /// `must-revalidate` are never served stale. `nil` (the default) serves nothing stale.
    public var staleWhileRevalidate: Duration?
    /// The header that says `HIT`, `MISS` or `BYPASS`. Default: `X-Cache`.
    public var cacheStatusHeader: HTTPField.Name
    /// The largest body stored, in bytes; larger responses are passed through uncached, and a
    /// streamed body is collected only up to this size. Default: 1 MiB.
    public var maxBodySize: Int
    /// Store responses that set cookies. Default: `false` (a cached `Set-Cookie` would be
    /// replayed to every client).
    public var storesResponsesWithSetCookie: Bool
    /// Cache requests that carry `Authorization`. Default: `false`. Turn it on only with a
    /// ``keyBuilder`` that puts the user in the key.
    public var cachesRequestsWithAuthorization: Bool
    /// Cache requests that carry `Cookie`. Default: `false`.
    public var cachesRequestsWithCookies: Bool
    /// Store responses whose own `Cache-Control` says `private`. Default: `false`; turn it on
    /// for per-user keys.
    public var storesPrivateResponses: Bool
    /// Store non-2xx responses (redirects, 404s, errors). Default: `false`. Even when on, 1xx,
    /// `206 Partial Content` and `304 Not Modified` are never stored.
    public var storesNonSuccessResponses: Bool
    /// Coalesce concurrent misses: while one request computes a key that is not cached, other
    /// requests for the same key in this process wait for it and are answered from what it
    /// stored, so a cold or expired URL under load calls the endpoint once. A waiter whose
    /// response turns out not storable (or another `Vary` variant) computes its own.
    /// Default: `true`.
    public var coalescesMisses: Bool
    /// The longest a request waits for a concurrent miss before computing its own.
    /// Default: 30 seconds.
    public var coalescingTimeout: Duration

    /// Makes a policy.
    /// - Parameters:
    ///   - methods: Methods answered from the cache. Default: GET and HEAD.
    ///   - ttl: Freshness of a stored response. Must be positive. Default: 60 seconds.
    ///   - namespace: Namespace of the stored responses. Default: `"http"`.
    ///   - keyBuilder: The resource part of the key; `nil` means ``defaultKey(for:)``.
    ///   - visibility: `public`/`private` for the `Cache-Control` sent, or `nil`.
    ///   - sharedMaxAge: `s-maxage` to send, or `nil`.
    ///   - staleWhileRevalidate: `stale-while-revalidate` to send, or `nil`.
    ///   - cacheStatusHeader: The HIT/MISS header's name. Default: `X-Cache`.
    ///   - maxBodySize: The largest body stored, in bytes. Default: 1 MiB.
    public init(
        methods: Set<HTTPRequest.Method> = [.get, .head],
        ttl: Duration = .seconds(60),
        namespace: String = "http",
        keyBuilder: KeyBuilder? = nil,
        visibility: Visibility? = nil,
        sharedMaxAge: Duration? = nil,
        staleWhileRevalidate: Duration? = nil,
        cacheStatusHeader: HTTPField.Name = HTTPField.Name("X-Cache")!,
        maxBodySize: Int = 1 << 20
    ) {
        self.methods = methods
        self.ttl = ttl
        self.namespace = namespace
        self.keyBuilder = keyBuilder ?? { HTTPCachePolicy.defaultKey(for: $0) }
        self.visibility = visibility
        self.sharedMaxAge = sharedMaxAge
        self.staleWhileRevalidate = staleWhileRevalidate
        self.cacheStatusHeader = cacheStatusHeader
        self.maxBodySize = maxBodySize
        self.storesResponsesWithSetCookie = false
        self.cachesRequestsWithAuthorization = false
        self.cachesRequestsWithCookies = false
        self.storesPrivateResponses = false
        self.storesNonSuccessResponses = false
        self.coalescesMisses = true
        self.coalescingTimeout = .seconds(30)
    }

    /// The default resource key: the path, then `?` and the query parameters stably sorted by
    /// name when there is a query.
    ///
    /// Parameters with the same name keep their relative order (`a=2&a=1` is a different list
    /// from `a=1&a=2`); empty members (`&&`) are dropped. The scheme and host are not part of
    /// it: add them in a custom ``keyBuilder`` when one server answers for several hosts.
    ///
    /// ```swift
    /// HTTPCachePolicy.defaultKey(for: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/s?b=2&a=1"))
    /// // "/s?a=1&b=2"
    /// ```
    public static func defaultKey(for request: HTTPRequest) -> String {
        normalizedPath(request.path ?? "/")
    }

    /// `path` with its query parameters stably sorted by name; see ``defaultKey(for:)``.
    public static func normalizedPath(_ path: String) -> String {
        // Search the UTF-8 view: `?` is ASCII, and Character-level search is far slower.
        guard let question = path.utf8.firstIndex(of: UInt8(ascii: "?")) else { return path }
        let base = path[path.startIndex..<question]
        var query = path[path.index(after: question)...]
        if let hash = query.utf8.firstIndex(of: UInt8(ascii: "#")) { query = query[query.startIndex..<hash] }
        let parameters = query.split(separator: "&", omittingEmptySubsequences: true)
        if parameters.isEmpty { return String(base) }
        let sorted = parameters.enumerated().sorted { lhs, rhs in
            let leftName = lhs.element.prefix { $0 != "=" }
            let rightName = rhs.element.prefix { $0 != "=" }
            if leftName != rightName { return leftName < rightName }
            return lhs.offset < rhs.offset
        }
        return base + "?" + sorted.map(\.element).joined(separator: "&")
    }
}
