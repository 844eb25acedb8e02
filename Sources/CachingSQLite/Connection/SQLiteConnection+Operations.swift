import CSQLite
import Caching

/// The cache operations, each a prepared statement or two. They run on the connection's thread, inside
/// whatever transaction that thread opened for the batch of requests they came in.
extension SQLiteConnection {
    /// The live entry at `key`, or `nil`.
    func get(_ key: String) throws -> CacheEntry? {
        var none: [UInt8] = []
        return try get(key, into: &none)
    }

    /// The live entry at `key`, or `nil`; its value is copied into `buffer` (moved into the entry,
    /// leaving `buffer` empty) when it fits in the buffer's capacity, else into a new array.
    /// `buffer` must be empty and uniquely referenced.
    ///
    /// A lone get on a reader connection runs in a held read (see `SQLiteConnection+HeldRead.swift`).
    func get(_ key: String, into buffer: inout [UInt8]) throws -> CacheEntry? {
        let statement = try statement(.get)
        var failed = false
        // Declared first, so it runs after the statement is reset.
        defer { if failed { endHeldRead() } }
        defer { finish(statement) }
        beginHeldReadIfPossible()
        return try withKeyBytes(key) { keyBytes -> CacheEntry? in
            bind(statement, 1, keyBytes)
            let rc = sqlite3_step(statement)
            if walIndex == nil { findWALIndexIfNeeded() }
            if rc == SQLITE_DONE { return nil }
            guard rc == SQLITE_ROW else {
                failed = true
                throw error(rc, "reading from")
            }
            let now = WallClock.nowMilliseconds()
            let expiresAt = optionalInt64(statement, 1)
            if let expiresAt, expiresAt <= now { return nil }
            let value = bytes(statement, 0, into: &buffer)
            store.noteValueSize(value.count)
            if store.tracksAccess, now &- sqlite3_column_int64(statement, 2) >= store.accessResolution {
                store.recordAccess(keyBytes, at: now)
            }
            return CacheEntry(value: value, ttl: expiresAt.map { .milliseconds($0 - now) })
        }
    }

