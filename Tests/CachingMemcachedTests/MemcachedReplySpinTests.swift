import Caching
@testable import CachingMemcached
import Testing

/// The limit on connection threads polling for a reply at once (no server needed).
@Suite struct ReplySpinSlotsTests {
    @Test func slotsAreLimited() {
        let slots = ReplySpinSlots(limit: 2)
        #expect(slots.acquire())
        #expect(slots.acquire())
        #expect(!slots.acquire(), "a third poller got a slot with a limit of 2")
        #expect(slots.taken == 2)
        slots.release()
        #expect(slots.taken == 1)
        #expect(slots.acquire(), "a freed slot was not given again")
        slots.release()
        slots.release()
        #expect(slots.taken == 0)
    }

    @Test func aLimitBelowOneIsOne() {
        let slots = ReplySpinSlots(limit: 0)
        #expect(slots.limit == 1)
        #expect(slots.acquire())
        #expect(!slots.acquire())
        slots.release()
    }

    @Test func concurrentPollersNeverExceedTheLimit() async {
        let slots = ReplySpinSlots(limit: 3)
        let peak = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var peak = 0
                    for _ in 0..<2_000 where slots.acquire() {
                        peak = max(peak, slots.taken)
                        slots.release()
                    }
                    return peak
                }
            }
            return await group.reduce(0) { max($0, $1) }
        }
        #expect(peak >= 1 && peak <= 3, "peak \(peak) slots taken with a limit of 3")
        #expect(slots.taken == 0)
    }

    @Test func theSharedLimitFollowsTheUsableProcessors() {
        let processors = ReplySpinSlots.usableProcessors()
        #expect(processors >= 1)
        #expect(ReplySpinSlots.shared.limit == max(1, processors / 4))
    }
}

/// `replySpin` on the pool connections, against the shared servers.
@Suite(.enabled(if: TestEnvironment.runSharedTests, "\(TestEnvironment.sharedServersProblem ?? "")"))
struct MemcachedReplySpinTests {
    @Test func sequentialReadsPollByDefault() async throws {
        #expect(MemcachedBackend.Configuration(servers: [MemcachedServer(host: "127.0.0.1", port: 11211)]).replySpin == .microseconds(100))
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        do {
            for index in 0..<20 { try await backend.set(p + "k\(index)", to: bytes("value \(index)"), ttl: .seconds(60)) }
            // Sequential gets, each alone on its connection. A loopback server answers well within
            // 100 µs, but even when it does not (a loaded machine) one read in 32 polls anyway.
            for round in 0..<5 {
                for index in 0..<20 {
                    let entry = try await backend.get(p + "k\(index)")
                    #expect(entry?.value == bytes("value \(index)"), "round \(round), key \(index)")
                }
            }
            try await #expect(backend.get([p + "k1", p + "k2", p + "missing"]).map { $0?.value } == [bytes("value 1"), bytes("value 2"), nil])
            let polled = backend.polledReads.count.load(ordering: .relaxed)
            #expect(polled >= 3, "only \(polled) of 101 lone reads polled for their reply")
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }

    @Test func zeroReplySpinNeverPolls() async throws {
        let backend = try TestEnvironment.sharedBackend { $0.replySpin = .zero }
        let p = uniquePrefix()
        do {
            try await backend.set(p + "k", to: bytes("v"), ttl: .seconds(60))
            for _ in 0..<50 { #expect(try await backend.get(p + "k")?.value == bytes("v")) }
            #expect(backend.polledReads.count.load(ordering: .relaxed) == 0)
        } catch {
            try? await backend.close()
            throw error
        }
        try await backend.close()
    }
}
