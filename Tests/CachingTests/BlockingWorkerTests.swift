import Caching
import CachingTesting
import Dispatch
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

    /// More blocking jobs than the cooperative pool has threads wait until a task on that pool
    /// releases them. Were the jobs run on the pool, every pool thread would be blocked and the
    /// releasing task could never run: each job would time out instead of being released. This
    /// does not depend on timing, so it holds on a loaded machine too.
    @Test func blockingJobsLeaveTheCooperativePoolFree() async throws {
        let jobs = 8   // the pool has one thread per core: 2 here
        let workers = (0..<jobs).map { BlockingWorker(name: "block-\($0)") }
        defer { workers.forEach { $0.shutdown() } }
        let gate = DispatchSemaphore(value: 0)
        let started = CallCounter()
        async let outcomes: [Bool] = withThrowingTaskGroup(of: Bool.self) { group throws in
            for worker in workers {
                group.addTask {
                    try await worker.run {
                        started.increment()
                        // A blocking call, as a C read() would be: released by the test, or timed out.
                        return gate.wait(timeout: .now() + .seconds(20)) == .success
                    }
                }
            }
            var outcomes: [Bool] = []
            for try await released in group { outcomes.append(released) }
            return outcomes
        }
        // This task runs on the cooperative pool while all the jobs block.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(15)
        while started.count < jobs && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(started.count == jobs, "only \(started.count) of \(jobs) blocking jobs started")
        for _ in 0..<jobs { gate.signal() }
        let released = try await outcomes
        #expect(released.count == jobs)
        #expect(released.allSatisfy { $0 }, "a blocking job timed out instead of being released by a pool task")
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
