import Caching
import Foundation
import Testing

/// Decodes nested unkeyed containers for as deep as the input goes.
final class Nesting: Decodable {
    let children: [Nesting]

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        var children: [Nesting] = []
        while !container.isAtEnd {
            children.append(try container.decode(Nesting.self))
        }
        self.children = children
    }
}

/// Bytes that `BinaryCoder` did not write must make it throw `.decodingFailed`: never crash,
/// trap, hang or allocate without bound.
@Suite struct BinaryCoderRobustnessTests {
    let coder = BinaryCoder()

    @Test func emptyInputThrows() {
        expectDecodingFailed { _ = try coder.decode(Int.self, from: []) }
        expectDecodingFailed { _ = try coder.decode(User?.self, from: []) }
    }

    @Test func otherVersionsAndJSONThrowWithAClearMessage() throws {
        var bytes = try coder.encode(User.sample)
        bytes[0] = 2
        expectDecodingFailed { _ = try coder.decode(User.self, from: bytes) }
        bytes[0] = 0
        expectDecodingFailed { _ = try coder.decode(User.self, from: bytes) }
        let json = try JSONCoder().encode(User.sample)
        do {
            _ = try coder.decode(User.self, from: json)
            Issue.record("JSON decoded as binary")
        } catch let error as CacheError {
            #expect(error.code == .decodingFailed)
            #expect(error.message.contains("JSON"), "\(error.message)")
        }
    }

    @Test func everyTruncationAndTrailingGarbageThrows() throws {
        let bytes = try coder.encode(Order.sample)
        for length in 0..<bytes.count {
            expectDecodingFailed { _ = try coder.decode(Order.self, from: Array(bytes[0..<length])) }
        }
        expectDecodingFailed { _ = try coder.decode(Order.self, from: bytes + [0]) }
        let user = try coder.encode(User.sample)
        for length in 0..<user.count {
            expectDecodingFailed { _ = try coder.decode(User.self, from: Array(user[0..<length])) }
        }
    }

