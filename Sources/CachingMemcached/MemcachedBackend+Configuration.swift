import Caching

extension MemcachedBackend {
    /// How a ``MemcachedBackend`` reaches its servers and maps the cache contract onto memcached.
    ///
    /// ```swift
    /// var configuration = try MemcachedBackend.Configuration(url: "memcached://10.0.0.1:11211,10.0.0.2:11211")
    /// configuration.connectionsPerServer = 4
    /// configuration.ioTimeout = .milliseconds(250)
    /// let backend = try MemcachedBackend(configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// The servers; keys are spread over them with consistent (ketama, MD5, weighted) hashing,
        /// so adding or losing a server moves only that server's share of the keys.
        public var servers: [MemcachedServer]

        /// Connections (each a libmemcached handle owned by one dedicated thread) per server.
        ///
        /// Concurrent reads queued on one connection share a round trip (one multi-get), so a
        /// few connections serve many tasks; more connections help when values are large.
        public var connectionsPerServer: Int = 2

        /// How long to wait for a TCP connection to a server.
        public var connectTimeout: Duration = .seconds(1)

        /// How long to wait for a server to accept a request or answer it (libmemcached's poll,
        /// send and receive timeouts). A server that does not answer in time is marked down.
        public var ioTimeout: Duration = .seconds(1)

        /// How long a server that failed is left alone before one request tries it again.
        ///
        /// While a server is down, operations on its keys fail at once with
        /// ``CacheError/Code/connectionFailed`` (batch reads report its keys as misses), and the
        /// other servers keep serving. Keys are never moved to another server: moving them
        /// would serve stale values once the server is back.
        public var retryTimeout: Duration = .seconds(2)

        /// The largest value ``MemcachedBackend`` sends, in bytes. Larger values fail with
        /// ``CacheError/Code/valueTooLarge`` before any network traffic.
        ///
        /// The default fits memcached's default item size (`-I 1m`) with room for the key and
        /// the item header; raise it if your servers run with a larger `-I`. A server that
        /// refuses a value as too large is reported with the same error code.
        public var maxValueSize: Int = 1_048_576 - 512

        /// The byte that ends a namespace in a key, `:` by default (the front builds keys as
        /// `prefix:namespace:key`). ``MemcachedBackend/clear(prefix:)`` accepts prefixes that end with it.
        public var namespaceDelimiter: UInt8 = UInt8(ascii: ":")

        /// How many leading namespace levels of a key can be cleared on their own, 4 by default.
        ///
        /// Each level a key has (up to this number) is one small generation counter read with
        /// the key, in the same round trip. Clearing a prefix with more levels throws
        /// ``CacheError/Code/unsupported``.
        public var maxNamespaceDepth: Int = 4

        /// How long a namespace generation read from the server may be reused for writes, 1 s
        /// by default.
        ///
        /// Reads always check the generations in the same round trip as the value, so a
        /// `clear(prefix:)` from any process is seen at once by every read. A write made with
        /// a generation that another process has just bumped is stored in the old generation
        /// and so is never read: a lost write, never a stale read. `.zero` re-reads the
        /// generations before every write (one more round trip).
        public var generationCacheTTL: Duration = .seconds(1)

        /// Whether concurrent single reads waiting on the same connection are merged into one
        /// multi-get. On by default; turn off only to measure what it brings.
        public var coalescesReads: Bool = true

        /// How long a connection thread keeps polling (yielding its core) for the next request
        /// before it sleeps, 50 µs by default.
        ///
        /// A task that sends requests one after another then finds the thread awake, which
        /// saves a thread wake-up per request; an idle connection costs at most this much CPU
        /// after each burst. `.zero` makes threads sleep at once.
        public var idleSpin: Duration = .microseconds(50)

        /// How long a task whose request is alone on its connection waits for the reply on its
        /// own thread (spinning, and yielding its core at every turn) before it suspends; off
        /// (`.zero`) by default.
        ///
        /// Off by default because the waiting thread is one of Swift's cooperative pool: for the
        /// length of a round trip it runs no other task, which is what "never block the pool"
        /// forbids in spirit even though no C call runs on it. Measured on the 2-core test
        /// machine, 100 µs of waiting saved about 1 µs per get. Turn it on (e.g. `.microseconds(50)`)
        /// only for a process that makes sequential calls to a memcached on the same host and
        /// has spare cores.
        ///
        /// A suspended task is resumed through Swift's global executor, which costs a thread
        /// wake-up per call. Waiting a moment lets a task that calls one after another go on at
        /// once when the reply comes quickly. Requests that share a connection with others
        /// never wait (the thread serves the other tasks instead), and a connection whose
        /// recent replies mostly took longer than this (a server across a network) stops
        /// waiting until they get fast again. No blocking call runs on the waiting thread: it
        /// only watches a flag. `.zero` always suspends at once.
        public var replyWait: Duration = .zero

