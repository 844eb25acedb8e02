/// The result of ``CacheFront/health()``.
public struct CacheHealth: Sendable, CustomStringConvertible {
    /// The backend's name.
    public var backend: String
    /// Whether the probe was written, read back intact and deleted.
    public var isHealthy: Bool
    /// How long the probe's three operations took.
    public var latency: Duration
    /// Why the check failed, when it did.
    public var error: CacheError?

    public var description: String {
        if isHealthy { return "\(backend): healthy (\(latency))" }
        return "\(backend): unhealthy (\(error.map { "\($0)" } ?? "unknown error"))"
    }
}

extension CacheFront {
    /// Writes, reads back and deletes a probe key, and tells how that went: for readiness checks.
    ///
    /// ```swift
    /// let health = await cache.health()
    /// guard health.isHealthy else { logger.error("\(health)"); return .serviceUnavailable }
    /// ```
    /// Never throws: failures are in ``CacheHealth/error``. The probe key lives in this front's
    /// scope under `__health__:` and expires after a minute even if the delete fails.
    public func health() async -> CacheHealth {
        let clock = ContinuousClock()
        let start = clock.now
        var generator = SystemRandomNumberGenerator()
        let token = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let key = scope + "__health__:" + SHA256.hexString(token)
        do {
            try await backend.set(key, to: token, ttl: .seconds(60))
            let entry = try await backend.get(key)
            _ = try await backend.delete(key)
            guard let entry, entry.value == token else {
                throw CacheError(.internalError, "the \(backend.name) backend did not return the probe value it was given")
            }
            return CacheHealth(backend: backend.name, isHealthy: true, latency: clock.now - start, error: nil)
        } catch {
            let cacheError = (error as? CacheError) ?? CacheError(.connectionFailed, "health probe failed: \(error)", underlying: error)
            return CacheHealth(backend: backend.name, isHealthy: false, latency: clock.now - start, error: cacheError)
        }
    }
}
