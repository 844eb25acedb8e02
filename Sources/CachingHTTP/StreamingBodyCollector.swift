public import HTTPTypes
import Synchronization

/// Collects a pushed (streamed) response body up to a size limit, and hands the stream over
/// when the body grows past it, without buffering more than the limit plus two chunks (the one
/// that crossed it and one waiting for the consumer).
///
/// Web frameworks stream bodies by calling a writer: the producer pushes chunks. To cache such
/// a body the cache must see all of it before answering (the ETag and a `304` depend on it),
/// yet a body larger than the limit must not be read into memory. The collector runs the
/// producer in a task of its own:
/// - if the producer finishes within the limit, ``outcome()`` returns the chunks (`.complete`)
///   and the response can be stored;
/// - once the collected size passes the limit, ``outcome()`` returns `.overflow` with the
///   chunks so far and a ``Remainder``; the producer then waits, one chunk at a time, until the
///   consumer (the framework writing the response) drains the remainder with
///   ``Remainder/next()``. Nothing beyond the limit is buffered.
///
/// When the remainder is dropped without being drained (the response was discarded, the
/// client went away), the producer's pending and later writes throw `CancellationError` and its
/// task is cancelled, so it never hangs.
///
/// ```swift
/// let collector = StreamingBodyCollector<ByteBuffer>(limit: 1 << 20, size: \.readableBytes) { sink in
///     try await body.write(SinkWriter(sink))       // adapts the framework's writer to the sink
/// }
/// switch await collector.outcome() {
/// case .complete(let chunks, let trailers): ...    // store and answer
/// case .overflow(let prefix, let remainder): ...   // stream prefix, then remainder.next() until nil
/// case .failed(let error): throw error
/// }
/// ```
public final class StreamingBodyCollector<Chunk: Sendable>: Sendable {
    /// How the collection ended.
    public enum Outcome: Sendable {
        /// The producer finished within the limit: every chunk, and the trailers it sent.
        case complete([Chunk], trailers: HTTPFields?)
        /// The body passed the limit: the chunks collected so far and the rest of the stream.
        case overflow(prefix: [Chunk], remainder: Remainder)
        /// The producer threw before the limit was reached.
        case failed(any Error)
    }

    /// The part of an overflowing body not yet produced. Drain it with ``next()`` until it
    /// returns `nil`; dropping it cancels the producer.
    public final class Remainder: Sendable {
        let collector: StreamingBodyCollector

        init(collector: StreamingBodyCollector) {
            self.collector = collector
        }

        /// The next chunk, or `nil` at the end of the body.
        /// - Throws: The producer's error, or `CancellationError` when the calling task is
        ///   cancelled (which also cancels the producer).
        public func next() async throws -> Chunk? {
            try await collector.next()
        }

        /// The trailers the producer finished with; valid after ``next()`` returned `nil`.
        public var trailers: HTTPFields? {
            collector.state.withLock { $0.trailers }
        }

        deinit {
            collector.abandon()
        }
    }

    /// The sink a producer writes into.
    public struct Sink: Sendable {
        let collector: StreamingBodyCollector

        /// Hands one chunk to the collector; suspends while an overflowing body waits for its
        /// consumer.
        /// - Throws: `CancellationError` when the consumer went away.
        public func write(_ chunk: Chunk) async throws {
            try await collector.send(chunk)
        }

        /// Ends the body, with optional trailers.
        public func finish(trailers: HTTPFields? = nil) {
            collector.finish(trailers: trailers)
        }

        /// Ends the body with an error: the outcome becomes `.failed`, or the remainder's
        /// ``Remainder/next()`` throws it. For producers that report an error through their
        /// writer rather than by throwing (Vapor's `.error` stream result).
        public func fail(_ error: any Error) {
            collector.fail(error)
        }
    }

    enum Phase {
        case collecting
        case overflowed
        case finished
        case failed(any Error)
        case abandoned
    }

