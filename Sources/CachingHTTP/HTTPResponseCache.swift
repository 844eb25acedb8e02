public import Caching
public import HTTPTypes
public import Logging
public import Metrics

/// The framework-neutral HTTP response cache (RFC 9111): decides whether a request may be
/// answered from the cache, builds its key, answers hits (and `304 Not Modified`), and stores
/// the responses of misses. The Hummingbird and Vapor middleware are thin adapters over it.
///
/// ```swift
/// let front = CacheFront(backend: InMemoryBackend(), prefix: "shop")
/// let cache = HTTPResponseCache(cache: front, policy: HTTPCachePolicy(ttl: .seconds(30)))
///
/// // Framework-free use: compute only on a miss.
/// let reply = try await cache.respond(to: request) {
///     (HTTPResponse(status: .ok, headerFields: [.contentType: "application/json"]), Array(json.utf8))
/// }
/// ```
///
/// ## What it does
/// - **Keys**: the method class (GET and HEAD share one), the resource key from
///   ``HTTPCachePolicy/keyBuilder`` (by default path and normalised query), and the values of
///   the request headers the response names in `Vary`. The resource key holds either the
///   response or, when it varies, a record of the `Vary` names; each variant lives under a key
///   derived from the header values. `Vary: *` is never stored.
/// - **Freshness**: a stored response is fresh for the policy's TTL, or for its own
///   `s-maxage`/`max-age` when it sends one. Each answer carries
///   `Cache-Control: max-age=<seconds left>` (plus `public`/`private`, `s-maxage`,
///   `stale-while-revalidate` as configured) and no `Age` header, since `max-age` already
///   counts down.
/// - **Validation**: a strong ETag from the body's SHA-256 (or the endpoint's own ETag);
///   `If-None-Match` (lists, `*`, weak comparison) gives `304` with no body, on a hit or after a
///   miss is computed.
/// - **Request directives**: `no-store` bypasses the cache; `no-cache`, `max-age=0` (and
///   `Pragma: no-cache` without `Cache-Control`) compute and store afresh; `max-age=N` and
///   `min-fresh=N` refuse entries too old or too close to expiry; `only-if-cached` gives
///   `504` on a miss.
/// - **Security**: requests with `Authorization` or `Cookie`, responses with `Set-Cookie`,
///   responses marked `private`, `no-store` or `no-cache`, and non-2xx responses are not stored
///   unless the policy opts in.
/// - **Fail-open**: a backend error never fails a request. It is logged, counted in
///   `http.cache.errors`, and the request is served uncached.
public struct HTTPResponseCache: Sendable {
    /// The policy this cache applies.
    public let policy: HTTPCachePolicy
    /// Where responses are stored: the given front's ``HTTPCachePolicy/namespace``.
    public let storage: CacheFront
    let logger: Logger
    let metrics: HTTPCacheMetrics
    let clock: HTTPCacheClock
    /// `public`/`private`, `s-maxage`, `stale-while-revalidate`: the part of `Cache-Control`
    /// that does not change between answers, rendered once (`"public, s-maxage=600, "`), so a
    /// hit only appends `max-age`.
    let fixedCacheControlPrefix: String
    /// The misses being computed, for ``HTTPCachePolicy/coalescesMisses``.
    let coalescer = MissCoalescer()
    /// Whether the backend reads without suspending, so that ``lookupSynchronously(_:)`` can
    /// answer hits (checked once: a backend does not change).
    let readsSynchronously: Bool

