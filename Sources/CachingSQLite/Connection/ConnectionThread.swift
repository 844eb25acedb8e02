import CSQLite
import Caching
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a request may be combined with others on its connection's thread.
enum RequestKind {
    /// A read: grouped with the reads (and writes) queued around it into one transaction.
    case read
    /// A short write: grouped with its neighbours into one `BEGIN IMMEDIATE` transaction, so N queued
    /// sets cost one commit. Not interruptible (interrupting one statement of a group would roll back
    /// the others' writes); it is short anyway.
    case write
    /// A request that runs on its own and manages its own transaction (a prefix clear, a sweep chunk,
    /// a large batch). Cancelling its task interrupts it with `sqlite3_interrupt`.
    case exclusive
}

/// One dedicated OS thread that owns one ``SQLiteConnection`` and runs requests for it.
///
/// Why not `Caching.BlockingWorker`: the backend needs what a generic job queue cannot give. The thread
/// sees every request queued since it last woke up and runs them as one batch: consecutive reads in one
/// read transaction (one snapshot instead of one per statement) and consecutive writes in one
/// `BEGIN IMMEDIATE` transaction (one commit instead of one per set), and only then resumes the callers,
/// so no caller sees success before its write is committed. It interrupts only the request whose task
/// was cancelled, never a neighbour in the same batch. And it polls briefly before it sleeps
/// (``SQLiteBackend/Configuration/idleSpin``), so back-to-back calls skip a thread wake-up.
///
/// The handle is only ever used by this thread; callers only queue requests and await them, so no
/// blocking SQLite call ever runs on Swift's cooperative pool.
///
/// The thread is also a `TaskExecutor` (SE-0417): a task that prefers it (``SQLiteBackend/taskExecutor``
/// with `withTaskExecutorPreference`) runs its code on this thread, between batches, and its requests
/// to this connection then run inline, with no thread hop at all (see ``perform(_:_:)``).
final class ConnectionThread: TaskExecutor, @unchecked Sendable {
    // `@unchecked Sendable`: the queues, the flags and the request states are read and written only with
    // `mutex` held; `connection` is used only by the thread (after `start` publishes it under the
    // mutex), except `sqlite3_interrupt`, which SQLite allows from any thread, called with `mutex` held
    // while the connection is known to be open. `threadID` is written once by the new thread before
    // `start` returns (the continuation's resume orders it before any later read).

