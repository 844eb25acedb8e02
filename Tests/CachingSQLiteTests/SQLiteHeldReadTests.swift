import Caching
import Foundation
import Synchronization
import Testing

@testable import CachingSQLite

/// Held reads (`SQLiteConnection+HeldRead.swift`): a reader keeps its read transaction open between
/// lone gets while nothing is committed. What must hold: a get never returns older data than a fresh
/// transaction would, whoever wrote (this backend's writer, another backend on the file, another
/// process), and an idle reader holds nothing.
@Suite struct SQLiteHeldReadTests {
    /// `(begun, kept)` counters of the store.
    static func counts(_ backend: SQLiteBackend) -> (begun: Int, kept: Int) {
        let store = backend.storeForTesting
        return (store.heldReadsBegun.load(ordering: .relaxed), store.heldReadsKept.load(ordering: .relaxed))
    }

    @Test func sequentialGetsShareOneHeldRead() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("k", to: [1, 2, 3], ttl: .seconds(60))
            let before = Self.counts(backend)
            for _ in 0..<200 { #expect(try await backend.get("k")?.value == [1, 2, 3]) }
            let after = Self.counts(backend)
            // Without writes, one held read serves up to 256 requests; idle moments may end it early.
            #expect(after.begun - before.begun >= 1)
            #expect(after.kept - before.kept >= 100, "only \(after.kept - before.kept) of 200 gets went on in a held read")
        }
    }

    @Test func everyWriteOfTheSameBackendIsSeenByTheNextGet() async throws {
        try await withFileBackend { backend, _ async throws in
            for i in 0..<500 {
                try await backend.set("k", to: Array("v\(i)".utf8), ttl: .seconds(60))
                let got = try await backend.get("k")?.value
                #expect(got == Array("v\(i)".utf8), "after write \(i) the get returned \(got.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")
                if i % 100 == 0 { #expect(try await backend.exists("k")) }
            }
            try await backend.delete("k")
            #expect(try await backend.get("k") == nil)
        }
    }

    @Test func writesOfAnotherBackendOnTheFileAreSeenAtOnce() async throws {
        try await withFileBackend { reader, directory async throws in
            let writer = try await SQLiteBackend(path: directory.file())
            do {
                try await writer.set("k", to: Array("v-1".utf8), ttl: nil)
                for i in 0..<300 {
                    // Several gets in a row keep the reader's held read open...
                    for _ in 0..<3 { _ = try await reader.get("k") }
                    // ...then another connection commits, and the next get must see it.
                    try await writer.set("k", to: Array("v\(i)".utf8), ttl: nil)
                    let got = try await reader.get("k")?.value
                    #expect(got == Array("v\(i)".utf8), "write \(i) of the other backend was not seen")
                }
                // The same through the reader's task executor (gets inline on its thread).
                try await withTaskExecutorPreference(reader.taskExecutor) {
                    for i in 0..<100 {
                        _ = try await reader.get("k")
                        try await writer.set("k", to: Array("e\(i)".utf8), ttl: nil)
                        #expect(try await reader.get("k")?.value == Array("e\(i)".utf8))
                    }
                }
                #expect(Self.counts(reader).kept > 0, "no get went on in a held read")
            } catch {
                try? await writer.close()
                throw error
            }
            try await writer.close()
        }
    }

    /// A reader racing a writer: every get returns at least the value whose `set` had returned
    /// before the get began (linearizable reads), and values never go back; with one reader
    /// connection and with three (several tasks reading, each connection with its held read).
    @Test(arguments: [1, 3])
    func concurrentReadsNeverReturnOlderThanTheLastCompletedWrite(readers: Int) async throws {
        var configuration = SQLiteBackend.Configuration()
        configuration.readerCount = readers
        try await withFileBackend(configuration: configuration) { reader, directory async throws in
            let writer = try await SQLiteBackend(path: directory.file())
            let state = RaceState()
            do {
                try await writer.set("n", to: Array("-1".utf8), ttl: nil)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        defer { state.done.store(true, ordering: .releasing) }
                        for i in 0..<1_000 {
                            try await writer.set("n", to: Array(String(i).utf8), ttl: nil)
                            state.published.store(i, ordering: .releasing)
                        }
                    }
                    for _ in 0..<readers { group.addTask {
                        var last = -1
                        var reads = 0
                        while !state.done.load(ordering: .acquiring) && reads < 200_000 {
                            let floor = state.published.load(ordering: .acquiring)
                            guard let bytes = try await reader.get("n")?.value, let value = Int(String(decoding: bytes, as: UTF8.self)) else {
                                Issue.record("the key went missing")
                                return
                            }
                            // The first violation ends this reader (one failure, not thousands).
                            guard value >= floor, value >= last else {
                                Issue.record("read \(value) after write \(floor) had completed and after having read \(last)")
                                return
                            }
                            last = value
                            reads += 1
                        }
                        #expect(reads > 0)
                    } }
                    try await group.waitForAll()
                }
                #expect(try await reader.get("n")?.value == Array("999".utf8))
            } catch {
                try? await writer.close()
                throw error
            }
            try await writer.close()
        }
    }

    @Test func writesOfAnotherProcessAreSeenAtOnce() async throws {
        try await heavyTests.run {
            try await withFileBackend { backend, directory async throws in
                let worker = try stressWorkerPath()
                try await backend.set("shared", to: Array("parent".utf8), ttl: nil)
                for round in 0..<3 {
                    // Gets keep running on the reader while the other process writes, so its held
                    // read stays open across that process's commit.
                    let state = RaceState()
                    let hammer = Task {
                        var reads = 0
                        while !state.done.load(ordering: .relaxed) {
                            _ = try await backend.get("shared")
                            reads += 1
                        }
                        return reads
                    }
                    let value = "child-\(round)"
                    let result = try await runChild(worker, ["set", directory.file(), "shared", value], timeout: .seconds(60))
                    #expect(result.status == 0 && !result.timedOut, "worker: \(result.output)")
                    // The child has committed and exited: the very next get must see its value.
                    let got = try await backend.get("shared")?.value
                    state.done.store(true, ordering: .relaxed)
                    let reads = try await hammer.value
                    #expect(got == Array(value.utf8), "round \(round): got \(got.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")
                    #expect(reads > 0)
                }
                #expect(Self.counts(backend).kept > 0, "no get went on in a held read")
            }
        }
    }

    @Test func anIdleReaderHoldsNothing() async throws {
        var configuration = SQLiteBackend.Configuration()
        configuration.busyTimeout = .milliseconds(300)
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            for i in 0..<50 { try await backend.set("k\(i)", to: [UInt8](repeating: 7, count: 100), ttl: nil) }
            // A checkpoint that truncates the WAL needs every reader off it: `busy` (the first
            // column) is 1 when some connection still holds a read mark. Past its polling, an idle
            // reader sleeps and ends its held read before; asked again for up to 2 s, so a loaded
            // machine that is slow to run the reader's thread does not fail the test.
            func checkpointIsBusy() async throws -> Bool {
                for _ in 0..<20 {
                    try await Task.sleep(for: .milliseconds(100))
                    let busy = try await backend.withConnection(onWriter: true) { connection in
                        try connection.scalar("PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing")
                    }
                    if busy == 0 { return false }
                }
                return true
            }
            for i in 0..<500 { _ = try await backend.get("k\(i % 50)") }
            #expect(try await !checkpointIsBusy(), "a reader kept its read transaction open while idle")
            // And after a run of gets inside the task executor (the job's end ends it).
            try await withTaskExecutorPreference(backend.taskExecutor) {
                for i in 0..<500 { _ = try await backend.get("k\(i % 50)") }
            }
            #expect(try await !checkpointIsBusy(), "the executor's reads kept a read transaction open")
        }
    }

    @Test func holdsReadsOffNeverHolds() async throws {
        var configuration = SQLiteBackend.Configuration()
        configuration.holdsReads = false
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            try await backend.set("k", to: [1], ttl: nil)
            for _ in 0..<100 { #expect(try await backend.get("k")?.value == [1]) }
            #expect(Self.counts(backend).begun == 0)
            #expect(SQLiteBackend.Configuration().holdsReads, "held reads are on by default")
        }
    }

    @Test func anInMemoryStoreNeverHoldsReads() async throws {
        let backend = try await SQLiteBackend(location: .memory)
        do {
            try await backend.set("k", to: [1], ttl: nil)
            for _ in 0..<50 { #expect(try await backend.get("k")?.value == [1]) }
            #expect(Self.counts(backend).begun == 0)
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }
}

/// Flags shared by the tasks of a race.
private final class RaceState: Sendable {
    /// The last value whose write completed.
    let published = Atomic<Int>(-1)
    /// Set when the writer (or the test) is done.
    let done = Atomic<Bool>(false)
}

/// The WAL stays bounded under a lone caller that alternates writes and reads, the pattern where a
/// reader holds a snapshot across each commit (and so across the checkpoint that follows it).
@Suite struct SQLiteHeldReadWALTests {
    @Test func alternatingWritesAndReadsKeepTheWALBounded() async throws {
        try await heavyTests.run {
            try await withFileBackend { backend, directory async throws in
                var largest = 0
                for i in 0..<8_000 {
                    // A new value every time: a write of the same bytes commits no frame.
                    let value = Array(String(repeating: "\(i)-", count: 20).utf8.prefix(100))
                    try await backend.set("k\(i % 500)", to: value, ttl: nil)
                    #expect(try await backend.get("k\(i % 500)")?.value == value)
                    if i % 500 == 499 {
                        let size = (try? FileManager.default.attributesOfItem(atPath: directory.file() + "-wal")[.size] as? Int) ?? 0
                        largest = max(largest, size)
                    }
                }
                // SQLite checkpoints at 1,000 pages of WAL and starts it over once a checkpoint
                // copied every frame; the held reads pause past 2,000 frames so that one can. 4 KiB
                // pages: 3,000 frames is about 12 MB; never restarting would pass 30 MB here.
                #expect(largest < 3_000 * 4_120, "the WAL reached \(largest) bytes")
                #expect(largest > 0)
                print("alternating writes and reads: largest WAL \(largest) bytes, held reads \(SQLiteHeldReadTests.counts(backend))")
            }
        }
    }
}
