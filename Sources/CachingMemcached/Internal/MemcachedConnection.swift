#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CLibmemcached
import Caching
import Synchronization

/// One connection to one server: a libmemcached handle owned by a dedicated OS thread, and the
/// queue of requests for it.
///
/// Every blocking libmemcached call runs on this thread, never on Swift's cooperative pool.
/// The thread takes all queued requests at once; reads that are next to each other in the
/// queue are merged into one multi-get (one round trip for all of them), the other requests run
/// one by one, in order.
final class MemcachedConnection: Sendable {
    let state: ServerState
    private let queue: RequestQueue
    /// Requests submitted and not yet finished, to spread load over a server's connections.
    var pending: Int { callers.count.load(ordering: .relaxed) }
    private let callers: CallerCount
    private let replyWait: ReplyWait

    init(state: ServerState, handle: MemcachedHandle, reader: MemcachedTextReader, configuration: MemcachedBackend.Configuration, name: String) {
        self.state = state
        replyWait = ReplyWait(budget: configuration.replyWait)
        let context = ConnectionContext(handle: handle, reader: reader, state: state, generationCacheTTL: configuration.generationCacheTTL)
        let callers = CallerCount()
        self.callers = callers
        queue = RequestQueue(context: context, coalescesReads: configuration.coalescesReads, idleSpin: configuration.idleSpin, callers: callers)
        queue.start(name: name)
    }

    deinit {
        queue.stop(join: false)
    }

    /// Lets queued requests finish, closes the handle and ends the thread; waits for that when
    /// `join` is true (which blocks: call it off the cooperative pool).
    func shutdown(join: Bool = true) {
        queue.stop(join: join)
    }

    /// Reads the live entries of `plans` (all on this connection's server).
    func read(_ plans: [KeyPlan]) async throws -> [CacheEntry?] {
        try await submit { token, continuation in
            Request(
                reads: plans,
                deliver: { result in
                    continuation.resume(with: result.mapError { $0 as any Error })
                    token.finish()
                },
                work: nil,
                cancellation: token
            )
        }
    }

    /// Runs `body` on the connection's thread.
    func perform<T: Sendable>(_ body: @escaping @Sendable (ConnectionContext) throws(CacheError) -> T) async throws -> T {
        try await submit { token, continuation in
            Request(
                reads: nil,
                deliver: { result in
                    // Only reached when the request is refused before running.
                    if case .failure(let error) = result {
                        continuation.resume(throwing: error)
                        token.finish()
                    }
                },
                work: { context in
                    let result: Result<T, CacheError>
                    do throws(CacheError) {
                        result = .success(try body(context))
                    } catch {
                        result = .failure(error)
                    }
                    return {
                        continuation.resume(with: result.mapError { $0 as any Error })
                        token.finish()
                    }
                },
                cancellation: token
            )
        }
    }

    private func submit<T: Sendable>(
        _ make: (RequestToken, UnsafeContinuation<T, any Error>) -> Request
    ) async throws -> T {
        if Task.isCancelled { throw CacheError.cancelled }
        let token = RequestToken()
        let load = callers.count.add(1, ordering: .relaxed).newValue
        defer { callers.count.subtract(1, ordering: .relaxed) }
        // Wait for the reply on this thread for a moment only when the request is alone on the
        // connection (a task calling one after another), never when tasks share it.
        let spin = load == 1 ? replyWait.budget() : 0
        let start = load == 1 ? Spin.now() : 0
        defer { if load == 1 { replyWait.record(Spin.now() - start) } }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                let request = make(token, continuation)
                if !queue.enqueue(request) {
                    continuation.resume(throwing: CacheError.closed("memcached"))
                    return
                }
                // A reply that comes while we wait resumes the continuation before this closure
                // returns, and the task then goes on on this thread, without being scheduled again.
                if spin > 0 { replyWait.wait(for: token, start: start, nanoseconds: spin) }
            }
        } onCancel: {
            token.cancel()
        }
    }
}