    /// A short name for the thread and for messages, such as `sqlite-writer`.
    let name: String
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var queue: [AnyRequest] = []
    /// Jobs of tasks that prefer this thread as their executor, run between batches of requests.
    private var jobs: [UnownedJob] = []
    private var sleeping = false
    private var stopping = false
    /// Set (with the mutex held) when the thread stops serving; jobs enqueued after it go to the
    /// global executor, so a task that still prefers this thread never hangs.
    private var servingEnded = false
    private var finished = false
    /// The thread's id, to recognise code already running on it.
    private var threadID: pthread_t?
    private var finishWaiters: [UnsafeContinuation<Void, Never>] = []
    private var connection: SQLiteConnection?
    /// Requests queued and not yet taken; polled without the mutex while spinning.
    private let queued = Atomic<Int>(0)
    /// Tasks inside ``perform(_:_:)`` on this thread, waiting or about to resume; 1 means a lone caller.
    private let activeCallers = Atomic<Int>(0)
    /// How many tasks are using this thread now (for choosing among readers).
    var activeCallerCount: Int { activeCallers.load(ordering: .relaxed) }
    /// A one-request hand-off from a lone caller to the thread while the thread polls for work:
    /// ``mailboxClosed`` (the thread is not polling), ``mailboxListening`` (polling, empty), or a
    /// retained request's address. Only a caller moves it from listening to a request, and only the
    /// thread moves it anywhere else, so a request is never left in it while the thread sleeps.
    private let mailbox = Atomic<UInt>(0)
    /// The processor of the lone caller when it last waited for an answer, and of this thread when it
    /// last started polling for work (-1: unknown; written only when they change). When both are the same, neither side polls with pause hints: the other
    /// cannot run while it spins, so it yields the processor between checks at once.
    let callerProcessor = Atomic<Int>(-1)
    let threadProcessor = Atomic<Int>(-1)
    /// Requests run inline for a task that prefers this thread (for tests and diagnostics).
    let inlineRequests = Atomic<Int>(0)
    /// Requests handed over through ``mailbox`` (for tests and diagnostics).
    let handedRequests = Atomic<Int>(0)
    /// Set with `stopping`, for the polling loop, which does not take the mutex.
    private let stopRequested = Atomic<Bool>(false)
    private static let mailboxClosed: UInt = 0
    private static let mailboxListening: UInt = 1
    /// How long a caller polls for a quick answer before suspending (see ``perform(_:_:)``).
    private let callerSpinNanoseconds: Int64
    /// Whether this thread owns the store's writer connection (flushes access times, evicts).
    private let isWriter: Bool
    private let spinNanoseconds: Int64
    /// The longest a caller polls for an answer on its own thread (a cooperative-pool thread) before it
    /// suspends: about the cost of the two thread wake-ups it saves, so it never costs more than it can win.
    static let maximumCallerSpinNanoseconds: Int64 = 20_000
    /// How long either side polls with only a CPU pause hint between checks; after that it calls
    /// `sched_yield()` between checks, until its polling time is up. A lone caller's next request (or a
    /// short request's answer) comes within a few microseconds when both threads are on a processor,
    /// and then the pure spin answers fastest. When one of them is not (a busy machine, or both on one
    /// processor), pure spinning would keep the other waiting for the processor the spinner holds, for
    /// the whole polling time; yielding lets it run at once.
    static let pureSpinNanoseconds: Int64 = 6_000
    /// How many answers in a row this thread gives on its lone caller's processor (taking turns with
    /// it) before it sleeps once instead of polling, so the kernel can move it to an idle processor.
    static let sharedProcessorTurnsBeforeSleep = 256
    /// Answers given in a row on the lone caller's processor; only this thread uses it.
    private var sharedProcessorTurns = 0
    /// The processors online; with one, nobody can answer while a thread polls, so nobody polls.
    static let onlineProcessors = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    /// The most requests run in one transaction; bounds how long one batch holds the write lock.
    static let maximumGroup = 256

    private init(name: String, isWriter: Bool, spin: Duration) {
        self.name = name
        self.isWriter = isWriter
        let (seconds, attoseconds) = spin.components
        // Polling only pays when the other side runs on another core at the same time.
        self.spinNanoseconds = Self.onlineProcessors > 1 ? seconds * 1_000_000_000 + attoseconds / 1_000_000_000 : 0
        self.callerSpinNanoseconds = min(self.spinNanoseconds, Self.maximumCallerSpinNanoseconds)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Starts a thread, opens its connection on it, and returns once the connection is ready.
    /// - Parameter open: opens and prepares the connection; runs on the new thread.
    /// - Throws: what `open` throws (the thread then ends); `.internalError` if no thread can be started.
    static func start(
        name: String,
        isWriter: Bool,
        spin: Duration,
        open: @escaping @Sendable () throws -> SQLiteConnection
    ) async throws -> ConnectionThread {
        let thread = ConnectionThread(name: name, isWriter: isWriter, spin: spin)
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            let context = ThreadStart(thread: thread, open: open, ready: continuation)
            switch OSThread.start({ context.thread.threadMain(context) }) {
            case .success(let tid):
                OSThread.end(tid, join: false)
            case .failure(let error):
                continuation.resume(throwing: CacheError(.internalError, "could not start the thread \(name) for SQLite (pthread_create: \(error.code))"))
            }
        }
        return thread
    }

