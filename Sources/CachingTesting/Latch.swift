import Synchronization

/// A one-shot latch for tests: tasks that ``wait()`` stay suspended until ``open()`` is called,
/// then every waiter (and every later `wait()`) goes on at once.
///
/// Useful to hold a computation mid-flight while other tasks pile up behind it, for example to
/// check that concurrent misses on one key run the computation once:
/// ```swift
/// let latch = Latch()
/// async let first = cache.getOrSet("k") { await latch.wait(); return 1 }
/// // ... start more callers, then:
/// latch.open()
/// ```
public final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Creates a closed latch.
    public init() {}

    /// Suspends until the latch is open; returns at once if it already is.
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    /// Opens the latch and resumes every waiter. Opening it again does nothing.
    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
