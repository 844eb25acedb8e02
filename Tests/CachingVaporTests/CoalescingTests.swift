#if Vapor
import Caching
import CachingVapor
import NIOCore
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import CachingHTTP

/// Opens once; `wait()` suspends until then.
final class Gate: Sendable {
    let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

extension VaporHTTPCacheTests {
    /// Concurrent requests for a cold URL call the endpoint once; the others are answered from
    /// what it stored.
    @Test(.timeLimit(.minutes(1))) func concurrentMissesCallTheEndpointOnce() async throws {
        let cache = cache()
        let gate = Gate()
        try await withCachedApp(cache, configure: { [calls] routes in
            routes.get("cold") { _ async -> String in
                let n = calls.increment()
                await gate.wait()
                return "computed \(n)"
            }
        }) { (app: Application) async throws in
            let replies = try await withThrowingTaskGroup(of: (String?, String?).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let response = try await self.send(app, "/cold")
                        return (response.headers.first(name: "X-Cache"), response.body.string)
                    }
                }
                let deadline = ContinuousClock.now + .seconds(20)
                while cache.coalescer.waiterCount("GET /cold") < 7, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(1))
                }
                gate.open()
                var replies: [(String?, String?)] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            #expect(replies.allSatisfy { $0.1 == "computed 1" })
            #expect(replies.filter { $0.0 == "MISS" }.count == 1)
            #expect(replies.filter { $0.0 == "HIT" }.count == 7)
        }
        #expect(calls.count == 1)
    }
}
#endif
