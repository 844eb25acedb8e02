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
    /// About the largest value size that gets read lately (0: none yet, or larger than
    /// ``largestPreallocatedValue``), for ``valueBuffer()``. Written by the reading threads only when
    /// a value outgrows it or is much smaller, so callers mostly read a line nobody writes.
    private let valueSizeHint = Atomic<Int>(0)
    /// The largest value a caller allocates room for before the read; larger ones are allocated by
    /// the connection's thread (the cross-thread free matters little next to copying them).
    static let largestPreallocatedValue = 4096

    /// Held reads begun, and requests that found their connection's held read still current
    /// (`SQLiteConnection+HeldRead.swift`); for tests and diagnostics.
    let heldReadsBegun = Atomic<Int>(0)
    let heldReadsKept = Atomic<Int>(0)

    init(location: SQLiteBackend.Location, configuration: SQLiteBackend.Configuration) {
        self.location = location
        self.configuration = configuration
        self.tracksAccess = configuration.hasLimits
        self.accessResolution = CacheTTL.milliseconds(configuration.accessTimeResolution)
    }

    /// An empty array with room for a value of about the size read lately, allocated by the calling
    /// thread, for a get to copy its value into (see ``ConnectionThread/perform(_:buffer:_:)``);
    /// empty (no allocation) until a value was read, or when values are large.
    @inline(__always)
    func valueBuffer() -> [UInt8] {
        let hint = valueSizeHint.load(ordering: .relaxed)
        guard hint > 0 else { return [] }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(hint)
        return buffer
    }

    /// Notes the size of a value just read: grows the hint when a value outgrows it, shrinks it when
    /// values are less than a quarter of it (so a run of small values after a large one does not
    /// keep allocating the large size), and drops it for values too large to preallocate.
    @inline(__always)
    func noteValueSize(_ count: Int) {
        let hint = valueSizeHint.load(ordering: .relaxed)
        let next = count > Self.largestPreallocatedValue ? 0 : count
        if next > hint || next < hint / 4 {
            valueSizeHint.store(next, ordering: .relaxed)
        }
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