    /// Makes an HTTP response cache.
    ///
    /// ```swift
    /// let cache = HTTPResponseCache(
    ///     cache: CacheFront(backend: try RedisBackend(url: "redis://127.0.0.1:6379"), prefix: "web"),
    ///     policy: HTTPCachePolicy(ttl: .seconds(120), namespace: "pages")
    /// )
    /// ```
    /// - Parameters:
    ///   - cache: The front to store through; responses go in its `policy.namespace` namespace.
    ///   - policy: What to cache and how.
    ///   - logger: Receives backend failures (warning) and decisions (debug). Adapters may pass
    ///     each request's logger to ``lookup(_:logger:)`` instead.
    ///   - metricsFactory: Where counters go; `nil` uses the global `MetricsSystem`.
    ///   - clock: The wall clock for ages and remaining TTLs. Default: the system clock.
    public init(
        cache: CacheFront,
        policy: HTTPCachePolicy = HTTPCachePolicy(),
        logger: Logger = Logger(label: "swift-caching.http"),
        metricsFactory: (any MetricsFactory)? = nil,
        clock: HTTPCacheClock = .system
    ) {
        self.policy = policy
        self.storage = cache.namespace(policy.namespace)
        self.logger = logger
        self.metrics = HTTPCacheMetrics(namespace: policy.namespace, factory: metricsFactory)
        self.clock = clock
        self.readsSynchronously = storage.readsSynchronously
        var fixed: [HTTPCacheControl.Directive] = []
        if let visibility = policy.visibility { fixed.append(.init(visibility.rawValue)) }
        if let shared = policy.sharedMaxAge { fixed.append(.init("s-maxage", String(Self.wholeSeconds(shared)))) }
        if let swr = policy.staleWhileRevalidate { fixed.append(.init("stale-while-revalidate", String(Self.wholeSeconds(swr)))) }
        self.fixedCacheControlPrefix = fixed.isEmpty ? "" : HTTPCacheControl(fixed).headerValue + ", "
    }

    // MARK: - Lookup

    /// Decides how to answer `request`, using the policy's key builder.
    /// - Parameters:
    ///   - request: The request head.
    ///   - logger: The request's logger, or `nil` for the cache's own.
    /// - Returns: A reply to send at once, or a context for calling the endpoint.
    nonisolated(nonsending) public func lookup(_ request: HTTPRequest, logger: Logger? = nil) async -> HTTPCacheLookup {
        guard isCachedMethod(request.method) else { return .forward(context(.ignore, request)) }
        return await lookup(request, resourceKey: policy.keyBuilder(request), logger: logger)
    }

    /// Decides how to answer `request` with a resource key the caller built (an adapter whose
    /// key builder reads its framework's request context, such as the authenticated user).
    /// - Parameters:
    ///   - request: The request head.
    ///   - resourceKey: The resource part of the key, or `nil` to leave the request uncached.
    ///   - logger: The request's logger, or `nil` for the cache's own.
    /// - Returns: A reply to send at once, or a context for calling the endpoint.
    nonisolated(nonsending) public func lookup(_ request: HTTPRequest, resourceKey: String?, logger: Logger? = nil) async -> HTTPCacheLookup {
        await lookup(request, resourceKey: resourceKey, logger: logger ?? self.logger, coalescing: policy.coalescesMisses, prefetched: .none)
    }

    /// Finishes a lookup that ``lookupSynchronously(_:)`` could not: the same decision
    /// ``lookup(_:logger:)`` makes, continuing from what the synchronous lookup already read,
    /// so the backend is not read twice.
    /// - Parameters:
    ///   - pending: What ``lookupSynchronously(_:)`` or ``lookupSynchronously(_:resourceKey:)``
    ///     of this cache returned.
    ///   - logger: The request's logger, or `nil` for the cache's own.
    /// - Returns: A reply to send at once, or a context for calling the endpoint.
    nonisolated(nonsending) public func lookup(continuing pending: HTTPCachePendingLookup, logger: Logger? = nil) async -> HTTPCacheLookup {
        await lookup(
            pending.request,
            resourceKey: pending.resourceKey,
            logger: logger ?? self.logger,
            coalescing: policy.coalescesMisses,
            prefetched: pending.prefetched
        )
    }

