import Caching
import Synchronization

/// Commands from one caller, queued on a connection, and the continuation that waits for the
/// bytes of their replies (decoded by the caller, on its own thread).
///
/// The state moves `created → queued → taken → finished`, or to `finished` straight from
/// `created` or `queued` when the caller is cancelled. Whoever moves it to `finished` (the
/// connection's thread after `taken`, or the cancellation handler before) resumes the
/// continuation, so it is resumed exactly once.
///
/// `@unchecked Sendable`: `continuation` is written once by the caller before the
/// `created → queued` exchange (release) and read only by the party that wins a later exchange
/// (acquire), so no two threads touch it without that ordering. `sentAt` is written and read
/// with the connection's mutex held; `received` only by the connection's thread, after the
/// request was taken.
final class RedisRequest: @unchecked Sendable {
    private static let created = 0
    private static let queued = 1
    private static let taken = 2
    private static let finished = 3

    let commands: RedisCommands
    /// When the request was written (monotonic nanoseconds), for the command timeout.
    var sentAt: UInt64 = 0
    /// Complete replies received so far (the request is answered at `commands.count`).
    var received = 0
    private var continuation: UnsafeContinuation<[UInt8], any Error>?
    private let state = Atomic<Int>(RedisRequest.created)

    init(_ commands: RedisCommands) {
        self.commands = commands
    }

    /// Stores the continuation and marks the request queued; false if the caller was cancelled
    /// first (the caller then resumes the continuation itself).
    func publish(_ continuation: UnsafeContinuation<[UInt8], any Error>) -> Bool {
        self.continuation = continuation
        return state.compareExchange(expected: Self.created, desired: Self.queued, ordering: .acquiringAndReleasing)
            .exchanged
    }

    /// The caller's task was cancelled: fail the request unless the connection already took it.
    /// A request that was sent cannot be recalled; it finishes with its reply or the command timeout.
    func cancel() {
        if state.compareExchange(expected: Self.created, desired: Self.finished, ordering: .acquiringAndReleasing)
            .exchanged
        {
            return
        }
        if state.compareExchange(expected: Self.queued, desired: Self.finished, ordering: .acquiringAndReleasing)
            .exchanged
        {
            continuation?.resume(throwing: CacheError.cancelled)
        }
    }

    /// The connection's thread takes the request to send it; false if it was cancelled.
    func take() -> Bool {
        state.compareExchange(expected: Self.queued, desired: Self.taken, ordering: .acquiringAndReleasing).exchanged
    }

    /// Resumes the caller of a taken request with the bytes of its replies, or an error.
    func finish(_ result: Result<[UInt8], CacheError>) {
        state.store(Self.finished, ordering: .releasing)
        switch result {
        case .success(let value): continuation?.resume(returning: value)
        case .failure(let error): continuation?.resume(throwing: error)
        }
    }

    /// Fails a queued request that will never be taken (the connection is closing).
    func reject(_ error: CacheError) {
        if state.compareExchange(expected: Self.queued, desired: Self.finished, ordering: .acquiringAndReleasing)
            .exchanged
        {
            continuation?.resume(throwing: error)
        }
    }
}
