import Caching
import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import CachingSQLite

/// Size limits, eviction, the sweep and prefix clearing.
@Suite struct SQLiteMaintenanceTests {
    // MARK: Size limits

    @Test func anEntryLimitEvictsTheLeastRecentlyUsed() async throws {
        let configuration = SQLiteBackend.Configuration(maximumEntries: 100, evictionTarget: 0.9, accessTimeResolution: .zero)
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            for i in 0..<100 { try await backend.set("k\(i)", to: Array("v\(i)".utf8), ttl: nil) }
            try await Task.sleep(for: .milliseconds(20))
            // Read the first ten: they become the most recently used.
            for i in 0..<10 { #expect(try await backend.get("k\(i)") != nil) }
            try await Task.sleep(for: .milliseconds(20))
            try await backend.set("k100", to: Array("v100".utf8), ttl: nil)  // 101 entries: over the limit
            let statistics = try await backend.statistics()
            #expect(statistics.entries == 90, "eviction should bring 101 entries down to 90% of 100")
            for i in 0..<10 { #expect(try await backend.get("k\(i)")?.value == Array("v\(i)".utf8), "k\(i) was read recently but evicted") }
            #expect(try await backend.get("k100") != nil, "the newest entry was evicted")
        }
    }

    @Test func expiredEntriesAreEvictedBeforeLiveOnes() async throws {
        let configuration = SQLiteBackend.Configuration(maximumEntries: 50, evictionTarget: 0.9)
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            for i in 0..<20 { try await backend.set("old\(i)", to: [1], ttl: nil) }
            for i in 0..<30 { try await backend.set("short\(i)", to: [2], ttl: .milliseconds(30)) }
            try await Task.sleep(for: .milliseconds(80))
            try await backend.set("new", to: [3], ttl: nil)  // 51 rows
            for i in 0..<20 { #expect(try await backend.get("old\(i)") != nil, "a live entry was evicted while expired ones remained") }
            #expect(try await physicalRows(backend) <= 45)
        }
    }

    @Test func aByteLimitKeepsTheStoreUnderIt() async throws {
        let limit = 20_000
        let configuration = SQLiteBackend.Configuration(maximumBytes: limit, evictionTarget: 0.8)
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            let value = [UInt8](repeating: 7, count: 1000)
            for i in 0..<100 {
                try await backend.set("key-\(i)", to: value, ttl: nil)
                let statistics = try await backend.statistics()
                #expect(statistics.bytes <= limit, "after set \(i) the store holds \(statistics.bytes) bytes, over \(limit)")
            }
            #expect(try await backend.get("key-99")?.value == value, "the newest entry was evicted")
            let statistics = try await backend.statistics()
            #expect(statistics.entries >= 15)
        }
    }

    @Test func aValueOverTheByteLimitIsRefused() async throws {
        try await withFileBackend(configuration: .init(maximumBytes: 1000)) { backend, _ async throws in
            let error = await cacheError { try await backend.set("big", to: [UInt8](repeating: 0, count: 1000), ttl: nil) }
            #expect(error?.code == .valueTooLarge)
            #expect(try await backend.get("big") == nil)
            let batchError = await cacheError {
                try await backend.set([(key: "small", value: [1]), (key: "big", value: [UInt8](repeating: 0, count: 2000))], ttl: nil)
            }
            #expect(batchError?.code == .valueTooLarge)
            #expect(try await backend.get("small") == nil, "a refused batch stored part of its items")
        }
    }

