import Synchronization

/// Runs one computation per key at a time in this process; concurrent callers for the same
/// key wait for it and share its result.
///
/// The computation runs in its own task, so cancelling one caller neither cancels the work
/// nor fails the other callers. A thrown error reaches every caller then waiting and is not
/// remembered: the next call computes again.
final class SingleFlight: Sendable {
    private let flights = Mutex<[String: Task<any Sendable, any Error>]>([:])

    /// The result of `work` for `key`, computed once for all concurrent callers.
    ///
    /// - Returns: the value and whether this caller started the computation.
    func run<T: Sendable>(
        key: String,
        _ work: @escaping @Sendable () async throws -> T
    ) async throws -> (value: T, leader: Bool) {
        let (task, leader) = flights.withLock { flights -> (Task<any Sendable, any Error>, Bool) in
            if let existing = flights[key] { return (existing, false) }
            let task = Task<any Sendable, any Error> {
                defer { self.finish(key: key) }
                return try await work()
            }
            flights[key] = task
            return (task, true)
        }
        let value = try await task.value
        if let typed = value as? T { return (typed, leader) }
        // Another caller computed a different type under the same key: compute our own.
        return (try await work(), true)
    }

    /// How many computations are running (for tests and diagnostics).
    var count: Int { flights.withLock { $0.count } }

    private func finish(key: String) {
        _ = flights.withLock { $0.removeValue(forKey: key) }
    }
}
