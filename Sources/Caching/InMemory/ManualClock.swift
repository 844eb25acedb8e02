import Synchronization

/// A ``CacheClock`` that stands still until it is told to move: for tests of expiry.
///
/// ```swift
/// let clock = ManualClock()
/// let backend = try InMemoryBackend(clock: clock)
/// try await backend.set("session", to: token, ttl: .milliseconds(1500))
/// clock.advance(by: .seconds(1))
/// #expect(try await backend.get("session")?.ttl == .milliseconds(500))
/// clock.advance(by: .milliseconds(500))
/// #expect(try await backend.get("session") == nil)
/// ```
///
/// It keeps nanoseconds, so many small advances add up exactly; ``now()`` reports whole
/// milliseconds. It is safe to share between tasks.
public final class ManualClock: CacheClock {
    private let nanoseconds: Atomic<Int64>

    /// Creates a clock that reads `start`.
    /// - Parameter start: the first reading; the origin does not matter to the backend.
    public init(start: Duration = .zero) {
        nanoseconds = Atomic(Self.nanoseconds(of: start))
    }

    /// The current reading in milliseconds (rounded down).
    public func now() -> Int64 {
        nanoseconds.load(ordering: .acquiring) / 1_000_000
    }

    /// The current reading as a `Duration` since the clock's origin.
    public var elapsed: Duration {
        .nanoseconds(nanoseconds.load(ordering: .acquiring))
    }

    /// Moves the clock forward by `duration`.
    ///
    /// A negative duration is ignored: like the system clock, a manual clock never goes back.
    /// - Parameter duration: how far to move; kept to the nanosecond.
    public func advance(by duration: Duration) {
        let delta = Self.nanoseconds(of: duration)
        guard delta > 0 else { return }
        _ = nanoseconds.wrappingAdd(delta, ordering: .acquiringAndReleasing)
    }

    /// Whole nanoseconds in `duration`, rounded down and clamped to `Int64`.
    private static func nanoseconds(of duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }
}
