import Logging
import ServiceLifecycle

extension InMemoryBackend {
    /// A service that removes an ``InMemoryBackend``'s expired entries every `interval`, so
    /// that memory is not held by keys nobody reads again.
    ///
    /// Run it in the app's `ServiceGroup`; it stops on graceful shutdown or cancellation and
    /// then returns normally, so it never ends the group on its own:
    ///
    /// ```swift
    /// let backend = InMemoryBackend()
    /// let group = ServiceGroup(
    ///     services: [app, try backend.sweeper(interval: .seconds(5))],
    ///     gracefulShutdownSignals: [.sigterm],
    ///     logger: logger
    /// )
    /// try await group.run()
    /// ```
    ///
    /// Each pass is ``InMemoryBackend/sweepExpired()``: it walks every shard a few hundred
    /// entries per lock hold, so other operations are not stalled. Expired entries are also
    /// removed whenever they are read, so the sweep only bounds the memory of keys that are
    /// never read again. After ``InMemoryBackend/close()`` the passes do nothing.
    public struct Sweeper: Service, CustomStringConvertible {
        /// The backend it sweeps.
        public let backend: InMemoryBackend
        /// The time between two passes.
        public let interval: Duration
        private let logger: Logger?

        /// Creates a sweeper.
        ///
        /// ```swift
        /// let sweeper = try InMemoryBackend.Sweeper(backend: backend, interval: .seconds(10))
        /// ```
        ///
        /// - Parameters:
        ///   - backend: the backend to sweep.
        ///   - interval: the time between two passes, measured on the real clock (not the
        ///     backend's); at least one millisecond.
        ///   - logger: where to log each pass that removed entries, at `debug` level; `nil`
        ///     logs nothing.
        /// - Throws: ``CacheError/Code/invalidArgument`` when `interval` is under a millisecond.
        public init(backend: InMemoryBackend, interval: Duration = .seconds(1), logger: Logger? = nil) throws(CacheError) {
            guard interval >= .milliseconds(1) else {
                throw CacheError(.invalidArgument, "sweep interval \(interval) is under 1 ms; use a longer interval such as .seconds(1)")
            }
            self.backend = backend
            self.interval = interval
            self.logger = logger
        }

        /// Sweeps every `interval` until the task is cancelled or the service group shuts down
        /// gracefully; then returns.
        public func run() async {
            let backend = self.backend
            let interval = self.interval
            let logger = self.logger
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let removed = backend.sweepExpired()
                    if removed > 0 {
                        logger?.debug(
                            "removed expired cache entries",
                            metadata: ["backend": "\(backend.name)", "removed": "\(removed)"]
                        )
                    }
                    do {
                        try await Task.sleep(for: interval)
                    } catch {
                        return  // cancelled: graceful shutdown or the group's cancellation
                    }
                }
            }
        }

        public var description: String { "InMemoryBackend.Sweeper(interval: \(interval))" }
    }

    /// A ``Sweeper`` for this backend, to run in a `ServiceGroup`.
    ///
    /// ```swift
    /// let group = ServiceGroup(services: [try backend.sweeper(interval: .seconds(5))], logger: logger)
    /// ```
    ///
    /// - Parameters:
    ///   - interval: the time between two passes; at least one millisecond.
    ///   - logger: where to log passes that removed entries, at `debug` level.
    /// - Throws: ``CacheError/Code/invalidArgument`` when `interval` is under a millisecond.
    public func sweeper(interval: Duration = .seconds(1), logger: Logger? = nil) throws(CacheError) -> Sweeper {
        try Sweeper(backend: self, interval: interval, logger: logger)
    }
}