    /// The thread's body: open, publish, serve until stopped, close.
    private func threadMain(_ start: ThreadStart) {
        csqlite_set_thread_name(String(name.prefix(15)))
        threadID = pthread_self()
        let opened: SQLiteConnection
        do {
            opened = try start.open()
        } catch {
            start.ready.resume(throwing: error)
            return
        }
        // Readers keep a read transaction open between lone gets while nothing is committed
        // (`SQLiteConnection+HeldRead.swift`); the writer never does.
        opened.allowsHeldReads = !isWriter && opened.store.configuration.holdsReads
        lock()
        connection = opened
        unlock()
        start.ready.resume()
        serve(opened)
        lock()
        connection = nil
        unlock()
        opened.close()
        lock()
        finished = true
        let waiters = finishWaiters
        finishWaiters = []
        unlock()
        for waiter in waiters { waiter.resume() }
    }

    @inline(__always) private func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) private func unlock() { pthread_mutex_unlock(mutex) }

    // MARK: Submitting

    /// Whether the calling code runs on this thread (a task that prefers this thread as its executor).
    var isCurrentThread: Bool {
        guard let threadID else { return false }
        return pthread_equal(pthread_self(), threadID) != 0
    }

    /// Runs `body` with the connection on this thread and returns its result.
    ///
    /// A caller already running on this thread (a task that prefers it as its executor, see
    /// ``SQLiteBackend/taskExecutor``) runs a `.read` or `.write` inline: a job of such a task only
    /// runs between batches, so the connection is free, and no other thread is involved.
    ///
    /// A lone caller that finds the thread polling for work (after answering its previous request)
    /// hands the request over through ``mailbox`` and polls for the answer for up to
    /// ``callerSpinNanoseconds`` before it suspends: a short request is answered in a few microseconds
    /// that way, with no lock, no queue and no thread wake-up on either side. Otherwise, or when the
    /// answer takes longer, the caller queues the request and suspends until the thread resumes it.
    ///
    /// - Throws: what `body` throws; `.cancelled` if the task is cancelled before the request starts
    ///   (or, for `.exclusive` requests, while it runs); `.closed` once the thread is stopping.
    nonisolated(nonsending) func perform<T: Sendable>(
        _ kind: RequestKind,
        _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        if kind != .exclusive && isCurrentThread {
            return try performInline(kind, body)
        }
        return try await run(Request<T>(kind: kind, body: body))
    }

    /// Like ``perform(_:_:)``, for a body that fills a buffer the caller allocated: the body gets
    /// `buffer` (uniquely referenced, so it can append to it without a copy) and may move it into its
    /// result.
    ///
    /// Why: memory that one thread allocates and another frees takes glibc's slow path (the freeing
    /// thread's cache of free blocks fills, and the block goes back to the allocating thread's arena
    /// under its lock, a cache line that then moves between cores on every call). A get that allocates
    /// its value on the connection thread and hands it to the caller pays that on every call; a value
    /// copied into memory the caller allocated is freed where it was allocated. See `Docs/SQLiteBackend.md`.
    ///
    /// `buffer` is consumed: the request must hold the only reference to it, or appending to it on
    /// the connection's thread would copy it there (copy-on-write), which is what this avoids.
    nonisolated(nonsending) func perform<T: Sendable>(
        _ kind: RequestKind,
        buffer: consuming [UInt8],
        _ body: @escaping @Sendable (SQLiteConnection, inout [UInt8]) throws -> T
    ) async throws -> T {
        if kind != .exclusive && isCurrentThread {
            var buffer = consume buffer
            return try performInline(kind) { try body($0, &buffer) }
        }
        return try await run(Request<T>(kind: kind, buffer: consume buffer, body: body))
    }

    /// Runs a `.read` `body` inline, for a caller that runs on this thread (``isCurrentThread``, see
    /// ``perform(_:_:)``). The body does not escape, so nothing is allocated for it.
    @inline(__always)
    func readInline<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        assert(isCurrentThread, "readInline called off the connection's thread")
        return try performInline(.read, body)
    }

    /// Hands `request` over (mailbox) or queues it, and returns its result (see ``perform(_:_:)``).
    @inline(__always)
    nonisolated(nonsending) private func run<T: Sendable>(_ request: Request<T>) async throws -> T {
        let kind = request.kind
        if kind != .exclusive && callerSpinNanoseconds > 0 && handOff(request) {
            if request.waitBriefly(nanoseconds: callerSpinNanoseconds, thread: self) { return try request.takeResult() }
            // The answer takes longer: suspend until the thread resumes the caller.
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                    lock()
                    if request.state == .finished {
                        unlock()
                        continuation.resume(with: request.takeResultForResume())
                        return
                    }
                    request.continuation = continuation
                    unlock()
                }
            } onCancel: {
                cancel(request)
            }
        }
        activeCallers.wrappingAdd(1, ordering: .relaxed)
        defer { activeCallers.wrappingSubtract(1, ordering: .relaxed) }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                request.continuation = continuation
                submit(request)
            }
        } onCancel: {
            cancel(request)
        }
    }

    /// Gives `request` to the thread through ``mailbox`` if the thread is polling it with nothing in
    /// it; whether it did. The request is marked queued first, so a cancellation meanwhile answers it
    /// and the thread skips it, as for a queued request.
    @inline(__always)
    private func handOff(_ request: AnyRequest) -> Bool {
        guard mailbox.load(ordering: .relaxed) == Self.mailboxListening else { return false }
        // No other thread can see the request yet, so its state needs no lock here; the releasing
        // exchange below publishes it with everything else the thread reads.
        request.state = .queued
        let retained = Unmanaged.passRetained(request)
        let message = UInt(bitPattern: retained.toOpaque())
        if mailbox.compareExchange(expected: Self.mailboxListening, desired: message, ordering: .releasing).exchanged {
            return true
        }
        retained.release()
        request.state = .created
        return false
    }

    /// Runs a read or short write on this thread, now, from a job of a task that prefers this thread:
    /// what a batch of one request would do, without the queue.
    private func performInline<T>(_ kind: RequestKind, _ body: (SQLiteConnection) throws -> T) throws -> T {
        // Only this thread writes `connection`, so it is stable here; `stopRequested` mirrors `stopping`.
        guard let connection, !stopRequested.load(ordering: .acquiring) else { throw CacheError.closed("sqlite") }
        if Task.isCancelled { throw CacheError.cancelled }
        inlineRequests.wrappingAdd(1, ordering: .relaxed)
        connection.validateHeldRead()
        guard kind == .write && isWriter else { return try body(connection) }
        if connection.store.tracksAccess && connection.store.hasPendingAccesses {
            // Recording reads is best effort: a failure here must not fail the caller's write.
            do {
                try connection.atomically(immediate: true) { try connection.flushAccesses() }
            } catch {}
        }
        // Evict before answering, so a write that returns leaves the store within its limits.
        defer { afterWrites(connection) }
        return try body(connection)
    }

    // MARK: Executing jobs

    /// Queues a job of a task that prefers this thread; it runs between batches of requests. Once the
    /// thread has stopped, jobs go to the global concurrent executor instead, so no task hangs.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock()
        if servingEnded {
            unlock()
            globalConcurrentExecutor.enqueue(job)
            return
        }
        jobs.append(job)
        queued.add(1, ordering: .relaxed)
        let wake = sleeping
        unlock()
        // Signalled after unlocking, so the woken thread does not block at once on the mutex this
        // thread still holds (a second sleep and wake-up). No wake-up is lost: the thread rechecks the
        // queue under the mutex, and the job is already in it.
        if wake { pthread_cond_signal(condition) }
    }

    private func submit(_ request: AnyRequest) {
        lock()
        if request.isCancelled || stopping {
            request.fail(request.isCancelled ? CacheError.cancelled : CacheError.closed("sqlite"))
            request.markFinished()
            unlock()
            request.resumeIfWaiting()
            return
        }
        request.state = .queued
        queue.append(request)
        queued.add(1, ordering: .relaxed)
        let wake = sleeping
        unlock()
        // After unlocking, as in `enqueue(_:)`.
        if wake { pthread_cond_signal(condition) }
    }

    /// Answers a request that arrived as the thread stopped with `.closed` (or `.cancelled`).
    private func reject(_ request: AnyRequest) {
        lock()
        guard request.state == .queued else {
            unlock()
            return
        }
        request.fail(request.isCancelled ? CacheError.cancelled : CacheError.closed("sqlite"))
        request.markFinished()
        unlock()
        request.resumeIfWaiting()
    }

    private func cancel(_ request: AnyRequest) {
        lock()
        request.isCancelled = true
        var answerNow = false
        switch request.state {
        case .queued:
            // Still waiting: answer now; the thread skips it.
            request.fail(CacheError.cancelled)
            request.markFinished()
            answerNow = true
        case .running:
            if request.kind == .exclusive, let connection {
                connection.interrupt()
            }
        case .created, .finished:
            break
        }
        unlock()
        if answerNow { request.resumeIfWaiting() }
    }

    /// Stops taking requests, lets the queued ones finish, closes the connection, and returns when done.
    func shutdown() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            lock()
            if finished {
                unlock()
                continuation.resume()
                return
            }
            finishWaiters.append(continuation)
            stopping = true
            stopRequested.store(true, ordering: .releasing)
            pthread_cond_signal(condition)
            unlock()
        }
    }

    /// Like ``shutdown()`` without waiting: the thread closes the connection when its queue is empty.
    func shutdownDetached() {
        lock()
        stopping = true
        stopRequested.store(true, ordering: .releasing)
        pthread_cond_signal(condition)
        unlock()
    }

    // MARK: Serving

    private func serve(_ connection: SQLiteConnection) {
        var batch: [AnyRequest] = []
        var group: [AnyRequest] = []
        var jobBatch: [UnownedJob] = []
        var lastBatchSize = 0
        let executor = asUnownedTaskExecutor()
        while true {
            // Poll only for a lone caller (a batch of one, no other caller inside `perform`): it waits on
            // each answer before it asks again, and a wake-up would cost it more than the answer.
            // Several callers keep the queue filled on their own, and polling would only take CPU time
            // from the threads producing their next requests.
            if spinNanoseconds > 0 && lastBatchSize == 1 && activeCallers.load(ordering: .relaxed) <= 1
                && queued.load(ordering: .relaxed) == 0 && !stopRequested.load(ordering: .relaxed), let handed = spin()
            {
                if stopRequested.load(ordering: .acquiring) {
                    // Handed over as the backend closed: answer as a queued request would be.
                    reject(handed)
                } else {
                    runHanded(handed, connection)
                }
                lastBatchSize = 1
                continue
            }
            // Going idle or to a batch from the queue: a held read ends here, so an idle connection
            // holds no read mark (a checkpoint that restarts the WAL never waits for it) and a batch
            // opens its own transaction.
            connection.endHeldRead()
            lock()
            while queue.isEmpty && jobs.isEmpty && !stopping {
                sleeping = true
                pthread_cond_wait(condition, mutex)
                sleeping = false
            }
            if queue.isEmpty && jobs.isEmpty {
                servingEnded = true
                unlock()
                return
            }
            swap(&batch, &queue)
            swap(&jobBatch, &jobs)
            queued.store(0, ordering: .relaxed)
            unlock()
            lastBatchSize = batch.count + jobBatch.count
            if !batch.isEmpty {
                process(batch, connection, group: &group)
                batch.removeAll(keepingCapacity: true)
            }
            if !jobBatch.isEmpty {
                for job in jobBatch { job.runSynchronously(on: executor) }
                jobBatch.removeAll(keepingCapacity: true)
                // The tasks' reads may have held one; the tasks may now do something else for long.
                connection.endHeldRead()
            }
        }
    }

    /// Polls the queue and the mailbox for up to the configured spin time before the thread goes to
    /// sleep; returns a request handed over through the mailbox, if one came.
    private func spin() -> AnyRequest? {
        // On the lone caller's processor, the caller cannot make its next request while this spins.
        let processor = Int(csqlite_current_cpu())
        if threadProcessor.load(ordering: .relaxed) != processor { threadProcessor.store(processor, ordering: .relaxed) }
        var yielding = processor >= 0 && processor == callerProcessor.load(ordering: .relaxed)
        if yielding {
            // Sharing a processor, the two threads take turns (each yields to the other), and since
            // neither ever sleeps the scheduler has no reason to move one to another processor that
            // has become idle. Now and then this thread sleeps instead: the caller's next request
            // then wakes it, and the kernel places a woken thread on an idle processor if there is one.
            sharedProcessorTurns += 1
            if sharedProcessorTurns >= Self.sharedProcessorTurnsBeforeSleep {
                sharedProcessorTurns = 0
                return nil
            }
        } else {
            sharedProcessorTurns = 0
        }
        mailbox.store(Self.mailboxListening, ordering: .relaxed)
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var iterations = 0
        while true {
            if mailbox.load(ordering: .relaxed) != Self.mailboxListening { break }
            if queued.load(ordering: .relaxed) != 0 || stopRequested.load(ordering: .relaxed) { break }
            if yielding {
                // Past the pure spin, or on the caller's processor: give the processor to any thread
                // waiting for it (often the very caller this thread waits for).
                sched_yield()
            } else {
                csqlite_cpu_relax()
            }
            iterations += 1
            if yielding || iterations & 63 == 0 {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let elapsed = Int64(now.tv_sec - start.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - start.tv_nsec)
                if elapsed >= spinNanoseconds { break }
                yielding = yielding || elapsed >= Self.pureSpinNanoseconds
            }
        }
        // Close the mailbox; if a caller got in first, take its request.
        let closing = mailbox.compareExchange(expected: Self.mailboxListening, desired: Self.mailboxClosed, ordering: .acquiring)
        if closing.exchanged { return nil }
        mailbox.store(Self.mailboxClosed, ordering: .relaxed)
        guard let address = UnsafeRawPointer(bitPattern: closing.original) else { return nil }
        return Unmanaged<AnyRequest>.fromOpaque(address).takeRetainedValue()
    }

    private func process(_ batch: [AnyRequest], _ connection: SQLiteConnection, group: inout [AnyRequest]) {
        var index = batch.startIndex
        while index < batch.endIndex {
            if batch[index].kind == .exclusive {
                runExclusive(batch[index], connection)
                index += 1
                continue
            }
            var end = index + 1
            while end < batch.endIndex && batch[end].kind != .exclusive && end - index < Self.maximumGroup {
                end += 1
            }
            group.removeAll(keepingCapacity: true)
            lock()
            for request in batch[index..<end] where request.state == .queued {
                request.state = .running
                group.append(request)
            }
            unlock()
            if !group.isEmpty { runGroup(group, connection) }
            index = end
        }
    }

    /// Runs a read or short write handed over through the mailbox: a group of one, without the
    /// batch bookkeeping (the hot path of a lone caller).
    private func runHanded(_ request: AnyRequest, _ connection: SQLiteConnection) {
        handedRequests.wrappingAdd(1, ordering: .relaxed)
        lock()
        guard request.state == .queued else {
            // Cancelled while it was being handed over, and already answered.
            unlock()
            return
        }
        request.state = .running
        unlock()
        connection.validateHeldRead()
        let writes = request.kind == .write
        if writes && isWriter && connection.store.tracksAccess && connection.store.hasPendingAccesses {
            runInTransaction(CollectionOfOne(request), writes: true, connection)
        } else {
            request.execute(on: connection)
        }
        if writes && isWriter { afterWrites(connection) }
        lock()
        request.markFinished()
        unlock()
        request.resumeIfWaiting()
    }

    private func runExclusive(_ request: AnyRequest, _ connection: SQLiteConnection) {
        lock()
        guard request.state == .queued else {
            unlock()
            return
        }
        request.state = .running
        connection.clearInterrupt()
        unlock()
        // An exclusive request runs its own transactions (and rolls back what it leaves open).
        connection.endHeldRead()
        request.execute(on: connection)
        // A body that threw mid-transaction has rolled back; this only guards against a bug leaving one open.
        connection.rollbackIfNeeded()
        lock()
        request.markFinished()
        connection.clearInterrupt()
        unlock()
        if isWriter { afterWrites(connection) }
        request.resumeIfWaiting()
    }

    /// Runs a group of reads and short writes in one transaction and resumes their callers after the
    /// commit. If the transaction itself fails after it began (disk full, I/O error), SQLite has rolled
    /// it all back, so each write is run again on its own and gets its own result.
    private func runGroup(_ group: [AnyRequest], _ connection: SQLiteConnection) {
        var writes = false
        for request in group where request.kind == .write {
            writes = true
            break
        }
        if group.count == 1 && !(writes && isWriter && connection.store.tracksAccess && connection.store.hasPendingAccesses) {
            group[0].execute(on: connection)
        } else {
            runInTransaction(group, writes: writes, connection)
        }
        // Evict before answering, so a write that returns leaves the store within its limits.
        if writes && isWriter { afterWrites(connection) }
        lock()
        for request in group { request.markFinished() }
        unlock()
        for request in group { request.resumeIfWaiting() }
    }

    private func runInTransaction<Group: Collection<AnyRequest>>(_ group: Group, writes: Bool, _ connection: SQLiteConnection) {
        // Batches come after the thread ended any held read, but a transaction must not nest.
        connection.endHeldRead()
        do {
            try connection.begin(immediate: writes)
        } catch {
            for request in group { request.fail(error) }
            return
        }
        if writes && isWriter && connection.store.tracksAccess && connection.store.hasPendingAccesses {
            // Recording reads is best effort: a failure here must not fail the callers' writes.
            do {
                try connection.atomically(immediate: true) { try connection.flushAccesses() }
            } catch {}
        }
        var aborted = false
        for request in group {
            request.execute(on: connection)
            if connection.isAutocommit {
                aborted = true
                if writes { break }
            }
        }
        if !connection.isAutocommit {
            do {
                try connection.commit()
            } catch {
                connection.rollbackIfNeeded()
                if !writes {
                    // The reads already have their results; a failed end of a read transaction changes nothing.
                    return
                }
                aborted = true
            }
        }
        guard aborted && writes else { return }
        for request in group {
            request.execute(on: connection)
            connection.rollbackIfNeeded()
        }
    }

    /// After writes on the writer connection: evict if a size limit is exceeded.
    private func afterWrites(_ connection: SQLiteConnection) {
        guard connection.store.tracksAccess else { return }
        // Best effort: a failed eviction is retried after the next write and by the sweep.
        _ = try? connection.evictIfNeeded()
    }
}

