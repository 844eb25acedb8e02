import Caching
import Foundation
import Testing

@testable import CachingSQLite

/// A statement that runs for minutes unless interrupted: counts to ten billion.
let endlessStatement = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c"

/// A statement that keeps a core busy for a fraction of a second.
func slowStatement(rows: Int) -> String {
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < \(rows)) SELECT count(*) FROM c"
}

/// Threads, cancellation, and several processes on one file.
@Suite struct SQLiteConcurrencyTests {
    @Test(arguments: [false, true])
    func cancellingATaskInterruptsItsStatement(onWriter: Bool) async throws {
        try await heavyTests.run {
            try await withFileBackend { backend, _ async throws in
                let running = Task { try await backend.runStatement(endlessStatement, onWriter: onWriter) }
                try await Task.sleep(for: .milliseconds(300))  // well into the statement
                let cancelled = ContinuousClock.now
                running.cancel()
                let result = await running.result
                let elapsed = ContinuousClock.now - cancelled
                #expect(elapsed < .seconds(2), "the statement ran on for \(elapsed) after its task was cancelled")
                switch result {
                case .success(let value):
                    Issue.record("the endless statement finished with \(String(describing: value))")
                case .failure(let error):
                    #expect((error as? CacheError)?.code == .cancelled, "got \(error)")
                }
                // The connection is fine afterwards, and a stale interrupt does not hit the next statement.
                try await backend.set("after", to: [1], ttl: nil)
                #expect(try await backend.get("after")?.value == [1])
                #expect(try await backend.runStatement(slowStatement(rows: 1000), onWriter: onWriter) == 1000)
            }
        }
    }

    @Test func cancellingALargeBatchRollsItAllBack() async throws {
        try await heavyTests.run {
            try await withFileBackend { backend, _ async throws in
                let items = (0..<300_000).map { (key: "batch:\($0)", value: [UInt8](repeating: 1, count: 64)) }
                let running = Task { try await backend.set(items, ttl: nil) }
                try await Task.sleep(for: .milliseconds(100))
                running.cancel()
                let result = await running.result
                guard case .failure(let error) = result else {
                    Issue.record("300,000 sets finished within 100 ms; the test proves nothing")
                    return
                }
                #expect((error as? CacheError)?.code == .cancelled, "got \(error)")
                #expect(try await physicalRows(backend) == 0, "a cancelled batch left some of its items")
                try await backend.set("after", to: [1], ttl: nil)
                #expect(try await backend.get("after")?.value == [1])
            }
        }
    }

