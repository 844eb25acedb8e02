import Caching
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct BlockingWorkerTests {
    @Test func runsJobsInOrderOffTheCooperativePool() async throws {
        let worker = BlockingWorker(name: "order")
        defer { worker.shutdown() }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<100 { group.addTask { try await worker.run { i } } }
            var all: [Int] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.sorted() == Array(0..<100))
    }

    /// More blocking jobs than cores are in flight while a heartbeat task keeps ticking: the
    /// blocking happens on the workers' own threads, not on the cooperative pool.
    @Test func blockingJobsLeaveOtherTasksResponsive() async throws {
        let workers = (0..<8).map { BlockingWorker(name: "block-\($0)") }
        defer { workers.forEach { $0.shutdown() } }
        let clock = ContinuousClock()
        let start = clock.now
        async let blocked: Void = withThrowingTaskGroup(of: Void.self) { group throws in
            for worker in workers {
                group.addTask { _ = try await worker.run { usleep(400_000) } }   // a blocking C call
            }
            try await group.waitForAll()
        }
        var ticks = 0
        var worstGap = Duration.zero
        var last = clock.now
        while clock.now - start < .milliseconds(300) {
            try await Task.sleep(for: .milliseconds(5))
            let now = clock.now
            worstGap = max(worstGap, now - last)
            last = now
            ticks += 1
        }
        try await blocked
        // 8 jobs of 400 ms on a 2-core pool would starve the heartbeat for 400 ms or more if they
        // ran on it; on their own threads the heartbeat keeps ticking.
        #expect(ticks >= 10, "heartbeat ticked \(ticks) times in 300 ms")
        #expect(worstGap < .milliseconds(200), "heartbeat stalled for \(worstGap)")
    }

    @Test func errorsPropagate() async throws {
        let worker = BlockingWorker(name: "errors")
        defer { worker.shutdown() }
        await #expect(throws: TestFailure.self) { try await worker.run { throw TestFailure() } }
    }

    @Test func cancelledCallerGetsCancellationAndInterruptRuns() async throws {
        let worker = BlockingWorker(name: "cancel")
        defer { worker.shutdown() }
        let interrupted = CallCounter()
        let task = Task {
            try await worker.run(onCancel: { interrupted.increment() }) { _ = usleep(200_000) }
        }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        _ = try? await task.value
        #expect(interrupted.count == 1)
    }

    @Test func shutDownWorkerRefusesJobs() async throws {
        let worker = BlockingWorker(name: "closed")
        worker.shutdown()
        do {
            try await worker.run { () }
            Issue.record("a shut-down worker ran a job")
        } catch let error as CacheError {
            #expect(error.code == .closed)
        }
    }
}
