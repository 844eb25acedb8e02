/// How keys are drawn for each operation.
enum KeyDistribution: Sendable, Equatable, CustomStringConvertible {
    /// Every key equally likely.
    case uniform
    /// Key of rank r drawn with probability proportional to 1 / r^s.
    case zipf(Double)

    /// Parses `uniform`, `zipf` (s = 0.99), `zipf:1.2` or `zipf(1.2)`.
    static func parse(_ text: String) throws(BenchError) -> KeyDistribution {
        let lower = text.lowercased()
        if lower == "uniform" { return .uniform }
        if lower == "zipf" { return .zipf(0.99) }
        for separator in [":", "=", "("] {
            let prefix = "zipf" + separator
            if lower.hasPrefix(prefix) {
                var number = String(lower.dropFirst(prefix.count))
                if separator == "(" {
                    guard number.hasSuffix(")") else { break }
                    number.removeLast()
                }
                guard let s = Double(number), s.isFinite else {
                    throw BenchError("bad Zipf parameter '\(number)' in '\(text)': give a number such as zipf:0.99")
                }
                guard s > 0, s <= 10 else {
                    throw BenchError("bad Zipf parameter \(number): it must be greater than 0 and at most 10 (0.99 is typical; use 'uniform' for no skew)")
                }
                return .zipf(s)
            }
        }
        throw BenchError("unknown key distribution '\(text)': use uniform, zipf or zipf:S (for example zipf:0.99)")
    }

    var description: String {
        switch self {
        case .uniform: "uniform"
        case .zipf(let s): "zipf(\(s))"
        }
    }
}

/// The share of gets, sets and deletes, as integer weights.
struct OperationMix: Sendable, Equatable, CustomStringConvertible {
    var get: Int
    var set: Int
    var delete: Int

    var total: Int { self.get + self.set + self.delete }

    /// Parses `90:10:0`, `90/10`, or `get=90,set=8,delete=2` (missing parts are 0).
    static func parse(_ text: String) throws(BenchError) -> OperationMix {
        var mix = OperationMix(get: 0, set: 0, delete: 0)
        if text.contains("=") {
            for part in text.split(separator: ",") {
                let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
                guard pair.count == 2, let weight = Int(pair[1]), weight >= 0 else {
                    throw BenchError("bad operation mix '\(text)': write get=90,set=8,delete=2")
                }
                switch pair[0].lowercased() {
                case "get", "gets": mix.get = weight
                case "set", "sets": mix.set = weight
                case "delete", "del", "deletes": mix.delete = weight
                default: throw BenchError("bad operation mix '\(text)': unknown operation '\(pair[0])' (get, set, delete)")
                }
            }
        } else {
            let parts = text.split(whereSeparator: { $0 == ":" || $0 == "/" }).map { Int($0.trimmingWhitespace()) }
            guard (1...3).contains(parts.count), parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw BenchError("bad operation mix '\(text)': write GET:SET:DELETE weights such as 90:8:2")
            }
            let weights = parts.map { $0 ?? 0 } + [0, 0]
            mix = OperationMix(get: weights[0], set: weights[1], delete: weights[2])
        }
        guard mix.total > 0 else {
            throw BenchError("bad operation mix '\(text)': at least one weight must be above 0")
        }
        guard mix.total <= 1_000_000 else {
            throw BenchError("bad operation mix '\(text)': weights are too large (keep the sum under 1,000,000)")
        }
        return mix
    }

    var description: String {
        func pct(_ value: Int) -> String {
            let p = Double(value) * 100 / Double(total)
            return p == p.rounded() ? "\(Int(p))%" : Units.fixed(p, 1) + "%"
        }
        var parts: [String] = []
        if get > 0 { parts.append("\(pct(get)) get") }
        if set > 0 { parts.append("\(pct(set)) set") }
        if delete > 0 { parts.append("\(pct(delete)) delete") }
        return parts.joined(separator: " ")
    }
}

/// A value size, fixed or drawn uniformly from a range.
struct ValueSize: Sendable, Equatable, CustomStringConvertible {
    var min: Int
    var max: Int

    static let limit = 16 * 1024 * 1024

    /// Parses `100`, `1k`, `64-1024` or `1KiB-4KiB`.
    static func parse(_ text: String) throws(BenchError) -> ValueSize {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else {
            throw BenchError("bad value size '\(text)': write a size such as 100 or a range such as 64-1024")
        }
        var sizes: [Int] = []
        for part in parts {
            guard let size = parseBytes(String(part)) else {
                throw BenchError("bad value size '\(text)': write a size such as 100, 4k or 1MiB, or a range such as 64-1024")
            }
            sizes.append(size)
        }
        let size = ValueSize(min: sizes[0], max: sizes.last ?? sizes[0])
        guard size.min <= size.max else {
            throw BenchError("bad value size '\(text)': the range must go from small to large")
        }
        guard size.max <= limit else {
            throw BenchError("bad value size '\(text)': at most 16 MiB")
        }
        return size
    }