    @Test func hugeLengthsAndCountsThrowBeforeAllocating() {
        let huge: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]  // 2^63 - 1
        let cases: [(String, [UInt8])] = [
            ("string", [1, 0xD7] + huge + [0x61]),
            ("blob", [1, 0xD8] + huge + [0x61]),
            ("array", [1, 0xDB] + huge + [0x00]),
            ("named map", [1, 0xDA] + huge + [0xF0, 0x01, 0x61, 0x00]),
            ("fingerprinted map", [1, 0xD9] + huge + [0x00, 0x01, 0x00]),
            ("key name", [1, 0x91, 0xF0] + huge + [0x61, 0x00]),
            ("11-byte varint", [1, 0xD3] + Array(repeating: 0xFF, count: 10) + [0x01]),
            ("varint past the end", [1, 0xD4, 0x80, 0x80]),
        ]
        for (name, bytes) in cases {
            expectDecodingFailed { _ = try coder.decode(String.self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode([UInt8].self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode(Data.self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode([Int].self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode([String: Int].self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode(Bag.self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode(User.self, from: bytes) }
            expectDecodingFailed { _ = try coder.decode(Int.self, from: bytes) }
            _ = name
        }
    }

    @Test func deepNestingThrowsInsteadOfOverflowingTheStack() throws {
        let depth = 200_000
        // Unkeyed containers nested 200,000 deep, read by a recursive type...
        let arrays = [UInt8(1)] + Array(repeating: 0xA1, count: depth) + [0xA0]
        expectDecodingFailed { _ = try coder.decode(Nesting.self, from: arrays) }
        // ...and skipped while looking up a key by name.
        let named = [UInt8(1), 0x91, 0xF0, 0x01, 0x61] + Array(repeating: 0xA1, count: depth) + [0xA0]
        expectDecodingFailed { _ = try coder.decode(Bag.self, from: named) }
        // A long run of optional markers is read in a loop, not by recursion.
        let optionals = [UInt8(1)] + Array(repeating: 0xDC, count: depth) + [0x05]
        #expect(try coder.decode(Int.self, from: optionals) == 5)
        // A recursive value deeper than maxDepth is refused when encoding, too.
        #expect(throws: CacheError.self) { try coder.encode(Tree.deep(300)) }
    }

    @Test func nestedContainersClaimingTheWholeInputThrowQuickly() throws {
        // 200 nested containers each claim 2^20 entries, and 2 MiB of filler could hold that
        // many for one of them. The decoder must not reserve room for 2^20 entries at every
        // level (1.6 GB) before finding out that they cannot all exist.
        final class Chain: Codable {
            var next: Chain?
        }
        let fingerprint = try coder.encode(Chain())[2]
        var bytes: [UInt8] = [1]
        for _ in 0..<200 {
            bytes += [0xD9, 0x80, 0x80, 0x40, 0x00, fingerprint]  // 2^20 entries, salt 0, key "next"
        }
        bytes.append(0xD0)
        bytes += Array(repeating: 0x00, count: 1 << 21)
        func peakMemory() -> Int {
            var usage = rusage()
            #if os(Linux)
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
            return usage.ru_maxrss * 1024  // KiB on Linux
            #else
            getrusage(RUSAGE_SELF, &usage)
            return usage.ru_maxrss  // bytes on Darwin
            #endif
        }
        let peakBefore = peakMemory()
        let clock = ContinuousClock()
        let start = clock.now
        expectDecodingFailed { _ = try coder.decode(Chain.self, from: bytes) }
        #expect(clock.now - start < .seconds(30))
        #expect(peakMemory() - peakBefore < 512 << 20, "peak memory grew by \((peakMemory() - peakBefore) >> 20) MiB")
    }

    @Test func invalidUTF8AndUnknownTagsThrow() throws {
        expectDecodingFailed { _ = try coder.decode(String.self, from: [1, 0xB2, 0xC3, 0x28]) }
        expectDecodingFailed { _ = try coder.decode(Bag.self, from: [1, 0x91, 0xF0, 0x01, 0xFF, 0x01]) }
        #expect(try coder.decode(Bag.self, from: [1, 0x91, 0xF0, 0x01, 0x61, 0x01]) == Bag(values: ["a": 1]))
        expectDecodingFailed { _ = try coder.decode(Int.self, from: [1, 0xDF]) }
        expectDecodingFailed { _ = try coder.decode(Bag.self, from: [1, 0x91, 0xF0, 0x01, 0x61, 0xDF]) }
        for token: UInt8 in 0xF3...0xFF {
            expectDecodingFailed { _ = try coder.decode(Bag.self, from: [1, 0x91, token, 0x01]) }
        }
        // A key token that names a key name never defined.
        expectDecodingFailed { _ = try coder.decode([String: Int].self, from: [1, 0x91, 0x05, 0x01]) }
        expectDecodingFailed { _ = try coder.decode([String: Int].self, from: [1, 0x91, 0xF1, 0x07, 0x01]) }
        // A fingerprinted container whose trailer is missing or wrong.
        var bytes = try coder.encode(User.sample)
        expectDecodingFailed { _ = try coder.decode(User.self, from: Array(bytes.dropLast(4))) }
        bytes[bytes.count - 1] ^= 1
        expectDecodingFailed { _ = try coder.decode(User.self, from: bytes) }
    }

    @Test func concurrentEncodingAndDecodingAreIndependent() async throws {
        let coder = BinaryCoder()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask { () async throws -> Void in
                    for i in 0..<1_000 {
                        let user = User(id: task * 10_000 + i, name: "n\(i)", email: "e\(task)", score: Double(i) / 4, active: i % 2 == 0)
                        let decodedUser = try coder.decode(User.self, from: coder.encode(user))
                        #expect(decodedUser == user)
                        let order = i % 50 == 0 ? Order.sample : nil
                        let decodedOrder = try coder.decode(Order?.self, from: coder.encode(order))
                        #expect(decodedOrder == order)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func anEncoderKeptPastEncodeToIsNotReused() throws {
        final class Box: @unchecked Sendable {
            // Set and read on one thread in this test only.
            var encoder: (any Encoder)?
            var decoder: (any Decoder)?
        }
        struct Leaky: Codable {
            let box: Box
            init(box: Box) { self.box = box }
            init(from decoder: any Decoder) throws {
                box = Box()
                box.decoder = decoder
                _ = try decoder.singleValueContainer().decode(Int.self)
            }
            func encode(to encoder: any Encoder) throws {
                box.encoder = encoder
                var container = encoder.singleValueContainer()
                try container.encode(1)
            }
        }
        let box = Box()
        let coder = BinaryCoder()
        let leaky = try coder.encode(Leaky(box: box))
        // The writer the leaked encoder holds must not serve the next encoding.
        let bytes = try coder.encode(User.sample)
        var stale = try #require(box.encoder).singleValueContainer()
        #expect(throws: (any Error).self) { try stale.encode(2) }
        #expect(try coder.decode(User.self, from: bytes) == User.sample)
        #expect(try coder.encode(User.sample) == bytes)
        let decoded = try coder.decode(Leaky.self, from: leaky)
        #expect(try coder.decode(User.self, from: bytes) == User.sample)
        let staleDecoder = try #require(decoded.box.decoder)
        #expect(try staleDecoder.singleValueContainer().decode(Int.self) == 1)
        #expect(throws: (any Error).self) { try staleDecoder.container(keyedBy: DynamicKey.self) }
        #expect(try coder.decode(User.self, from: bytes) == User.sample)
    }

    @Test func seededRandomInputsNeverCrash() throws {
        var random = SplitMix64(seed: 0x5EED_CAC4E)
        let samples: [[UInt8]] = [
            try coder.encode(User.sample),
            try coder.encode(Order.sample),
            try coder.encode([Shape.circle(radius: 1), .labelled(2, "b"), .point]),
            try coder.encode(Optionals(plain: 1, double: .some(nil), triple: nil, list: [nil, 1], map: ["a": nil], nestedList: [[nil]])),
            try coder.encode(Bag(values: ["x": 1, "yy": -2])),
            try coder.encode(Dog(name: "Rex", breed: "collie", goodBoy: true)),
            try coder.encode(Wide()),
            try BinaryCoder(keyEncoding: .named).encode(Order.sample),
        ]
        let decoders: [([UInt8]) throws -> Void] = [
            { _ = try coder.decode(User.self, from: $0) },
            { _ = try coder.decode(Order.self, from: $0) },
            { _ = try coder.decode([Shape].self, from: $0) },
            { _ = try coder.decode(Optionals.self, from: $0) },
            { _ = try coder.decode(Bag.self, from: $0) },
            { _ = try coder.decode(Dog.self, from: $0) },
            { _ = try coder.decode(Wide.self, from: $0) },
            { _ = try coder.decode([String: [Int]].self, from: $0) },
            { _ = try coder.decode(Tree.self, from: $0) },
            { _ = try coder.decode(String.self, from: $0) },
            { _ = try coder.decode(Data.self, from: $0) },
            { _ = try coder.decode(Int?.self, from: $0) },
            { _ = try coder.decode(Nesting.self, from: $0) },
        ]
        var failures = 0
        var successes = 0
        for round in 0..<3_000 {
            var input: [UInt8]
            if round % 3 == 0 {
                input = (0..<Int.random(in: 0...48, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                if !input.isEmpty && Bool.random(using: &random) { input[0] = 1 }
            } else {
                input = samples[Int.random(in: 0..<samples.count, using: &random)]
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0:
                        input[Int.random(in: 0..<input.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    case 1:
                        input.removeLast(Int.random(in: 0...min(8, input.count - 1), using: &random))
                    case 2:
                        input.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 1...input.count, using: &random))
                    default:
                        let i = Int.random(in: 1..<input.count, using: &random)
                        input[i] ^= 1 << UInt8.random(in: 0...7, using: &random)
                    }
                }
            }
            for decode in decoders {
                do {
                    try decode(input)
                    successes += 1
                } catch let error as CacheError {
                    #expect(error.code == .decodingFailed)
                    failures += 1
                } catch {
                    Issue.record("decoding random input threw \(error), not a CacheError")
                }
            }
        }
        #expect(failures + successes == 3_000 * decoders.count)
        #expect(failures > successes, "most random inputs are not valid values")
    }
}
