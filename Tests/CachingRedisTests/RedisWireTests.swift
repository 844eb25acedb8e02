import Caching
import Testing

@testable import CachingRedis

/// The request encoder, byte for byte, and the reply scanner and parser (no server needed).
@Suite struct RedisWireTests {
    @Test func encodesMultiBulkRequests() {
        var commands = RedisCommands("SET", arguments: 4) {
            $0.argument("key")
            $0.argument([0, 13, 10, 255])
            $0.argument("PX")
            $0.argument(Int64(1500))
        }
        commands.command("PING")
        #expect(commands.count == 2)
        #expect(!commands.isMalformed)
        let expected: [UInt8] =
            Array("*5\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\n".utf8) + [0, 13, 10, 255]
            + Array("\r\n$2\r\nPX\r\n$4\r\n1500\r\n*1\r\n$4\r\nPING\r\n".utf8)
        #expect(commands.bytes == expected)
    }

    @Test func encodesEmptyUnicodeAndNegativeArguments() {
        let commands = RedisCommands("INCRBY", arguments: 3) {
            $0.argument("")
            $0.argument("ключ")
            $0.argument(Int64.min)
        }
        let expected = "*4\r\n$6\r\nINCRBY\r\n$0\r\n\r\n$8\r\nключ\r\n$20\r\n-9223372036854775808\r\n"
        #expect(commands.bytes == Array(expected.utf8))
    }

    @Test func encodesKeyBatchesWithAndWithoutAPrefix() {
        let long = String(repeating: "k", count: 1000)
        let plain = RedisCommands("MGET", keys: ["a", "ключ", long])
        #expect(!plain.isMalformed)
        #expect(plain.count == 1)
        #expect(plain.bytes == Array("*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$8\r\nключ\r\n$1000\r\n\(long)\r\n".utf8))
        let prefixed = RedisCommands("MGET", prefix: "app:ns:", keys: ["a", "ключ", long])
        #expect(!prefixed.isMalformed)
        let expected = "*4\r\n$4\r\nMGET\r\n$8\r\napp:ns:a\r\n$15\r\napp:ns:ключ\r\n$1007\r\napp:ns:\(long)\r\n"
        #expect(prefixed.bytes == Array(expected.utf8))
        // The same bytes as building each storage key first.
        #expect(prefixed.bytes == RedisCommands("MGET", keys: ["a", "ключ", long].map { "app:ns:" + $0 }).bytes)
        // Bridged or otherwise non-contiguous strings are encoded the same way.
        let substringKeys = ["xa", "xb"].map { String($0.dropFirst()) }
        #expect(RedisCommands("MGET", prefix: "p", keys: substringKeys).bytes == Array("*3\r\n$4\r\nMGET\r\n$2\r\npa\r\n$2\r\npb\r\n".utf8))
    }

    @Test func flagsAWrongArgumentCount() {
        let tooFew = RedisCommands("GET", arguments: 2) { $0.argument("k") }
        #expect(tooFew.isMalformed)
        let tooMany = RedisCommands("GET", arguments: 0) { $0.argument("k") }
        #expect(tooMany.isMalformed)
    }

    // MARK: Replies

    /// Every kind of RESP2 reply, nested arrays, binary bulk strings, nils and extreme integers.
    static let replyStream: [UInt8] =
        Array("+OK\r\n-ERR wrong type\r\n:-9223372036854775808\r\n:9223372036854775807\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n".utf8)
        + Array("$4\r\n".utf8) + [0, 13, 10, 255] + Array("\r\n".utf8)
        + Array("*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n$-1\r\n:7\r\n".utf8)

    static let expectedReplies: [RedisValue] = [
        .status("OK"), .error("ERR wrong type"), .integer(.min), .integer(.max), .null, .null, .array([]), .bulk([]),
        .bulk([0, 13, 10, 255]), .array([.bulk(Array("0".utf8)), .array([.bulk(Array("a".utf8)), .null, .integer(7)])]),
    ]

    /// The ends of the replies in `bytes`, fed to the scanner in pieces of `chunk` bytes.
    static func replyEnds(_ bytes: [UInt8], chunk: Int) throws -> [Int] {
        var scanner = RedisReplyScanner()
        var cursor = 0
        var ends: [Int] = []
        var available = 0
        while available < bytes.count {
            available = min(bytes.count, available + chunk)
            try bytes.withUnsafeBytes { raw in
                let visible = UnsafeRawBufferPointer(rebasing: raw[0..<available])
                while try scanner.next(in: visible, cursor: &cursor) { ends.append(cursor) }
            }
        }
        return ends
    }

    @Test func scannerFramesRepliesWhateverTheChunking() throws {
        let whole = try Self.replyEnds(Self.replyStream, chunk: Self.replyStream.count)
        #expect(whole.count == Self.expectedReplies.count)
        #expect(whole.last == Self.replyStream.count)
        for chunk in 1...17 {
            #expect(try Self.replyEnds(Self.replyStream, chunk: chunk) == whole, "chunks of \(chunk) bytes")
        }
    }

