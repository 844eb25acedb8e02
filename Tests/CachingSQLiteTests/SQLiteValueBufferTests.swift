import Caching
import Testing

@testable import CachingSQLite

/// A get copies its value into memory the caller allocated (``StoreContext/valueBuffer()``), sized by
/// a hint of the values read lately, and falls back to its own allocation when the value does not fit.
@Suite struct SQLiteValueBufferTests {
    /// A value of `count` bytes that differs from every other size and key.
    private func value(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ count) }
    }

    @Test func getsOfChangingSizesReturnExactlyTheStoredBytes() async throws {
        try await withFileBackend { backend, _ async throws in
            // Sizes that grow the hint, fit it, outgrow it, shrink it, pass the preallocation limit and
            // come back under it; with zero bytes, an empty value and a miss among them.
            let sizes = [100, 100, 1, 150, 30, 0, 4096, 4097, 5000, 10, 1 << 20, 100, 64, 2048]
            for (index, size) in sizes.enumerated() {
                try await backend.set("k\(index)", to: value(size, seed: index), ttl: .seconds(60))
            }
            for round in 0..<3 {
                let order = round == 1 ? Array(sizes.indices.reversed()) : Array(sizes.indices)
                for index in order {
                    let entry = try await backend.get("k\(index)")
                    #expect(entry?.value == value(sizes[index], seed: index), "size \(sizes[index]), round \(round)")
                    #expect(try await backend.get("missing-\(index)") == nil)
                }
            }
        }
    }

    @Test func theHintFollowsTheValuesRead() async throws {
        let store = StoreContext(location: .memory, configuration: SQLiteBackend.Configuration())
        #expect(store.valueBuffer().capacity == 0, "no hint before the first read: no allocation")
        store.noteValueSize(100)
        #expect(store.valueBuffer().capacity >= 100)
        #expect(store.valueBuffer().isEmpty)
        store.noteValueSize(150)
        #expect(store.valueBuffer().capacity >= 150, "a larger value grows the hint")
        store.noteValueSize(120)
        #expect(store.valueBuffer().capacity >= 150, "a slightly smaller value keeps it")
        store.noteValueSize(20)
        let shrunk = store.valueBuffer().capacity
        #expect(shrunk >= 20 && shrunk < 150, "values under a quarter of the hint shrink it")
        store.noteValueSize(StoreContext.largestPreallocatedValue + 1)
        #expect(store.valueBuffer().capacity == 0, "values too large to preallocate turn it off")
        store.noteValueSize(StoreContext.largestPreallocatedValue)
        #expect(store.valueBuffer().capacity >= StoreContext.largestPreallocatedValue)
    }

    @Test func aValueThatFitsIsCopiedIntoTheCallersBufferAndOneThatDoesNotIsNot() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("small", to: value(100, seed: 1), ttl: nil)
            try await backend.set("large", to: value(300, seed: 2), ttl: nil)
            let outcome = try await backend.withConnection(onWriter: false) { connection in
                var buffer: [UInt8] = []
                buffer.reserveCapacity(200)
                let storage = buffer.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                let small = try connection.get("small", into: &buffer)
                let smallStorage = small?.value.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                let movedOut = buffer.isEmpty && buffer.capacity == 0
                var second: [UInt8] = []
                second.reserveCapacity(200)
                let large = try connection.get("large", into: &second)
                let largeStorage = large?.value.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                let secondStorage = second.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                return (
                    small: small?.value, sameStorage: smallStorage == storage, movedOut: movedOut,
                    large: large?.value, largeInOwnStorage: largeStorage != secondStorage, secondKept: second.isEmpty && second.capacity >= 200
                )
            }
            #expect(outcome.small == value(100, seed: 1))
            #expect(outcome.sameStorage, "the value was not copied into the caller's buffer")
            #expect(outcome.movedOut, "the buffer was not moved into the entry")
            #expect(outcome.large == value(300, seed: 2))
            #expect(outcome.largeInOwnStorage && outcome.secondKept, "a value larger than the buffer must get its own array and leave the buffer alone")
        }
    }

    @Test func aLoneCallersGetsRecordWhichProcessorsTheyRanOn() async throws {
        try await withFileBackend { backend, _ async throws in
            try await backend.set("a", to: [1], ttl: nil)
            let thread = backend.readThreadForTesting
            let before = thread.handedRequests.load(ordering: .relaxed)
            for _ in 0..<500 { #expect(try await backend.get("a")?.value == [1]) }
            // Timing-dependent (a hand-off needs the reader to be polling), like the hand-off test.
            if thread.handedRequests.load(ordering: .relaxed) > before {
                #if os(Linux)
                #expect(thread.callerProcessor.load(ordering: .relaxed) >= 0)
                #expect(thread.threadProcessor.load(ordering: .relaxed) >= 0)
                #endif
            }
        }
    }
}

/// The buffer a caller hands over reaches the connection's thread uniquely referenced, so filling it
/// there does not copy it (a copy would be allocated on the connection's thread again).
@Suite struct SQLiteHandedBufferTests {
    @Test func theConnectionThreadFillsTheCallersBufferInPlace() async throws {
        try await withFileBackend { backend, _ async throws in
            let thread = backend.readThreadForTesting
            for _ in 0..<50 {
                var buffer: [UInt8] = []
                buffer.reserveCapacity(256)
                let storage = buffer.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                let filled = try await thread.perform(.read, buffer: consume buffer) { _, buffer -> UInt in
                    buffer.append(contentsOf: [1, 2, 3, 4, 5, 6, 7, 8])
                    return buffer.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                }
                #expect(filled == storage, "the buffer was copied before the connection's thread filled it")
            }
        }
    }
}
