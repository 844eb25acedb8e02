#if Vapor
import Caching
import CachingTesting
import CachingVapor
import NIOCore
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import CachingHTTP

extension VaporHTTPCacheTests {
    /// Concurrent requests for a cold URL call the endpoint once; the others are answered from
    /// what it stored.
    @Test(.timeLimit(.minutes(1))) func concurrentMissesCallTheEndpointOnce() async throws {
        let cache = cache()
        let gate = Latch()
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
