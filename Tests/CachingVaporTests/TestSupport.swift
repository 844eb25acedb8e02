#if Vapor
import Caching
import CachingTesting
import CachingHTTP
import Synchronization

func makeBackend() -> any CacheBackend { InMemoryBackend() }

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
