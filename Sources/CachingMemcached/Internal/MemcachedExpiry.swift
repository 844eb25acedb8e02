#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Caching

/// TTLs as memcached takes them, and the expiry this backend records in each item's flags.
///
/// memcached keeps whole seconds, reads an expiration over 30 days as an absolute Unix time,
/// and ticks its clock once a second, so an item stored with expiration `n` may vanish after
/// anything from `n - 1` to `n` seconds. This backend therefore:
/// - rounds a TTL up to whole seconds and sends one second more, so memcached never drops an
///   item before its TTL;
/// - records the exact expiry (Unix seconds, rounded up) in the item's 32-bit flags, and treats
///   an item whose recorded expiry has passed as absent, so reads see the TTL asked for, not
///   memcached's rounding; the same field gives ``CacheEntry/ttl``;
/// - sends TTLs whose seconds exceed 30 days as an absolute Unix time.
///
/// Flags 0 means "never expires". Expiries beyond 2106 (the end of 32-bit Unix time) are capped there.
enum MemcachedExpiry {
    /// memcached reads an expiration above this many seconds as an absolute Unix time.
    static let relativeLimit: Int64 = 60 * 60 * 24 * 30

    /// The expiration to send and the flags to store for one write.
    struct Plan: Sendable, Equatable {
        /// memcached's expiration field: 0 (never), seconds from now, or an absolute Unix time.
        var exptime: time_t
        /// The expiry recorded with the item: Unix seconds, or 0 for never.
        var flags: UInt32
    }

    /// The wall clock in nanoseconds since 1970.
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// What to send for `ttl` (already validated as positive or nil) at wall-clock time `now`.
    static func plan(_ ttl: Duration?, now: Int64) -> Plan {
        guard let ttl else { return Plan(exptime: 0, flags: 0) }
        let ttlNanoseconds = max(ttl.nanoseconds, 1)
        let (expiry, overflow) = now.addingReportingOverflow(ttlNanoseconds)
        let maxSeconds = Int64(UInt32.max) - 1
        var expirySeconds = overflow ? maxSeconds : expiry / 1_000_000_000 + (expiry % 1_000_000_000 > 0 ? 1 : 0)
        expirySeconds = min(max(expirySeconds, 1), maxSeconds)
        let seconds = CacheTTL.seconds(ttl)
        let exptime: Int64
        if seconds < relativeLimit {
            exptime = seconds + 1
        } else {
            exptime = expirySeconds + 1
        }
        return Plan(exptime: time_t(exptime), flags: UInt32(expirySeconds))
    }

    /// Whether an item with these flags is still alive at `now`, and its remaining TTL.
    /// - Returns: `nil` when it has expired; `.some(nil)` when it never expires.
    static func remaining(flags: UInt32, now: Int64) -> Duration?? {
        if flags == 0 { return .some(nil) }
        let expiry = Int64(flags) * 1_000_000_000
        if now >= expiry { return nil }
        return .some(.nanoseconds(expiry - now))
    }
}
