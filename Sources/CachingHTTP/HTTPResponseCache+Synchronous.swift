import Caching
public import HTTPTypes

/// The synchronous hit path: a fresh hit from a backend that reads without suspending, with no
/// task.
extension HTTPResponseCache {
    /// Answers `request` on the spot when it is a fresh hit (or a `304` for one) and the backend
    /// reads without suspending (``CacheFront/readsSynchronously``, as with `InMemoryBackend`);
    /// everything else is left to ``lookup(continuing:logger:)``. Uses the
    /// policy's key builder.
    ///
    /// For an adapter whose framework charges for `async` code, as Vapor does with a `Task` for
    /// each request: it answers hits without one, and starts one only for the rest.
    /// ```swift
    /// switch cache.lookupSynchronously(head) {
    /// case .respond(let reply):
    ///     return eventLoop.makeSucceededFuture(makeResponse(reply))        // no task
    /// case .pending(let pending):
    ///     return eventLoop.makeFutureWithTask {
    ///         switch await cache.lookup(continuing: pending) { … }                    // as after lookup(_:logger:)
    ///     }
    /// }
    /// ```
    /// - Parameter request: The request head.
    /// - Returns: A reply to send, or the lookup to finish asynchronously.
    public func lookupSynchronously(_ request: HTTPRequest) -> HTTPCacheSynchronousLookup {
        guard isCachedMethod(request.method) else {
            return .pending(HTTPCachePendingLookup(request: request, resourceKey: nil, prefetched: .none))
        }
        return lookupSynchronously(request, resourceKey: policy.keyBuilder(request))
    }

    /// Answers `request` on the spot when it is a fresh hit (or a `304` for one) and the backend
    /// reads without suspending, with a resource key the caller built; everything else is left
    /// to ``lookup(continuing:logger:)``.
    ///
    /// It answers exactly what ``lookup(_:resourceKey:logger:)`` would answer for a fresh hit,
    /// with the same code (freshness, the request's `Cache-Control`, `If-None-Match`,
    /// `If-Modified-Since`, HEAD from the stored GET) and the same counters, and logs nothing.
    /// Every other case returns ``HTTPCacheSynchronousLookup/pending(_:)`` without side effects
    /// (bypasses, misses, stale responses, coalescing, backend errors, entries that cannot be
    /// decoded), and the asynchronous lookup decides them as it always does: from what this one
    /// read, so the backend is read once and its hits and misses counted once.
    /// - Parameters:
    ///   - request: The request head.
    ///   - resourceKey: The resource part of the key, or `nil` to leave the request uncached.
    /// - Returns: A reply to send, or the lookup to finish asynchronously.
    public func lookupSynchronously(_ request: HTTPRequest, resourceKey: String?) -> HTTPCacheSynchronousLookup {
        let pending = HTTPCachePendingLookup(request: request, resourceKey: resourceKey, prefetched: .none)
        guard readsSynchronously, case .read(let plan) = admission(of: request, resourceKey: resourceKey) else {
            return .pending(pending)
        }
        guard let prefetched = readSynchronously(plan.key, request: request) else { return .pending(pending) }
        let now = clock.now()
        guard case .read(let found) = prefetched, case .fresh(let stored) = Self.usability(of: found, for: plan.directives, now: now) else {
            return .pending(HTTPCachePendingLookup(request: request, resourceKey: resourceKey, prefetched: prefetched))
        }
        return .respond(answer(stored, to: request, status: .hit, now: now))
    }

    /// ``read(_:request:logger:)`` without suspending: what is stored for `key` (following a
    /// Vary record to the request's variant), or `nil` when it cannot be read so. That is when
    /// the backend cannot read synchronously, fails, or holds an entry that cannot be decoded:
    /// the asynchronous read then logs, counts and removes as it always does.
    func readSynchronously(_ key: String, request: HTTPRequest) -> HTTPCachePendingLookup.Prefetch? {
        switch recordSynchronously(key) {
        case .unavailable:
            return nil
        case .missing:
            return .read(nil)
        case .found(.response(let response)):
            return .read(response)
        case .found(.vary(let names)):
            switch recordSynchronously(Self.variantKey(key, names: names, fields: request.headerFields)) {
            case .unavailable: return nil
            case .missing: return .read(nil)
            case .found(.response(let response)): return .read(response)
            case .found(.vary): return .read(nil)   // as the asynchronous read: a variant is a response
            }
        }
    }

    private enum SynchronousRecord {
        case found(StoredRecord)
        case missing
        case unavailable
    }

    private func recordSynchronously(_ key: String) -> SynchronousRecord {
        let read: CacheFront.SynchronousRead<[UInt8]>
        do {
            read = try storage.getSynchronously(key, as: [UInt8].self)
        } catch {
            return .unavailable
        }
        switch read {
        case .hit(let bytes, _):
            guard let record = try? StoredRecord(serialized: bytes) else { return .unavailable }
            return .found(record)
        case .miss:
            return .missing
        case .unavailable:
            return .unavailable
        }
    }
}

/// What ``HTTPResponseCache/lookupSynchronously(_:)`` decided for a request.
public enum HTTPCacheSynchronousLookup: Sendable {
    /// A fresh hit (or a `304` for one): send this reply; the endpoint is not called.
    case respond(HTTPCacheReply)
    /// Finish with ``HTTPResponseCache/lookup(continuing:logger:)`` and
    /// handle its ``HTTPCacheLookup`` as usual.
    case pending(HTTPCachePendingLookup)
}

/// A lookup that ``HTTPResponseCache/lookupSynchronously(_:)`` could not finish without
/// suspending, with what it already read. Give it to
/// ``HTTPResponseCache/lookup(continuing:logger:)`` of the same cache.
public struct HTTPCachePendingLookup: Sendable {
    /// What the synchronous lookup read.
    enum Prefetch: Sendable {
        /// Nothing: the asynchronous lookup reads the backend.
        case none
        /// What is stored for the request (`nil`: nothing usable), read moments ago; the
        /// asynchronous lookup decides from it without reading again.
        case read(StoredResponse?)
    }

    /// The request head.
    public let request: HTTPRequest
    /// The resource key the lookup uses (`nil`: the request is not cached).
    public let resourceKey: String?
    let prefetched: Prefetch
}