/// What a new thread needs to start: its owner, how to open the connection, and whom to tell.
///
/// `@unchecked Sendable`: handed from the starting thread to the new one exactly once.
private final class ThreadStart: @unchecked Sendable {
    let thread: ConnectionThread
    let open: @Sendable () throws -> SQLiteConnection
    let ready: UnsafeContinuation<Void, any Error>

    init(thread: ConnectionThread, open: @escaping @Sendable () throws -> SQLiteConnection, ready: UnsafeContinuation<Void, any Error>) {
        self.thread = thread
        self.open = open
        self.ready = ready
    }
}

/// Where a request is in its life. Changed only with the owning thread's mutex held.
enum RequestState {
    case created, queued, running, finished
}

/// A queued request, type-erased so one queue holds requests of every result type.
///
/// `@unchecked Sendable`: `state`, `isCancelled` and the continuation are guarded by the owning
/// thread's mutex. The result is written before the request is marked finished (with the mutex held,
/// and `completed` stored with release ordering) and read only after: by the caller that sees
/// `completed` (acquire), or by whoever resumes the continuation after the mutex hand-off.
class AnyRequest: @unchecked Sendable {
    let kind: RequestKind
    var state: RequestState = .created
    var isCancelled = false
    /// True once the result is in; polled by a caller that waits briefly instead of suspending.
    let completed = Atomic<Bool>(false)