    struct State {
        var phase: Phase = .collecting
        var collected: [Chunk] = []
        var collectedSize = 0
        var trailers: HTTPFields?
        /// The outcome, once known, until ``outcome()`` takes it.
        var outcome: Outcome?
        var outcomeWaiter: CheckedContinuation<Outcome, Never>?
        /// An overflowing producer's chunk that the consumer has not taken yet.
        var pending: Chunk?
        var producerWaiter: CheckedContinuation<Void, any Error>?
        var consumerWaiter: CheckedContinuation<Chunk?, any Error>?
        var producerTask: Task<Void, Never>?
    }

    enum SendAction { case done, wait, cancelled, deliver(CheckedContinuation<Chunk?, any Error>) }
    enum Registration { case taken, registered, abandoned }
    enum NextAction { case chunk(Chunk, CheckedContinuation<Void, any Error>?), end, error(any Error), wait }

    let limit: Int
    let size: @Sendable (Chunk) -> Int
    let state = Mutex(State())

    /// Starts collecting: runs `produce` in a new task with a ``Sink``.
    ///
    /// When `produce` returns without calling ``Sink/finish(trailers:)`` the body ends there;
    /// when it throws, the outcome is `.failed` (or the remainder's ``Remainder/next()`` throws).
    /// - Parameters:
    ///   - limit: The largest body collected, in bytes.
    ///   - size: The size of a chunk in bytes.
    ///   - produce: Writes the body into the sink.
    public init(
        limit: Int,
        size: @escaping @Sendable (Chunk) -> Int,
        produce: @escaping @Sendable (Sink) async throws -> Void
    ) {
        self.limit = limit
        self.size = size
        let sink = Sink(collector: self)
        let task = Task {
            do {
                try await produce(sink)
                sink.finish(trailers: nil)
            } catch {
                sink.collector.fail(error)
            }
        }
        state.withLock { state in
            if case .abandoned = state.phase { task.cancel() }
            state.producerTask = task
        }
    }