    @Test func limitsAddedToAnExistingStoreCountWhatIsThere() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let unlimited = try await SQLiteBackend(path: directory.file())
        for i in 0..<200 { try await unlimited.set("k\(i)", to: [UInt8](repeating: 1, count: 10), ttl: nil) }
        try await unlimited.close()
        let limited = try await SQLiteBackend(path: directory.file(), configuration: .init(maximumEntries: 100))
        try await limited.set("one more", to: [1], ttl: nil)
        #expect(try await limited.statistics().entries == 90)
        try await limited.close()
    }

    // MARK: Sweep

    @Test func sweepExpiredRemovesOnlyExpiredRows() async throws {
        try await withFileBackend { backend, _ async throws in
            // More rows than one sweep chunk, so the sweep walks several chunks.
            let items = (0..<5000).map { (key: "short:\($0)", value: [UInt8]([1])) }
            try await backend.set(items, ttl: .milliseconds(50))
            for i in 0..<300 { try await backend.set("long:\(i)", to: [2], ttl: .seconds(3600)) }
            for i in 0..<300 { try await backend.set("forever:\(i)", to: [3], ttl: nil) }
            #expect(try await physicalRows(backend) == 5600)
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await backend.sweepExpired() == 5000)
            #expect(try await physicalRows(backend) == 600)
            #expect(try await backend.get("long:299") != nil)
            #expect(try await backend.get("forever:0") != nil)
            #expect(try await backend.sweepExpired() == 0)
        }
    }

    @Test func theSweeperServiceSweepsAndStopsOnGracefulShutdown() async throws {
        try await withFileBackend { backend, _ async throws in
            for i in 0..<100 { try await backend.set("short:\(i)", to: [1], ttl: .milliseconds(30)) }
            try await backend.set("stays", to: [1], ttl: nil)
            let logger = Logger(label: "test.sweeper")
            let sweeper = SQLiteBackend.Sweeper(backend: backend, interval: .milliseconds(50), logger: logger)
            let group = ServiceGroup(services: [sweeper], logger: logger)
            let running = Task { try await group.run() }
            let deadline = ContinuousClock.now + .seconds(10)
            var rows = try await physicalRows(backend)
            while rows != 1 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                rows = try await physicalRows(backend)
            }
            #expect(rows == 1, "the sweeper left \(rows - 1) expired rows after 10 s")
            await group.triggerGracefulShutdown()
            let stopped = try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    try await running.value
                    return true
                }
                tasks.addTask {
                    try await Task.sleep(for: .seconds(5))
                    return false
                }
                let first = try await tasks.next() ?? false
                tasks.cancelAll()
                return first
            }
            #expect(stopped, "the sweeper did not stop within 5 s of a graceful shutdown")
            running.cancel()
            #expect(try await backend.get("stays") != nil)
        }
    }

    @Test func theSweeperEndsWhenItsTaskIsCancelled() async throws {
        let backend = try await SQLiteBackend(location: .memory)
        let sweeper = SQLiteBackend.Sweeper(backend: backend, interval: .seconds(3600), logger: Logger(label: "test"))
        let running = Task { try await sweeper.run() }
        try await Task.sleep(for: .milliseconds(50))
        running.cancel()
        let start = ContinuousClock.now
        try await running.value
        #expect(ContinuousClock.now - start < .seconds(2))
        try await backend.close()
    }

    // MARK: Prefix clearing

    @Test func successorOfAPrefix() {
        #expect(SQLiteConnection.successor(of: Array("abc".utf8)) == Array("abd".utf8))
        #expect(SQLiteConnection.successor(of: [0x61, 0xFF]) == [0x62])
        #expect(SQLiteConnection.successor(of: [0x61, 0xFE, 0xFF, 0xFF]) == [0x61, 0xFF])
        #expect(SQLiteConnection.successor(of: [0xFF, 0xFF]) == nil)
        #expect(SQLiteConnection.successor(of: []) == nil)
    }

    @Test(arguments: ["ns*:", "ns?:", "ns[a]:", "ns%:", "ns_:", "ns\\:", "ns:", "名前:", "ns\u{10FFFF}:"])
    func clearRemovesExactlyOnePrefix(_ prefix: String) async throws {
        try await withFileBackend { backend, _ async throws in
            let neighbours = [
                "nsX:", "nsa:", "ns[b]:", "ns:x", "ns", "n", "ns*", "ns%", "ns_", "nt:", "ns\u{10FFFF}", "名前",
                prefix.dropLast() + "\u{0}:", String(prefix.dropLast()),
            ].filter { !$0.hasPrefix(prefix) }.reduce(into: [String]()) { unique, key in
                if !unique.contains(key) { unique.append(key) }
            }
            for i in 0..<10 { try await backend.set(prefix + "k\(i)", to: [1], ttl: nil) }
            try await backend.set(prefix, to: [1], ttl: nil)  // the prefix itself is a key that starts with it
            for (i, neighbour) in neighbours.enumerated() { try await backend.set(neighbour + "k", to: [UInt8(i)], ttl: nil) }
            try await backend.clear(prefix: prefix)
            for i in 0..<10 { #expect(try await backend.get(prefix + "k\(i)") == nil) }
            #expect(try await backend.get(prefix) == nil)
            for (i, neighbour) in neighbours.enumerated() {
                #expect(try await backend.get(neighbour + "k")?.value == [UInt8(i)], "clear(prefix: \(prefix)) removed \(neighbour)k")
            }
        }
    }

    @Test func anEmptyPrefixClearsEverything() async throws {
        try await withFileBackend { backend, _ async throws in
            for i in 0..<50 { try await backend.set("k\(i)", to: [1], ttl: nil) }
            try await backend.set("\u{10FFFF}", to: [1], ttl: nil)
            try await backend.clear(prefix: "")
            #expect(try await physicalRows(backend) == 0)
        }
    }

    @Test func clearAndSweepAreRangeScansOnTheKey() async throws {
        try await withFileBackend { _, directory async throws in
            for statement in [StatementID.clearRange, .clearFrom, .sweepRange, .sweepBoundary] {
                let plan = try queryPlan(statement.sql, on: directory.file())
                #expect(plan.contains("SEARCH cache USING PRIMARY KEY (key>?"), "\(statement): \(plan)")
                #expect(!plan.contains("SCAN"), "\(statement): \(plan)")
            }
        }
    }

}
