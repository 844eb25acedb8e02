import Synchronization

/// Counts calls from many tasks: how tests tell a cache hit (the computation did not run) from
/// a miss.
///
/// ```swift
/// let calls = CallCounter()
/// _ = try await cache.getOrSet("k") { calls.increment(); return 42 }
/// _ = try await cache.getOrSet("k") { calls.increment(); return 42 }
/// #expect(calls.count == 1)
/// ```
public final class CallCounter: Sendable {
    private let value = Atomic<Int>(0)

    /// Creates a counter at zero.
    public init() {}

    /// Counts one call and returns the count after it (1 for the first call).
    @discardableResult
    public func increment() -> Int { value.add(1, ordering: .relaxed).newValue }

    /// The calls counted so far.
    public var count: Int { value.load(ordering: .relaxed) }
}
