extension MemcachedBackend {
    /// An executor for tasks that make many cache calls in a row: their calls then run on the
    /// thread they run on, with no thread hop.
    ///
    /// By default every call hops: the request goes to a connection's thread (where the blocking
    /// I/O runs, never on Swift's cooperative pool), and the reply wakes the caller's pool thread
    /// again. A task that prefers this executor (SE-0417) runs its own code on a dedicated
    /// connection thread of the backend instead, and each call it makes runs right there, with
    /// that thread's own connection to the key's server: one round trip, and no queue, no other
    /// thread and no wake-up on the way.
    ///
    /// ```swift
    /// let backend = try MemcachedBackend(url: "memcached://10.0.0.1:11211,10.0.0.2:11211")
    /// let cache = CacheFront(backend: backend, prefix: "shop")
    /// let names = try await withTaskExecutorPreference(backend.taskExecutor) {
    ///     var found: [String] = []
    ///     for id in ids { if let name = try await cache.get("name:\(id)", as: String.self) { found.append(name) } }
    ///     return found
    /// }
    /// // or: Task(executorPreference: backend.taskExecutor) { ... }
    /// ```
    ///
    /// The contract:
    /// - **Every server, every operation.** The thread has its own connection (made on first use)
    ///   to each server, so reads, writes, batches and counters on any key run inline; a batch
    ///   over several servers reads them one after another instead of in parallel. The pool's
    ///   connections and their merged reads are not involved.
    /// - **Cancellation.** A call of a cancelled task throws ``CacheError/Code/cancelled`` before
    ///   it starts; a call that has started runs to its end (at most ``Configuration/ioTimeout``
    ///   per round trip).
    /// - **Failures** are those of the default path: a server that does not answer costs the call
    ///   ``Configuration/ioTimeout`` and is marked down; calls on its keys then fail at once.
    /// - **After ``close()``** the thread ends; tasks that still prefer this executor run on the
    ///   global concurrent executor, and their calls throw ``CacheError/Code/closed``.
    ///
    /// The price: everything a task does in the scope runs on this one thread, one job at a time,
    /// and so do all the tasks that prefer it: they never run in parallel, a frozen server stops
    /// them all for up to ``Configuration/ioTimeout``, and CPU-heavy or blocking code in the scope
    /// delays every one of them. Use it for short, read-heavy stretches that call the cache one
    /// call after another (rendering a page from many cached fragments, a job that walks keys);
    /// keep the default for handlers that make one or two calls, and for concurrent work, which
    /// the pool connections serve in parallel and merge into shared round trips. The thread
    /// polls for new jobs for ``Configuration/idleSpin`` before it sleeps, as the pool's
    /// connection threads do.
    public var taskExecutor: any TaskExecutor { executor }
}
