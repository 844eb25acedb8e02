import Synchronization

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

/// A wall clock that moves only when told: tests of `max-age`, ages and stale windows without
/// sleeping.
///
/// ```swift
/// let time = ManualHTTPCacheClock()
/// let cache = HTTPResponseCache(cache: front, clock: time.clock)
/// // ... store a response with max-age=60 ...
/// time.advance(by: .seconds(61))   // now it is stale
/// ```
public final class ManualHTTPCacheClock: Sendable {
    private let current: Mutex<Int64>

    /// Creates a clock that reads `milliseconds` since the Unix epoch until it is advanced.
    /// - Parameter milliseconds: The starting time; by default 2023-11-14T22:13:20Z.
    public init(milliseconds: Int64 = 1_700_000_000_000) {
        current = Mutex(milliseconds)
    }

    /// The time it reads now, in milliseconds since the Unix epoch.
    public var milliseconds: Int64 { current.withLock { $0 } }

    /// The clock to give to ``HTTPResponseCache`` (or a middleware): it reads this object.
    public var clock: HTTPCacheClock { HTTPCacheClock { self.milliseconds } }

    /// Moves the time forward by `duration` (whole milliseconds; a negative one moves it back).
    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        current.withLock { $0 += seconds * 1000 + attoseconds / 1_000_000_000_000_000 }
    }
}
