import Caching

/// One check's run: its keys, its assertions.
struct Probe: Sendable {
    let check: BackendConformance.Check
    let backend: any CacheBackend
    let options: BackendConformance.Options

    /// A key inside this check's own namespace.
    func key(_ name: String) -> String { options.keyPrefix + check.rawValue + ":" + name }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(failures: [.init(check: check, message: message())]) }
    }

    func expectError(_ code: CacheError.Code, _ what: String, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as CacheError {
            try expect(error.code == code, "\(what): expected CacheError.\(code), got \(error)")
            return
        } catch {
            try expect(false, "\(what): expected CacheError.\(code), got \(type(of: error)): \(error)")
        }
        try expect(false, "\(what): expected CacheError.\(code), but it did not throw")
    }

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A TTL that expires quickly but is at least the backend's resolution, and long enough that
    /// a loaded machine still reads the entry back before it expires.
    var shortTTL: Duration { max(options.ttlResolution, .milliseconds(500)) }

    /// Long enough after `shortTTL` for the backend to have dropped the entry.
    var expiryWait: Duration { shortTTL * 2 + options.ttlResolution + .milliseconds(200) }

    // MARK: Checks

    func setGetDelete() async throws {
        let k = key("a")
        try expect(try await backend.get(k) == nil, "get of a key never set returned a value")
        try expect(try await backend.exists(k) == false, "exists of a key never set returned true")
        try await backend.set(k, to: bytes("value"), ttl: nil)
        let entry = try await backend.get(k)
        try expect(entry?.value == bytes("value"), "get after set returned \(String(describing: entry))")
        try expect(entry?.ttl == nil, "an entry set with ttl nil reported a TTL \(String(describing: entry?.ttl))")
        try expect(try await backend.exists(k), "exists after set returned false")
        try expect(try await backend.delete(k), "delete of a stored key returned false")
        try expect(try await backend.get(k) == nil, "get after delete returned a value")
        try expect(try await backend.delete(k) == false, "delete of a missing key returned true")
    }

    func overwrite() async throws {
        let k = key("a")
        try await backend.set(k, to: bytes("first, and longer than the second"), ttl: .seconds(60))
        try await backend.set(k, to: bytes("second"), ttl: .seconds(60))
        try expect(try await backend.get(k)?.value == bytes("second"), "overwrite kept the old value")
        try await backend.set(k, to: bytes("third"), ttl: nil)
        let entry = try await backend.get(k)
        try expect(entry?.value == bytes("third"), "overwrite with ttl nil kept the old value")
        try expect(entry?.ttl == nil, "overwrite with ttl nil kept the old TTL \(String(describing: entry?.ttl))")
    }

    func ttlExpiry() async throws {
        let k = key("short")
        let keep = key("long")
        try await backend.set(k, to: bytes("soon gone"), ttl: shortTTL)
        try await backend.set(keep, to: bytes("stays"), ttl: .seconds(120))
        try expect(try await backend.get(k) != nil, "an entry was gone right after it was set with TTL \(shortTTL)")
        try await Task.sleep(for: expiryWait)
        try expect(try await backend.get(k) == nil, "an entry with TTL \(shortTTL) was still returned after \(expiryWait)")
        try expect(try await backend.exists(k) == false, "exists returned true for an expired entry")
        try expect(try await backend.get(keep)?.value == bytes("stays"), "an entry with a long TTL expired early")
    }

    func remainingTTL() async throws {
        let k = key("a")
        let ttl = Duration.seconds(60)
        try await backend.set(k, to: bytes("v"), ttl: ttl)
        guard let remaining = try await backend.get(k)?.ttl else {
            try expect(false, "get did not report the remaining TTL of an entry set with \(ttl)")
            return
        }
        try expect(remaining > .zero && remaining <= ttl + options.ttlResolution,
                   "remaining TTL \(remaining) is not within (0, \(ttl)]")
        try expect(remaining >= ttl - .seconds(10), "remaining TTL \(remaining) is far below the \(ttl) just set")
    }

    func invalidTTL() async throws {
        let k = key("a")
        try await expectError(.invalidTTL, "set with TTL zero") { try await backend.set(k, to: bytes("v"), ttl: .zero) }
        try await expectError(.invalidTTL, "set with a negative TTL") { try await backend.set(k, to: bytes("v"), ttl: .seconds(-1)) }
        try await expectError(.invalidTTL, "add with a negative TTL") { _ = try await backend.add(k, value: bytes("v"), ttl: .seconds(-5)) }
        try expect(try await backend.get(k) == nil, "a refused set stored a value")
    }

    func binaryValues() async throws {
        let allBytes = (0...255).map { UInt8($0) }
        let zeros = [UInt8](repeating: 0, count: 64)
        let mixed: [UInt8] = [0, 0xff, 0, 0x0d, 0x0a, 0, 0x80, 0xc3, 0x28, 0]
        for (name, value) in [("all", allBytes), ("zeros", zeros), ("mixed", mixed), ("crlf", bytes("a\r\nb\r\n"))] {
            try await backend.set(key(name), to: value, ttl: .seconds(60))
            let back = try await backend.get(key(name))?.value
            try expect(back == value, "binary value \(name) came back as \(back.map { "\($0.count) bytes" } ?? "nil")")
        }
    }

    func emptyAndLargeValues() async throws {
        try await backend.set(key("empty"), to: [], ttl: .seconds(60))
        let empty = try await backend.get(key("empty"))
        try expect(empty != nil, "an empty value read back as a miss")
        try expect(empty?.value.isEmpty == true, "an empty value came back with \(empty?.value.count ?? -1) bytes")
        var generator = SplitMix64(seed: 42)
        let large = (0..<options.largeValueSize).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        try await backend.set(key("large"), to: large, ttl: .seconds(60))
        let back = try await backend.get(key("large"))?.value
        try expect(back == large, "a \(large.count)-byte value came back as \(back.map { "\($0.count) different bytes" } ?? "nil")")
    }

    func unusualKeys() async throws {
        let names = [
            "with space", "with\nnewline", "with\ttab", "with\r\ncrlf", "ünïcödé-ключ-鍵-🔑",
            "glob*?[abc]\\", "percent%_under", "colons:::", "quote\"'`", "null-free-\u{7f}",
            String(repeating: "long-", count: 70),            // 350 bytes
            String(repeating: "é", count: 200),               // 400 bytes of UTF-8
        ]
        for (index, name) in names.enumerated() {
            try await backend.set(key(name), to: bytes("value-\(index)"), ttl: .seconds(60))
        }
        for (index, name) in names.enumerated() {
            let back = try await backend.get(key(name))?.value
            try expect(back == bytes("value-\(index)"), "key \(String(reflecting: name)) read back \(back.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")
        }
        // Keys that are prefixes of each other stay distinct.
        try await backend.set(key("p"), to: bytes("short"), ttl: .seconds(60))
        try await backend.set(key("p:longer"), to: bytes("long"), ttl: .seconds(60))
        try expect(try await backend.get(key("p"))?.value == bytes("short"), "a key was overwritten by a longer key it prefixes")
        for name in names { try await backend.delete(key(name)) }
        try expect(try await backend.get(key(names[1])) == nil, "delete of a key with a newline left it readable")
    }

    func batchOperations() async throws {
        let keys = (0..<50).map { key("k\($0)") }
        try await backend.set(keys.enumerated().map { (key: $0.element, value: bytes("v\($0.offset)")) }, ttl: .seconds(60))
        let lookup = [keys[0], key("missing"), keys[49], keys[0], keys[25]]
        let entries = try await backend.get(lookup)
        try expect(entries.count == lookup.count, "batch get returned \(entries.count) entries for \(lookup.count) keys")
        guard entries.count == lookup.count else { return }
        try expect(entries[0]?.value == bytes("v0"), "batch get: first entry wrong")
        try expect(entries[1] == nil, "batch get: a missing key returned a value")
        try expect(entries[2]?.value == bytes("v49"), "batch get: entries out of order")
        try expect(entries[3]?.value == bytes("v0"), "batch get: a repeated key was not answered")
        try expect(entries[4]?.value == bytes("v25"), "batch get: entries out of order")
        if let ttl = entries[0]?.ttl {
            try expect(ttl <= .seconds(60) + options.ttlResolution, "batch set stored TTL \(ttl) for 60 s")
        }
        try expect(try await backend.get([]).isEmpty, "batch get of no keys returned entries")
        let prefix = key("")
        let prefixed = try await backend.get(["k3", "missing", "k7"], prefix: prefix)
        try expect(
            prefixed.map { $0?.value } == [bytes("v3"), nil, bytes("v7")],
            "batch get with a prefix did not answer prefix + key, in order"
        )
        try expect(try await backend.get([], prefix: prefix).isEmpty, "batch get of no keys with a prefix returned entries")
        let removed = try await backend.delete(Array(keys[0..<10]) + [key("missing")])
        try expect(removed == 10, "batch delete of 10 stored and 1 missing key returned \(removed)")
        try expect(try await backend.get(keys[5]) == nil, "batch delete left a key")
        try expect(try await backend.get(keys[10])?.value == bytes("v10"), "batch delete removed a key it was not given")
        try await backend.set([(key: key("short"), value: bytes("x"))], ttl: shortTTL)
        try await Task.sleep(for: expiryWait)
        try expect(try await backend.get(key("short")) == nil, "batch set ignored its TTL")
    }

    func add() async throws {
        let k = key("lock")
        try expect(try await backend.add(k, value: bytes("first"), ttl: .seconds(60)), "add of a missing key returned false")
        try expect(try await backend.add(k, value: bytes("second"), ttl: .seconds(60)) == false, "add of a present key returned true")
        try expect(try await backend.get(k)?.value == bytes("first"), "add of a present key changed its value")
        let short = key("short")
        try expect(try await backend.add(short, value: bytes("a"), ttl: shortTTL), "add of a missing key returned false")
        try await Task.sleep(for: expiryWait)
        try expect(try await backend.add(short, value: bytes("b"), ttl: .seconds(60)), "add over an expired entry returned false")
        try expect(try await backend.get(short)?.value == bytes("b"), "add over an expired entry did not store")
        // Only one of many concurrent adds wins.
        let contested = key("contested")
        let backend = self.backend
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 { group.addTask { try await backend.add(contested, value: Array("w\(i)".utf8), ttl: .seconds(60)) } }
            var wins = 0
            for try await won in group where won { wins += 1 }
            return wins
        }
        try expect(wins == 1, "\(wins) of 20 concurrent adds of one key succeeded")
    }

    func increment() async throws {
        let k = key("counter")
        try expect(try await backend.increment(k, by: 5, ttl: .seconds(60)) == 5, "increment of a missing key did not start at 0")
        try expect(try await backend.increment(k, by: 1, ttl: nil) == 6, "increment by 1 did not add")
        try expect(try await backend.get(k)?.value == bytes("6"), "a counter is not stored as decimal text")
        let ttl = try await backend.get(k)?.ttl
        let keptTTL = ttl.map { $0 <= .seconds(60) + options.ttlResolution } ?? false
        try expect(keptTTL, "increment did not keep the counter's TTL (\(String(describing: ttl)))")
        let text = key("text")
        try await backend.set(text, to: bytes("not a number"), ttl: .seconds(60))
        let backend = self.backend
        try await expectError(.notANumber, "increment of a non-number") { _ = try await backend.increment(text, by: 1, ttl: nil) }
        let shared = key("shared")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { _ = try await backend.increment(shared, by: 2, ttl: .seconds(60)) } }
            try await group.waitForAll()
        }
        try expect(try await backend.get(shared)?.value == bytes("100"), "50 concurrent increments by 2 did not sum to 100")
    }

    func touch() async throws {
        let k = key("a")
        try await backend.set(k, to: bytes("v"), ttl: shortTTL)
        try expect(try await backend.touch(k, ttl: .seconds(60)), "touch of a present key returned false")
        try await Task.sleep(for: expiryWait)
        try expect(try await backend.get(k)?.value == bytes("v"), "touch did not extend the TTL")
        try expect(try await backend.touch(key("missing"), ttl: .seconds(60)) == false, "touch of a missing key returned true")
        try expect(try await backend.touch(k, ttl: nil), "touch with ttl nil of a present key returned false")
        try expect(try await backend.get(k)?.ttl == nil, "touch with ttl nil did not make the entry permanent")
    }

    func clearNamespace() async throws {
        // Namespaces whose names are glob, LIKE and SCAN metacharacters.
        let target = key("ns*?[:]%_\\:")
        let others = [
            key("ns*?[:]%_\\x:"),     // same start, different namespace
            key("nsX?[:]%_\\:"),      // would match if * were a wildcard
            key("ns*?a:]%_\\:"),      // would match if [:] were a character class
            key("ns*?[:]%_"),         // the namespace's name without the separator
            key("other:"),
        ]
        for i in 0..<20 { try await backend.set(target + "k\(i)", to: bytes("t"), ttl: .seconds(60)) }
        try await backend.set(target + "child:deep", to: bytes("t"), ttl: nil)
        for (i, other) in others.enumerated() { try await backend.set(other + "k", to: bytes("o\(i)"), ttl: .seconds(60)) }
        try await backend.clear(prefix: target)
        for i in 0..<20 {
            try expect(try await backend.get(target + "k\(i)") == nil, "clear(prefix:) left a key of the namespace")
        }
        try expect(try await backend.get(target + "child:deep") == nil, "clear(prefix:) left a key of a nested namespace")
        for (i, other) in others.enumerated() {
            try expect(try await backend.get(other + "k")?.value == bytes("o\(i)"), "clear(prefix: \(String(reflecting: target))) removed \(String(reflecting: other + "k"))")
        }
        // The cleared namespace is usable again.
        try await backend.set(target + "again", to: bytes("new"), ttl: .seconds(60))
        try expect(try await backend.get(target + "again")?.value == bytes("new"), "a cleared namespace did not take new entries")
    }

    func concurrentOperations() async throws {
        let backend = self.backend
        let count = options.concurrentOperations
        let prefix = key("")
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<count {
                group.addTask {
                    let k = prefix + "c\(i % (count / 2 + 1))-\(i)"
                    let value = Array("value-\(i)".utf8)
                    try await backend.set(k, to: value, ttl: .seconds(60))
                    let back = try await backend.get(k)?.value
                    if i % 3 == 0 { try await backend.delete(k) }
                    return back == value ? 0 : 1
                }
            }
            var mismatches = 0
            for try await m in group { mismatches += m }
            return mismatches
        }
        try expect(mismatches == 0, "\(mismatches) of \(count) concurrent set-then-get pairs read back something else")
        let survivors = try await backend.get((0..<count).map { prefix + "c\($0 % (count / 2 + 1))-\($0)" })
        let expected = (0..<count).filter { $0 % 3 != 0 }.count
        let found = survivors.compactMap { $0 }.count
        try expect(found == expected, "after \(count) concurrent operations \(found) keys remain, expected \(expected)")
    }
}