    nonisolated(nonsending) private func lookup(
        _ request: HTTPRequest,
        resourceKey: String?,
        logger: Logger,
        coalescing: Bool,
        prefetched: HTTPCachePendingLookup.Prefetch
    ) async -> HTTPCacheLookup {
        let plan: ReadPlan
        switch admission(of: request, resourceKey: resourceKey) {
        case .ignore:
            return .forward(context(.ignore, request))
        case .bypass(let reason):
            return bypass(request, because: reason, logger: logger)
        case .revalidate(let key, let missMode):
            logger.debug("HTTP cache: revalidating on request", metadata: ["http.cache.reason": "request no-cache/max-age=0"])
            metrics.misses.increment()
            return .forward(context(missMode, request, key: key))
        case .read(let readPlan):
            plan = readPlan
        }
        let key = plan.key
        let directives = plan.directives
        let missMode = plan.missMode

        let found: StoredResponse?
        if case .read(let stored) = prefetched {
            found = stored
        } else {
            do {
                found = try await read(key, request: request, logger: logger)
            } catch {
                metrics.lookupErrors.increment()
                metrics.misses.increment()
                logger.warning(
                    "HTTP cache backend failed on lookup; serving uncached",
                    metadata: ["http.cache.operation": "lookup", "error": "\(error)", "backend": "\(storage.backend.name)"]
                )
                if directives.onlyIfCached { return .respond(gatewayTimeout()) }
                return .forward(context(.uncached, request))
            }
        }

        let now = clock.now()
        /// The request is answered by the endpoint (possibly after waiting for a concurrent miss).
        func miss() async -> HTTPCacheLookup {
            if directives.onlyIfCached {
                metrics.misses.increment()
                return .respond(gatewayTimeout())
            }
            guard coalescing, missMode == .store else {
                metrics.misses.increment()
                return .forward(context(missMode, request, key: key))
            }
            switch coalescer.join(key) {
            case .leader(let flight):
                metrics.misses.increment()
                return .forward(context(.store, request, key: key, flight: flight))
            case .follower:
                // Another request computes this key: wait for it, then read what it stored.
                metrics.coalesced.increment()
                logger.debug("HTTP cache: waiting for a concurrent miss", metadata: ["http.cache.reason": "coalesced"])
                _ = await coalescer.wait(for: key, timeout: policy.coalescingTimeout)
                return await lookup(request, resourceKey: resourceKey, logger: logger, coalescing: false, prefetched: .none)
            }
        }
        switch Self.usability(of: found, for: directives, now: now) {
        case .unusable:
            return await miss()
        case .fresh(let stored):
            return .respond(answer(stored, to: request, status: .hit, now: now))
        case .stale(let stored):
            // Within the policy's stale-while-revalidate window, one request revalidates (calls
            // the endpoint and stores afresh) while the others get the stale response.
            guard !directives.onlyIfCached, isServableStale(stored, now: now) else { return await miss() }
            if missMode == .store {
                if case .leader(let flight) = coalescer.join(key) {
                    metrics.misses.increment()
                    logger.debug("HTTP cache: revalidating a stale response", metadata: ["http.cache.reason": "stale-while-revalidate"])
                    return .forward(context(.store, request, key: key, flight: flight))
                }
            } else if !coalescer.isInFlight(key) {
                return await miss()
            }
            return .respond(answer(stored, to: request, status: .stale, now: now))
        }
    }

    /// The reply for a stored response the lookup serves (fresh, or stale within
    /// stale-while-revalidate), counted: `304 Not Modified` when the request's `If-None-Match`
    /// (or, without it, `If-Modified-Since`) matches a 2xx response, else the stored response,
    /// without its body for HEAD.
    func answer(_ stored: StoredResponse, to request: HTTPRequest, status: HTTPCacheStatus, now: Int64) -> HTTPCacheReply {
        let fields = request.headerFields
        let ifNoneMatch = fields.contains(.ifNoneMatch) ? IfNoneMatch(fields: fields) : nil
        let remaining = stored.remainingMilliseconds(now: now)
        var head = HTTPResponse(status: .init(code: stored.status, reasonPhrase: stored.reasonPhrase))
        let notModified: Bool
        if let ifNoneMatch {
            notModified = ifNoneMatch.matches(stored.etag)
        } else if let since = Self.ifModifiedSince(request, now: now) {
            // Only without If-None-Match (RFC 9110 §13.2.2), against the endpoint's Last-Modified.
            notModified = stored.fields[.lastModified].flatMap { HTTPDate.secondsSinceEpoch($0, now: now / 1000) }.map { $0 <= since } ?? false
        } else {
            notModified = false
        }
        if notModified, Self.isSuccess(stored.status) {
            metrics.notModified.increment()
            head.status = .notModified
            head.headerFields = notModifiedFields(from: stored.fields)
            decorate(&head.headerFields, etag: stored.etag, remainingMilliseconds: remaining, extra: stored.extraCacheControl, status: status)
            // The length of the representation (RFC 9110 §8.6), so frameworks do not add `0`.
            head.headerFields.append(HTTPField(name: .contentLength, value: String(stored.body.count)))
            return HTTPCacheReply(response: head, body: [], cacheStatus: status)
        }
        if status == .stale { metrics.stale.increment() } else { metrics.hits.increment() }
        head.headerFields = stored.fields
        decorate(&head.headerFields, etag: stored.etag, remainingMilliseconds: remaining, extra: stored.extraCacheControl, status: status)
        // Stored headers never hold Content-Length, so appending is enough (and cheaper).
        head.headerFields.append(HTTPField(name: .contentLength, value: String(stored.body.count)))
        return HTTPCacheReply(response: head, body: request.method == .head ? [] : stored.body, cacheStatus: status)
    }

