#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A dedicated OS thread that runs blocking work (C library I/O) one job at a time, off
/// Swift's cooperative thread pool.
///
/// The cooperative pool has one thread per core; a blocking `read()` from hiredis, libmemcached
/// or sqlite3 on it stalls every other task scheduled there. A backend owns one worker per C
/// handle, so the handle is only ever touched by that worker's thread, and awaits its jobs:
///
/// ```swift
/// let worker = BlockingWorker(name: "sqlite")
/// let rows = try await worker.run(onCancel: { sqlite3_interrupt(db) }) {
///     try statement.step()          // blocks this worker's thread, not the caller's
/// }
/// worker.shutdown()
/// ```
///
/// Jobs run in submission order. The handoff is a mutex and a condition variable: about the
/// cost of one thread wake-up per job, and none when jobs are already queued.
public final class BlockingWorker: Sendable {
    /// The worker's name, used in error messages.
    public let name: String
    private let state: WorkerState

    /// Starts the worker's thread.
    /// - Parameter name: a short name for the thread, such as `"sqlite-0"`.
    public init(name: String) {
        self.name = name
        self.state = WorkerState()
        state.start(name: name)
    }

    deinit {
        state.stop()
    }

    /// Runs `body` on the worker's thread and returns its result.
    ///
    /// - Parameters:
    ///   - onCancel: called (on any thread) if the calling task is cancelled while the job waits
    ///     or runs; use it to interrupt the C call, as `sqlite3_interrupt` does.
    ///   - body: the blocking work.
    /// - Throws: what `body` throws; ``CacheError/Code/cancelled`` if the task was cancelled
    ///   before the job started; ``CacheError/Code/closed`` after ``shutdown()``.
    public func run<T: Sendable>(
        onCancel: (@Sendable () -> Void)? = nil,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        if Task.isCancelled { throw CacheError.cancelled }
        let started = Flag()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                let job: @Sendable () -> Void = {
                    started.set()
                    continuation.resume(with: Result { try body() })
                }
                let cancelledBeforeStart: @Sendable () -> Void = {
                    continuation.resume(throwing: CacheError.cancelled)
                }
                if !state.enqueue(Job(run: job, isCancelled: { started.isCancelled }, cancel: cancelledBeforeStart)) {
                    continuation.resume(throwing: CacheError(.closed, "the worker thread \(name) is shut down; the backend was closed"))
                }
            }
        } onCancel: {
            started.cancel()
            onCancel?()
        }
    }

    /// Lets queued jobs finish, then ends the thread. Later calls to ``run(onCancel:_:)`` throw.
    public func shutdown() {
        state.stop()
    }
}

/// One queued job.
private struct Job: Sendable {
    var run: @Sendable () -> Void
    /// True if the caller was cancelled before the job started.
    var isCancelled: @Sendable () -> Bool
    /// Resumes the caller with a cancellation error instead of running.
    var cancel: @Sendable () -> Void
}

/// Tracks whether a job has started and whether its caller was cancelled first.
private final class Flag: Sendable {
    private let bits = PThreadLockedValue<(started: Bool, cancelled: Bool)>((false, false))
    func set() { bits.withLock { $0.started = true } }
    func cancel() { bits.withLock { $0.cancelled = true } }
    var isCancelled: Bool { bits.withLock { $0.cancelled && !$0.started } }
}

/// The queue and thread of a ``BlockingWorker``.
///
/// `@unchecked Sendable`: every stored property is read and written only with `mutex` held,
/// except `cond`/`mutex` themselves, which are pthread objects made for use across threads.
private final class WorkerState: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [Job] = []
    private var stopping = false
    private var thread: pthread_t?

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func start(name: String) {
        let context = ThreadContext(state: self, name: name)
        let started = OSThread.start { context.run() }
        pthread_mutex_lock(mutex)
        switch started {
        case .success(let tid):
            thread = tid
        case .failure:
            // No thread: every job will be refused with `closed`.
            stopping = true
        }
        pthread_mutex_unlock(mutex)
    }

    /// Queues a job; false if the worker is stopping.
    func enqueue(_ job: Job) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if stopping { return false }
        jobs.append(job)
        if jobs.count == 1 { pthread_cond_signal(cond) }
        return true
    }

    /// Stops taking jobs, lets queued ones finish, and joins the thread (once; later calls do nothing).
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(cond)
        let toJoin = thread
        thread = nil
        pthread_mutex_unlock(mutex)
        // Detached instead when the last reference went away inside a job: the loop ends by itself.
        if let toJoin { OSThread.end(toJoin, join: true) }
    }

    /// The thread's loop: take every queued job, run them in order, repeat.
    func loop() {
        var batch: [Job] = []
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(cond, mutex) }
            if jobs.isEmpty && stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            swap(&batch, &jobs)
            pthread_mutex_unlock(mutex)
            for job in batch {
                if job.isCancelled() { job.cancel() } else { job.run() }
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}

/// What the new thread needs: the state to loop on and its name.
///
/// `@unchecked Sendable`: handed from the creating thread to the new one exactly once.
private final class ThreadContext: @unchecked Sendable {
    let state: WorkerState
    let name: String
    init(state: WorkerState, name: String) {
        self.state = state
        self.name = name
    }
    func run() {
        state.loop()
    }
}

/// A value guarded by a pthread mutex, for the few places that need a lock from a
/// non-async, possibly foreign thread. (`Synchronization.Mutex` would do on Linux; this keeps
/// the worker free of the availability annotations it needs on Apple platforms.)
///
/// `@unchecked Sendable`: `value` is only touched inside `withLock`.
final class PThreadLockedValue<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
