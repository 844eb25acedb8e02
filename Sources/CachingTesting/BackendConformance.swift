import Caching

/// The behaviour suite that every ``CacheBackend``, ours or yours, must pass.
///
/// Run it from a test against a real backend (a real server, a real file):
///
/// ```swift
/// import CachingTesting
/// import Testing
///
/// @Test func conformance() async throws {
///     let backend = try MyBackend(...)
///     try await BackendConformance(backend: backend).run()
/// }
/// ```
///
/// Or one check per test case, so failures show by name:
///
/// ```swift
/// @Test(arguments: BackendConformance.Check.allCases)
/// func conformance(_ check: BackendConformance.Check) async throws {
///     try await BackendConformance(backend: backend).run(check)
/// }
/// ```
///
/// Every key the suite writes starts with ``Options/keyPrefix`` (random by default), and it
/// clears only that prefix, so it can run against a server that holds other data.
public struct BackendConformance: Sendable {
    /// What the suite may assume of the backend.
    public struct Options: Sendable {
        /// The coarsest TTL the backend keeps: `.milliseconds(1)` for most, `.seconds(1)` for memcached.
        /// Expiry checks wait a few multiples of it.
        public var ttlResolution: Duration
        /// The size of the "large value" check, 1 MiB by default.
        public var largeValueSize: Int
        /// How many operations the concurrency check runs at once.
        public var concurrentOperations: Int
        /// The start of every key the suite writes.
        public var keyPrefix: String

        /// Creates options.
        /// - Parameters:
        ///   - ttlResolution: the backend's TTL precision.
        ///   - largeValueSize: bytes of the large-value check.
        ///   - concurrentOperations: operations in flight in the concurrency check.
        ///   - keyPrefix: the start of every key; random when `nil`.
        public init(
            ttlResolution: Duration = .milliseconds(1),
            largeValueSize: Int = 1 << 20,
            concurrentOperations: Int = 1000,
            keyPrefix: String? = nil
        ) {
            self.ttlResolution = ttlResolution
            self.largeValueSize = largeValueSize
            self.concurrentOperations = concurrentOperations
            var generator = SystemRandomNumberGenerator()
            self.keyPrefix = keyPrefix ?? "conformance-\(String(generator.next() as UInt64, radix: 36)):"
        }
    }

    /// One behaviour the suite checks.
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        case setGetDelete, overwrite, ttlExpiry, remainingTTL, invalidTTL
        case binaryValues, emptyAndLargeValues, unusualKeys
        case batchOperations, add, increment, touch
        case clearNamespace, concurrentOperations

        public var description: String { rawValue }
    }

    /// The backend under test.
    public let backend: any CacheBackend
    /// What the suite may assume.
    public let options: Options

    /// Creates the suite for `backend`.
    public init(backend: any CacheBackend, options: Options = Options()) {
        self.backend = backend
        self.options = options
    }

    /// Runs `checks` (all by default), then removes the suite's keys.
    /// - Throws: ``ConformanceFailure`` naming every check that failed and why.
    public func run(_ checks: [Check] = Check.allCases) async throws {
        var failures: [ConformanceFailure.Failure] = []
        for check in checks {
            do {
                try await run(check)
            } catch let failure as ConformanceFailure {
                failures += failure.failures
            } catch {
                failures.append(.init(check: check, message: "threw \(error)"))
            }
        }
        try? await backend.clear(prefix: options.keyPrefix)
        if !failures.isEmpty { throw ConformanceFailure(failures: failures) }
    }

    /// Runs one check.
    /// - Throws: ``ConformanceFailure`` when the backend breaks the contract, or the backend's
    ///   own error when an operation that must work throws.
    public func run(_ check: Check) async throws {
        let probe = Probe(check: check, backend: backend, options: options)
        switch check {
        case .setGetDelete: try await probe.setGetDelete()
        case .overwrite: try await probe.overwrite()
        case .ttlExpiry: try await probe.ttlExpiry()
        case .remainingTTL: try await probe.remainingTTL()
        case .invalidTTL: try await probe.invalidTTL()
        case .binaryValues: try await probe.binaryValues()
        case .emptyAndLargeValues: try await probe.emptyAndLargeValues()
        case .unusualKeys: try await probe.unusualKeys()
        case .batchOperations: try await probe.batchOperations()
        case .add: try await probe.add()
        case .increment: try await probe.increment()
        case .touch: try await probe.touch()
        case .clearNamespace: try await probe.clearNamespace()
        case .concurrentOperations: try await probe.concurrentOperations()
        }
    }
}

/// The checks that failed in a ``BackendConformance`` run.
public struct ConformanceFailure: Error, Sendable, CustomStringConvertible {
    /// One broken expectation.
    public struct Failure: Sendable, CustomStringConvertible {
        /// The check it belongs to.
        public var check: BackendConformance.Check
        /// What was expected and what happened.
        public var message: String

        public var description: String { "\(check): \(message)" }
    }

    /// Every broken expectation, in order.
    public var failures: [Failure]

    public var description: String {
        "backend conformance failed (\(failures.count)):\n" + failures.map { "  - \($0)" }.joined(separator: "\n")
    }
}
