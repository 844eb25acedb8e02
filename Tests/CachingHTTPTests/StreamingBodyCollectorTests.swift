import HTTPTypes
import Synchronization
import Testing

@testable import CachingHTTP

@Suite struct StreamingBodyCollectorTests {
    func chunks(_ count: Int, size: Int = 10) -> [[UInt8]] {
        (0..<count).map { index in [UInt8](repeating: UInt8(index), count: size) }
    }

    @Test func completesWithinTheLimit() async throws {
        let parts = chunks(5)
        let collector = StreamingBodyCollector<[UInt8]>(limit: 50, size: { $0.count }) { sink in
            for part in parts { try await sink.write(part) }
            sink.finish(trailers: [HTTPField.Name("X-Trailer")!: "x"])
        }
        guard case .complete(let collected, let trailers) = await collector.outcome() else {
            Issue.record("expected a complete body")
            return
        }
        #expect(collected == parts)
        #expect(trailers?[HTTPField.Name("X-Trailer")!] == "x")
    }

    @Test func producerReturningWithoutFinishEndsTheBody() async throws {
        let collector = StreamingBodyCollector<[UInt8]>(limit: 50, size: { $0.count }) { sink in
            try await sink.write([1, 2, 3])
        }
        guard case .complete(let collected, nil) = await collector.outcome() else {
            Issue.record("expected a complete body")
            return
        }
        #expect(collected == [[1, 2, 3]])
    }

    /// Past the limit the consumer gets every byte exactly once, in order, and the producer is
    /// never more than one chunk ahead of it.
    @Test func overflowHandsTheRestToTheConsumer() async throws {
        let parts = chunks(100)
        let produced = Mutex(0)
        let collector = StreamingBodyCollector<[UInt8]>(limit: 35, size: { $0.count }) { sink in
            for part in parts {
                try await sink.write(part)
                produced.withLock { $0 += 1 }
            }
            sink.finish(trailers: nil)
        }
        guard case .overflow(let prefix, let remainder) = await collector.outcome() else {
            Issue.record("expected an overflow")
            return
        }
        #expect(prefix.count == 4, "36 bytes: just past the 35-byte limit")
        var received = prefix
        var maxLead = 0
        while let chunk = try await remainder.next() {
            received.append(chunk)
            let lead = produced.withLock { $0 } - received.count
            maxLead = max(maxLead, lead)
        }
        #expect(received == parts)
        #expect(maxLead <= 1, "the producer ran \(maxLead) chunks ahead")
        #expect(remainder.trailers == nil)
    }

    @Test func producerErrorBeforeTheLimit() async throws {
        struct Boom: Error {}
        let collector = StreamingBodyCollector<[UInt8]>(limit: 100, size: { $0.count }) { sink in
            try await sink.write([1])
            throw Boom()
        }
        guard case .failed(let error) = await collector.outcome() else {
            Issue.record("expected a failure")
            return
        }
        #expect(error is Boom)
    }

    @Test func producerErrorAfterTheLimitReachesTheConsumer() async throws {
        struct Boom: Error {}
        let collector = StreamingBodyCollector<[UInt8]>(limit: 5, size: { $0.count }) { sink in
            try await sink.write([1, 2, 3, 4, 5, 6])
            try await sink.write([7])
            throw Boom()
        }
        guard case .overflow(_, let remainder) = await collector.outcome() else {
            Issue.record("expected an overflow")
            return
        }
        #expect(try await remainder.next() == [7])
        await #expect(throws: Boom.self) { try await remainder.next() }
    }

    /// A response that is dropped without being written must not leave its producer waiting
    /// forever: dropping the remainder makes the pending write throw.
    @Test(.timeLimit(.minutes(1))) func droppingTheRemainderStopsTheProducer() async throws {
        let stopped = AsyncStream<Bool>.makeStream()
        let collector = StreamingBodyCollector<[UInt8]>(limit: 5, size: { $0.count }) { sink in
            do {
                for _ in 0..<1_000_000 { try await sink.write([1, 2, 3, 4, 5, 6]) }
                stopped.continuation.yield(false)
            } catch {
                stopped.continuation.yield(error is CancellationError)
            }
            stopped.continuation.finish()
        }
        do {
            guard case .overflow = await collector.outcome() else {
                Issue.record("expected an overflow")
                return
            }
            // The outcome (holding the remainder) is dropped at the end of this scope.
        }
        var iterator = stopped.stream.makeAsyncIterator()
        #expect(await iterator.next() == true)
    }

    @Test(.timeLimit(.minutes(1))) func cancellingTheWaiterStopsTheProducer() async throws {
        let stopped = AsyncStream<Bool>.makeStream()
        let started = AsyncStream<Void>.makeStream()
        let task = Task {
            let collector = StreamingBodyCollector<[UInt8]>(limit: 1_000, size: { $0.count }) { sink in
                started.continuation.yield()
                do {
                    // Slow producer that never reaches the limit.
                    while true {
                        try await sink.write([1])
                        try await Task.sleep(for: .milliseconds(5))
                    }
                } catch {
                    stopped.continuation.yield(true)
                }
            }
            return await collector.outcome()
        }
        var startedIterator = started.stream.makeAsyncIterator()
        await startedIterator.next()
        task.cancel()
        guard case .failed(let error) = await task.value else {
            Issue.record("expected a failure")
            return
        }
        #expect(error is CancellationError)
        var iterator = stopped.stream.makeAsyncIterator()
        #expect(await iterator.next() == true)
    }
}
