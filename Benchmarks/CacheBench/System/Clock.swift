import CReference

/// The monotonic clock in nanoseconds: one vDSO call, cheap enough to time every operation.
@inline(__always)
func nowNanos() -> UInt64 {
    cref_now_ns()
}

/// Formatting of durations and rates for people.
enum Units {
    /// `850ns`, `12.3µs`, `1.20ms`, `2.35s`.
    static func latency(nanoseconds value: Double) -> String {
        if value.isNaN { return "—" }
        switch value {
        case ..<1_000: return "\(Int(value.rounded()))ns"
        case ..<10_000: return fixed(value / 1_000, 2) + "µs"
        case ..<100_000: return fixed(value / 1_000, 1) + "µs"
        case ..<1_000_000: return "\(Int((value / 1_000).rounded()))µs"
        case ..<10_000_000: return fixed(value / 1_000_000, 2) + "ms"
        case ..<100_000_000: return fixed(value / 1_000_000, 1) + "ms"
        case ..<1_000_000_000: return "\(Int((value / 1_000_000).rounded()))ms"
        default: return fixed(value / 1_000_000_000, 2) + "s"
        }
    }

    /// `1,234,567`.
    static func grouped(_ value: Double) -> String {
        let rounded = Int64(value.rounded())
        let digits = String(rounded.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return rounded < 0 ? "-" + out : out
    }

    /// `1.23M`, `456k`, `789`.
    static func compact(_ value: Double) -> String {
        switch value {
        case 1_000_000_000...: return fixed(value / 1_000_000_000, 2) + "G"
        case 1_000_000...: return fixed(value / 1_000_000, 2) + "M"
        case 10_000...: return "\(Int((value / 1_000).rounded()))k"
        case 1_000...: return fixed(value / 1_000, 1) + "k"
        default: return "\(Int(value.rounded()))"
        }
    }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        if value.isNaN || value.isInfinite { return "—" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        let negative = scaled < 0
        let whole = Int64(abs(scaled))
        let intPart = whole / Int64(scale)
        let fracPart = whole % Int64(scale)
        var text = String(intPart)
        if digits > 0 {
            var frac = String(fracPart)
            while frac.count < digits { frac = "0" + frac }
            text += "." + frac
        }
        return negative ? "-" + text : text
    }

    /// `300ms`, `5s`, `2m`.
    static func duration(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        if ms < 1000 { return "\(Int(ms.rounded()))ms" }
        if ms.truncatingRemainder(dividingBy: 60_000) == 0 { return "\(Int(ms / 60_000))m" }
        if ms.truncatingRemainder(dividingBy: 1000) == 0 { return "\(Int(ms / 1000))s" }
        return fixed(ms / 1000, 1) + "s"
    }

    /// `100 B`, `1.5 KiB`, `64–256 B`.
    static func bytes(_ value: Int) -> String {
        if value < 1024 { return "\(value) B" }
        if value < 1024 * 1024 { return fixed(Double(value) / 1024, value % 1024 == 0 ? 0 : 1) + " KiB" }
        return fixed(Double(value) / 1_048_576, value % 1_048_576 == 0 ? 0 : 1) + " MiB"
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: UInt64 {
        let (s, atto) = components
        if s < 0 { return 0 }
        let (ns, overflow) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max : ns + UInt64(atto / 1_000_000_000)
    }
}
