import Metrics

/// The counters of one ``HTTPResponseCache``, created once (metric objects are not cheap to
/// make per request) with labels and dimensions in the swift-metrics style:
///
/// | label | dimensions |
/// |---|---|
/// | `http.cache.requests` | `result`: `hit`, `not_modified`, `miss`, `bypass`, `coalesced`, `stale` |
/// | `http.cache.stores` | `result`: `stored`, `skipped` |
/// | `http.cache.errors` | `operation`: `lookup`, `store`, `decode` |
///
/// `http.cache.errors` counts backend failures the cache absorbed (fail-open): the request was
/// served uncached. `coalesced` counts requests that waited for a concurrent miss of the same
/// key; each is then counted again as the `hit` (or `miss`) it ended as.
struct HTTPCacheMetrics: Sendable {
    let hits: Counter
    let notModified: Counter
    let misses: Counter
    let bypasses: Counter
    let coalesced: Counter
    let stale: Counter
    let stored: Counter
    let skipped: Counter
    let lookupErrors: Counter
    let storeErrors: Counter
    let decodeErrors: Counter

    init(namespace: String, factory: (any MetricsFactory)?) {
        func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
            let all = [("namespace", namespace)] + dimensions
            if let factory { return Counter(label: label, dimensions: all, factory: factory) }
            return Counter(label: label, dimensions: all)
        }
        hits = counter("http.cache.requests", [("result", "hit")])
        notModified = counter("http.cache.requests", [("result", "not_modified")])
        misses = counter("http.cache.requests", [("result", "miss")])
        bypasses = counter("http.cache.requests", [("result", "bypass")])
        coalesced = counter("http.cache.requests", [("result", "coalesced")])
        stale = counter("http.cache.requests", [("result", "stale")])
        stored = counter("http.cache.stores", [("result", "stored")])
        skipped = counter("http.cache.stores", [("result", "skipped")])
        lookupErrors = counter("http.cache.errors", [("operation", "lookup")])
        storeErrors = counter("http.cache.errors", [("operation", "store")])
        decodeErrors = counter("http.cache.errors", [("operation", "decode")])
    }
}
