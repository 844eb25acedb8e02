import Histogram

/// Latency percentiles of one measurement, per call, in nanoseconds.
struct LatencySummary: Codable, Sendable {
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    init(_ histogram: Histogram<UInt64>) {
        if histogram.totalCount == 0 {
            p50 = 0; p90 = 0; p99 = 0; p999 = 0; max = 0; mean = 0
            return
        }
        p50 = Double(histogram.valueAtPercentile(50))
        p90 = Double(histogram.valueAtPercentile(90))
        p99 = Double(histogram.valueAtPercentile(99))
        p999 = Double(histogram.valueAtPercentile(99.9))
        max = Double(histogram.max)
        mean = histogram.mean
    }

    init(p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double) {
        self.p50 = p50; self.p90 = p90; self.p99 = p99; self.p999 = p999; self.max = max; self.mean = mean
    }
}

/// Which kind of thing produced a row.
enum TargetKind: String, Codable, Sendable {
    /// A swift-caching backend through the front.
    case swift
    /// The C reference loop (`--reference`).
    case reference
    /// An external tool such as `redis-benchmark`.
    case external
}

/// One backend's result on one workload.
struct BenchResult: Codable, Sendable {
    /// The row label: `memory`, `redis`, `C hiredis`, ...
    var target: String
    var kind: TargetKind
    /// For reference rows: the backend this is the C limit of (`redis`, `memcached`, `sqlite`).
    var referenceFor: String?
    /// Calls made (a batch call counts once).
    var calls: UInt64
    /// Keys touched (a batch call counts its keys); throughput is keys per second.
    var keys: UInt64
    /// Measured wall time, seconds.
    var seconds: Double
    /// Keys per second.
    var opsPerSecond: Double
    /// Calls per second.
    var callsPerSecond: Double
    /// Latency per call.
    var latency: LatencySummary
    var hits: UInt64
    var misses: UInt64
    var errors: UInt64
    /// The first error message, if any.
    var firstError: String?
    /// Concurrent callers (tasks, threads or connections) that produced the figure.
    var concurrency: Int
    /// Where the work ran (CPU numbers), for the placement report.
    var placement: String?
    /// Extra words about this row (for example how an external tool was run).
    var note: String?

    /// With `--rounds`: every round's throughput (the row is the median round).
    var roundRates: [Double]?

    /// Filled in by the report: this row's throughput divided by the fastest row's.
    var ratioToFastest: Double?
    /// Filled in by the report: this row's throughput divided by its C reference's.
    var ratioToReference: Double?

    /// Hits over gets, or nil when the workload made no gets.
    var hitRatio: Double? {
        hits + misses == 0 ? nil : Double(hits) / Double(hits + misses)
    }

    enum CodingKeys: String, CodingKey {
        case target, kind, referenceFor, calls, keys, seconds, opsPerSecond, callsPerSecond, latency
        case hits, misses, errors, firstError, concurrency, placement, note, ratioToFastest, ratioToReference
        case hitRatio, roundRates
    }

    init(target: String, kind: TargetKind, referenceFor: String? = nil, calls: UInt64, keys: UInt64, seconds: Double,
         latency: LatencySummary, hits: UInt64, misses: UInt64, errors: UInt64, firstError: String?,
         concurrency: Int, placement: String? = nil, note: String? = nil) {
        self.target = target
        self.kind = kind
        self.referenceFor = referenceFor
        self.calls = calls
        self.keys = keys
        self.seconds = seconds
        self.opsPerSecond = seconds > 0 ? Double(keys) / seconds : 0
        self.callsPerSecond = seconds > 0 ? Double(calls) / seconds : 0
        self.latency = latency
        self.hits = hits
        self.misses = misses
        self.errors = errors
        self.firstError = firstError
        self.concurrency = concurrency
        self.placement = placement
        self.note = note
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        target = try c.decode(String.self, forKey: .target)
        kind = try c.decode(TargetKind.self, forKey: .kind)
        referenceFor = try c.decodeIfPresent(String.self, forKey: .referenceFor)
        calls = try c.decode(UInt64.self, forKey: .calls)
        keys = try c.decode(UInt64.self, forKey: .keys)
        seconds = try c.decode(Double.self, forKey: .seconds)
        opsPerSecond = try c.decode(Double.self, forKey: .opsPerSecond)
        callsPerSecond = try c.decode(Double.self, forKey: .callsPerSecond)
        latency = try c.decode(LatencySummary.self, forKey: .latency)
        hits = try c.decode(UInt64.self, forKey: .hits)
        misses = try c.decode(UInt64.self, forKey: .misses)
        errors = try c.decode(UInt64.self, forKey: .errors)
        firstError = try c.decodeIfPresent(String.self, forKey: .firstError)
        concurrency = try c.decode(Int.self, forKey: .concurrency)
        placement = try c.decodeIfPresent(String.self, forKey: .placement)
        note = try c.decodeIfPresent(String.self, forKey: .note)
        ratioToFastest = try c.decodeIfPresent(Double.self, forKey: .ratioToFastest)
        ratioToReference = try c.decodeIfPresent(Double.self, forKey: .ratioToReference)
        roundRates = try c.decodeIfPresent([Double].self, forKey: .roundRates)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(target, forKey: .target)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(referenceFor, forKey: .referenceFor)
        try c.encode(calls, forKey: .calls)
        try c.encode(keys, forKey: .keys)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(opsPerSecond, forKey: .opsPerSecond)
        try c.encode(callsPerSecond, forKey: .callsPerSecond)
        try c.encode(latency, forKey: .latency)
        try c.encode(hits, forKey: .hits)
        try c.encode(misses, forKey: .misses)
        try c.encodeIfPresent(hitRatio, forKey: .hitRatio)
        try c.encode(errors, forKey: .errors)
        try c.encodeIfPresent(firstError, forKey: .firstError)
        try c.encode(concurrency, forKey: .concurrency)
        try c.encodeIfPresent(placement, forKey: .placement)
        try c.encodeIfPresent(note, forKey: .note)
        try c.encodeIfPresent(ratioToFastest, forKey: .ratioToFastest)
        try c.encodeIfPresent(ratioToReference, forKey: .ratioToReference)
        try c.encodeIfPresent(roundRates, forKey: .roundRates)
    }
}

/// The histogram every runner records into: 1 ns to 60 s, three significant digits.
func makeLatencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

extension Histogram where Count == UInt64 {
    /// Records `nanoseconds`, clamped into the trackable range.
    @inline(__always)
    mutating func recordClamped(_ nanoseconds: UInt64) {
        _ = record(Swift.min(Swift.max(nanoseconds, 1), 60_000_000_000))
    }
}
