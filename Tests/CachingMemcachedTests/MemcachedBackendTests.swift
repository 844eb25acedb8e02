import Caching
@testable import CachingMemcached
import Foundation
import Testing

/// memcached's rules, handled: keys, TTLs, sizes, counters, namespaces. On the shared servers.
@Suite(.enabled(if: TestEnvironment.runSharedTests, "\(TestEnvironment.sharedServersProblem ?? "")"))
struct MemcachedBackendTests {
    @Test func keysMemcachedCannotStoreStillWork() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        let keys = [
            p + String(repeating: "x", count: 251),                 // longer than memcached's 250
            p + String(repeating: "y", count: 5000),
            p + "white space", p + "tab\there", p + "new\nline", p + "cr\rlf\n",
            p + "nul\u{0}byte", p + "del\u{7f}", p + "ключ-鍵-🔑", p + "é",
            p + "plain-but-232-" + String(repeating: "z", count: MemcachedKeySpace.maxPlainLength - p.utf8.count - 14),
        ]
        for (index, key) in keys.enumerated() {
            try await backend.set(key, to: bytes("value \(index)"), ttl: .seconds(60))
        }
        for (index, key) in keys.enumerated() {
            #expect(try await backend.get(key)?.value == bytes("value \(index)"), "key \(String(reflecting: key.prefix(60)))")
        }
        // A key whose digest form another key could spell is still distinct.
        let unsafeKey = p + "a b"
        let spelled = p + "#" + SHA256.hex(SHA256.hash(Array(unsafeKey.utf8)))
        try await backend.set(unsafeKey, to: bytes("unsafe"), ttl: .seconds(60))
        try await backend.set(spelled, to: bytes("spelled"), ttl: .seconds(60))
        #expect(try await backend.get(unsafeKey)?.value == bytes("unsafe"))
        #expect(try await backend.get(spelled)?.value == bytes("spelled"))
        let entries = try await backend.get(keys)
        #expect(entries.map { $0?.value } == keys.indices.map { bytes("value \($0)") })
        #expect(try await backend.delete(keys) == keys.count)
        try await backend.close()
    }

    @Test func emptyKeyIsRefused() async throws {
        let backend = try TestEnvironment.sharedBackend()
        await #expect(throws: CacheError.self) { try await backend.set("", to: [1], ttl: nil) }
        do {
            _ = try await backend.get("")
            Issue.record("get of an empty key did not throw")
        } catch let error as CacheError {
            #expect(error.code == .invalidKey)
        }
        try await backend.close()
    }

    @Test func ttlOverThirtyDaysIsSentAsAbsoluteTime() async throws {
        // memcached reads an expiration over 30 days as a Unix time: sent as seconds it would
        // mean 1970, and the value would be gone at once.
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        for days in [29, 30, 31, 365, 3650] {
            let ttl = Duration.seconds(days * 86_400)
            try await backend.set(p + "d\(days)", to: bytes("kept"), ttl: ttl)
            let entry = try await backend.get(p + "d\(days)")
            #expect(entry?.value == bytes("kept"), "TTL of \(days) days")
            if let remaining = entry?.ttl {
                #expect(remaining <= ttl + .seconds(1) && remaining >= ttl - .seconds(5), "TTL of \(days) days reported as \(remaining)")
            } else {
                Issue.record("TTL of \(days) days: no remaining TTL reported")
            }
        }
        // And through add, increment and touch.
        let longTTL = Duration.seconds(40 * 86_400)
        #expect(try await backend.add(p + "add", value: bytes("a"), ttl: longTTL))
        #expect(try await backend.get(p + "add")?.value == bytes("a"))
        #expect(try await backend.increment(p + "counter", by: 3, ttl: longTTL) == 3)
        #expect(try await backend.get(p + "counter")?.value == bytes("3"))
        try await backend.set(p + "touched", to: bytes("t"), ttl: .seconds(5))
        #expect(try await backend.touch(p + "touched", ttl: longTTL))
        let touched = try await backend.get(p + "touched")
        #expect(touched?.value == bytes("t"))
        #expect((touched?.ttl ?? .zero) > .seconds(39 * 86_400))
        try await backend.close()
    }

    @Test func expiryPlanUsesAbsoluteTimeOnlyPastThirtyDays() {
        let now: Int64 = 1_700_000_000_500_000_000   // x.5 s
        let thirtyDays = Int64(30 * 86_400)
        let below = MemcachedExpiry.plan(.seconds(thirtyDays - 1), now: now)
        #expect(below.exptime == thirtyDays)                     // relative, plus the 1 s margin
        let at = MemcachedExpiry.plan(.seconds(thirtyDays), now: now)
        #expect(at.exptime == 1_700_000_001 + thirtyDays + 1)    // absolute: ceil(now + ttl) + 1
        #expect(at.flags == UInt32(1_700_000_001 + thirtyDays))
        let never = MemcachedExpiry.plan(nil, now: now)
        #expect(never == MemcachedExpiry.Plan(exptime: 0, flags: 0))
        let far = MemcachedExpiry.plan(.seconds(500 * 365 * 86_400), now: now)
        #expect(far.flags == UInt32.max - 1)                      // capped at the end of 32-bit time
        #expect(far.exptime == Int(UInt32.max))
    }

    @Test func subSecondTTLRoundsUpToWholeSeconds() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        let plan = MemcachedExpiry.plan(.milliseconds(300), now: 1_700_000_000_000_000_000)
        #expect(plan.exptime == 2)          // 1 s, plus the margin for memcached's 1-second clock
        #expect(plan.flags == 1_700_000_001)
        try await backend.set(p + "short", to: bytes("v"), ttl: .milliseconds(300))
        let entry = try await backend.get(p + "short")
        #expect(entry?.value == bytes("v"))
        // The recorded expiry is the TTL's end rounded up to a whole second: within (0, 1.3 s].
        #expect((entry?.ttl ?? .zero) > .zero && (entry?.ttl ?? .seconds(9)) <= .milliseconds(1300), "reported \(String(describing: entry?.ttl))")
        try await Task.sleep(for: .milliseconds(3_000))
        #expect(try await backend.get(p + "short") == nil, "a 300 ms TTL must be gone after 3 s")
        try await backend.close()
    }

    @Test func oversizedValuesFailWithValueTooLarge() async throws {
        let backend = try TestEnvironment.sharedBackend { $0.maxValueSize = 1000 }
        let p = uniquePrefix()
        do {
            try await backend.set(p + "big", to: [UInt8](repeating: 7, count: 1001), ttl: nil)
            Issue.record("a value over maxValueSize was accepted")
        } catch let error as CacheError {
            #expect(error.code == .valueTooLarge)
            #expect(error.message.contains("1001"))
        }
        await #expect(throws: CacheError.self) { _ = try await backend.add(p + "big", value: [UInt8](repeating: 7, count: 5000), ttl: nil) }
        await #expect(throws: CacheError.self) { try await backend.set([(key: p + "ok", value: [1]), (key: p + "big", value: [UInt8](repeating: 7, count: 5000))], ttl: nil) }
        #expect(try await backend.get(p + "ok") == nil, "a batch with a value too large must store nothing")
        try await backend.set(p + "fits", to: [UInt8](repeating: 7, count: 1000), ttl: nil)
        #expect(try await backend.get(p + "fits")?.value.count == 1000)
        try await backend.close()

        // The server's own limit (the test servers run with -I 2m), mapped from its E2BIG answer.
        let lenient = try TestEnvironment.sharedBackend { $0.maxValueSize = 8 << 20 }
        do {
            try await lenient.set(p + "huge", to: [UInt8](repeating: 1, count: 3 << 20), ttl: nil)
            Issue.record("memcached accepted a 3 MiB value")
        } catch let error as CacheError {
            #expect(error.code == .valueTooLarge, "\(error)")
        }
        // The connection is still usable afterwards.
        try await lenient.set(p + "after", to: bytes("fine"), ttl: nil)
        #expect(try await lenient.get(p + "after")?.value == bytes("fine"))
        try await lenient.close()
    }

    @Test func getWithTTLThroughTheFrontReportsTheRecordedExpiry() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let front = CacheFront(backend: backend, prefix: String(uniquePrefix().dropLast()))
        let users = front.namespace("users")
        try await users.set("alice", forKey: "1", ttl: .seconds(120))
        let found = try await users.getWithTTL("1", as: String.self)
        #expect(found?.value == "alice")
        let ttl = found?.ttl ?? .zero
        #expect(ttl > .seconds(115) && ttl <= .seconds(121), "reported \(ttl)")
        try await users.set("bob", forKey: "2")
        #expect(try await users.getWithTTL("2", as: String.self)?.ttl == nil)
        try await users.clear()
        #expect(try await users.get("1", as: String.self) == nil)
        try await backend.close()
    }

    @Test func countersAreDecimalAndDecrementStopsAtZero() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        // Missing key, no TTL: INCR with an initial value; never expires.
        #expect(try await backend.increment(p + "a", by: 7, ttl: nil) == 7)
        #expect(try await backend.get(p + "a") == CacheEntry(value: bytes("7"), ttl: nil))
        #expect(try await backend.increment(p + "a", by: -3, ttl: nil) == 4)
        #expect(try await backend.increment(p + "a", by: -10, ttl: nil) == 0, "memcached counters stop at 0")
        // Missing key with a negative delta starts at 0 and stays there.
        #expect(try await backend.increment(p + "b", by: -5, ttl: .seconds(30)) == 0)
        #expect(try await backend.get(p + "b")?.value == bytes("0"))
        // Missing key with a TTL keeps its expiry through later increments.
        #expect(try await backend.increment(p + "c", by: 1, ttl: .seconds(30)) == 1)
        #expect(try await backend.increment(p + "c", by: 1, ttl: .seconds(3600)) == 2)
        let ttl = try await backend.get(p + "c")?.ttl ?? .zero
        #expect(ttl > .seconds(25) && ttl <= .seconds(31), "increment changed the counter's TTL to \(ttl)")
        // A value set as text counts from there.
        try await backend.set(p + "d", to: bytes("41"), ttl: nil)
        #expect(try await backend.increment(p + "d", by: 1, ttl: nil) == 42)
        // Not a number, negative text, overflow.
        for (name, value) in [("text", "abc"), ("negative", "-4"), ("spaces", " 4")] {
            try await backend.set(p + name, to: bytes(value), ttl: nil)
            do {
                _ = try await backend.increment(p + name, by: 1, ttl: nil)
                Issue.record("increment of \(String(reflecting: value)) did not throw")
            } catch let error as CacheError {
                #expect(error.code == .notANumber, "\(error)")
            }
        }
        try await backend.set(p + "max", to: bytes(String(Int64.max - 1)), ttl: nil)
        #expect(try await backend.increment(p + "max", by: 1, ttl: nil) == Int64.max)
        do {
            _ = try await backend.increment(p + "max", by: 1, ttl: nil)
            Issue.record("increment past Int64.max did not throw")
        } catch let error as CacheError {
            #expect(error.code == .notANumber)
        }
        #expect(try await backend.get(p + "max")?.value == bytes(String(Int64.max)), "a refused increment changed the value")
        // The connection still works after the server refused an INCR.
        #expect(try await backend.increment(p + "a", by: 2, ttl: nil) == 2)
        try await backend.close()
    }

    @Test func touchChangesTheRecordedExpiry() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        try await backend.set(p + "k", to: bytes("v"), ttl: .seconds(600))
        #expect(try await backend.touch(p + "k", ttl: .seconds(20)))
        let entry = try await backend.get(p + "k")
        #expect(entry?.value == bytes("v"))
        #expect((entry?.ttl ?? .zero) <= .seconds(21) && (entry?.ttl ?? .zero) > .seconds(15))
        #expect(try await backend.touch(p + "k", ttl: nil))
        #expect(try await backend.get(p + "k") == CacheEntry(value: bytes("v"), ttl: nil))
        #expect(try await backend.touch(p + "missing", ttl: .seconds(5)) == false)
        try await backend.close()
    }

    @Test func clearOnlyTouchesItsNamespaceAndIsSeenByOtherInstancesAtOnce() async throws {
        // Two backends stand for two processes: each remembers generations on its own.
        let first = try TestEnvironment.sharedBackend()
        let second = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        let keys = (0..<40).map { p + "users:\($0)" }
        for key in keys { try await first.set(key, to: bytes("u"), ttl: .seconds(60)) }
        try await first.set(p + "users-archive:1", to: bytes("a"), ttl: .seconds(60))
        try await first.set(p + "posts:1", to: bytes("p"), ttl: .seconds(60))
        try await first.set(p + "users:deep:er:1", to: bytes("d"), ttl: nil)
        // Both instances have read (and remember) the generations.
        #expect(try await first.get(keys).allSatisfy { $0 != nil })
        #expect(try await second.get(keys).allSatisfy { $0 != nil })

        try await second.clear(prefix: p + "users:")
        #expect(try await first.get(keys).allSatisfy { $0 == nil }, "another instance's clear was not seen at once")
        #expect(try await first.get(p + "users:deep:er:1") == nil)
        #expect(try await first.exists(keys[0]) == false)
        #expect(try await first.get(p + "users-archive:1")?.value == bytes("a"))
        #expect(try await first.get(p + "posts:1")?.value == bytes("p"))
        // Counters and adds in the cleared namespace start over.
        #expect(try await first.increment(p + "users:count", by: 1, ttl: nil) == 1)
        try await first.clear(prefix: p + "users:")
        #expect(try await second.increment(p + "users:count", by: 1, ttl: nil) == 1)
        #expect(try await second.add(keys[0], value: bytes("again"), ttl: nil))
        #expect(try await first.get(keys[0])?.value == bytes("again"))

        // Clearing the outer level clears everything below it.
        try await first.clear(prefix: p)
        #expect(try await second.get(p + "posts:1") == nil)
        #expect(try await second.get(keys[0]) == nil)
        try await first.close()
        try await second.close()
    }

    @Test func clearRefusesPrefixesItCannotClearExactly() async throws {
        let backend = try TestEnvironment.sharedBackend { $0.maxNamespaceDepth = 2 }
        for prefix in ["", "no-delimiter", "a:b", "a:b:c:"] {
            do {
                try await backend.clear(prefix: prefix)
                Issue.record("clear(prefix: \(String(reflecting: prefix))) did not throw")
            } catch let error as CacheError {
                #expect(error.code == .unsupported, "\(error)")
            }
        }
        try await backend.clear(prefix: uniquePrefix() + "b:")
        try await backend.close()
    }

    @Test func aMissingGenerationCounterReadsAsMissNotAsStaleData() async throws {
        // memcached may evict a generation counter. The next write creates a new random one, so
        // values written before can never become readable again.
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        try await backend.set(p + "ns:k", to: bytes("old"), ttl: nil)
        let generationKey = "g=" + p + "ns:"
        for server in backend.servers {
            _ = try rawCommand("delete \(generationKey)\r\n", port: server.port)
        }
        let other = try TestEnvironment.sharedBackend()   // no remembered generations
        #expect(try await other.get(p + "ns:k") == nil)
        #expect(try await backend.get(p + "ns:k") == nil)
        try await other.set(p + "ns:k", to: bytes("new"), ttl: nil)
        #expect(try await backend.get(p + "ns:k")?.value == bytes("new"))
        try await backend.close()
        try await other.close()
    }

    @Test func operationsAfterCloseThrowClosed() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        try await backend.set(p + "k", to: [1], ttl: nil)
        try await backend.close()
        try await backend.close()   // a second close is harmless
        do {
            _ = try await backend.get(p + "k")
            Issue.record("get after close did not throw")
        } catch let error as CacheError {
            #expect(error.code == .closed)
        }
    }

    @Test func batchReadsSpanBothServers() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let p = uniquePrefix()
        let keys = (0..<100).map { p + "k\($0)" }
        let servers = Set(keys.map { backend.server(for: $0) })
        #expect(servers.count == 2, "100 keys all hashed to one server")
        try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
        let entries = try await backend.get(keys + [p + "missing"] + keys.reversed())
        #expect(entries.count == 201)
        #expect(entries[100] == nil)
        #expect(entries[0..<100].map { $0?.value } == keys.map { bytes($0) })
        #expect(entries[101...].map { $0?.value } == keys.reversed().map { bytes($0) })
        try await backend.close()
    }

    @Test func aSequentialReadIsOneRoundTripWithItsGenerations() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let other = try TestEnvironment.sharedBackend()   // another process's view of the servers
        let p = uniquePrefix()
        let key = p + "users:42"
        try await backend.set(key, to: bytes("v"), ttl: .seconds(60))
        #expect(try await backend.get(key)?.value == bytes("v"))
        let before = backend.readRoundTrips
        let reads = 20
        for _ in 0..<reads { #expect(try await backend.get(key)?.value == bytes("v")) }
        // The value and both namespace generations (`p`, `p + "users:"`) come in one multi-get,
        // from the key's server: one round trip per read.
        #expect(backend.readRoundTrips - before == reads)
        // A clear by another client is seen by the very next read (two round trips: the read
        // sees the new generation, then reads the new key).
        try await other.clear(prefix: p + "users:")
        let beforeClear = backend.readRoundTrips
        #expect(try await backend.get(key) == nil)
        #expect(backend.readRoundTrips - beforeClear == 2)
        try await other.close()
        try await backend.close()
    }

    @Test func aBatchReadIsOneRoundTripPerServerAndSeesAnotherClientsClear() async throws {
        let backend = try TestEnvironment.sharedBackend()
        let other = try TestEnvironment.sharedBackend()   // another process's view of the servers
        let p = uniquePrefix()
        // Plain keys and keys stored under their digest, all in one namespace.
        let keys = (0..<40).map { p + "users:\($0)" } + [p + "users:white space", p + "users:ключ"]
        try await backend.set(keys.map { (key: $0, value: bytes($0)) }, ttl: .seconds(60))
        #expect(try await backend.get(keys).map { $0?.value } == keys.map { bytes($0) })
        let servers = Set(keys.map { backend.server(for: $0) }).count
        let before = backend.readRoundTrips
        let again = try await backend.get(keys + [p + "users:missing"])
        #expect(again.dropLast().map { $0?.value } == keys.map { bytes($0) })
        #expect(again.last == .some(nil))
        #expect(backend.readRoundTrips - before == servers)
        // A clear by another client is seen by the very next batch.
        try await other.clear(prefix: p + "users:")
        #expect(try await backend.get(keys).allSatisfy { $0 == nil })
        try await backend.set(keys[0], to: bytes("new"), ttl: .seconds(60))
        let after = try await backend.get(keys)
        #expect(after[0]?.value == bytes("new"))
        #expect(after.dropFirst().allSatisfy { $0 == nil })
        try await other.close()
        try await backend.close()
    }

    @Test func manyConcurrentReadersShareRoundTrips() async throws {
        let backend = try TestEnvironment.sharedBackend { $0.connectionsPerServer = 1 }
        let p = uniquePrefix()
        try await backend.set(p + "hot", to: bytes("v"), ttl: .seconds(60))
        let before = backend.readRoundTrips
        let reads = 400
        let hits = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<reads { group.addTask { try await backend.get(p + "hot")?.value == bytes("v") } }
            var hits = 0
            for try await hit in group where hit { hits += 1 }
            return hits
        }
        #expect(hits == reads)
        let trips = backend.readRoundTrips - before
        print("400 concurrent reads of one key took \(trips) multi-gets")
        #expect(trips < reads, "concurrent reads were not merged")
        try await backend.close()
    }
}

/// Sends one ASCII-protocol line to the memcached at 127.0.0.1:port and returns its first reply line.
func rawCommand(_ command: String, port: Int) throws -> String {
    guard let fd = TestEnvironment.connectSocket(host: "127.0.0.1", port: port) else { throw TestError("cannot connect to \(port)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let data = Array(command.utf8)
    guard send(fd, data, data.count, 0) == data.count else { throw TestError("send failed") }
    var reply = [UInt8](repeating: 0, count: 1024)
    let n = recv(fd, &reply, reply.count, 0)
    guard n > 0 else { throw TestError("no reply") }
    return String(decoding: reply[0..<n], as: UTF8.self)
}