    @Test func parserDecodesEveryReplyKind() throws {
        let values = try Self.replyStream.withUnsafeBytes { raw in
            var parser = RedisReplyParser(raw)
            var values: [RedisValue] = []
            while !parser.isAtEnd { values.append(try parser.value()) }
            return values
        }
        #expect(values.count == Self.expectedReplies.count)
        for (value, expected) in zip(values, Self.expectedReplies) {
            #expect(String(describing: value) == String(describing: expected))
        }
    }

    @Test func mgetRepliesBecomeEntries() throws {
        let bytes = Array("*4\r\n$3\r\nabc\r\n$-1\r\n$0\r\n\r\n$2\r\n\r\n\r\n".utf8)
        let decoded = try RedisConnection.decode(bytes, count: 1, decoding: .entries)
        guard case .entries(let entries) = decoded else {
            Issue.record("expected entries, got \(decoded)")
            return
        }
        #expect(entries.map { $0?.value } == [Array("abc".utf8), nil, [], [13, 10]])
        #expect(entries.allSatisfy { $0?.ttl == nil })
        // An array holding anything but bulk strings and nils falls back to plain values.
        let mixed = try RedisConnection.decode(Array("*2\r\n$1\r\na\r\n:1\r\n".utf8), count: 1, decoding: .entries)
        #expect(String(describing: mixed) == String(describing: RedisValue.array([.bulk([97]), .integer(1)])))
        // An error reply stays an error.
        let error = try RedisConnection.decode(Array("-ERR no\r\n".utf8), count: 1, decoding: .entries)
        #expect(String(describing: error) == String(describing: RedisValue.error("ERR no")))
    }

    @Test func mgetRepliesWithLongAndOddLengthsBecomeEntries() throws {
        let big = [UInt8](repeating: 7, count: 12_345)
        var bytes = Array("*5\r\n$100\r\n".utf8) + [UInt8](repeating: 1, count: 100) + Array("\r\n".utf8)
        bytes += Array("$12345\r\n".utf8) + big + Array("\r\n".utf8)
        bytes += Array("$-1\r\n$003\r\nxyz\r\n$1\r\n\r\r\n".utf8)
        let decoded = try RedisConnection.decode(bytes, count: 1, decoding: .entries)
        guard case .entries(let entries) = decoded else {
            Issue.record("expected entries, got \(decoded)")
            return
        }
        #expect(entries.map { $0?.value } == [[UInt8](repeating: 1, count: 100), big, nil, Array("xyz".utf8), [13]])
        // The scanner frames the same reply whatever the chunking.
        for chunk in [1, 2, 3, 5, 7, 64, bytes.count] {
            #expect(try Self.replyEnds(bytes, chunk: chunk) == [bytes.count], "chunks of \(chunk) bytes")
        }
        // A bulk header whose digits are not followed by CRLF is refused, not misread.
        #expect(throws: RedisProtocolError.self) { _ = try Self.replyEnds(Array("$3x\r\nabc\r\n".utf8), chunk: 64) }
        #expect(throws: RedisProtocolError.self) { _ = try Self.replyEnds(Array("$3\rxabc\r\n".utf8), chunk: 64) }
        #expect(throws: CacheError.self) {
            _ = try RedisConnection.decode(Array("*1\r\n$9\r\nabc\r\n".utf8), count: 1, decoding: .entries)
        }
    }

    @Test func severalRepliesBecomeAnArray() throws {
        let decoded = try RedisConnection.decode(Array("$2\r\nhi\r\n:1500\r\n".utf8), count: 2, decoding: .values)
        #expect(String(describing: decoded) == String(describing: RedisValue.array([.bulk(Array("hi".utf8)), .integer(1500)])))
    }

    @Test(arguments: [
        "!oops\r\n", ":12a\r\n", ":\r\n", ":99999999999999999999\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*-5\r\n",
        "$x\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
    ])
    func scannerRejectsBrokenFraming(_ text: String) {
        #expect(throws: RedisProtocolError.self) { _ = try Self.replyEnds(Array(text.utf8), chunk: 64) }
    }

    @Test func scannerWaitsForIncompleteReplies() throws {
        for text in ["", "+OK", "+OK\r", "$5\r\nab", "$5\r\nabcde\r", "*2\r\n$1\r\na\r\n", "*1\r\n*1\r\n"] {
            #expect(try Self.replyEnds(Array(text.utf8), chunk: 64).isEmpty, "\(text.debugDescription)")
        }
    }

    @Test func parserThrowsInsteadOfReadingPastTheEnd() {
        for text in ["$5\r\nab\r\n", "*3\r\n:1\r\n", "+OK", ""] {
            #expect(throws: CacheError.self) { _ = try RedisConnection.decode(Array(text.utf8), count: 1, decoding: .values) }
        }
        #expect(throws: CacheError.self) { _ = try RedisConnection.decode(Array("*5\r\n$1\r\na\r\n".utf8), count: 1, decoding: .entries) }
    }
}