    /// Whether `key` holds a live entry (reads no value).
    func exists(_ key: String) throws -> Bool {
        let statement = try statement(.exists)
        defer { finish(statement) }
        return try withKeyBytes(key) { keyBytes -> Bool in
            bind(statement, 1, keyBytes)
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return false }
            guard rc == SQLITE_ROW else { throw error(rc, "reading from") }
            guard let expiresAt = optionalInt64(statement, 0) else { return true }
            return expiresAt > WallClock.nowMilliseconds()
        }
    }

    /// Stores `value` at `key` (insert or replace).
    func set(_ key: String, _ value: [UInt8], ttl: Duration?) throws {
        let now = WallClock.nowMilliseconds()
        try upsert(.set, key, value, expiresAt: WallClock.expiry(now: now, ttl: ttl), now: now)
    }

    /// Stores `value` unless `key` holds a live entry; whether it stored it.
    func add(_ key: String, _ value: [UInt8], ttl: Duration?) throws -> Bool {
        let now = WallClock.nowMilliseconds()
        try upsert(.add, key, value, expiresAt: WallClock.expiry(now: now, ttl: ttl), now: now)
        return sqlite3_changes(handle) > 0
    }

    /// Inserts or replaces a row.
    ///
    /// `accessed_at` is only kept when the store has a size limit (it orders eviction); without one it
    /// is 0. That is not only a saved column: rewriting a row with identical bytes (the same value and
    /// expiry) lets SQLite skip dirtying its page, so such a set costs no I/O, as it would in a plain
    /// loop over the same statement.
    private func upsert(_ id: StatementID, _ key: String, _ value: [UInt8], expiresAt: Int64?, now: Int64) throws {
        let statement = try statement(id)
        defer { finish(statement) }
        let accessedAt = store.tracksAccess ? now : 0
        let rc = withKeyBytes(key) { keyBytes in
            value.withUnsafeBytes { valueBytes in
                bind(statement, 1, keyBytes)
                bind(statement, 2, valueBytes)
                bind(statement, 3, expiresAt)
                sqlite3_bind_int64(statement, 4, accessedAt)
                if id == .add { sqlite3_bind_int64(statement, 5, now) }
                return sqlite3_step(statement)
            }
        }
        guard rc == SQLITE_DONE else { throw error(rc, "writing to") }
    }

    /// Removes `key`; whether it held a live entry.
    func delete(_ key: String) throws -> Bool {
        let statement = try statement(.delete)
        defer { finish(statement) }
        return try withKeyBytes(key) { keyBytes -> Bool in
            bind(statement, 1, keyBytes)
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return false }
            guard rc == SQLITE_ROW else { throw error(rc, "deleting from") }
            let expiresAt = optionalInt64(statement, 0)
            // Step to the end so the DELETE completes before the statement is reset.
            let end = sqlite3_step(statement)
            guard end == SQLITE_DONE else { throw error(end, "deleting from") }
            guard let expiresAt else { return true }
            return expiresAt > WallClock.nowMilliseconds()
        }
    }

    /// Gives the live entry at `key` a new expiry; whether there was one.
    func touch(_ key: String, ttl: Duration?) throws -> Bool {
        let statement = try statement(.touch)
        defer { finish(statement) }
        let now = WallClock.nowMilliseconds()
        let rc = withKeyBytes(key) { keyBytes in
            bind(statement, 1, keyBytes)
            bind(statement, 2, WallClock.expiry(now: now, ttl: ttl))
            sqlite3_bind_int64(statement, 3, now)
            return sqlite3_step(statement)
        }
        guard rc == SQLITE_DONE else { throw error(rc, "writing to") }
        return sqlite3_changes(handle) > 0
    }

    /// Adds `delta` to the counter at `key`. Runs in a write transaction (or a savepoint of one), so
    /// the read and the write are one atomic step for every connection and process.
    func increment(_ key: String, by delta: Int64, ttl: Duration?) throws -> Int64 {
        try atomically(immediate: true) {
            let read = try statement(.get)
            let now = WallClock.nowMilliseconds()
            var current: (value: [UInt8], expiresAt: Int64?)?
            do {
                defer { finish(read) }
                let rc = withKeyBytes(key) { keyBytes in
                    bind(read, 1, keyBytes)
                    return sqlite3_step(read)
                }
                if rc == SQLITE_ROW {
                    let expiresAt = optionalInt64(read, 1)
                    if expiresAt.map({ $0 > now }) ?? true {
                        current = (bytes(read, 0), expiresAt)
                    }
                } else if rc != SQLITE_DONE {
                    throw error(rc, "reading from")
                }
            }
            let next: Int64
            let expiresAt: Int64?
            if let current {
                next = try CacheCounter.add(delta, to: current.value, key: key)
                expiresAt = current.expiresAt
            } else {
                next = delta
                expiresAt = WallClock.expiry(now: now, ttl: ttl)
            }
            try upsert(.set, key, Array(String(next).utf8), expiresAt: expiresAt, now: now)
            return next
        }
    }

    /// Removes every key that starts with `prefix`, with a range scan on the key: the keys from
    /// `prefix` up to (not including) its successor, the smallest byte string greater than every
    /// string that starts with `prefix`. Returns how many rows went.
    func clear(prefix: String) throws -> Int {
        let lower = Array(prefix.utf8)
        let upper = Self.successor(of: lower)
        let statement = try statement(upper == nil ? .clearFrom : .clearRange)
        defer { finish(statement) }
        let rc = lower.withUnsafeBytes { lowerBytes in
            (upper ?? []).withUnsafeBytes { upperBytes in
                bind(statement, 1, lowerBytes)
                if upper != nil { bind(statement, 2, upperBytes) }
                return sqlite3_step(statement)
            }
        }
        guard rc == SQLITE_DONE else { throw error(rc, "clearing a prefix in") }
        return Int(sqlite3_changes(handle))
    }

    /// The smallest byte string greater than every string that starts with `prefix`: drop trailing
    /// 0xFF bytes, then add one to the last byte. `nil` when there is none (empty or all 0xFF): then
    /// every key from `prefix` on matches.
    static func successor(of prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return nil
    }

    /// Deletes the expired rows among the next `chunk` keys from `lower` on; returns how many went and
    /// where the next chunk starts (`nil` when this was the last).
    func sweepChunk(from lower: [UInt8], chunk: Int, now: Int64) throws -> (removed: Int, next: [UInt8]?) {
        let boundaryStatement = try statement(.sweepBoundary)
        var boundary: [UInt8]?
        do {
            defer { finish(boundaryStatement) }
            let rc = lower.withUnsafeBytes { lowerBytes in
                bind(boundaryStatement, 1, lowerBytes)
                sqlite3_bind_int64(boundaryStatement, 2, Int64(chunk - 1))
                return sqlite3_step(boundaryStatement)
            }
            if rc == SQLITE_ROW {
                boundary = bytes(boundaryStatement, 0)
            } else if rc != SQLITE_DONE {
                throw error(rc, "sweeping")
            }
        }
        let statement = try statement(boundary == nil ? .sweepFrom : .sweepRange)
        defer { finish(statement) }
        let rc = lower.withUnsafeBytes { lowerBytes in
            (boundary ?? []).withUnsafeBytes { upperBytes in
                bind(statement, 1, lowerBytes)
                if boundary != nil {
                    bind(statement, 2, upperBytes)
                    sqlite3_bind_int64(statement, 3, now)
                } else {
                    sqlite3_bind_int64(statement, 2, now)
                }
                return sqlite3_step(statement)
            }
        }
        guard rc == SQLITE_DONE else { throw error(rc, "sweeping") }
        return (Int(sqlite3_changes(handle)), boundary)
    }

    /// Writes the access times that reads recorded (see ``StoreContext/recordAccess(_:at:)``). Call
    /// inside a write transaction.
    func flushAccesses() throws {
        guard store.tracksAccess else { return }
        let pending = store.takeAccesses()
        guard !pending.isEmpty else { return }
        let statement = try statement(.markAccessed)
        for (key, time) in pending {
            defer { finish(statement) }
            let rc = key.withUnsafeBytes { keyBytes in
                bind(statement, 1, keyBytes)
                sqlite3_bind_int64(statement, 2, time)
                return sqlite3_step(statement)
            }
            guard rc == SQLITE_DONE else { throw error(rc, "recording access times in") }
        }
    }

    /// The entry count and byte total that the accounting triggers keep.
    func accountedSize() throws -> (entries: Int, bytes: Int) {
        let statement = try statement(.stats)
        defer { finish(statement) }
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_ROW else {
            if rc == SQLITE_DONE {
                throw CacheError(.storeCorrupt, "\(displayName) has lost its cache_stats row; delete the file to start an empty cache")
            }
            throw error(rc, "reading the size of")
        }
        return (Int(sqlite3_column_int64(statement, 0)), Int(sqlite3_column_int64(statement, 1)))
    }

    /// Whether the store is over a limit.
    private func isOverLimit(_ size: (entries: Int, bytes: Int)) -> Bool {
        let configuration = store.configuration
        if let maximum = configuration.maximumEntries, size.entries > maximum { return true }
        if let maximum = configuration.maximumBytes, size.bytes > maximum { return true }
        return false
    }

    /// When the store is over a limit, deletes expired rows first, then the least recently used ones,
    /// until it is at ``SQLiteBackend/Configuration/evictionTarget`` of every limit. Returns how many
    /// rows went.
    ///
    /// Picking the victims scans the table (there is no index on `accessed_at`, which would slow
    /// every write); evicting down to the target rather than to the limit keeps that scan rare.
    func evictIfNeeded() throws -> Int {
        guard store.configuration.hasLimits, isOverLimit(try accountedSize()) else { return 0 }
        return try atomically(immediate: true) {
            try flushAccesses()
            let configuration = store.configuration
            var removed = 0
            for _ in 0..<8 {
                let size = try accountedSize()
                let entryTarget = configuration.maximumEntries.map { Int(Double($0) * configuration.evictionTarget) }
                let byteTarget = configuration.maximumBytes.map { Int(Double($0) * configuration.evictionTarget) }
                let entriesToFree = entryTarget.map { max(0, size.entries - $0) } ?? 0
                let bytesToFree = byteTarget.map { max(0, size.bytes - $0) } ?? 0
                if entriesToFree == 0 && bytesToFree == 0 { break }
                let average = max(1, size.bytes / max(1, size.entries))
                let limit = max(entriesToFree, bytesToFree / average + bytesToFree / (4 * average) + 16)
                let victims = try evictionCandidates(limit: limit)
                if victims.isEmpty { break }
                var freedEntries = 0
                var freedBytes = 0
                let evict = try statement(.evict)
                for victim in victims {
                    if freedEntries >= entriesToFree && freedBytes >= bytesToFree { break }
                    defer { finish(evict) }
                    let rc = victim.key.withUnsafeBytes { keyBytes in
                        bind(evict, 1, keyBytes)
                        return sqlite3_step(evict)
                    }
                    guard rc == SQLITE_DONE else { throw error(rc, "evicting from") }
                    freedEntries += 1
                    freedBytes += victim.size
                }
                removed += freedEntries
            }
            return removed
        }
    }

    private func evictionCandidates(limit: Int) throws -> [(key: [UInt8], size: Int)] {
        let statement = try statement(.evictionCandidates)
        defer { finish(statement) }
        sqlite3_bind_int64(statement, 1, WallClock.nowMilliseconds())
        sqlite3_bind_int64(statement, 2, Int64(limit))
        var victims: [(key: [UInt8], size: Int)] = []
        victims.reserveCapacity(min(limit, 65_536))
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, "choosing entries to evict from") }
            victims.append((bytes(statement, 0), Int(sqlite3_column_int64(statement, 1))))
        }
        return victims
    }

    /// Live entries and their key and value bytes, counted by a scan.
    func liveStatistics() throws -> (entries: Int, bytes: Int) {
        let statement = try statement(.liveStatistics)
        defer { finish(statement) }
        sqlite3_bind_int64(statement, 1, WallClock.nowMilliseconds())
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_ROW else { throw error(rc, "counting the entries of") }
        return (Int(sqlite3_column_int64(statement, 0)), Int(sqlite3_column_double(statement, 1)))
    }
}