    init(kind: RequestKind) {
        self.kind = kind
    }

    /// Marks the request finished. Call with the owning thread's mutex held, after the result is set.
    final func markFinished() {
        state = .finished
        completed.store(true, ordering: .releasing)
    }

    /// Runs the body of the request it is given (this one) and keeps its result; set by
    /// ``Request``'s initializer, where the result type is known, so the connection's thread runs
    /// specialized code rather than the generic class's unspecialized methods (which look type
    /// metadata up at run time on every call). It captures nothing (the request comes as its
    /// argument), so setting it allocates no closure context.
    fileprivate(set) final var work: (AnyRequest, SQLiteConnection) -> Void = { _, _ in }

    /// Runs the body and keeps its result (does not resume the caller).
    @inline(__always)
    final func execute(on connection: SQLiteConnection) {
        work(self, connection)
    }
    /// Replaces the result with a failure.
    func fail(_ error: any Error) {}
    /// Resumes the caller if it suspended; a caller still polling takes the result itself.
    func resumeIfWaiting() {}
}

/// A request whose body returns a `T`.
final class Request<T: Sendable>: AnyRequest, @unchecked Sendable {
    /// Set (with the mutex held) when the caller suspends; resumed exactly once.
    var continuation: UnsafeContinuation<T, any Error>?
    private var result: Result<T, any Error>?
    /// Memory the caller allocated for the body to fill (empty for most requests).
    private var buffer: [UInt8] = []
    /// The body: one of the two forms, the other `nil`.
    private let body: (@Sendable (SQLiteConnection) throws -> T)?
    private let bufferBody: (@Sendable (SQLiteConnection, inout [UInt8]) throws -> T)?

