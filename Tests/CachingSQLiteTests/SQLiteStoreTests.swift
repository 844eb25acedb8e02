import CSQLite
import Caching
import Foundation
import Testing

@testable import CachingSQLite

/// The file: persistence, layout version, and the errors of opening a bad path.
@Suite struct SQLiteStoreTests {
    @Test func entriesSurviveReopening() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file()
        do {
            let backend = try await SQLiteBackend(path: path)
            try await backend.set("forever", to: [0, 1, 2, 255], ttl: nil)
            try await backend.set("an hour", to: Array("h".utf8), ttl: .seconds(3600))
            try await backend.set("short", to: Array("s".utf8), ttl: .milliseconds(50))
            _ = try await backend.increment("counter", by: 41, ttl: nil)
            try await backend.close()
        }
        try await Task.sleep(for: .milliseconds(120))
        let reopened = try await SQLiteBackend(path: path)
        let forever = try await reopened.get("forever")
        #expect(forever == CacheEntry(value: [0, 1, 2, 255], ttl: nil))
        let hour = try #require(try await reopened.get("an hour"))
        #expect(hour.value == Array("h".utf8))
        let remaining = try #require(hour.ttl)
        #expect(remaining > .seconds(3590) && remaining <= .seconds(3600))
        #expect(try await reopened.get("short") == nil, "an entry that expired while the store was closed came back")
        #expect(try await reopened.increment("counter", by: 1, ttl: nil) == 42)
        try await reopened.close()
    }

    @Test func operationsAfterCloseThrowClosed() async throws {
        let backend = try await SQLiteBackend(location: .memory)
        try await backend.set("k", to: [1], ttl: nil)
        try await backend.close()
        try await backend.close()  // twice is harmless
        let error = await cacheError { _ = try await backend.get("k") }
        #expect(error?.code == .closed)
        let writeError = await cacheError { try await backend.set("k", to: [1], ttl: nil) }
        #expect(writeError?.code == .closed)
    }

    @Test func inMemoryStoresAreSeparate() async throws {
        let first = try await SQLiteBackend(location: .memory)
        let second = try await SQLiteBackend(location: .memory)
        try await first.set("k", to: [1], ttl: nil)
        #expect(try await second.get("k") == nil)
        try await first.close()
        try await second.close()
    }

    @Test func theFileIsInWALModeAndMarkedAsACacheStore() async throws {
        try await withFileBackend { backend, directory async throws in
            #expect(try await backend.runStatement("PRAGMA application_id") == Int64(StoreSchema.applicationID))
            #expect(try await backend.runStatement("PRAGMA user_version") == StoreSchema.version)
            #expect(FileManager.default.fileExists(atPath: directory.file() + "-wal"))
            #expect(try await backend.runStatement("PRAGMA synchronous", onWriter: true) == 1)  // NORMAL
        }
        try await withFileBackend(configuration: .init(synchronous: .full)) { backend, _ async throws in
            #expect(try await backend.runStatement("PRAGMA synchronous", onWriter: true) == 2)  // FULL
        }
    }

    // MARK: Bad files

    @Test func randomBytesAreAStoreCorruptError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<16_384).map { _ in UInt8.random(in: 0...255, using: &generator) }
        _ = FileManager.default.createFile(atPath: directory.file(), contents: Data(garbage))
        let error = await cacheError { _ = try await SQLiteBackend(path: directory.file()) }
        #expect(error?.code == .storeCorrupt)
        #expect(error?.message.contains(directory.file()) == true)
    }

    @Test func aTextFileIsAStoreCorruptError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let text = String(repeating: "This is a text file, not a database.\n", count: 200)
        _ = FileManager.default.createFile(atPath: directory.file(), contents: Data(text.utf8))
        let error = await cacheError { _ = try await SQLiteBackend(path: directory.file()) }
        #expect(error?.code == .storeCorrupt)
        // The file is left alone.
        #expect(try String(contentsOfFile: directory.file(), encoding: .utf8) == text)
    }

    @Test func aDamagedPageIsAStoreCorruptError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file()
        let backend = try await SQLiteBackend(path: path)
        for i in 0..<2000 { try await backend.set("key-\(i)", to: Array(repeating: UInt8(i % 251), count: 200), ttl: nil) }
        try await backend.close()
        // Overwrite every page after the first with garbage, keeping the valid header.
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: Int(size) - 4096))
        try handle.close()
        let error = await cacheError {
            let damaged = try await SQLiteBackend(path: path)
            defer { Task { try? await damaged.close() } }
            for i in 0..<2000 { _ = try await damaged.get("key-\(i)") }
        }
        #expect(error?.code == .storeCorrupt)
    }

    @Test func anotherApplicationsDatabaseIsRefused() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ada');", on: directory.file())
        let error = await cacheError { _ = try await SQLiteBackend(path: directory.file()) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("another application") == true)
        // Untouched: same data, same journal mode, no WAL files left behind.
        #expect(!FileManager.default.fileExists(atPath: directory.file() + "-wal"))
        #expect(try scalar("SELECT count(*) FROM users", on: directory.file()) == 1)
        #expect(try text("PRAGMA journal_mode", on: directory.file()) == "delete")
    }

    @Test func aNewerLayoutIsRefused() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let backend = try await SQLiteBackend(path: directory.file())
        try await backend.close()
        try execute("PRAGMA user_version = 99", on: directory.file())
        let error = await cacheError { _ = try await SQLiteBackend(path: directory.file()) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("newer") == true)
    }

    @Test func aMissingDirectoryIsAConfigurationError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let error = await cacheError { _ = try await SQLiteBackend(path: directory.path + "/no/such/dir/cache.sqlite") }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("does not exist") == true)
    }

    @Test func invalidSettingsAreRefused() async throws {
        for configuration in [
            SQLiteBackend.Configuration(maximumBytes: 0),
            SQLiteBackend.Configuration(maximumEntries: -1),
            SQLiteBackend.Configuration(evictionTarget: 0.1),
            SQLiteBackend.Configuration(readerCount: -1),
            SQLiteBackend.Configuration(busyTimeout: .seconds(-1)),
        ] {
            let error = await cacheError { _ = try await SQLiteBackend(location: .memory, configuration: configuration) }
            #expect(error?.code == .configuration)
        }
    }

    // MARK: Read-only

    @Test func aReadOnlyFileIsAReadOnlyError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file()
        let backend = try await SQLiteBackend(path: path)
        try await backend.set("k", to: [1], ttl: nil)
        try await backend.close()
        chmod(path, 0o444)
        chmod(directory.path, 0o555)
        let code = try await openErrorAsUnprivilegedUser(path)
        #expect(code == "readOnly")
    }

    @Test func anUnwritableDirectoryIsAReadOnlyError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        chmod(directory.path, 0o555)
        let code = try await openErrorAsUnprivilegedUser(directory.file())
        #expect(code == "readOnly")
    }

    /// Opens `path` as a user without write permission and returns the error code. Root writes
    /// anything, so as root the open runs in a helper process that drops to uid 65534 first.
    private func openErrorAsUnprivilegedUser(_ path: String) async throws -> String? {
        if getuid() != 0 {
            let error = await cacheError { _ = try await SQLiteBackend(path: path) }
            return error.map { "\($0.code)" }
        }
        // The nobody user must be able to reach the directory.
        var parent = URL(fileURLWithPath: path).deletingLastPathComponent()
        while parent.path != "/" {
            var info = stat()
            if stat(parent.path, &info) == 0, info.st_mode & 0o001 == 0 {
                Issue.record("\(parent.path) is not searchable by other users; cannot run the read-only check as root")
                return nil
            }
            parent = parent.deletingLastPathComponent()
        }
        let result = try await runChild(try stressWorkerPath(), ["open-as-nobody", path], timeout: .seconds(60))
        #expect(result.status == 0, "helper said: \(result.output)")
        guard let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("code=") }) else { return nil }
        #expect(line.contains(path) || line.contains("permission"), "the message should say which file: \(line)")
        return String(line.dropFirst(5).prefix { $0 != " " })
    }
}

