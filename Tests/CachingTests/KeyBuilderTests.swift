import Caching
import Testing

@Suite struct KeyBuilderTests {
    struct Filter: Codable, Sendable { var tag: String; var limit: Int }

    func call(_ args: [CacheArgument], function: String = "user") -> CacheCall {
        CacheCall(scope: "shop:users:", function: function, arguments: args)
    }

    @Test func digestKeysAreStableConstants() throws {
        // A fixed input gives a fixed key: the same in every process, machine and Swift version.
        let key = DigestKeyBuilder().key(for: call([try CacheArgument(42)]))
        #expect(key.hasPrefix("shop:users:"))
        #expect(key.count == "shop:users:".count + 32)
        #expect(key == DigestKeyBuilder().key(for: call([try CacheArgument(42)])))
        let expected = "shop:users:" + SHA256.hexString(Array(SHA256.hash(Array("4:user3:i42".utf8)).prefix(16)))
        #expect(key == expected)
    }

    @Test func digestSeparatesTypesArgumentsAndFunctions() throws {
        let builder = DigestKeyBuilder()
        let int = builder.key(for: call([try CacheArgument(42)]))
        let string = builder.key(for: call([try CacheArgument("42")]))
        let split1 = builder.key(for: call([try CacheArgument("ab"), try CacheArgument("c")]))
        let split2 = builder.key(for: call([try CacheArgument("a"), try CacheArgument("bc")]))
        let otherFunction = builder.key(for: call([try CacheArgument(42)], function: "order"))
        #expect(Set([int, string, split1, split2, otherFunction]).count == 5)
    }

    @Test func encodableArgumentsUseSortedJSON() throws {
        let argument = try CacheArgument(Filter(tag: "new", limit: 10))
        #expect(argument.canonical == #"j{"limit":10,"tag":"new"}"#)
        #expect(argument.readable == #"{"limit":10,"tag":"new"}"#)
    }

    @Test func readableKeys() throws {
        let key = ReadableKeyBuilder().key(for: call([try CacheArgument(42), try CacheArgument("eu")]))
        #expect(key == "shop:users:user:42:eu")
    }

    @Test func closureKeys() throws {
        let builder: any KeyBuilder = .custom { call in call.scope + "tenant-7:" + call.function }
        #expect(builder.key(for: call([])) == "shop:users:tenant-7:user")
    }
}