    init(kind: RequestKind, body: @escaping @Sendable (SQLiteConnection) throws -> T) {
        self.body = body
        bufferBody = nil
        super.init(kind: kind)
        // `unsafeDowncast`: `work` is only ever called with the request it belongs to (`execute`).
        work = { request, connection in unsafeDowncast(request, to: Request<T>.self).runBody(connection) }
    }

    /// A request whose body fills `buffer`, memory the caller allocated (see
    /// ``ConnectionThread/perform(_:buffer:_:)``). The request owns the buffer until the body runs.
    init(kind: RequestKind, buffer: [UInt8], body: @escaping @Sendable (SQLiteConnection, inout [UInt8]) throws -> T) {
        self.buffer = buffer
        self.body = nil
        bufferBody = body
        super.init(kind: kind)
        work = { request, connection in unsafeDowncast(request, to: Request<T>.self).runBody(connection) }
    }

    /// Runs whichever body the request has and keeps its result.
    @inline(__always)
    private func runBody(_ connection: SQLiteConnection) {
        do {
            if let bufferBody {
                result = .success(try bufferBody(connection, &buffer))
            } else if let body {
                result = .success(try body(connection))
            }
        } catch {
            result = .failure(error)
        }
    }

    override func fail(_ error: any Error) {
        result = .failure(error)
    }

