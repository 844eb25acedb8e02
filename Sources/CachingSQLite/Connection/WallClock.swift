import Caching

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in Unix milliseconds, the unit of the `expires_at` and `accessed_at` columns.
///
/// Expiry is stored as a wall-clock instant, not a monotonic one, because several processes share a
/// store and a monotonic clock means nothing outside the process that read it. A clock step (NTP)
/// moves every expiry by the step, the same as in Redis.
enum WallClock {
    /// Now, in milliseconds since 1970-01-01T00:00:00Z.
    @inline(__always)
    static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) &* 1000 &+ Int64(now.tv_nsec) / 1_000_000
    }

    /// The instant `ttl` after `now`, in milliseconds; `nil` for a `nil` TTL. Saturates instead of overflowing.
    @inline(__always)
    static func expiry(now: Int64, ttl: Duration?) -> Int64? {
        guard let ttl else { return nil }
        let (sum, overflow) = now.addingReportingOverflow(CacheTTL.milliseconds(ttl))
        return overflow ? Int64.max : sum
    }
}