    private static func parseBytes(_ text: String) -> Int? {
        let lower = text.trimmingWhitespace().lowercased()
        let units: [(String, Int)] = [("mib", 1 << 20), ("kib", 1 << 10), ("mb", 1_000_000), ("kb", 1000), ("m", 1 << 20), ("k", 1 << 10), ("b", 1)]
        for (suffix, multiplier) in units where lower.hasSuffix(suffix) {
            guard let number = Int(lower.dropLast(suffix.count).trimmingWhitespace()), number >= 0 else { return nil }
            return number * multiplier
        }
        guard let number = Int(lower), number >= 0 else { return nil }
        return number
    }

    var description: String {
        min == max ? Units.bytes(min) : "\(Units.bytes(min))–\(Units.bytes(max))"
    }
}

/// How values are turned into bytes for the run.
enum CoderChoice: String, Sendable, CaseIterable {
    /// `[UInt8]` values, stored as they are (no coder; comparable byte for byte with the C reference).
    case raw
    /// A 5-field `Codable` record through swift-caching's `BinaryCoder`.
    case binary
    /// The same record through `JSONCoder`.
    case json
}

/// When a measurement stops.
enum StopRule: Sendable, Equatable, CustomStringConvertible {
    case duration(Duration)
    case operations(Int)

    var description: String {
        switch self {
        case .duration(let d): Units.duration(d)
        case .operations(let n): "\(Units.grouped(Double(n))) calls"
        }
    }
}

/// Everything that defines one workload.
struct WorkloadSpec: Sendable, Equatable {
    var name: String
    var mix: OperationMix
    var keyCount: Int
    var distribution: KeyDistribution
    var valueSize: ValueSize
    var ttl: Duration?
    var concurrency: Int
    var stop: StopRule
    var batch: Int
    var coder: CoderChoice

    /// One line for table headings.
    var summary: String {
        var parts = [mix.description]
        if batch > 1 { parts.append("batches of \(batch)") }
        parts.append("\(Units.grouped(Double(keyCount))) keys \(distribution)")
        parts.append(valueSize.description)
        parts.append(ttl.map { "ttl \(Units.duration($0))" } ?? "no ttl")
        parts.append(concurrency == 1 ? "1 task" : "\(concurrency) tasks")
        parts.append(stop.description)
        parts.append("coder \(coder.rawValue)")
        return parts.joined(separator: " · ")
    }

    /// Whether any operation is a get (hit ratio is meaningful).
    var hasGets: Bool { mix.get > 0 }
}

/// The named workloads that `cache-bench` runs by default.
enum WorkloadPreset: String, CaseIterable, Sendable {
    case get
    case set
    case concurrent
    case mixed
    case batchGet = "batch-get"
    case batchSet = "batch-set"

    /// What the preset measures, for `--help`.
    var purpose: String {
        switch self {
        case .get: "one task, sequential gets that hit (the per-call cost; issues 3, 4, 5)"
        case .set: "one task, sequential sets"
        case .concurrent: "64 tasks of gets (how well concurrent callers share connections)"
        case .mixed: "16 tasks, 90/8/2 get/set/delete on Zipf(0.99) keys, 64–512 B values"
        case .batchGet: "one task, gets of 100 keys per call (MGET, multi-get)"
        case .batchSet: "one task, sets of 100 keys per call (pipeline, one transaction)"
        }
    }

    func spec(defaultStop: StopRule) -> WorkloadSpec {
        var spec = WorkloadSpec(
            name: rawValue, mix: OperationMix(get: 100, set: 0, delete: 0), keyCount: 10_000,
            distribution: .uniform, valueSize: ValueSize(min: 100, max: 100), ttl: .seconds(300),
            concurrency: 1, stop: defaultStop, batch: 1, coder: .binary
        )
        switch self {
        case .get: break
        case .set: spec.mix = OperationMix(get: 0, set: 100, delete: 0)
        case .concurrent: spec.concurrency = 64
        case .mixed:
            spec.mix = OperationMix(get: 90, set: 8, delete: 2)
            spec.distribution = .zipf(0.99)
            spec.valueSize = ValueSize(min: 64, max: 512)
            spec.concurrency = 16
        case .batchGet: spec.batch = 100
        case .batchSet:
            spec.mix = OperationMix(get: 0, set: 100, delete: 0)
            spec.batch = 100
        }
        return spec
    }
}

/// Parses `3s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
func parseDuration(_ text: String, what: String) throws(BenchError) -> Duration {
    let lower = text.trimmingWhitespace().lowercased()
    let units: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("µs", 0.000_001), ("s", 1), ("m", 60), ("h", 3600)]
    var seconds: Double?
    for (suffix, scale) in units where lower.hasSuffix(suffix) {
        if let number = Double(lower.dropLast(suffix.count)) { seconds = number * scale }
        break
    }
    if seconds == nil, let number = Double(lower) { seconds = number }
    guard let seconds, seconds.isFinite else {
        throw BenchError("bad \(what) '\(text)': write a duration such as 3s, 500ms or 2m")
    }
    guard seconds > 0 else {
        throw BenchError("bad \(what) '\(text)': it must be greater than 0")
    }
    guard seconds <= 86_400 * 365 else {
        throw BenchError("bad \(what) '\(text)': too long")
    }
    return .nanoseconds(Int64(seconds * 1e9))
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
