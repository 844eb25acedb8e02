import Caching
import Logging
import Synchronization

/// What every connection to one server shares: whether the server is up, and the namespace
/// generations last read from it.
final class ServerState: Sendable {
    let index: Int
    let server: MemcachedServer
    private let retryTimeout: Duration
    private let logger: Logger
    private let health = Mutex(Health())
    private let generations = Mutex([MemcachedKey: Generation]())
    /// Multi-gets sent to this server (each one round trip), for tests and diagnostics.
    let multiGets = Atomic<Int>(0)

    /// Past this many remembered generations the cache starts over (they are re-read on use).
    static let maxRememberedGenerations = 50_000

    init(index: Int, server: MemcachedServer, retryTimeout: Duration, logger: Logger) {
        self.index = index
        self.server = server
        self.retryTimeout = retryTimeout
        self.logger = logger
    }

    // MARK: Health (a circuit breaker)

    private struct Health {
        /// Set while the server is down: when the next attempt may be made.
        var downUntil: ContinuousClock.Instant?
        /// True while one request is trying a server that was down.
        var probing = false
        /// Why the server was marked down.
        var reason = ""
    }

    /// Whether a request may go to the server now.
    enum Admission {
        /// The server is up.
        case go
        /// The server was down and its retry time has come: this request tries it.
        case probe
        /// The server is down: fail at once with this error.
        case refuse(CacheError)
    }

    /// Decides whether a request may use the server. A `.probe` must be followed by
    /// ``succeeded()`` or ``failed(_:)``.
    func admit() -> Admission {
        health.withLock { health in
            let admission = Self.admission(health, server: server)
            if case .probe = admission { health.probing = true }
            return admission
        }
    }

    /// The error to fail a new request with at once, without queuing it, when the server is
    /// down and its retry time has not come; `nil` otherwise (the connection decides then).
    func refusal() -> CacheError? {
        if case .refuse(let error) = peek() { return error }
        return nil
    }

    private func peek() -> Admission {
        health.withLock { Self.admission($0, server: server) }
    }

    private static func admission(_ health: Health, server: MemcachedServer) -> Admission {
        guard let until = health.downUntil else { return .go }
        let now = ContinuousClock.now
        if now >= until && !health.probing { return .probe }
        return .refuse(CacheError(
            .connectionFailed,
            "memcached server \(server) is marked down (\(health.reason)); its keys are unavailable until it answers again, next try in \(max(until - now, .zero).formatted)"
        ))
    }

    /// A request that was let through neither reached the server nor failed to: let the next
    /// request try instead.
    func releaseProbe() {
        health.withLock { $0.probing = false }
    }

    /// Whether the server is currently marked down.
    var isDown: Bool { health.withLock { $0.downUntil != nil } }

    /// The server answered.
    func succeeded() {
        let recovered = health.withLock { health -> Bool in
            let wasDown = health.downUntil != nil
            health.downUntil = nil
            health.probing = false
            return wasDown
        }
        if recovered {
            logger.notice("memcached server is back", metadata: ["server": "\(server)"])
        }
    }

    /// The server or the connection to it failed: leave it alone for the retry timeout, and
    /// forget its generations (it may come back restarted, without them; writes must not use
    /// counters that are gone).
    func failed(_ status: MemcachedStatus) {
        generations.withLock { $0.removeAll() }
        let newlyDown = health.withLock { health -> Bool in
            let wasDown = health.downUntil != nil
            health.downUntil = ContinuousClock.now + retryTimeout
            health.probing = false
            health.reason = status.message
            return !wasDown
        }
        if newlyDown {
            logger.warning(
                "memcached server marked down; its keys are unavailable until it answers again",
                metadata: ["server": "\(server)", "error": "\(status.message)", "retry_in": "\(retryTimeout)"]
            )
        }
    }

    // MARK: Namespace generations

    /// A namespace generation as last read from this server.
    struct Generation {
        /// The counter, or `nil` when the server did not have it.
        var value: UInt64?
        /// When it was read (monotonic).
        var readAt: ContinuousClock.Instant
    }

    /// The remembered generation of each of `keys`, in order.
    func generations(_ keys: [MemcachedKey]) -> [Generation?] {
        generations.withLock { table in keys.map { table[$0] } }
    }

    /// Remembers generations just read from, or written to, the server.
    func remember(_ values: [(key: MemcachedKey, value: UInt64?)]) {
        if values.isEmpty { return }
        let now = ContinuousClock.now
        generations.withLock { table in
            if table.count + values.count > Self.maxRememberedGenerations { table.removeAll(keepingCapacity: true) }
            for (key, value) in values { table[key] = Generation(value: value, readAt: now) }
        }
    }
}

extension Duration {
    /// A short human form such as `1.5 s`.
    var formatted: String {
        let ms = CacheTTL.milliseconds(self)
        if ms < 1000 { return "\(ms) ms" }
        return "\(ms / 1000).\(ms % 1000 / 100) s"
    }
}
