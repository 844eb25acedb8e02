import Caching
@testable import CachingMemcached
import CachingTesting
import Synchronization
import Testing

/// `MemcachedBackend.taskExecutor` against the shared servers (`CACHING_MEMCACHED_SERVERS`, two
/// servers): calls of tasks that prefer it run inline on its thread, for keys on every server.
@Suite(.enabled(if: TestEnvironment.runSharedTests, "\(TestEnvironment.sharedServersProblem ?? "")"))
struct MemcachedTaskExecutorTests {
    /// `count` keys under `prefix`, at least one on each of the two servers.
    func keysOnBothServers(_ backend: MemcachedBackend, _ prefix: String, count: Int = 20) -> [String] {
        let keys = (0..<count).map { "\(prefix)k\($0)" }
        #expect(Set(keys.map { backend.server(for: $0) }).count == 2, "\(count) keys all hashed to one server")
        return keys
    }

    @Test func callsInTheScopeRunInlineOnTheExecutorThreadForKeysOnBothServers() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let cache = CacheFront(backend: backend, prefix: uniquePrefix().dropLast().description).namespace("users")
        let keys = keysOnBothServers(backend, "")
        for key in keys { try await cache.set(Array("value of \(key)".utf8), forKey: key) }
        let before = backend.inlineCalls
        #expect(before == 0, "calls ran inline before any task preferred the executor")

        let (onThread, values) = try await withTaskExecutorPreference(backend.taskExecutor) {
            let onThread = backend.executor.isCurrentThread
            var values: [[UInt8]?] = []
            for key in keys { values.append(try await cache.get(key, as: [UInt8].self)) }
            return (onThread && backend.executor.isCurrentThread, values)
        }
        #expect(onThread, "the task did not run on the executor's thread")
        #expect(values == keys.map { Array("value of \($0)".utf8) })
        #expect(backend.inlineCalls - before == keys.count, "\(backend.inlineCalls - before) of \(keys.count) gets ran inline")

        // A task without the preference takes the pool connections, as before.
        let inline = backend.inlineCalls
        #expect(try await cache.get(keys[0], as: [UInt8].self) == Array("value of \(keys[0])".utf8))
        #expect(backend.inlineCalls == inline)
        try await backend.close()
    }

    @Test func everyOperationWorksInTheScope() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        let keys = keysOnBothServers(backend, p + "ns:", count: 40)
        let inlineBefore = backend.inlineCalls
        try await withTaskExecutorPreference(backend.taskExecutor) {
            // Batches over both servers.
            try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
            let entries = try await backend.get(keys + [p + "ns:missing"])
            #expect(entries.dropLast().map { $0?.value } == keys.map { bytes($0) })
            #expect(entries.last! == nil)
            #expect(try await backend.delete(Array(keys.prefix(10))) == 10)
            #expect(try await backend.get(keys[0]) == nil)
            // Atomic operations.
            #expect(try await backend.add(p + "ns:added", value: [1], ttl: nil))
            #expect(try await !backend.add(p + "ns:added", value: [2], ttl: nil))
            #expect(try await backend.increment(p + "ns:counter", by: 5, ttl: nil) == 5)
            #expect(try await backend.increment(p + "ns:counter", by: 2, ttl: nil) == 7)
            #expect(try await backend.touch(keys[20], ttl: .seconds(120)))
            let ttl = try await backend.get(keys[20])?.ttl
            #expect(ttl.map { $0 > .seconds(100) } == true, "touch did not set the new TTL: \(String(describing: ttl))")
            // A clear reaches both servers.
            try await backend.clear(prefix: p + "ns:")
            #expect(try await backend.get(Array(keys.suffix(20))).allSatisfy { $0 == nil })
            #expect(backend.executor.isCurrentThread)
        }
        #expect(backend.inlineCalls - inlineBefore >= 10)
        // What the scope wrote is what the pool connections read.
        try await backend.set(keys[30], to: [42], ttl: nil)
        let seen = try await withTaskExecutorPreference(backend.taskExecutor) { try await backend.get(keys[30])?.value }
        #expect(seen == [42])
        try await backend.close()
    }

    @Test func theBehaviourSuitePassesInTheScope() async throws {
        let backend = try TestEnvironment.sharedBackend()
        var options = BackendConformance.Options(ttlResolution: .seconds(1))
        options.keyPrefix = uniquePrefix("conformance-executor")
        do {
            // The checks' own child tasks inherit the preference, so they run on the thread too.
            try await withTaskExecutorPreference(backend.taskExecutor) {
                try await BackendConformance(backend: backend, options: options).run()
            }
        } catch {
            try? await backend.close()
            throw error
        }
        #expect(backend.inlineCalls > 1000)
        try await backend.close()
    }

    @Test func aCancelledTaskGetsCancelledBeforeAnInlineCallStarts() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        try await backend.set(p + "k", to: [1], ttl: nil)
        let inlineBefore = backend.inlineCalls
        let task = Task(executorPreference: backend.taskExecutor) { () -> CacheError.Code? in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                _ = try await backend.get(p + "k")
                return nil
            } catch let error as CacheError {
                return error.code
            }
        }
        let code = try await task.value
        #expect(code == .cancelled)
        #expect(backend.inlineCalls == inlineBefore, "a cancelled task's call ran")
        try await backend.close()
    }

    @Test func afterCloseTasksThatPreferTheExecutorStillRunAndTheirCallsThrowClosed() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        try await backend.set(p + "k", to: [1], ttl: nil)
        let executor = backend.taskExecutor
        let calls = Atomic<Int>(0)
        let started = AsyncStream<Void>.makeStream()
        // A task that keeps calling until the backend is closed under it.
        let busy = Task(executorPreference: executor) { () -> (CacheError.Code?, Bool) in
            var signalled = false
            while true {
                do {
                    _ = try await backend.get(p + "k")
                    calls.add(1, ordering: .relaxed)
                    if !signalled {
                        signalled = true
                        started.continuation.yield()
                    }
                } catch let error as CacheError {
                    return (error.code, backend.executor.isCurrentThread)
                } catch {
                    return (nil, false)
                }
            }
        }
        for await _ in started.stream { break }
        try await backend.close()
        let (code, _) = await busy.value
        #expect(code == .closed)
        #expect(calls.load(ordering: .relaxed) >= 1)

        // A task that prefers the executor after close runs, on the global executor.
        let (ran, onThread, after) = await Task(executorPreference: executor) { () -> (Bool, Bool, CacheError.Code?) in
            do {
                _ = try await backend.get(p + "k")
                return (true, backend.executor.isCurrentThread, nil)
            } catch let error as CacheError {
                return (true, backend.executor.isCurrentThread, error.code)
            } catch {
                return (true, false, nil)
            }
        }.value
        #expect(ran)
        #expect(!onThread)
        #expect(after == .closed)

        // An executor asked for only after close works the same way.
        let other = try TestEnvironment.sharedBackend()
        try await other.close()
        let code2 = await Task(executorPreference: other.taskExecutor) { () -> CacheError.Code? in
            do {
                _ = try await other.get(p + "k")
                return nil
            } catch let error as CacheError {
                return error.code
            } catch {
                return nil
            }
        }.value
        #expect(code2 == .closed)
    }
}

