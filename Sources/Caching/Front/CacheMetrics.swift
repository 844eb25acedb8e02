import Metrics

/// The metric objects of one family of fronts, made once (swift-metrics guidance: never per call,
/// never with keys in dimensions).
///
/// - `cache.requests` with dimensions `backend` and `result` (`hit` / `miss`);
/// - `cache.errors` with dimensions `backend` and `operation` (`read` / `write` / `decode`).
struct CacheMetrics: Sendable {
    let hits: Counter
    let misses: Counter
    let readErrors: Counter
    let writeErrors: Counter
    let decodeErrors: Counter

    init(backend: String) {
        hits = Counter(label: "cache.requests", dimensions: [("backend", backend), ("result", "hit")])
        misses = Counter(label: "cache.requests", dimensions: [("backend", backend), ("result", "miss")])
        readErrors = Counter(label: "cache.errors", dimensions: [("backend", backend), ("operation", "read")])
        writeErrors = Counter(label: "cache.errors", dimensions: [("backend", backend), ("operation", "write")])
        decodeErrors = Counter(label: "cache.errors", dimensions: [("backend", backend), ("operation", "decode")])
    }
}
