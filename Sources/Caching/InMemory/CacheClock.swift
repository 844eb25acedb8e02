#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The time source of ``InMemoryBackend``: a monotonic count of milliseconds.
///
/// Expiry is computed on this timeline, so a test can make entries expire without waiting by
/// giving the backend a ``ManualClock`` and advancing it:
///
/// ```swift
/// let clock = ManualClock()
/// let backend = try InMemoryBackend(clock: clock)
/// try await backend.set("k", to: [1], ttl: .seconds(30))
/// clock.advance(by: .seconds(31))
/// try await backend.get("k")   // nil
/// ```
///
/// A clock must never go backwards, and must be cheap: the backend reads it on every access to
/// an entry that has a TTL.
public protocol CacheClock: Sendable {
    /// The current time in milliseconds since an origin of the clock's choosing.
    ///
    /// Only differences between two readings of the same clock mean anything.
    func now() -> Int64
}

/// The real monotonic clock, in milliseconds: the time source of `ContinuousClock`.
///
/// It never jumps with wall-clock changes and keeps counting while the machine is suspended,
/// so a TTL measures elapsed real time. It reads the kernel clock directly (`CLOCK_BOOTTIME` on
/// Linux, the clock behind `ContinuousClock`), which skips the 128-bit `Duration` arithmetic of
/// `ContinuousClock.now`: the backend reads it on every read once it holds entries with a TTL.
///
/// This is the clock ``InMemoryBackend`` uses unless it is given another one.
public struct SystemCacheClock: CacheClock {
    /// Creates the system clock.
    public init() {}

    /// Milliseconds on the continuous clock since an unspecified origin (on Linux, the boot).
    public func now() -> Int64 {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_BOOTTIME, &ts)
        #else
        // `ContinuousClock` is `mach_continuous_time` on Darwin, which `CLOCK_MONOTONIC` reads.
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #endif
        return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec) / 1_000_000
    }
}

extension CacheClock where Self == SystemCacheClock {
    /// The real monotonic clock.
    public static var system: SystemCacheClock { SystemCacheClock() }
}