    @Test func cancellingAQueuedRequestAnswersWithoutWaitingForTheConnection() async throws {
        try await withFileBackend { backend, _ async throws in
            // Occupy the writer with a statement that never ends on its own, queue a set behind it,
            // and cancel the set: its answer cannot come from the writer, which stays busy.
            let blocker = Task { try await backend.runStatement(endlessStatement, onWriter: true) }
            try await Task.sleep(for: .milliseconds(100))
            let queued = Task { try await backend.set("never", to: [1], ttl: nil) }
            try await Task.sleep(for: .milliseconds(50))
            queued.cancel()
            let answered = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    _ = await queued.result
                    return true
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(10))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(answered, "a cancelled request waited for the busy connection")
            if case .failure(let error) = await queued.result {
                #expect((error as? CacheError)?.code == .cancelled)
            } else {
                Issue.record("the cancelled set reported success although the writer never got to it")
            }
            blocker.cancel()
            _ = await blocker.result
            #expect(try await backend.get("never") == nil, "a request cancelled before it started was run anyway")
        }
    }

    @Test func sqliteCallsRunOnTheConnectionThreads() async throws {
        let configuration = SQLiteBackend.Configuration(readerCount: 2)
        try await withFileBackend(configuration: configuration) { backend, _ async throws in
            // Sequential reads all go to the first reader; concurrent ones spread over both.
            var sequential: Set<String> = []
            for _ in 0..<4 { sequential.insert(try await backend.withConnection(onWriter: false) { _ in currentThreadName() }) }
            #expect(sequential == ["sqlite-read-0"], "sequential reads ran on \(sequential)")
            let concurrent = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<6 {
                    group.addTask {
                        try await backend.withConnection(onWriter: i == 0) { connection in
                            _ = try connection.scalar(slowStatement(rows: 300_000), "test")
                            return currentThreadName()
                        }
                    }
                }
                var names: Set<String> = []
                for try await name in group { names.insert(name) }
                return names
            }
            #expect(concurrent == ["sqlite-writer", "sqlite-read-0", "sqlite-read-1"], "concurrent calls ran on \(concurrent)")
        }
    }

    @Test func blockingStatementsDoNotStallTheCooperativePool() async throws {
        // Two connection threads (a writer and a reader): as many busy threads as cores, no more, so
        // the heartbeat measures the cooperative pool rather than the kernel's scheduler.
        let configuration = SQLiteBackend.Configuration(readerCount: 1)
        try await heavyTests.run {
            try await withFileBackend(configuration: configuration) { backend, _ async throws in
                // Calibrate a statement that keeps a core busy for about 1.5 seconds.
                let calibrationStart = ContinuousClock.now
                _ = try await backend.runStatement(slowStatement(rows: 1_000_000))
                let perMillion = (ContinuousClock.now - calibrationStart) / .seconds(1)
                let rows = Int(1_000_000 * min(30, max(1, 1.5 / max(perMillion, 0.01))))
                let singleStart = ContinuousClock.now
                _ = try await backend.runStatement(slowStatement(rows: rows))
                let single = ContinuousClock.now - singleStart

                let stop = Flag()
                let heartbeat = Task<(worst: Duration, ticks: Int), Never> {
                    var worst = Duration.zero
                    var ticks = 0
                    var last = ContinuousClock.now
                    while !stop.value {
                        try? await Task.sleep(for: .milliseconds(5))
                        let now = ContinuousClock.now
                        worst = max(worst, now - last)
                        last = now
                        ticks += 1
                    }
                    return (worst, ticks)
                }
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Int64?.self) { group in
                    // Eight slow statements in flight on 2 cores: four queued on the writer, four on the reader.
                    for i in 0..<8 {
                        group.addTask { try await backend.runStatement(slowStatement(rows: rows), onWriter: i % 2 == 0) }
                    }
                    for try await value in group { #expect(value == Int64(rows)) }
                }
                let busy = ContinuousClock.now - start
                stop.value = true
                let beat = await heartbeat.value
                print("blocking statements: one takes \(single), eight took \(busy); heartbeat ticked \(beat.ticks) times, worst gap \(beat.worst)")
                // Had the statements run on the cooperative pool (one thread per core), each pool thread would
                // be held for a whole statement at a time, so the heartbeat would stall for about `single`.
                #expect(busy > single * 2, "the statements took only \(busy); the test proves nothing")
                #expect(beat.worst < single * 0.5, "the heartbeat stalled for \(beat.worst) while statements of \(single) each ran")
                #expect(beat.ticks > 20)
            }
        }
    }

    @Test func concurrentAddsAndIncrementsAcrossTwoBackendsOnOneFile() async throws {
        try await withFileBackend { first, directory in
            let second = try await SQLiteBackend(path: directory.file())
            let backends = [first, second]
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let backend = backends[i % 2]
                        _ = try await backend.increment("counter", by: 1, ttl: nil)
                        return try await backend.add("lock", value: Array("\(i)".utf8), ttl: .seconds(60))
                    }
                }
                var wins = 0
                for try await won in group where won { wins += 1 }
                return wins
            }
            #expect(wins == 1)
            #expect(try await second.get("counter")?.value == Array("200".utf8))
            try await second.close()
        }
    }

    // MARK: Several processes

    @Test(.timeLimit(.minutes(3)))
    func severalProcessesShareOneFileWithoutLosingWrites() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file()
        let worker = try stressWorkerPath()
        try await heavyTests.run {
            let backend = try await SQLiteBackend(path: path)
            let workers = 3
            let rounds = 1000
            let parentIncrements = 500
            let results = try await withThrowingTaskGroup(of: ChildResult?.self) { group in
                for id in 0..<workers {
                    group.addTask { try await runChild(worker, ["stress", path, "\(id)", "\(rounds)"], timeout: .seconds(150)) }
                }
                // This process writes at the same time.
                group.addTask {
                    for i in 0..<parentIncrements {
                        _ = try await backend.increment("mp:counter", by: 1, ttl: nil)
                        try await backend.set("mp:parent:\(i)", to: [UInt8(i % 256)], ttl: nil)
                    }
                    return nil
                }
                var results: [ChildResult] = []
                for try await result in group { if let result { results.append(result) } }
                return results
            }
            var adds = 0
            for result in results {
                #expect(!result.timedOut, "a worker was killed after 150 s: \(result.output)")
                #expect(result.status == 0, "a worker failed: \(result.output)")
                if let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("ok adds=") }) {
                    adds += Int(line.dropFirst("ok adds=".count)) ?? 0
                }
            }
            // No lost update, no lost write, one winner per contested add.
            #expect(try await backend.get("mp:counter")?.value == Array("\(workers * rounds + parentIncrements)".utf8))
            #expect(adds == rounds, "\(adds) adds succeeded for \(rounds) contested keys")
            for id in 0..<workers {
                let keys = (0..<rounds).map { "mp:w\(id):\($0)" }
                let entries = try await backend.get(keys)
                let missing = zip(keys, entries).filter { $0.1?.value != Array("w\(id)-\($0.0.split(separator: ":").last ?? "")".utf8) }
                #expect(missing.isEmpty, "worker \(id) lost \(missing.count) writes, first \(missing.first?.0 ?? "")")
            }
            for i in 0..<parentIncrements { #expect(try await backend.get("mp:parent:\(i)")?.value == [UInt8(i % 256)]) }
            try await backend.close()
        }
    }
}

/// A flag shared between tasks.
final class Flag: @unchecked Sendable {
    // `@unchecked Sendable`: `stored` is only touched with `lock` held.
    private let lock = NSLock()
    private var stored = false
    var value: Bool {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The name of the calling thread, as Linux reports it.
func currentThreadName() -> String {
    #if os(Linux)
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        return name.trimmingCharacters(in: .whitespacesAndNewlines)
    #else
        return Thread.current.name ?? "?"
    #endif
}