    // MARK: - After the endpoint

    /// Stores the endpoint's response when it may be stored, and returns what to send: the
    /// response with `ETag`, `Cache-Control` and the cache status header, or `304` when the
    /// request's `If-None-Match` matches it.
    ///
    /// Never throws: a backend failure is logged and counted, and the response is sent anyway.
    /// - Parameters:
    ///   - context: The context ``lookup(_:logger:)`` returned.
    ///   - response: The endpoint's status and header fields.
    ///   - body: The complete body (at most ``HTTPCacheContext/maxBodySize`` bytes to be stored).
    ///   - logger: The request's logger, or `nil` for the cache's own.
    /// - Returns: The reply to send.
    public func store(_ context: HTTPCacheContext, response: HTTPResponse, body: [UInt8], logger: Logger? = nil) async -> HTTPCacheReply {
        let logger = logger ?? self.logger
        guard context.mode == .store else {
            return HTTPCacheReply(response: passThrough(context, response: response, logger: logger), body: body, cacheStatus: context.cacheStatus ?? .miss)
        }
        // Waiting requests read the cache once this returns: stored, skipped or failed.
        defer { context.flight?.land() }
        let decision = storability(of: response, bodySize: body.count)
        guard case .store(let ttl, let varyNames, let extra) = decision else {
            if case .skip(let reason) = decision {
                logger.debug("HTTP cache: response not stored", metadata: ["http.cache.reason": "\(reason)"])
            }
            metrics.skipped.increment()
            var head = response
            head.headerFields[policy.cacheStatusHeader] = HTTPCacheStatus.miss.rawValue
            return HTTPCacheReply(response: head, body: body, cacheStatus: .miss)
        }

        let etag = response.headerFields[.eTag].flatMap { EntityTag(parsing: $0) } ?? EntityTag.strong(forBody: body)
        let now = clock.now()
        let ttlMilliseconds = Self.milliseconds(ttl)
        let record = CachedHTTPResponse(
            status: response.status.code,
            reasonPhrase: response.status.reasonPhrase,
            headers: storedHeaders(of: response.headerFields),
            body: body,
            storedAtMilliseconds: now,
            ttlMilliseconds: ttlMilliseconds,
            etag: etag,
            extraCacheControl: extra
        )
        // Kept past freshness for the stale-while-revalidate window.
        let storedTTL = policy.staleWhileRevalidate.map { ttl + max(.zero, $0) } ?? ttl
        do {
            if varyNames.isEmpty {
                try await storage.set(record.serialized(), forKey: context.key, ttl: storedTTL)
            } else {
                try await storage.set(StoredRecord.serializeVary(varyNames), forKey: context.key, ttl: storedTTL)
                try await storage.set(record.serialized(), forKey: Self.variantKey(context.key, names: varyNames, fields: context.requestFields), ttl: storedTTL)
            }
            metrics.stored.increment()
        } catch {
            metrics.storeErrors.increment()
            logger.warning(
                "HTTP cache backend failed on store; response served uncached",
                metadata: ["http.cache.operation": "store", "error": "\(error)", "backend": "\(storage.backend.name)"]
            )
        }

        var head = response
        let notModified: Bool
        if let ifNoneMatch = context.ifNoneMatch {
            notModified = ifNoneMatch.matches(etag)
        } else if let since = context.ifModifiedSince {
            notModified = response.headerFields[.lastModified].flatMap { HTTPDate.secondsSinceEpoch($0, now: now / 1000) }.map { $0 <= since } ?? false
        } else {
            notModified = false
        }
        if notModified {
            head.status = .notModified
            head.headerFields = notModifiedFields(from: response.headerFields)
            decorate(&head.headerFields, etag: etag, remainingMilliseconds: ttlMilliseconds, extra: extra, status: .miss, replacing: true)
            head.headerFields[.contentLength] = String(body.count)
            return HTTPCacheReply(response: head, body: [], cacheStatus: .miss)
        }
        decorate(&head.headerFields, etag: etag, remainingMilliseconds: ttlMilliseconds, extra: extra, status: .miss, replacing: true)
        head.headerFields[.contentLength] = String(body.count)
        return HTTPCacheReply(response: head, body: body, cacheStatus: .miss)
    }

