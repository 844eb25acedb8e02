import Caching
import Testing

@testable import CachingSQLite

/// `SQLiteBackend.taskExecutor` (SE-0417) and the lone caller's hand-off: where requests run.
@Suite struct SQLiteTaskExecutorTests {
    @Test func aTaskPreferringTheExecutorRunsOnTheReaderAndReadsInline() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("a", to: [1, 2, 3], ttl: .seconds(60))
            let thread = backend.readThreadForTesting
            let inlineBefore = thread.inlineRequests.load(ordering: .relaxed)
            let (names, values) = try await withTaskExecutorPreference(backend.taskExecutor) {
                var names: [String] = [currentThreadName()]
                var values: [[UInt8]?] = []
                for _ in 0..<100 { values.append(try await backend.get("a")?.value) }
                names.append(currentThreadName())
                // A write goes to the writer's thread; the task comes back to the reader afterwards.
                try await backend.set("b", to: [4], ttl: nil)
                names.append(currentThreadName())
                values.append(try await backend.get("b")?.value)
                #expect(try await backend.exists("b"))
                // An exclusive request is queued (the task suspends and the thread serves it).
                names.append(try await backend.withConnection(onWriter: false) { _ in currentThreadName() })
                names.append(currentThreadName())
                return (names, values)
            }
            #expect(Set(names) == ["sqlite-read-0"], "the task ran on \(names)")
            #expect(values.prefix(100).allSatisfy { $0 == [1, 2, 3] })
            #expect(values.last == [4])
            // 101 gets and one exists ran inline, without a hop.
            #expect(thread.inlineRequests.load(ordering: .relaxed) - inlineBefore == 102)
            // Outside the preference, the same calls hop again.
            #expect(currentThreadName() != "sqlite-read-0")
            #expect(try await backend.get("a")?.value == [1, 2, 3])
            #expect(thread.inlineRequests.load(ordering: .relaxed) - inlineBefore == 102)
        }
    }

    @Test func aMemoryStoreRunsReadsAndWritesInline() async throws {
        let backend = try await SQLiteBackend(location: .memory)
        let thread = backend.readThreadForTesting
        let total = try await withTaskExecutorPreference(backend.taskExecutor) {
            #expect(currentThreadName() == "sqlite-writer")
            for i in 0..<50 { try await backend.set("k\(i)", to: [UInt8(i)], ttl: nil) }
            var total = 0
            for i in 0..<50 { total += Int(try await backend.get("k\(i)")?.value.first ?? 0) }
            #expect(try await backend.increment("n", by: 5, ttl: nil) == 5)
            return total
        }
        #expect(total == (0..<50).reduce(0, +))
        #expect(thread.inlineRequests.load(ordering: .relaxed) == 101)
        try await backend.close()
    }

    @Test func aCancelledTaskGetsCancelledInsteadOfAnInlineRead() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("a", to: [1], ttl: nil)
            let task = Task(executorPreference: backend.taskExecutor) { () async -> CacheError? in
                withUnsafeCurrentTask { $0?.cancel() }
                return await cacheError { _ = try await backend.get("a") }
            }
            #expect(await task.value?.code == .cancelled)
        }
    }

    @Test func closingWhileTasksPreferTheExecutorNeitherHangsNorRunsOnAClosedConnection() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let backend = try await SQLiteBackend(path: directory.file())
        try await backend.set("a", to: [1], ttl: nil)
        let outcome = try await withTaskExecutorPreference(backend.taskExecutor) { () async throws -> (String, CacheError.Code?) in
            #expect(try await backend.get("a")?.value == [1])
            try await backend.close()
            // The reader has stopped: this task now runs on the global executor, and calls throw `.closed`.
            let name = currentThreadName()
            let error = await cacheError { _ = try await backend.get("a") }
            return (name, error?.code)
        }
        #expect(outcome.0 != "sqlite-read-0", "the task still ran on the stopped reader thread")
        #expect(outcome.1 == .closed)
    }

    @Test func aLoneCallerHandsItsRequestsOverWithoutTheQueue() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("a", to: [7], ttl: nil)
            let thread = backend.readThreadForTesting
            let before = thread.handedRequests.load(ordering: .relaxed)
            for _ in 0..<2000 { #expect(try await backend.get("a")?.value == [7]) }
            let handed = thread.handedRequests.load(ordering: .relaxed) - before
            // Timing-dependent (the reader must still be polling when the next call comes), so only
            // require that the hand-off happens at all; on a quiet machine almost every call uses it.
            print("lone caller: \(handed) of 2000 gets were handed over without the queue")
            #expect(handed > 0 || ConnectionThread.onlineProcessors < 2)
        }
    }

    @Test func closingDuringAStreamOfGetsAnswersEveryCall() async throws {
        for _ in 0..<20 {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let backend = try await SQLiteBackend(path: directory.file())
            try await backend.set("a", to: [1], ttl: nil)
            let reader = Task { () -> (ok: Int, closed: Int, other: Int) in
                var counts = (ok: 0, closed: 0, other: 0)
                for _ in 0..<5000 {
                    do {
                        _ = try await backend.get("a")
                        counts.ok += 1
                    } catch let error as CacheError where error.code == .closed {
                        counts.closed += 1
                    } catch {
                        counts.other += 1
                    }
                    if counts.closed > 10 { break }
                }
                return counts
            }
            try await Task.sleep(for: .milliseconds(2))
            try await backend.close()
            let counts = await reader.value
            #expect(counts.other == 0)
            #expect(counts.ok + counts.closed > 0)
        }
    }
}
