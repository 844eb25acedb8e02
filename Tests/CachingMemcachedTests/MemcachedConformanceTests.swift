import Caching
import CachingMemcached
import CachingTesting
import Testing

/// The shared behaviour suite, against the shared servers (`CACHING_MEMCACHED_SERVERS`).
@Suite(.enabled(if: TestEnvironment.runSharedTests, "\(TestEnvironment.sharedServersProblem ?? "")"))
struct MemcachedConformanceTests {
    static let options = BackendConformance.Options(ttlResolution: .seconds(1))

    @Test(arguments: BackendConformance.Check.allCases)
    func conformance(_ check: BackendConformance.Check) async throws {
        let backend = try TestEnvironment.sharedBackend()
        var options = Self.options
        options.keyPrefix = uniquePrefix("conformance-\(check)")
        do {
            try await BackendConformance(backend: backend, options: options).run([check])
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }

    /// The default polls for replies (`replySpin`, `executorReplySpin`); this runs the checks
    /// with threads that sleep in `poll` at once.
    @Test func conformanceWithoutReplySpin() async throws {
        let backend = try TestEnvironment.sharedBackend {
            $0.replySpin = .zero
            $0.executorReplySpin = .zero
        }
        let checks: [BackendConformance.Check] = [.setGetDelete, .emptyAndLargeValues, .batchOperations, .clearNamespace, .concurrentOperations]
        // Own key prefixes: the tests of this suite run in parallel on the same servers.
        var options = Self.options
        options.keyPrefix = uniquePrefix("conformance-no-reply-spin")
        var executorOptions = Self.options
        executorOptions.keyPrefix = uniquePrefix("conformance-no-reply-spin-executor")
        do {
            try await BackendConformance(backend: backend, options: options).run(checks)
            // The same on the taskExecutor thread, whose reads do not poll either.
            try await withTaskExecutorPreference(backend.taskExecutor) {
                try await BackendConformance(backend: backend, options: executorOptions).run(checks)
            }
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }

    @Test func conformanceWithoutReadCoalescing() async throws {
        let backend = try TestEnvironment.sharedBackend { $0.coalescesReads = false }
        var options = Self.options
        options.keyPrefix = uniquePrefix("conformance-no-coalescing")
        do {
            try await BackendConformance(backend: backend, options: options).run([.setGetDelete, .batchOperations, .clearNamespace, .concurrentOperations])
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }
}

/// Fails on CI when the shared servers are missing; says why the shared tests are skipped elsewhere.
@Suite struct MemcachedEnvironmentTests {
    @Test func sharedServersAreAvailable() {
        if let problem = TestEnvironment.sharedServersProblem {
            if TestEnvironment.isCI {
                Issue.record("CI=true but the shared memcached servers are unusable: \(problem)")
            } else {
                print("note: memcached shared-server tests skipped: \(problem)")
            }
        }
        if TestEnvironment.memcachedPath == nil {
            if TestEnvironment.isCI {
                Issue.record("CI=true but memcached is not on PATH; the private-server tests cannot run")
            } else {
                print("note: memcached private-server tests skipped: memcached is not on PATH")
            }
        }
    }
}
