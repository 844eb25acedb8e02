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

/// The thread behind ``MemcachedBackend/taskExecutor``: a `TaskExecutor` (SE-0417) that is also a
/// connection thread, with its own connection to every server.
///
/// It runs the jobs of the tasks that prefer it, one at a time. When such a task calls the
/// backend, the call runs right there, on this thread, with this thread's connection to the
/// key's server (``run(server:_:)``): no queue, no other thread, no wake-up. The connections
/// (a binary-protocol libmemcached handle and a text-protocol reader per server, as a pool
/// connection has) are made on first use and used by this thread only, so no other caller's
/// requests ever wait on them and the pool's connections are untouched. Every blocking call
/// still runs on a thread of the backend's own, never on Swift's cooperative pool.
///
/// Once stopped, jobs go to the global concurrent executor, so a task that still prefers this
/// executor after ``MemcachedBackend/close()`` runs on (and its calls throw `.closed`).
final class MemcachedExecutorThread: TaskExecutor, @unchecked Sendable {
    // `@unchecked Sendable`: `jobs`, `sleeping`, `stopping`, `running` and `thread` are touched
    // only with `mutex` held; `contexts` only by the thread itself (created there on first use
    // and released there when it ends); the counters and `threadToken` are atomics; `mutex` and
    // `condition` are pthread objects made for use across threads.

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [UnownedJob] = []
    private var sleeping = false
    /// Set by ``stop(join:)`` (or at creation after `close()`): new jobs go to the global executor.
    private var stopping = false
    private var running = false
    private var thread: pthread_t?
    /// Jobs waiting, readable without the mutex while the thread spins.
    private let queued = Atomic<Int>(0)
    /// The thread's identity (see ``currentThreadToken()``), 0 until it runs.
    private let threadToken = Atomic<UInt>(0)
    /// One connection per server, made on first use.
    private var contexts: [ConnectionContext?]
    private let states: [ServerState]
    private let configuration: MemcachedBackend.Configuration
    private let idleSpinNanoseconds: Int64
    private let name: String

    /// Backend calls run inline on this thread (for tests and diagnostics).
    let inlineCalls = Atomic<Int>(0)

    /// Creates the executor and starts its thread (none when `stopped`, e.g. made after `close()`).
    init(states: [ServerState], configuration: MemcachedBackend.Configuration, name: String, stopped: Bool) {
        self.states = states
        // The readers of this thread poll for their reply for `executorReplySpin`.
        var configuration = configuration
        configuration.replySpin = configuration.executorReplySpin
        self.configuration = configuration
        self.name = name
        contexts = Array(repeating: nil, count: states.count)
        idleSpinNanoseconds = configuration.idleSpin.nanoseconds
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
        if stopped {
            stopping = true
        } else {
            start()
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private func start() {
        let started = OSThread.start { self.loop() }
        pthread_mutex_lock(mutex)
        switch started {
        case .success(let tid):
            thread = tid
            running = true
        case .failure:
            // No thread: every job goes to the global executor, and backend calls take the pool.
            stopping = true
        }
        pthread_mutex_unlock(mutex)
    }

    /// An identity of the calling thread, comparable with ``threadToken``.
    @inline(__always)
    private static func currentThreadToken() -> UInt {
        #if canImport(Darwin)
        UInt(bitPattern: pthread_self())
        #else
        UInt(pthread_self())
        #endif
    }

    /// Whether the calling code runs on this thread (a job of a task that prefers this executor).
    @inline(__always)
    var isCurrentThread: Bool {
        // Relaxed is enough: on this thread the value was stored by this thread itself; on any
        // other thread it can never equal the caller's identity.
        threadToken.load(ordering: .relaxed) == Self.currentThreadToken()
    }

    // MARK: Running backend calls inline

    /// Runs `body` now, on this thread, with this thread's connection to `server`: what a pool
    /// connection does for one request, without the queue. Call it only when ``isCurrentThread``.
    ///
    /// - Throws: ``CacheError/Code/cancelled`` when the task is cancelled before the call starts;
    ///   the server's refusal when it is marked down; what `body` throws.
    func run<T>(server: Int, _ body: (ConnectionContext) throws(CacheError) -> T) throws(CacheError) -> T {
        if Task.isCancelled { throw CacheError.cancelled }
        let context = try context(server)
        if let refusal = context.admit() { throw refusal }
        inlineCalls.add(1, ordering: .relaxed)
        let result: Result<T, CacheError>
        do throws(CacheError) {
            result = .success(try body(context))
        } catch {
            result = .failure(error)
        }
        context.report()
        return try result.get()
    }

    private func context(_ server: Int) throws(CacheError) -> ConnectionContext {
        if let context = contexts[server] { return context }
        let state = states[server]
        let handle = try MemcachedHandle(server: state.server, configuration: configuration)
        let reader = MemcachedTextReader(server: state.server, configuration: configuration, spinSlots: nil)
        let context = ConnectionContext(handle: handle, reader: reader, state: state, generationCacheTTL: configuration.generationCacheTTL)
        contexts[server] = context
        return context
    }

    // MARK: Executing jobs

    /// Queues a job of a task that prefers this executor. Once the executor is stopping, jobs go
    /// to the global concurrent executor instead, so no task hangs and `close()` never waits for
    /// a task that keeps running.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        if stopping {
            pthread_mutex_unlock(mutex)
            globalConcurrentExecutor.enqueue(job)
            return
        }
        jobs.append(job)
        queued.store(jobs.count, ordering: .releasing)
        let wake = sleeping
        pthread_mutex_unlock(mutex)
        // After unlocking, so the woken thread does not block at once on the mutex. No wake-up is
        // lost: the thread checks `jobs` under the mutex before it sleeps.
        if wake { pthread_cond_signal(condition) }
    }

    /// Stops taking jobs (later ones go to the global executor); the thread runs the jobs already
    /// queued, closes its connections and ends. Waits for that when `join` is true, which blocks:
    /// call it off the cooperative pool, and never from this thread.
    func stop(join: Bool) {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(condition)
        let current = thread
        let joinable = join && running
        running = false
        thread = nil
        pthread_mutex_unlock(mutex)
        if let current { OSThread.end(current, join: joinable) }
    }

    private func loop() {
        clibmemcached_name_current_thread(String(name.prefix(15)))
        threadToken.store(Self.currentThreadToken(), ordering: .releasing)
        let executor = asUnownedTaskExecutor()
        var batch: [UnownedJob] = []
        while true {
            spinForJobs()
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !stopping {
                sleeping = true
                pthread_cond_wait(condition, mutex)
                sleeping = false
            }
            if jobs.isEmpty {
                pthread_mutex_unlock(mutex)
                break
            }
            swap(&batch, &jobs)
            queued.store(0, ordering: .relaxed)
            pthread_mutex_unlock(mutex)
            for job in batch { job.runSynchronously(on: executor) }
            batch.removeAll(keepingCapacity: true)
        }
        // The handles are freed here, on the thread that used them.
        contexts = []
    }

    /// Polls briefly for the next job before sleeping (``MemcachedBackend/Configuration/idleSpin``):
    /// a task that waits for something short resumes here without a thread wake-up.
    private func spinForJobs() {
        guard idleSpinNanoseconds > 0, queued.load(ordering: .acquiring) == 0 else { return }
        _ = Spin.until(Spin.now() + idleSpinNanoseconds) { queued.load(ordering: .acquiring) != 0 }
    }
}
