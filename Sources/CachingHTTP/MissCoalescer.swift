import Synchronization

/// The misses being computed in this process, so that concurrent requests for the same cold
/// key call the endpoint once: the first becomes the *leader* and computes; the others wait
/// until the leader has stored its response (or given up), then read it from the cache.
///
/// A leader holds a ``Flight``. It lands when the response is stored or found not storable,
/// and at the latest when the request's ``HTTPCacheContext`` is released (the endpoint threw,
/// the request was cancelled), so waiters never outlive their leader's request. Waiters also
/// give up after the policy's ``HTTPCachePolicy/coalescingTimeout`` and when cancelled.
final class MissCoalescer: Sendable {
    /// A leader's claim on a key.
    final class Flight: Sendable {
        let key: String
        let coalescer: MissCoalescer

        init(key: String, coalescer: MissCoalescer) {
            self.key = key
            self.coalescer = coalescer
        }

        /// Releases the waiters; later calls do nothing.
        func land() {
            coalescer.land(self)
        }

        deinit {
            coalescer.land(self)
        }
    }

    enum Join {
        /// No one computes this key: the caller does, and lands the flight when done.
        case leader(Flight)
        /// Someone does: wait with ``wait(for:timeout:)``.
        case follower
    }

    struct Entry {
        let flight: ObjectIdentifier
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    struct State {
        var entries: [String: Entry] = [:]
        var nextWaiter = 0
        /// Waiters cancelled before they registered their continuation.
        var cancelledEarly: Set<Int> = []
    }

    let state = Mutex(State())

    /// Claims `key`, or learns that another request already has.
    func join(_ key: String) -> Join {
        state.withLock { state in
            if state.entries[key] != nil { return .follower }
            let flight = Flight(key: key, coalescer: self)
            state.entries[key] = Entry(flight: ObjectIdentifier(flight))
            return .leader(flight)
        }
    }

    /// Whether a leader is computing `key`.
    func isInFlight(_ key: String) -> Bool {
        state.withLock { $0.entries[key] != nil }
    }

    /// Waits until the leader of `key` lands, `timeout` passes, or the task is cancelled.
    /// - Returns: `false` when it stopped waiting because of the timeout or cancellation.
    func wait(for key: String, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitForLanding(key) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let landed = await group.next() ?? false
            group.cancelAll()
            return landed
        }
    }

    private func waitForLanding(_ key: String) async -> Bool {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = state.withLock { state in
                    if state.cancelledEarly.remove(id) != nil { return false }
                    guard state.entries[key] != nil else { return false }
                    state.entries[key]?.waiters[id] = continuation
                    return true
                }
                if !registered { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let waiter = state.entries[key]?.waiters.removeValue(forKey: id) else {
                    // Not registered yet (or already released): make the registration a no-op.
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return waiter
            }
            waiter?.resume()
        }
        state.withLock { _ = $0.cancelledEarly.remove(id) }
        return !Task.isCancelled
    }

    private func land(_ flight: Flight) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            guard let entry = state.entries[flight.key], entry.flight == ObjectIdentifier(flight) else { return [] }
            state.entries[flight.key] = nil
            return Array(entry.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}

extension MissCoalescer {
    /// How many requests wait for `key` (for tests and diagnostics).
    func waiterCount(_ key: String) -> Int {
        state.withLock { $0.entries[key]?.waiters.count ?? 0 }
    }
}
