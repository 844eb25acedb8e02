#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Draws ranks 1...n with probability proportional to 1 / rank^s (a Zipf distribution), in
/// constant time and memory, for any `s > 0` (including `s == 1`).
///
/// The method is rejection-inversion (W. Hörmann and G. Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", ACM TOMACS 1996), as in Apache
/// Commons RNG's `RejectionInversionZipfSampler`.
struct ZipfSampler: Sendable {
    let n: Int
    let exponent: Double
    private let hIntegralX1: Double
    private let hIntegralN: Double
    private let s: Double

    /// - Parameters:
    ///   - n: the number of elements (ranks 1...n), at least 1.
    ///   - exponent: the skew `s`, greater than 0.
    init(n: Int, exponent: Double) {
        precondition(n >= 1 && exponent > 0 && exponent.isFinite, "validated by the caller")
        self.n = n
        self.exponent = exponent
        hIntegralX1 = Self.hIntegral(1.5, exponent) - 1
        hIntegralN = Self.hIntegral(Double(n) + 0.5, exponent)
        s = 2 - Self.hIntegralInverse(Self.hIntegral(2.5, exponent) - Self.h(2, exponent), exponent)
    }

    /// A rank in 1...n; rank 1 is the most frequent.
    @inline(__always)
    func sample(_ rng: inout Xoshiro256) -> Int {
        while true {
            let u = hIntegralN + rng.nextUnit() * (hIntegralX1 - hIntegralN)
            let x = Self.hIntegralInverse(u, exponent)
            var k = Int(x + 0.5)
            if k < 1 { k = 1 } else if k > n { k = n }
            if Double(k) - x <= s || u >= Self.hIntegral(Double(k) + 0.5, exponent) - Self.h(Double(k), exponent) {
                return k
            }
        }
    }

    private static func h(_ x: Double, _ e: Double) -> Double {
        exp(-e * log(x))
    }

    private static func hIntegral(_ x: Double, _ e: Double) -> Double {
        let logX = log(x)
        return helper2((1 - e) * logX) * logX
    }

    private static func hIntegralInverse(_ x: Double, _ e: Double) -> Double {
        var t = x * (1 - e)
        if t < -1 { t = -1 }
        return exp(helper1(t) * x)
    }

    /// log(1 + x) / x, accurate near 0.
    private static func helper1(_ x: Double) -> Double {
        abs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }

    /// (exp(x) - 1) / x, accurate near 0.
    private static func helper2(_ x: Double) -> Double {
        abs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3 * (1 + 0.25 * x))
    }
}