    /// Whether the adapter should collect the endpoint's body and call
    /// ``store(_:response:body:logger:)``: the request is a storable miss and the response head
    /// allows storing (status, `Set-Cookie`, `Cache-Control`, `Vary`). When `false`, stream the
    /// response through after ``passThrough(_:response:logger:)``.
    /// - Parameters:
    ///   - context: The context ``lookup(_:logger:)`` returned.
    ///   - response: The endpoint's status and header fields.
    public func shouldCollectBody(_ context: HTTPCacheContext, response: HTTPResponse) -> Bool {
        guard context.collectsBody else { return false }
        if case .store = storability(of: response, bodySize: 0) { return true }
        return false
    }

    /// The head to send when the response is streamed through uncached (the request was not
    /// cacheable, the response may not be stored, or its body is over the limit): the
    /// endpoint's head with the cache status header, or unchanged when the policy does not
    /// cover the request's method.
    /// - Parameters:
    ///   - context: The context ``lookup(_:logger:)`` returned.
    ///   - response: The endpoint's status and header fields.
    ///   - logger: The request's logger, or `nil` for the cache's own.
    /// - Returns: The head to send.
    public func passThrough(_ context: HTTPCacheContext, response: HTTPResponse, logger: Logger? = nil) -> HTTPResponse {
        guard let status = context.cacheStatus else { return response }
        context.flight?.land()
        if context.mode == .store {
            metrics.skipped.increment()
            let reason: String
            if case .skip(let why) = storability(of: response, bodySize: 0) {
                reason = why
            } else {
                reason = "body larger than \(context.maxBodySize) bytes"
            }
            (logger ?? self.logger).debug("HTTP cache: response not stored", metadata: ["http.cache.reason": "\(reason)"])
        }
        var head = response
        head.headerFields[policy.cacheStatusHeader] = status.rawValue
        return head
    }

    /// Answers `request` from the cache, or computes it with `compute`, stores it and answers:
    /// the whole flow for framework-free use and tests.
    /// - Parameters:
    ///   - request: The request head.
    ///   - logger: The request's logger, or `nil` for the cache's own.
    ///   - compute: Produces the endpoint's response head and complete body on a miss.
    /// - Returns: The reply to send.
    /// - Throws: Whatever `compute` throws; cache failures are never thrown.
    public func respond(
        to request: HTTPRequest,
        logger: Logger? = nil,
        compute: () async throws -> (HTTPResponse, [UInt8])
    ) async throws -> HTTPCacheReply {
        switch await lookup(request, logger: logger) {
        case .respond(let reply):
            return reply
        case .forward(let context):
            let (response, body) = try await compute()
            if context.collectsBody, body.count > context.maxBodySize {
                return HTTPCacheReply(response: passThrough(context, response: response, logger: logger), body: body, cacheStatus: .miss)
            }
            var reply = await store(context, response: response, body: body, logger: logger)
            if request.method == .head { reply.body = [] }
            return reply
        }
    }

    /// Removes the stored response (all its `Vary` variants) of a GET request for a resource
    /// key, e.g. after the resource changed.
    ///
    /// ```swift
    /// try await cache.invalidate(resourceKey: HTTPCachePolicy.normalizedPath("/products/42"))
    /// ```
    /// - Parameters:
    ///   - resourceKey: The resource key as the key builder makes it.
    ///   - method: The method whose response to remove. Default: GET (which covers HEAD).
    /// - Returns: Whether something was removed.
    /// - Throws: The backend's error (`CacheError`).
    @discardableResult
    public func invalidate(resourceKey: String, method: HTTPRequest.Method = .get) async throws -> Bool {
        try await storage.delete(Self.methodClass(method) + " " + resourceKey)
    }

    /// Removes every response stored under this policy's namespace.
    /// - Throws: The backend's error (`CacheError`).
    public func clear() async throws {
        try await storage.clear()
    }
}

