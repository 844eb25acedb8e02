import Caching
import Logging
import ServiceLifecycle

extension SQLiteBackend {
    /// A `Service` that deletes expired rows from an ``SQLiteBackend`` at a fixed interval.
    ///
    /// Expired entries are never returned whether or not a sweeper runs; the sweeper gives their space
    /// back (to new entries: an SQLite file does not shrink). Run it in the application's
    /// `ServiceGroup` next to the server, so it starts and stops with the application:
    ///
    /// ```swift
    /// let backend = try await SQLiteBackend(path: "/var/cache/shop/cache.sqlite")
    /// let sweeper = SQLiteBackend.Sweeper(backend: backend, interval: .seconds(60), logger: logger)
    /// let group = ServiceGroup(services: [server, sweeper], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()
    /// ```
    ///
    /// With several processes on one file, one sweeper is enough, but more do no harm.
    public struct Sweeper: Service {
        /// The backend to sweep.
        public let backend: SQLiteBackend
        /// The pause between two sweeps.
        public let interval: Duration
        private let logger: Logger

        /// Creates a sweeper; it starts sweeping when ``run()`` is called.
        /// - Parameters:
        ///   - backend: the backend to sweep.
        ///   - interval: the pause between two sweeps. Default: 60 seconds (also used in place of a
        ///     zero or negative interval).
        ///   - logger: where failed sweeps are reported (a sweep that fails is retried at the next interval).
        public init(backend: SQLiteBackend, interval: Duration = .seconds(60), logger: Logger) {
            self.backend = backend
            self.interval = interval > .zero ? interval : .seconds(60)
            self.logger = logger
        }

        /// Sweeps every ``interval`` until the service group shuts down gracefully or the task is
        /// cancelled, then returns. A failing sweep is logged and retried at the next interval; a closed
        /// backend ends the service.
        public func run() async throws {
            await cancelWhenGracefulShutdown {
                await self.loop()
            }
        }

        private func loop() async {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    let removed = try await backend.sweepExpired()
                    logger.debug("SQLite cache sweep done", metadata: ["removed": "\(removed)"])
                } catch let error as CacheError where error.code == .cancelled {
                    return
                } catch let error as CacheError where error.code == .closed {
                    logger.info("SQLite cache sweeper stops: the backend is closed")
                    return
                } catch {
                    logger.warning("SQLite cache sweep failed; retrying in \(interval)", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
