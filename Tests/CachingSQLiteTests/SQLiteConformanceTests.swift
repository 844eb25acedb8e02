import Caching
import CachingTesting
import Testing

@testable import CachingSQLite

/// The shared behaviour suite against a real SQLite file and an in-memory database.
@Suite struct SQLiteConformanceTests {
    /// SQLite keeps TTLs to the millisecond, but the suite's shortest TTL (100 ms by default) is shorter
    /// than the stalls of the cooperative pool on a loaded 2-core machine while the whole package's
    /// tests run in parallel in one process ("gone right after set" then means "the task waited 100 ms
    /// for a thread"). A 250 ms resolution widens the expiry windows without weakening any check.
    static let options = BackendConformance.Options(ttlResolution: .milliseconds(250))

    @Test(arguments: BackendConformance.Check.allCases)
    func fileBackend(_ check: BackendConformance.Check) async throws {
        try await heavyTests.run {
            try await withFileBackend { backend, _ async throws in
                try await BackendConformance(backend: backend, options: Self.options).run([check])
            }
        }
    }

    @Test(arguments: BackendConformance.Check.allCases)
    func inMemoryBackend(_ check: BackendConformance.Check) async throws {
        try await heavyTests.run {
            let backend = try await SQLiteBackend(location: .memory)
            try await BackendConformance(backend: backend, options: Self.options).run([check])
            try await backend.close()
        }
    }

    @Test func wholeSuiteOnAFileWithSizeLimitsAndTwoReaders() async throws {
        // Limits turn on size accounting and access-time recording; two readers spread the reads.
        let configuration = SQLiteBackend.Configuration(maximumBytes: 64 << 20, maximumEntries: 100_000, readerCount: 2)
        try await heavyTests.run {
            try await withFileBackend(configuration: configuration) { backend, _ async throws in
                try await BackendConformance(backend: backend, options: Self.options).run()
            }
        }
    }

    @Test func wholeSuiteWithReadsOnTheWriterAndNoSpin() async throws {
        let configuration = SQLiteBackend.Configuration(readerCount: 0, idleSpin: .zero)
        try await heavyTests.run {
            try await withFileBackend(configuration: configuration) { backend, _ async throws in
                try await BackendConformance(backend: backend, options: Self.options).run()
            }
        }
    }
}