// MARK: - Internals

extension HTTPResponseCache {
    enum Storability {
        case store(ttl: Duration, varyNames: [String], extraDirectives: [HTTPCacheControl.Directive])
        case skip(String)
    }

    /// Whether a response may be stored, and for how long (RFC 9111 §3 plus the policy).
    func storability(of response: HTTPResponse, bodySize: Int) -> Storability {
        let code = response.status.code
        if code < 200 || code == 206 || code == 304 { return .skip("status \(code) is never stored") }
        if !Self.isSuccess(code), !policy.storesNonSuccessResponses { return .skip("status \(code) is not 2xx") }
        let fields = response.headerFields
        if !policy.storesResponsesWithSetCookie, fields.contains(.setCookie) { return .skip("response has Set-Cookie") }
        if bodySize > policy.maxBodySize { return .skip("body larger than \(policy.maxBodySize) bytes") }
        let directives = fields.contains(.cacheControl) ? HTTPCacheControl(parsing: fields) : HTTPCacheControl()
        if directives.noStore { return .skip("response Cache-Control: no-store") }
        if directives.noCache { return .skip("response Cache-Control: no-cache") }
        if directives.isPrivate, !policy.storesPrivateResponses { return .skip("response Cache-Control: private") }
        var ttl = policy.ttl
        if let seconds = directives.sharedMaxAge ?? directives.maxAge {
            if seconds == 0 { return .skip("response max-age=0") }
            ttl = .seconds(seconds)
        }
        guard ttl > .zero else { return .skip("the policy TTL is not positive") }
        var varyNames: [String] = []
        for value in fields[values: .vary] {
            for member in HTTPListParser.members(of: value) {
                if member == "*" { return .skip("response Vary: *") }
                varyNames.append(member.lowercased())
            }
        }
        let managed: Set<String> = ["max-age", "s-maxage", "public", "private", "stale-while-revalidate", "no-cache", "no-store"]
        let extra = directives.directives.filter { !managed.contains($0.name) }
        return .store(ttl: ttl, varyNames: Array(Set(varyNames)).sorted(), extraDirectives: extra)
    }

    /// What a request asks of the cache before anything is read: the part of a lookup that
    /// needs no backend, shared by ``lookup(_:resourceKey:logger:)`` and
    /// ``lookupSynchronously(_:resourceKey:)``. It has no side effects: the asynchronous lookup
    /// logs and counts what it decides.
    enum Admission {
        /// The policy does not cover the method: leave the request alone.
        case ignore
        /// Not cached because of the request (`no-store`, credentials, no key).
        case bypass(reason: String)
        /// The request asks to revalidate (`no-cache`, `max-age=0`, `Pragma: no-cache`):
        /// compute without reading, then store (or not, for HEAD).
        case revalidate(key: String, missMode: HTTPCacheContext.Mode)
        /// Read the stored response.
        case read(ReadPlan)
    }

    /// What a lookup that reads needs to know about the request.
    struct ReadPlan {
        /// The key of the resource: method class and resource key.
        let key: String
        /// The request's `Cache-Control`.
        let directives: HTTPCacheControl
        /// How a miss is forwarded: stored for GET, uncached for HEAD.
        let missMode: HTTPCacheContext.Mode
    }

    func admission(of request: HTTPRequest, resourceKey: String?) -> Admission {
        guard isCachedMethod(request.method) else { return .ignore }
        let fields = request.headerFields
        let directives = fields.contains(.cacheControl) ? HTTPCacheControl(parsing: fields) : HTTPCacheControl()
        if directives.noStore { return .bypass(reason: "request Cache-Control: no-store") }
        if !policy.cachesRequestsWithAuthorization, fields.contains(.authorization) {
            return .bypass(reason: "request has Authorization")
        }
        if !policy.cachesRequestsWithCookies, fields.contains(.cookie) { return .bypass(reason: "request has Cookie") }
        guard let resourceKey else { return .bypass(reason: "the key builder returned nil") }
        let key = Self.methodClass(request.method) + " " + resourceKey
        let missMode: HTTPCacheContext.Mode = request.method == .head ? .uncached : .store
        let pragmaNoCache = !fields.contains(.cacheControl) && (fields[.pragma]?.lowercased().contains("no-cache") ?? false)
        if directives.noCache || directives.maxAge == 0 || pragmaNoCache {
            return .revalidate(key: key, missMode: missMode)
        }
        return .read(ReadPlan(key: key, directives: directives, missMode: missMode))
    }

