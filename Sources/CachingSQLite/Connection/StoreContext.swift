import Caching
import Synchronization

/// What every connection of one backend shares: where the store is, its settings, and the reads
/// waiting to be recorded for least-recently-used eviction.
final class StoreContext: Sendable {
    let location: SQLiteBackend.Location
    let configuration: SQLiteBackend.Configuration
    /// Whether reads record access times (only with a size limit: without one nothing is evicted).
    let tracksAccess: Bool
    /// ``SQLiteBackend/Configuration/accessTimeResolution`` in milliseconds.
    let accessResolution: Int64
    /// The most reads kept waiting for the writer; past it, further reads are not recorded until the
    /// next write flushes them (eviction order gets coarser, memory stays bounded).
    static let maximumPendingAccesses = 8192

    /// Keys read since the writer last flushed, with the time of their last read.
    private let accessed = Mutex<[[UInt8]: Int64]>([:])

    init(location: SQLiteBackend.Location, configuration: SQLiteBackend.Configuration) {
        self.location = location
        self.configuration = configuration
        self.tracksAccess = configuration.hasLimits
        self.accessResolution = CacheTTL.milliseconds(configuration.accessTimeResolution)
    }

    /// Notes that `key` was read at `now` (called by the reading connection's thread).
    func recordAccess(_ key: UnsafeRawBufferPointer, at now: Int64) {
        let key = [UInt8](key)
        accessed.withLock { pending in
            if pending.count < Self.maximumPendingAccesses || pending[key] != nil {
                pending[key] = now
            }
        }
    }

    /// Whether reads are waiting to be recorded.
    var hasPendingAccesses: Bool {
        accessed.withLock { !$0.isEmpty }
    }

    /// Takes the reads waiting to be recorded (called by the writer's thread).
    func takeAccesses() -> [[UInt8]: Int64] {
        accessed.withLock { pending in
            var taken: [[UInt8]: Int64] = [:]
            swap(&taken, &pending)
            return taken
        }
    }
}
