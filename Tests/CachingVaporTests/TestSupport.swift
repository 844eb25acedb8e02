#if Vapor
import Caching
import CachingHTTP
import Synchronization

func makeBackend() -> any CacheBackend { InMemoryBackend() }

/// A backend whose every operation fails: the fault the fail-open rule is about.
struct FailingBackend: CacheBackend {
    let name = "failing"
    func get(_ key: String) async throws -> CacheEntry? { throw CacheError(.connectionFailed, "backend down (test)") }
    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws { throw CacheError(.connectionFailed, "backend down (test)") }
    func delete(_ key: String) async throws -> Bool { throw CacheError(.connectionFailed, "backend down (test)") }
    func clear(prefix: String) async throws { throw CacheError(.connectionFailed, "backend down (test)") }
    func close() async throws {}
}

/// A settable wall clock for TTL arithmetic without sleeping.
final class ManualWallClock: Sendable {
    let milliseconds = Mutex<Int64>(1_700_000_000_000)
    var clock: HTTPCacheClock { HTTPCacheClock { self.milliseconds.withLock { $0 } } }
    func advance(by duration: Duration) {
        milliseconds.withLock { $0 += duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 }
    }
}

/// Counts endpoint calls so a test can tell a hit (no call) from a miss.
final class CallCounter: Sendable {
    let count = Mutex(0)
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
    var value: Int { count.withLock { $0 } }
}
#endif
