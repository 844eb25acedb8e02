import Caching
import Testing

@testable import CachingRedis

/// The request encoder, byte for byte (no server needed).
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

    @Test func flagsAWrongArgumentCount() {
        let tooFew = RedisCommands("GET", arguments: 2) { $0.argument("k") }
        #expect(tooFew.isMalformed)
        let tooMany = RedisCommands("GET", arguments: 0) { $0.argument("k") }
        #expect(tooMany.isMalformed)
    }
}