    override func resumeIfWaiting() {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(with: takeResultForResume())
    }

    /// The result, for a caller that saw the request finish.
    func takeResultForResume() -> Result<T, any Error> {
        result ?? .failure(CacheError(.internalError, "an SQLite request finished without a result; please report this bug"))
    }

    /// The result, or its error, once ``AnyRequest/completed`` is true.
    func takeResult() throws -> T {
        try takeResultForResume().get()
    }

    /// Polls ``AnyRequest/completed`` for up to `nanoseconds`; whether the request finished.
    func waitBriefly(nanoseconds: Int64, thread: ConnectionThread) -> Bool {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var iterations = 0
        // On the connection thread's processor, the answer cannot come while this spins.
        let processor = Int(csqlite_current_cpu())
        if thread.callerProcessor.load(ordering: .relaxed) != processor { thread.callerProcessor.store(processor, ordering: .relaxed) }
        var yielding = processor >= 0 && processor == thread.threadProcessor.load(ordering: .relaxed)
        while !completed.load(ordering: .acquiring) {
            if yielding {
                // See ConnectionThread.pureSpinNanoseconds: the connection thread may be waiting for
                // this very processor.
                sched_yield()
            } else {
                csqlite_cpu_relax()
            }
            iterations += 1
            if yielding || iterations & 31 == 0 {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let elapsed = Int64(now.tv_sec - start.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - start.tv_nsec)
                if elapsed >= nanoseconds { return completed.load(ordering: .acquiring) }
                yielding = yielding || elapsed >= ConnectionThread.pureSpinNanoseconds
            }
        }
        return true
    }
}
