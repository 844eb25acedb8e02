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

/// The real monotonic clock (`CLOCK_MONOTONIC`), in milliseconds.
///
/// It never jumps with wall-clock changes. On Linux it does not count time the machine spends
/// suspended (`SuspendingClock`'s semantics), so an entry's TTL is paused during a suspend;
/// servers do not suspend, and this timeline is the one the kernel also offers as a cheap
/// coarse reading, which ``InMemoryBackend`` uses on its read path: a hit on an entry far from its
/// expiry costs no precise clock reading, and reports a remaining TTL at most one kernel tick
/// (1 to 10 ms) short.
///
/// This is the clock ``InMemoryBackend`` uses unless it is given another one.
public struct SystemCacheClock: CacheClock {
    /// Creates the system clock.
    public init() {}

    /// Milliseconds on the monotonic clock since an unspecified origin (on Linux, the boot).
    public func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec) / 1_000_000
    }

    /// A reading that is never earlier than `now()` would return at this instant, from the
    /// kernel's coarse clock: a few nanoseconds instead of the tens to hundreds that a precise
    /// reading costs on virtual machines without a fast vDSO clock. `nil` where there is no
    /// coarse clock.
    ///
    /// The coarse clock lags the precise one by less than its resolution (one kernel tick,
    /// 1 to 10 ms), so adding the resolution gives an upper bound. The backend only uses it to
    /// tell that an entry is certainly not expired yet; near the expiry it reads `now()`.
    @inline(__always)
    static func coarseUpperBound(lagNanoseconds: Int64) -> Int64 {
        #if os(Linux)
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        let nanoseconds = Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec) &+ lagNanoseconds
        return nanoseconds / 1_000_000 &+ 1
        #else
        return SystemCacheClock().now() &+ 1
        #endif
    }

    /// How far the coarse clock may lag `now()`, in nanoseconds, or `nil` where there is no
    /// coarse clock (the read path then always reads the precise clock).
    static func coarseLagNanoseconds() -> Int64? {
        #if os(Linux)
        var resolution = timespec()
        guard clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0 else { return nil }
        let nanoseconds = Int64(resolution.tv_sec) * 1_000_000_000 + Int64(resolution.tv_nsec)
        // A coarse clock as slow as 50 ms would make the remaining TTLs reported too rough.
        guard nanoseconds > 0, nanoseconds <= 50_000_000 else { return nil }
        return nanoseconds
        #else
        return nil
        #endif
    }
}

extension CacheClock where Self == SystemCacheClock {
    /// The real monotonic clock.
    public static var system: SystemCacheClock { SystemCacheClock() }
}