        /// How long a connection thread polls its socket for the reply of a read that is alone
        /// on its connection (a non-blocking `recv`, yielding its core at every turn) before it
        /// sleeps in `poll`; 100 µs by default.
        ///
        /// A reply that comes while the thread polls costs no thread wake-up: on a virtual
        /// machine whose idle CPUs halt, that wake-up is most of a round trip to a local server.
        /// Measured on the 2-core test machine with a local server, a task making sequential
        /// gets ran at 1.20× the rate of a plain C libmemcached loop with it and 0.82× without
        /// it; batches of 100 keys 0.94× and 0.78× of a C multi-get loop.
        ///
        /// The price is CPU: the polling thread is busy for the round trip instead of asleep
        /// (about 1.7× the process's CPU time per sequential get in that measurement; see the
        /// `MemcachedBackend` article). It is bounded three ways:
        /// - only a read alone on its connection polls; connections shared by concurrent tasks
        ///   serve them instead;
        /// - a connection whose recent replies mostly took longer than this (a server across a
        ///   network) stops polling, and tries once every 32 reads to see if they got fast again;
        /// - at most a quarter of the process's processors (at least one) poll at once, across
        ///   all backends' pool connections; a read that finds them busy sleeps at once (the
        ///   ``MemcachedBackend/taskExecutor`` thread, which polls for ``executorReplySpin``, is
        ///   not counted).
        ///
        /// The polling thread is the backend's own, never one of Swift's cooperative pool.
        /// `.zero` makes threads sleep at once (for a process that must not spend CPU on
        /// latency, or a host without a spare core).
        public var replySpin: Duration = .microseconds(100)

        /// ``replySpin`` for the reads of the ``MemcachedBackend/taskExecutor`` thread, 100 µs by
        /// default.
        ///
        /// That thread runs one call at a time for tasks that opted in to run on it, so while it
        /// waits for a reply nothing else can run on it anyway: polling costs no other caller
        /// any time, and measured no more CPU per call than sleeping in `poll` and being woken
        /// (the wake-up costs CPU too), while it saves the wake-up's latency. As with
        /// ``replySpin``, a server whose replies mostly take longer than this is polled only
        /// now and then. `.zero` makes the thread sleep at once.
        public var executorReplySpin: Duration = .microseconds(100)

        /// Creates a configuration for `servers` with the default settings.
        /// - Parameter servers: the memcached servers, at least one.
        public init(servers: [MemcachedServer]) {
            self.servers = servers
        }

        /// Creates a configuration from a server list such as
        /// `memcached://127.0.0.1:11211,127.0.0.1:11212` (the scheme may be left out; a server
        /// may carry a weight as `host:port:weight`).
        ///
        /// ```swift
        /// let configuration = try MemcachedBackend.Configuration(url: "memcached://cache-a:11211,cache-b:11211:2")
        /// ```
        /// - Parameter url: the server list.
        /// - Throws: ``CacheError/Code/configuration`` when the list cannot be parsed.
        public init(url: String) throws(CacheError) {
            self.servers = try MemcachedServer.parseList(url)
        }

        /// Checks every setting; the backend's initializer calls it.
        /// - Throws: ``CacheError/Code/configuration`` naming the first bad setting.
        public func validate() throws(CacheError) {
            func bad(_ message: String) -> CacheError { CacheError(.configuration, message) }
            guard !servers.isEmpty else { throw bad("the memcached configuration names no server; give at least one") }
            if servers.count > 1024 { throw bad("\(servers.count) memcached servers is more than the 1024 this backend supports") }
            var seen = Set<MemcachedServer>()
            for server in servers {
                if server.host.isEmpty { throw bad("a memcached server has an empty host") }
                if !(1...65535).contains(server.port) { throw bad("memcached server \(server) has port \(server.port), outside 1...65535") }
                if server.weight < 1 || server.weight > 1_000_000 { throw bad("memcached server \(server) has weight \(server.weight); use 1...1000000") }
                var key = server
                key.weight = 1
                if !seen.insert(key).inserted { throw bad("memcached server \(server) is listed twice") }
            }
            if !(1...64).contains(connectionsPerServer) { throw bad("connectionsPerServer is \(connectionsPerServer); use 1...64") }
            for (name, value) in [("connectTimeout", connectTimeout), ("ioTimeout", ioTimeout), ("retryTimeout", retryTimeout)] {
                if value <= .zero || value > .seconds(3600) { throw bad("\(name) is \(value); use a positive duration up to an hour") }
            }
            if maxValueSize < 1 { throw bad("maxValueSize is \(maxValueSize); use a positive number of bytes") }
            if namespaceDelimiter <= 0x20 || namespaceDelimiter >= 0x7f {
                throw bad("namespaceDelimiter is byte \(namespaceDelimiter); use a printable ASCII character such as ':'")
            }
            if !(0...32).contains(maxNamespaceDepth) { throw bad("maxNamespaceDepth is \(maxNamespaceDepth); use 0...32") }
            if idleSpin < .zero || idleSpin > .milliseconds(10) { throw bad("idleSpin is \(idleSpin); use 0...10 ms") }
            if replyWait < .zero || replyWait > .milliseconds(1) { throw bad("replyWait is \(replyWait); use 0...1 ms") }
            if replySpin < .zero || replySpin > .milliseconds(1) { throw bad("replySpin is \(replySpin); use 0...1 ms") }
            if executorReplySpin < .zero || executorReplySpin > .milliseconds(1) {
                throw bad("executorReplySpin is \(executorReplySpin); use 0...1 ms")
            }
            if generationCacheTTL < .zero || generationCacheTTL > .seconds(60) {
                throw bad("generationCacheTTL is \(generationCacheTTL); use 0...60 seconds")
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, at least 1, as libmemcached's `int32_t` settings take them.
    var libmemcachedMilliseconds: UInt64 {
        UInt64(max(1, min(CacheTTL.milliseconds(self), Int64(Int32.max))))
    }

    /// Whole seconds, rounded up, at least 1.
    var wholeSecondsRoundedUp: UInt64 {
        UInt64(max(1, min(CacheTTL.seconds(self), Int64(Int32.max))))
    }

    /// Nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? Int64.min : Int64.max }
        return sum
    }
}