    /// How a stored response may serve a request.
    enum Usability {
        /// Fresh, and within the request's own `max-age`/`min-fresh`: a hit.
        case fresh(StoredResponse)
        /// Past its freshness (maybe servable within stale-while-revalidate).
        case stale(StoredResponse)
        /// Nothing stored, or refused by the request's `max-age`/`min-fresh`: a miss.
        case unusable
    }

    static func usability(of found: StoredResponse?, for directives: HTTPCacheControl, now: Int64) -> Usability {
        guard let stored = found, satisfies(directives, stored: stored, now: now) else { return .unusable }
        return stored.remainingMilliseconds(now: now) > 0 ? .fresh(stored) : .stale(stored)
    }

    /// Reads the stored response for `key`, following a Vary record to the request's variant.
    /// Entries that cannot be decoded are deleted and read as misses.
    nonisolated(nonsending) func read(_ key: String, request: HTTPRequest, logger: Logger) async throws -> StoredResponse? {
        guard let bytes = try await storage.get(key, as: [UInt8].self) else { return nil }
        switch try await decode(bytes, key: key, logger: logger) {
        case .response(let response):
            return response
        case .vary(let names):
            let variant = Self.variantKey(key, names: names, fields: request.headerFields)
            guard let variantBytes = try await storage.get(variant, as: [UInt8].self) else { return nil }
            guard case .response(let response) = try await decode(variantBytes, key: variant, logger: logger) else { return nil }
            return response
        case nil:
            return nil
        }
    }

    nonisolated(nonsending) private func decode(_ bytes: [UInt8], key: String, logger: Logger) async throws -> StoredRecord? {
        do {
            return try StoredRecord(serialized: bytes)
        } catch {
            metrics.decodeErrors.increment()
            logger.warning("HTTP cache entry could not be decoded; removing it", metadata: ["error": "\(error)"])
            _ = try? await storage.delete(key)
            return nil
        }
    }

    /// The key of one variant: the resource key plus a digest of the varying header values.
    static func variantKey(_ key: String, names: [String], fields: HTTPFields) -> String {
        var digest = SHA256()
        for name in names {
            digest.update(name)
            digest.update([0])
            if let fieldName = HTTPField.Name(name) {
                let values = fields[values: fieldName].map { HTTPListParser.trim(Substring($0)) }
                digest.update(values.joined(separator: ","))
            }
            digest.update([0x0A])
        }
        return key + " #vary:" + SHA256.hexString(Array(digest.finalize().prefix(16)))
    }

    /// Whether a fresh stored response satisfies the request's own freshness limits.
    static func satisfies(_ directives: HTTPCacheControl, stored: StoredResponse, now: Int64) -> Bool {
        guard !directives.directives.isEmpty else { return true }
        if let maxAge = directives.maxAge, stored.ageMilliseconds(now: now) > Int64(maxAge) * 1000 { return false }
        if let minFresh = directives.minFresh, stored.remainingMilliseconds(now: now) < Int64(minFresh) * 1000 { return false }
        return true
    }

    func isCachedMethod(_ method: HTTPRequest.Method) -> Bool { policy.methods.contains(method) }

    /// Whether a stale response may still be served while another request revalidates it:
    /// within the policy's `stale-while-revalidate` window, and not marked `must-revalidate`
    /// or `proxy-revalidate` by the endpoint.
    func isServableStale(_ stored: StoredResponse, now: Int64) -> Bool {
        guard let window = policy.staleWhileRevalidate, window > .zero else { return false }
        guard -stored.remainingMilliseconds(now: now) < Self.milliseconds(window) else { return false }
        return !stored.extraCacheControl.contains { $0.name == "must-revalidate" || $0.name == "proxy-revalidate" }
    }

    /// The request's `If-Modified-Since` in seconds since the epoch, when it counts: a GET or
    /// HEAD with exactly one valid HTTP-date (RFC 9110 §13.1.3). The caller checks that
    /// `If-None-Match` is absent.
    static func ifModifiedSince(_ request: HTTPRequest, now: Int64) -> Int64? {
        guard request.method == .get || request.method == .head else { return nil }
        let values = request.headerFields[values: .ifModifiedSince]
        guard values.count == 1, let value = values.first else { return nil }
        return HTTPDate.secondsSinceEpoch(value, now: now / 1000)
    }