extension PrivateServerTests {
    /// The executor thread with a server that stops answering.
    @Suite struct MemcachedTaskExecutorFailureTests {
        @Test func aFrozenServerInTheScopeCostsAnIOTimeoutAndBlocksNoPoolThread() async throws {
            let a = try await PrivateMemcached.start()
            defer { a.stop() }
            let b = try await PrivateMemcached.start()
            defer { b.stop() }
            var configuration = MemcachedBackend.Configuration(servers: [a.server, b.server])
            configuration.connectTimeout = .milliseconds(300)
            configuration.ioTimeout = .milliseconds(500)
            configuration.retryTimeout = .seconds(30)
            let backend = try MemcachedBackend(configuration: configuration)
            let keys = (0..<40).map { "frozen-executor:k\($0)" }
            try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
            guard let keyOnA = keys.first(where: { backend.server(for: $0) == a.server }),
                  let keyOnB = keys.first(where: { backend.server(for: $0) == b.server }) else {
                Issue.record("40 keys all hashed to one server")
                return
            }
            // Open the executor thread's connection to A before freezing it.
            let warm = try await withTaskExecutorPreference(backend.taskExecutor) { try await backend.get(keyOnA)?.value }
            #expect(warm == bytes(keyOnA))

            a.pause()
            let heartbeat = Heartbeat()
            let ticker = Task { await heartbeat.run(every: .milliseconds(10)) }
            let (frozen, afterwards, other) = await withTaskExecutorPreference(backend.taskExecutor) {
                let begin = ContinuousClock.now
                let frozen: (CacheError.Code?, Duration)
                do {
                    _ = try await backend.get(keyOnA)
                    frozen = (nil, ContinuousClock.now - begin)
                } catch {
                    frozen = ((error as? CacheError)?.code, ContinuousClock.now - begin)
                }
                // The server is marked down now: the next call fails at once.
                let again = ContinuousClock.now
                let afterwards: (CacheError.Code?, Duration)
                do {
                    _ = try await backend.get(keyOnA)
                    afterwards = (nil, ContinuousClock.now - again)
                } catch {
                    afterwards = ((error as? CacheError)?.code, ContinuousClock.now - again)
                }
                let other = try? await backend.get(keyOnB)?.value
                return (frozen, afterwards, other)
            }
            ticker.cancel()
            let maxGap = await heartbeat.maxGap
            a.resume()

            #expect(frozen.0 == .timeout || frozen.0 == .connectionFailed, "the read from the frozen server: \(String(describing: frozen.0))")
            #expect(frozen.1 >= .milliseconds(400), "the read did not wait for the server (\(frozen.1)); the test proves nothing")
            #expect(frozen.1 < .seconds(2), "the read from the frozen server took \(frozen.1)")
            #expect(afterwards.0 == .connectionFailed)
            #expect(afterwards.1 < .milliseconds(100), "a call to a server marked down took \(afterwards.1)")
            #expect(other == bytes(keyOnB), "the other server's key was not served in the scope")
            #expect(maxGap < .milliseconds(250), "the heartbeat stalled for \(maxGap): the executor blocked the cooperative pool")
            print("executor, frozen server: the read failed after \(frozen.1), the next in \(afterwards.1); heartbeat max gap \(maxGap)")
            try await backend.close()
        }
    }
}