/// Busy-waiting helpers for the short waits between a caller and its connection thread.
enum Spin {
    /// Monotonic nanoseconds.
    @inline(__always)
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Spins until `done()` or `deadline` (monotonic nanoseconds); returns `done()`.
    ///
    /// Each round gives the CPU a few spin-wait hints and then yields the core with
    /// `sched_yield`, so that on a busy machine the thread it waits for (often on the same
    /// core) runs at once; on an idle core the yield returns at once. A spin that polled
    /// without yielding was measured to hold a thread that needed the core off it for as long
    /// as it spun, on a machine with more runnable threads than cores.
    @inline(__always)
    static func until(_ deadline: Int64, _ done: () -> Bool) -> Bool {
        while !done() {
            for _ in 0..<8 { clibmemcached_cpu_relax() }
            if done() { return true }
            sched_yield()
            if now() >= deadline { return done() }
        }
        return true
    }
}

/// Requests submitted to a connection and not yet finished, shared by the connection and its thread.
final class CallerCount: Sendable {
    let count = Atomic<Int>(0)
}

/// The state of one request shared by its caller and the connection thread.
final class RequestToken: Sendable {
    private let cancelled = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    /// Set when the task that made the request is cancelled; a request not yet started is then dropped.
    func cancel() { cancelled.store(true, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    /// Called by the connection thread right after it resumed the caller's continuation.
    func finish() { finished.store(true, ordering: .releasing) }
    var isFinished: Bool { finished.load(ordering: .acquiring) }
}

/// The process-wide limit on connection threads polling their socket for a reply at once
/// (``MemcachedBackend/Configuration/replySpin``).
///
/// Each poller keeps a core busy for up to its budget. One sequential caller needs only one; many
/// lone requests on many connections at once (several callers, several backends) would otherwise
/// keep as many cores busy, taking them from the server on the same host and from the callers'
/// own work. A reader that finds every slot taken sleeps in `poll` at once, as without polling.
/// The limit is a quarter of the processors this process may run on, at least one.
final class ReplySpinSlots: Sendable {
    /// The slots of every pool connection in the process.
    static let shared = ReplySpinSlots(limit: max(1, ReplySpinSlots.usableProcessors() / 4))

    let limit: Int
    private let inUse = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Slots taken now (for tests).
    var taken: Int { inUse.load(ordering: .relaxed) }

    /// Takes a slot; false when all are taken. A `true` must be paired with ``release()``.
    func acquire() -> Bool {
        var current = inUse.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = inUse.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back a slot taken with ``acquire()``.
    func release() {
        inUse.subtract(1, ordering: .releasing)
    }

    /// The processors this process may run on (its affinity mask), or the online count.
    static func usableProcessors() -> Int {
        let usable = Int(clibmemcached_usable_cpus())
        return usable > 0 ? usable : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}

/// A count of reads that polled their socket for the reply, shared by a backend's pool readers.
final class PolledReads: Sendable {
    let count = Atomic<Int>(0)
}

/// How long a caller waits for its reply on its own thread before suspending (see
/// ``MemcachedBackend/Configuration/replyWait``); also how long a text-protocol reader polls its
/// socket for a reply before it sleeps (``MemcachedBackend/Configuration/replySpin``).
///
/// A task that suspends is resumed by the connection thread through the global executor: one
/// thread wake-up (a futex wake and, on another core, an inter-processor interrupt) per call.
/// A caller whose request is alone on its connection instead spins for at most `budget`; when
/// the reply comes in time the task goes on on its thread without being scheduled again.
///
/// Whether to wait is decided from how many recent lone requests got their reply within the
/// budget (a moving score fed by every lone request, whether it waited or not): a connection
/// whose replies mostly take longer (a server across a network) stops waiting, so it does not
/// burn a budget per call, and starts again when replies get fast. A few slow replies (the
/// caller was descheduled) do not stop it.
final class ReplyWait: Sendable {
    private let budgetNanoseconds: Int64
    /// The share of recent lone requests answered within the budget, in 1/1024ths.
    private let score = Atomic<Int>(1024)

    init(budget: Duration) {
        budgetNanoseconds = max(0, budget.nanoseconds)
    }

    /// Whether a budget is set at all.
    var isEnabled: Bool { budgetNanoseconds > 0 }

    /// The configured budget, whatever the score says.
    var configuredBudget: Int64 { budgetNanoseconds }

    /// The time a lone request may wait now, 0 when it must not.
    func budget() -> Int64 {
        guard budgetNanoseconds > 0 else { return 0 }
        return score.load(ordering: .relaxed) >= 512 ? budgetNanoseconds : 0
    }

    /// Spins until `token` is finished or `nanoseconds` have passed since `start`.
    func wait(for token: RequestToken, start: Int64, nanoseconds: Int64) {
        _ = Spin.until(start + nanoseconds) { token.isFinished }
    }

    /// Feeds the reply time of a lone request (from enqueue to the caller having its result).
    func record(_ nanoseconds: Int64) {
        guard budgetNanoseconds > 0 else { return }
        let old = score.load(ordering: .relaxed)
        let target = nanoseconds <= budgetNanoseconds ? 1024 : 0
        // Racy read-modify-write on purpose: a lost update only delays the score a little.
        score.store(old + (target - old) / 8, ordering: .relaxed)
    }
}

/// One queued request: a read to merge with its neighbours, or any other work.
struct Request: Sendable {
    /// The keys of a read; `nil` for other work.
    var reads: [KeyPlan]?
    /// Resumes the caller with the read's result, or with the error that stopped the request.
    var deliver: @Sendable (Result<[CacheEntry?], CacheError>) -> Void
    /// The work; it returns what resumes the caller, run after the server's health is updated.
    /// `nil` for reads.
    var work: (@Sendable (ConnectionContext) -> @Sendable () -> Void)?
    var cancellation: RequestToken
}

/// The queue and thread of a ``MemcachedConnection``.
///
/// `@unchecked Sendable`: `requests`, `stopping`, `sleeping`, `running` and `thread` are only
/// touched with `mutex` held; `queued` is atomic; `context` only on the worker thread (it is handed over at `start`, before
/// the thread exists, and released when the thread ends); `cond` and `mutex` are pthread
/// objects made for use across threads.
private final class RequestQueue: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var requests: [Request] = []
    private var stopping = false
    private var running = false
    private var thread: pthread_t?
    private var context: ConnectionContext?
    private let coalescesReads: Bool
    private var name = ""
    /// True while the thread waits on `cond` (so an enqueue must signal it).
    private var sleeping = false
    /// Requests waiting, readable without the mutex while the thread spins.
    private let queued = Atomic<Int>(0)
    /// How long the thread polls for new requests before it sleeps, in nanoseconds.
    private let idleSpinNanoseconds: Int64
    /// The connection's requests in flight: a read polls for its reply (`replySpin`) only when
    /// it is the only one, so threads that serve many callers never spin.
    private let callers: CallerCount

    init(context: ConnectionContext, coalescesReads: Bool, idleSpin: Duration, callers: CallerCount) {
        self.context = context
        self.callers = callers
        self.coalescesReads = coalescesReads
        idleSpinNanoseconds = idleSpin.nanoseconds
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
        self.name = name
        let started = OSThread.start { self.loop() }
        pthread_mutex_lock(mutex)
        switch started {
        case .success(let tid):
            thread = tid
            running = true
        case .failure:
            stopping = true
            context = nil
        }
        pthread_mutex_unlock(mutex)
    }

    /// Queues a request; false once the queue is stopping.
    func enqueue(_ request: Request) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if stopping { return false }
        requests.append(request)
        queued.store(requests.count, ordering: .releasing)
        if sleeping { pthread_cond_signal(cond) }
        return true
    }

    /// Stops taking requests; the thread finishes the queued ones, frees the handle and ends.
    /// - Parameter join: wait for the thread to end; otherwise it is detached.
    func stop(join: Bool) {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(cond)
        let current = thread
        let joinable = join && running
        running = false
        thread = nil
        pthread_mutex_unlock(mutex)
        if let current { OSThread.end(current, join: joinable) }
    }

    private func loop() {
        clibmemcached_name_current_thread(String(name.prefix(15)))
        guard let context else { return }
        var batch: [Request] = []
        while true {
            spinForWork()
            pthread_mutex_lock(mutex)
            while requests.isEmpty && !stopping {
                sleeping = true
                pthread_cond_wait(cond, mutex)
                sleeping = false
            }
            if requests.isEmpty && stopping {
                pthread_mutex_unlock(mutex)
                break
            }
            swap(&batch, &requests)
            queued.store(0, ordering: .relaxed)
            pthread_mutex_unlock(mutex)
            process(batch, context)
            batch.removeAll(keepingCapacity: true)
        }
        // The handle is freed here, on the thread that used it.
        self.context = nil
    }

    /// Polls briefly for the next request before sleeping: a task that sends one request after
    /// another finds the thread awake, which saves a wake-up on each side. The poll is bounded
    /// by `idleSpin` and yields the core regularly (see ``Spin/until(_:_:)``).
    private func spinForWork() {
        guard idleSpinNanoseconds > 0, queued.load(ordering: .acquiring) == 0 else { return }
        _ = Spin.until(Spin.now() + idleSpinNanoseconds) { queued.load(ordering: .acquiring) != 0 }
    }

    private func process(_ batch: [Request], _ context: ConnectionContext) {
        var index = 0
        while index < batch.count {
            if batch[index].reads != nil {
                var group: [Request] = []
                repeat {
                    group.append(batch[index])
                    index += 1
                } while coalescesReads && index < batch.count && batch[index].reads != nil
                runReads(group, context)
            } else {
                runWork(batch[index], context)
                index += 1
            }
        }
    }

    /// Checks the server's health; returns false (after refusing `requests`) when it is down.
    private func admit(_ requests: [Request], _ context: ConnectionContext) -> Bool {
        guard let refusal = context.admit() else { return true }
        for request in requests { request.deliver(.failure(refusal)) }
        return false
    }

    private func runReads(_ group: [Request], _ context: ConnectionContext) {
        var live: [Request] = []
        live.reserveCapacity(group.count)
        for request in group {
            if request.cancellation.isCancelled { request.deliver(.failure(CacheError.cancelled)) } else { live.append(request) }
        }
        guard !live.isEmpty, admit(live, context) else { return }
        let plans = live.count == 1 ? live[0].reads ?? [] : live.flatMap { $0.reads ?? [] }
        context.reader.mayPollForReply = live.count == 1 && callers.count.load(ordering: .relaxed) <= 1
        let result: Result<[CacheEntry?], CacheError>
        do throws(CacheError) {
            result = .success(try context.read(plans, deduplicate: live.count > 1))
        } catch {
            result = .failure(error)
        }
        context.report()
        switch result {
        case .success(let entries) where live.count == 1:
            live[0].deliver(.success(entries))
        case .success(let entries):
            var offset = 0
            for request in live {
                let count = request.reads?.count ?? 0
                request.deliver(.success(Array(entries[offset..<offset + count])))
                offset += count
            }
        case .failure(let error):
            for request in live { request.deliver(.failure(error)) }
        }
    }

    private func runWork(_ request: Request, _ context: ConnectionContext) {
        if request.cancellation.isCancelled {
            request.deliver(.failure(CacheError.cancelled))
            return
        }
        guard admit([request], context), let work = request.work else { return }
        let resume = work(context)
        context.report()
        resume()
    }
}

extension ConnectionContext {
    /// Checks the server's health before a request: `nil` when the request may go (a server due
    /// for a retry is let through, its handles allowed to reconnect), else the error to fail it with.
    func admit() -> CacheError? {
        switch state.admit() {
        case .go:
            return nil
        case .probe:
            for handle in handles { handle.allowRetry() }
            return nil
        case .refuse(let error):
            return error
        }
    }

    /// Reports what the last calls said about the server (after every request that was admitted).
    func report() {
        var failure: MemcachedStatus?
        var answered = false
        for handle in handles {
            if handle.multiGets > 0 {
                state.multiGets.add(handle.multiGets, ordering: .relaxed)
                handle.multiGets = 0
            }
            if failure == nil { failure = handle.connectionFailure }
            answered = answered || handle.answered
        }
        if let failure {
            for handle in handles { handle.reset() }
            state.failed(failure)
        } else if answered {
            state.succeeded()
        } else {
            state.releaseProbe()
        }
        for handle in handles { handle.clearFailureState() }
    }
}
