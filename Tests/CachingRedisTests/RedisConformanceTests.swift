import Caching
import CachingTesting
import Testing

@testable import CachingRedis

/// The shared behaviour suite, against the shared server (`CACHING_REDIS_URL`). Serialized: its
/// expiry checks allow 100 ms between a write and the read that follows, so its own cases
/// should not compete for the CPU.
@Suite(
    .serialized,
    .enabled(if: TestEnvironment.sharedServerEnabled, "CACHING_REDIS_URL is not set or its server does not answer")
)
struct RedisConformanceTests {
    @Test(arguments: BackendConformance.Check.allCases)
    func conformance(_ check: BackendConformance.Check) async throws {
        let backend = try TestEnvironment.sharedBackend()
        do {
            try await BackendConformance(backend: backend).run([check])
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }

    @Test func wholeSuiteOnOneBackend() async throws {
        let backend = try TestEnvironment.sharedBackend(poolSize: 3)
        do {
            try await BackendConformance(backend: backend).run()
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }
}