// MARK: Raw SQLite helpers for preparing files

func execute(_ sql: String, on path: String) throws {
    var db: OpaquePointer?
    defer { sqlite3_close(db) }
    guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
        throw CacheError(.internalError, "raw sqlite failed: \(String(cString: sqlite3_errmsg(db)))")
    }
}

func scalar(_ sql: String, on path: String) throws -> Int64 {
    var db: OpaquePointer?
    var statement: OpaquePointer?
    defer {
        sqlite3_finalize(statement)
        sqlite3_close(db)
    }
    guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK,
        sqlite3_step(statement) == SQLITE_ROW
    else {
        throw CacheError(.internalError, "raw sqlite failed: \(String(cString: sqlite3_errmsg(db)))")
    }
    return sqlite3_column_int64(statement, 0)
}

/// The `detail` column of `EXPLAIN QUERY PLAN sql`, one line per step.
func queryPlan(_ sql: String, on path: String) throws -> String {
    var db: OpaquePointer?
    var statement: OpaquePointer?
    defer {
        sqlite3_finalize(statement)
        sqlite3_close(db)
    }
    guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN " + sql, -1, &statement, nil) == SQLITE_OK else {
        throw CacheError(.internalError, "raw sqlite failed: \(String(cString: sqlite3_errmsg(db)))")
    }
    var lines: [String] = []
    while sqlite3_step(statement) == SQLITE_ROW {
        if let text = sqlite3_column_text(statement, 3) { lines.append(String(cString: text)) }
    }
    return lines.joined(separator: "\n")
}

/// The first column of the first row of `sql`, as text.
func text(_ sql: String, on path: String) throws -> String? {
    var db: OpaquePointer?
    var statement: OpaquePointer?
    defer {
        sqlite3_finalize(statement)
        sqlite3_close(db)
    }
    guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK,
        sqlite3_step(statement) == SQLITE_ROW
    else {
        throw CacheError(.internalError, "raw sqlite failed: \(String(cString: sqlite3_errmsg(db)))")
    }
    return sqlite3_column_text(statement, 0).map { String(cString: $0) }
}