    static func methodClass(_ method: HTTPRequest.Method) -> String {
        method == .head ? "GET" : method.rawValue
    }

    static func isSuccess(_ code: Int) -> Bool { (200..<300).contains(code) }

    func context(_ mode: HTTPCacheContext.Mode, _ request: HTTPRequest, key: String = "", flight: MissCoalescer.Flight? = nil) -> HTTPCacheContext {
        HTTPCacheContext(
            mode: mode,
            key: key,
            flight: flight,
            requestFields: mode == .store ? request.headerFields : HTTPFields(),
            ifNoneMatch: mode == .store && request.headerFields.contains(.ifNoneMatch) ? IfNoneMatch(fields: request.headerFields) : nil,
            ifModifiedSince: mode == .store && !request.headerFields.contains(.ifNoneMatch) ? Self.ifModifiedSince(request, now: clock.now()) : nil,
            maxBodySize: policy.maxBodySize
        )
    }

    func bypass(_ request: HTTPRequest, because reason: String, logger: Logger) -> HTTPCacheLookup {
        metrics.bypasses.increment()
        logger.debug("HTTP cache: bypassed", metadata: ["http.cache.reason": "\(reason)"])
        return .forward(context(.bypass, request))
    }

    func gatewayTimeout() -> HTTPCacheReply {
        var head = HTTPResponse(status: .gatewayTimeout)
        head.headerFields[policy.cacheStatusHeader] = HTTPCacheStatus.miss.rawValue
        head.headerFields[.contentLength] = "0"
        return HTTPCacheReply(response: head, body: [], cacheStatus: .miss)
    }

    /// Adds `ETag`, `Cache-Control` and the cache status header; `replacing` removes those the
    /// fields already have (the endpoint's own), which stored headers never do.
    func decorate(
        _ fields: inout HTTPFields,
        etag: EntityTag,
        remainingMilliseconds: Int64,
        extra: [HTTPCacheControl.Directive],
        status: HTTPCacheStatus,
        replacing: Bool = false
    ) {
        if replacing {
            fields[.eTag] = nil
            fields[.cacheControl] = nil
            fields[policy.cacheStatusHeader] = nil
        }
        var cacheControl = fixedCacheControlPrefix + "max-age=" + String(max(0, remainingMilliseconds / 1000))
        if !extra.isEmpty { cacheControl += ", " + HTTPCacheControl(extra).headerValue }
        fields.append(HTTPField(name: .eTag, value: etag.headerValue))
        fields.append(HTTPField(name: .cacheControl, value: cacheControl))
        fields.append(HTTPField(name: policy.cacheStatusHeader, value: status.rawValue))
    }

    /// The headers a `304` keeps from the full response (RFC 9110 §15.4.5); `ETag` and
    /// `Cache-Control` are added by ``decorate``.
    func notModifiedFields(from fields: HTTPFields) -> HTTPFields {
        var result = HTTPFields()
        for field in fields where field.name == .vary || field.name == .contentLocation || field.name == .lastModified {
            result.append(field)
        }
        return result
    }

    /// The headers worth replaying on a hit.
    func storedHeaders(of fields: HTTPFields) -> [CachedHTTPResponse.Header] {
        let dropped: Set<HTTPField.Name> = [
            .contentLength, .transferEncoding, .connection, .date, .age, .cacheControl, .eTag, .expires,
            policy.cacheStatusHeader, .keepAlive, .proxyConnection, .upgrade, .te, .trailer,
        ]
        return fields.compactMap { field in
            dropped.contains(field.name) ? nil : CachedHTTPResponse.Header(name: field.name.rawName, value: field.value)
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds &* 1000 &+ (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }

    static func wholeSeconds(_ duration: Duration) -> Int64 {
        max(0, duration.components.seconds)
    }
}

extension HTTPField.Name {
    // Field names swift-http-types does not predefine. The literals are valid tokens, so the
    // failable initializer cannot fail.
    static let pragma = HTTPField.Name("Pragma")!
    static let keepAlive = HTTPField.Name("Keep-Alive")!
    static let proxyConnection = HTTPField.Name("Proxy-Connection")!
}
