#if Hummingbird
import Caching
import CachingTesting
import CachingHummingbird
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import CachingHTTP

extension HummingbirdHTTPCacheTests {
    /// Concurrent requests for a cold URL call the endpoint once; the others are answered from
    /// what it stored.
    @Test(.timeLimit(.minutes(1))) func concurrentMissesCallTheEndpointOnce() async throws {
        let cache = cache()
        let gate = Latch()
        let xCache = self.xCache
        try await withApp(cache, configure: { [calls] router in
            router.get("/cold") { _, _ -> String in
                let n = calls.increment()
                await gate.wait()
                return "computed \(n)"
            }
        }) { client in
            let replies = try await withThrowingTaskGroup(of: (String?, String).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let response = try await client.execute(uri: "/cold", method: .get)
                        return (response.headers[xCache], String(buffer: response.body))
                    }
                }
                let deadline = ContinuousClock.now + .seconds(20)
                while cache.coalescer.waiterCount("GET /cold") < 7, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(1))
                }
                gate.open()
                var replies: [(String?, String)] = []
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
