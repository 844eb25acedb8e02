#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall clock the HTTP cache measures ages and remaining freshness with, in milliseconds
/// since the Unix epoch.
///
/// A wall clock (not a monotonic one) because stored responses carry their storage time to
/// other processes and machines sharing the backend. Tests inject a fixed clock to check
/// `max-age` arithmetic without sleeping.
///
/// ```swift
/// let cache = HTTPResponseCache(cache: front, clock: HTTPCacheClock { 1_700_000_000_000 })
/// ```
public struct HTTPCacheClock: Sendable {
    /// Returns the current time in milliseconds since the Unix epoch.
    public let now: @Sendable () -> Int64

    /// Makes a clock from a function.
    /// - Parameter now: Returns the current time in milliseconds since the Unix epoch.
    public init(_ now: @escaping @Sendable () -> Int64) {
        self.now = now
    }

    /// The system's real-time clock.
    public static var system: HTTPCacheClock {
        HTTPCacheClock {
            var spec = timespec()
            clock_gettime(CLOCK_REALTIME, &spec)
            return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
        }
    }
}
