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

    init(backend: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        func counter(_ label: String, _ key: String, _ value: String) -> Counter {
            Counter(label: label, dimensions: [("backend", backend), (key, value)], factory: factory)
        }
        hits = counter("cache.requests", "result", "hit")
        misses = counter("cache.requests", "result", "miss")
        readErrors = counter("cache.errors", "operation", "read")
        writeErrors = counter("cache.errors", "operation", "write")
        decodeErrors = counter("cache.errors", "operation", "decode")
    }
}
