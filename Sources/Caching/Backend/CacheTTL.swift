/// Helpers that every backend uses to turn a TTL into the unit its store keeps.
///
/// A TTL is a `Duration`; `nil` means "never expires" at the backend level. Zero and negative
/// TTLs are refused with ``CacheError/Code/invalidTTL`` everywhere, so no backend silently stores
/// a value that is already dead (Redis refuses `PX 0`, memcached treats `0` as "forever").
public enum CacheTTL {
    /// Checks that `ttl` is positive.
    /// - Throws: ``CacheError/Code/invalidTTL`` when it is zero or negative.
    @inlinable
    public static func validate(_ ttl: Duration?) throws(CacheError) {
        if let ttl, ttl <= .zero { throw CacheError.invalidTTL(ttl) }
    }

    /// Whole milliseconds, rounded up so that a TTL never becomes shorter than asked.
    ///
    /// ```swift
    /// CacheTTL.milliseconds(.microseconds(1500))  // 2
    /// ```
    @inlinable
    public static func milliseconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        let perMilli: Int64 = 1_000_000_000_000_000
        var ms = seconds.multipliedReportingOverflow(by: 1000)
        if ms.overflow { return seconds < 0 ? Int64.min : Int64.max }
        ms.partialValue += attoseconds / perMilli
        if attoseconds % perMilli > 0 { ms.partialValue += 1 }
        return ms.partialValue
    }

    /// Whole seconds, rounded up (memcached's precision).
    @inlinable
    public static func seconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        return attoseconds > 0 && seconds < Int64.max ? seconds + 1 : seconds
    }
}