    /// Waits until the body is complete, has passed the limit, or failed. Call it once.
    /// Cancelling the calling task cancels the producer.
    public func outcome() async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let ready: Outcome? = state.withLock { state in
                    if let outcome = state.outcome {
                        state.outcome = nil
                        return outcome
                    }
                    state.outcomeWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            abandon()
        }
    }

    // MARK: Producer side

    func send(_ chunk: Chunk) async throws {
        let chunkSize = size(chunk)
        var toResume: (CheckedContinuation<Outcome, Never>, Outcome)?
        let action: SendAction = state.withLock { state in
            switch state.phase {
            case .collecting:
                state.collected.append(chunk)
                state.collectedSize += chunkSize
                if state.collectedSize > limit {
                    state.phase = .overflowed
                    let outcome = Outcome.overflow(prefix: state.collected, remainder: Remainder(collector: self))
                    state.collected = []
                    if let waiter = state.outcomeWaiter {
                        state.outcomeWaiter = nil
                        toResume = (waiter, outcome)
                    } else {
                        state.outcome = outcome
                    }
                }
                return .done
            case .overflowed:
                if let consumer = state.consumerWaiter {
                    state.consumerWaiter = nil
                    return .deliver(consumer)
                }
                state.pending = chunk
                return .wait
            case .abandoned, .finished, .failed:
                return .cancelled
            }
        }
        if let (waiter, outcome) = toResume { waiter.resume(returning: outcome) }
        switch action {
        case .done:
            return
        case .cancelled:
            throw CancellationError()
        case .deliver(let consumer):
            consumer.resume(returning: chunk)
        case .wait:
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let registration: Registration = state.withLock { state in
                        guard case .overflowed = state.phase else { return .abandoned }
                        // The consumer may have taken the chunk between our two critical sections.
                        guard state.pending != nil else { return .taken }
                        state.producerWaiter = continuation
                        return .registered
                    }
                    switch registration {
                    case .taken: continuation.resume()
                    case .abandoned: continuation.resume(throwing: CancellationError())
                    case .registered: break
                    }
                }
            } onCancel: {
                abandon()
            }
        }
    }

    func finish(trailers: HTTPFields?) {
        var outcomeToResume: (CheckedContinuation<Outcome, Never>, Outcome)?
        var consumerToResume: CheckedContinuation<Chunk?, any Error>?
        state.withLock { state in
            switch state.phase {
            case .collecting:
                state.phase = .finished
                state.trailers = trailers
                let outcome = Outcome.complete(state.collected, trailers: trailers)
                state.collected = []
                if let waiter = state.outcomeWaiter {
                    state.outcomeWaiter = nil
                    outcomeToResume = (waiter, outcome)
                } else {
                    state.outcome = outcome
                }
            case .overflowed:
                state.phase = .finished
                state.trailers = trailers
                consumerToResume = state.consumerWaiter
                state.consumerWaiter = nil
            case .finished, .failed, .abandoned:
                break
            }
        }
        if let (waiter, outcome) = outcomeToResume { waiter.resume(returning: outcome) }
        consumerToResume?.resume(returning: nil)
    }

    func fail(_ error: any Error) {
        var outcomeToResume: (CheckedContinuation<Outcome, Never>, Outcome)?
        var consumerToResume: CheckedContinuation<Chunk?, any Error>?
        state.withLock { state in
            switch state.phase {
            case .collecting:
                state.phase = .failed(error)
                state.collected = []
                if let waiter = state.outcomeWaiter {
                    state.outcomeWaiter = nil
                    outcomeToResume = (waiter, .failed(error))
                } else {
                    state.outcome = .failed(error)
                }
            case .overflowed:
                state.phase = .failed(error)
                consumerToResume = state.consumerWaiter
                state.consumerWaiter = nil
            case .finished, .failed, .abandoned:
                break
            }
        }
        if let (waiter, outcome) = outcomeToResume { waiter.resume(returning: outcome) }
        consumerToResume?.resume(throwing: error)
    }

    // MARK: Consumer side

    func next() async throws -> Chunk? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Chunk?, any Error>) in
                let action: NextAction = state.withLock { state in
                    if let chunk = state.pending {
                        state.pending = nil
                        let producer = state.producerWaiter
                        state.producerWaiter = nil
                        return .chunk(chunk, producer)
                    }
                    switch state.phase {
                    case .finished: return .end
                    case .failed(let error): return .error(error)
                    case .abandoned: return .error(CancellationError())
                    case .collecting, .overflowed:
                        state.consumerWaiter = continuation
                        return .wait
                    }
                }
                switch action {
                case .chunk(let chunk, let producer):
                    producer?.resume()
                    continuation.resume(returning: chunk)
                case .end:
                    continuation.resume(returning: nil)
                case .error(let error):
                    continuation.resume(throwing: error)
                case .wait:
                    break
                }
            }
        } onCancel: {
            abandon()
        }
    }

    /// Stops everything: the producer's pending and later writes throw, waiters resume.
    func abandon() {
        var producer: CheckedContinuation<Void, any Error>?
        var consumer: CheckedContinuation<Chunk?, any Error>?
        var outcomeWaiter: CheckedContinuation<Outcome, Never>?
        var task: Task<Void, Never>?
        var unclaimed: Outcome?
        state.withLock { state in
            switch state.phase {
            case .finished, .failed:
                if state.pending == nil, state.producerWaiter == nil, state.consumerWaiter == nil { return }
            case .abandoned:
                return
            case .collecting, .overflowed:
                break
            }
            state.phase = .abandoned
            state.pending = nil
            state.collected = []
            producer = state.producerWaiter
            state.producerWaiter = nil
            consumer = state.consumerWaiter
            state.consumerWaiter = nil
            outcomeWaiter = state.outcomeWaiter
            state.outcomeWaiter = nil
            task = state.producerTask
            // Moved out and released after the lock: dropping a Remainder calls abandon().
            unclaimed = state.outcome
            state.outcome = nil
        }
        _ = unclaimed
        producer?.resume(throwing: CancellationError())
        consumer?.resume(throwing: CancellationError())
        outcomeWaiter?.resume(returning: .failed(CancellationError()))
        task?.cancel()
    }
}
