import Caching
import CachingTesting
import Testing

/// The shared behaviour suite against the in-memory backend, one test case per check.
@Suite struct InMemoryConformanceTests {
    @Test(arguments: BackendConformance.Check.allCases)
    func conformance(_ check: BackendConformance.Check) async throws {
        let backend = InMemoryBackend()
        try await BackendConformance(backend: backend).run([check])
    }

    @Test func wholeSuiteInOneRun() async throws {
        try await BackendConformance(backend: InMemoryBackend()).run()
    }
}
