import Caching
@testable import CachingMemcached
import Testing

/// Server lists, settings and the key layout: no server needed.
@Suite struct MemcachedConfigurationTests {
    @Test func parsesServerLists() throws {
        #expect(try MemcachedServer.parseList("memcached://a:11211,b:11212") == [
            MemcachedServer(host: "a", port: 11211), MemcachedServer(host: "b", port: 11212),
        ])
        #expect(try MemcachedServer.parseList("127.0.0.1:21211, 127.0.0.1:21212") == [
            MemcachedServer(host: "127.0.0.1", port: 21211), MemcachedServer(host: "127.0.0.1", port: 21212),
        ])
        #expect(try MemcachedServer.parseList("MEMCACHED://cache") == [MemcachedServer(host: "cache", port: 11211)])
        #expect(try MemcachedServer.parseList("memcached://a:1:3,[::1]:2:5,[fe80::1]") == [
            MemcachedServer(host: "a", port: 1, weight: 3),
            MemcachedServer(host: "::1", port: 2, weight: 5),
            MemcachedServer(host: "fe80::1", port: 11211),
        ])
        #expect(MemcachedServer(host: "::1", port: 2).description == "[::1]:2")
        for bad in ["", "redis://a:1", "memcached://", "a:b", "a:0", "a:70000", "a:1:0", "a:1:2:3", "a,,b", "memcached://a:1/path",
                    "memcached://user@a:1", "memcached://a:1?x=1", "[::1", "[::1]x", ":11211"] {
            do {
                _ = try MemcachedServer.parseList(bad)
                Issue.record("\(String(reflecting: bad)) was accepted")
            } catch {
                #expect(error.code == .configuration, "\(bad): \(error)")
            }
        }
    }

    @Test func validatesSettings() throws {
        var configuration = try MemcachedBackend.Configuration(url: "memcached://a:1,b:2")
        try configuration.validate()
        let changes: [(String, (inout MemcachedBackend.Configuration) -> Void)] = [
            ("no servers", { $0.servers = [] }),
            ("duplicate", { $0.servers = [.init(host: "a", port: 1), .init(host: "a", port: 1, weight: 2)] }),
            ("connections", { $0.connectionsPerServer = 0 }),
            ("timeout", { $0.ioTimeout = .zero }),
            ("retry", { $0.retryTimeout = .seconds(-1) }),
            ("size", { $0.maxValueSize = 0 }),
            ("delimiter", { $0.namespaceDelimiter = UInt8(ascii: " ") }),
            ("depth", { $0.maxNamespaceDepth = 33 }),
            ("generation TTL", { $0.generationCacheTTL = .seconds(61) }),
            ("idle spin", { $0.idleSpin = .milliseconds(11) }),
            ("reply wait", { $0.replyWait = .milliseconds(2) }),
            ("negative reply wait", { $0.replyWait = .microseconds(-1) }),
            ("reply spin", { $0.replySpin = .milliseconds(2) }),
            ("negative reply spin", { $0.replySpin = .microseconds(-1) }),
            ("executor reply spin", { $0.executorReplySpin = .milliseconds(2) }),
        ]
        for (name, change) in changes {
            var bad = configuration
            change(&bad)
            #expect(throws: CacheError.self, "\(name) was accepted") { try bad.validate() }
            #expect(throws: CacheError.self, "\(name) was accepted by the initializer") { _ = try MemcachedBackend(configuration: bad) }
        }
        configuration.servers = [.init(host: "a", port: 1)]
        _ = try MemcachedBackend(configuration: configuration)   // no connection needed to create it
    }

    @Test func safeKeysStayReadableAndOthersBecomeDigests() {
        let plain = MemcachedKeySpace.part(Array("shop:users:42".utf8)[...])
        #expect(plain == Array("=shop:users:42".utf8))
        for unsafe in ["with space", "tab\t", "nl\n", "nul\u{0}", "del\u{7f}", "é", String(repeating: "x", count: MemcachedKeySpace.maxPlainLength + 1)] {
            let part = MemcachedKeySpace.part(Array(unsafe.utf8)[...])
            #expect(part.first == UInt8(ascii: "#") && part.count == 65, "\(String(reflecting: unsafe))")
            #expect(part.dropFirst().allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        }
        let longest = String(repeating: "x", count: MemcachedKeySpace.maxPlainLength)
        let key = MemcachedKeySpace.dataKey(keyPart: MemcachedKeySpace.part(Array(longest.utf8)[...]), token: 1)
        #expect(key.bytes.count == 250, "the longest plain key must fit memcached's 250 bytes with its token")
        #expect(MemcachedKeySpace.dataKey(keyPart: Array("=k".utf8), token: nil).bytes == Array("v=k".utf8))
        #expect(MemcachedKeySpace.dataKey(keyPart: Array("=k".utf8), token: 0xab).bytes == Array("v00000000000000ab=k".utf8))
    }

    @Test func namespaceLevelsAreTheDelimiterEndedPrefixes() {
        let space = MemcachedKeySpace(delimiter: UInt8(ascii: ":"), maxDepth: 3)
        let keys = space.generationKeys(of: Array("a:b*?[:c::key".utf8))
        #expect(keys.map(\.bytes) == ["g=a:", "g=a:b*?[:", "g=a:b*?[:c:"].map { Array($0.utf8) })
        #expect(space.generationKeys(of: Array("plain".utf8)).isEmpty)
        #expect(space.generationKeys(of: Array("ns:".utf8)).map(\.bytes) == [Array("g=ns:".utf8)])
        #expect(MemcachedKeySpace(delimiter: UInt8(ascii: ":"), maxDepth: 0).generationKeys(of: Array("a:b:".utf8)).isEmpty)
        #expect(space.levels(of: Array("a:b:".utf8)) == (2, true))
        #expect(space.levels(of: Array("a:b".utf8)) == (1, false))
        let unicode = space.generationKeys(of: Array("ключ:v".utf8))
        #expect(unicode.count == 1 && unicode[0].bytes.first == UInt8(ascii: "g") && unicode[0].bytes[1] == UInt8(ascii: "#"))
    }

    @Test func tokensChangeWhenAnyGenerationChanges() {
        let base: [UInt64] = [11, 22, 33]
        let token = MemcachedKeySpace.token(base)
        for index in base.indices {
            for delta: UInt64 in [1, 2, 1 << 40] {
                var changed = base
                changed[index] &+= delta
                #expect(MemcachedKeySpace.token(changed) != token)
            }
        }
        #expect(MemcachedKeySpace.token([1, 2]) != MemcachedKeySpace.token([2, 1]))
    }

    @Test func countersParseLikeMemcached() {
        #expect(MemcachedKeySpace.parseCounter(Array("0".utf8)) == 0)
        #expect(MemcachedKeySpace.parseCounter(Array("18446744073709551615".utf8)) == UInt64.max)
        for bad in ["", "-1", " 1", "1 ", "18446744073709551616", "1e3", "abc"] {
            #expect(MemcachedKeySpace.parseCounter(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func remainingTTLComesFromTheRecordedExpiry() {
        let now: Int64 = 1_700_000_000_250_000_000
        #expect(MemcachedExpiry.remaining(flags: 0, now: now) == .some(nil))
        #expect(MemcachedExpiry.remaining(flags: 1_700_000_000, now: now) == nil)
        #expect(MemcachedExpiry.remaining(flags: 1_700_000_002, now: now) == .some(.milliseconds(1750)))
    }
}
