import CSQLite
import Caching

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The on-disk layout and its version.
///
/// The SQLite header carries two numbers made for this: `PRAGMA application_id` says the file is a
/// swift-caching store (so the backend never writes into another program's database), and
/// `PRAGMA user_version` is the layout version. A store of a newer version is refused, never guessed at.
enum StoreSchema {
    /// `'SwCa'` in ASCII: marks a swift-caching store.
    static let applicationID: Int32 = 0x5377_4361
    /// The most bytes a checkpointed WAL file keeps on disk (`PRAGMA journal_size_limit`).
    static let walSizeLimit = 64 << 20
    /// The layout this code reads and writes.
    static let version: Int64 = 1

    /// Layout version 1.
    ///
    /// - `cache`: one row per entry, `WITHOUT ROWID` so the key's B-tree *is* the table (one lookup per
    ///   read, and `clear(prefix:)` is a range scan on it). `expires_at` and `accessed_at` are Unix
    ///   milliseconds; `expires_at` is NULL for entries that never expire. No secondary index: every
    ///   index would cost each write another B-tree update; the sweep and eviction scan instead.
    /// - `cache_stats`: the entry count and byte total, kept by triggers that are only installed once a
    ///   store is opened with a size limit (``installAccountingSQL``).
    static let createSQL = """
        CREATE TABLE cache (
            key BLOB NOT NULL PRIMARY KEY,
            value BLOB NOT NULL,
            expires_at INTEGER,
            accessed_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE cache_stats (
            id INTEGER PRIMARY KEY CHECK (id = 0),
            entries INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        );
        INSERT INTO cache_stats (id, entries, bytes) VALUES (0, 0, 0);
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = \(version);
        """

    /// The triggers that keep `cache_stats` exact for every writer, in every process, and a recount
    /// to start from. Run in the same transaction, so no write slips between the count and the triggers.
    static let installAccountingSQL = """
        CREATE TRIGGER IF NOT EXISTS cache_stats_insert AFTER INSERT ON cache BEGIN
            UPDATE cache_stats SET entries = entries + 1, bytes = bytes + length(NEW.key) + length(NEW.value) WHERE id = 0;
        END;
        CREATE TRIGGER IF NOT EXISTS cache_stats_update AFTER UPDATE OF value ON cache BEGIN
            UPDATE cache_stats SET bytes = bytes + length(NEW.value) - length(OLD.value) WHERE id = 0;
        END;
        CREATE TRIGGER IF NOT EXISTS cache_stats_delete AFTER DELETE ON cache BEGIN
            UPDATE cache_stats SET entries = entries - 1, bytes = bytes - length(OLD.key) - length(OLD.value) WHERE id = 0;
        END;
        UPDATE cache_stats SET
            entries = (SELECT count(*) FROM cache),
            bytes = (SELECT coalesce(sum(length(key) + length(value)), 0) FROM cache)
        WHERE id = 0;
        """
}

extension SQLiteConnection {
    /// Sets up the writer's connection: WAL, `synchronous`, and the schema (created, checked, or refused).
    ///
    /// Safe when several processes open a new file at once: the schema is created inside
    /// `BEGIN IMMEDIATE`, and whoever comes second finds it in place.
    /// - Throws: `.storeCorrupt` for a file that is not SQLite or is damaged; `.configuration` for a
    ///   database of another application or of a newer layout; `.readOnly`, `.timeout` as the open does.
    func prepareStore() throws {
        try applyConnectionSettings()
        // Look before changing anything: a file that is not ours must be left exactly as it was
        // (switching it to WAL would be a change, and would leave '-wal' and '-shm' files behind).
        _ = try inspectHeader()
        if case .file = store.location {
            try enableWAL()
        }
        // After a burst of writes the WAL file keeps its size; cap what it keeps once checkpointed.
        try execute("PRAGMA journal_size_limit = \(StoreSchema.walSizeLimit)", "configuring")
        try begin(immediate: true)
        do {
            // Again under the write lock: another process may have created the tables meanwhile.
            if try inspectHeader() == .empty {
                try execute(StoreSchema.createSQL, "creating the cache tables in")
            }
            let tables = try scalar(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('cache', 'cache_stats')",
                "reading the schema of"
            )
            guard tables == 2 else {
                throw CacheError(.storeCorrupt, "\(displayName) is a swift-caching store without its tables; delete it to start an empty cache")
            }
            if store.configuration.hasLimits {
                let triggers = try scalar(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name IN ('cache_stats_insert', 'cache_stats_update', 'cache_stats_delete')",
                    "reading the schema of"
                )
                if triggers != 3 {
                    try execute(StoreSchema.installAccountingSQL, "installing size accounting in")
                }
            }
            try commit()
        } catch {
            rollbackIfNeeded()
            throw error
        }
    }

    /// What the header says the file is.
    enum HeaderState {
        /// No tables and no marks: a new file, to be set up.
        case empty
        /// A swift-caching store of the current layout.
        case current
    }

    /// Reads `application_id`, `user_version` and the number of schema objects, and refuses a file that
    /// is not a swift-caching store of a layout this code reads.
    /// - Throws: `.storeCorrupt` (not SQLite, damaged, half set up), `.configuration` (another
    ///   application's database, or a newer layout).
    private func inspectHeader() throws -> HeaderState {
        let applicationID = try scalar("PRAGMA application_id", "reading the header of") ?? 0
        let version = try scalar("PRAGMA user_version", "reading the header of") ?? 0
        let objects = try scalar("SELECT count(*) FROM sqlite_schema", "reading the schema of") ?? 0
        if applicationID == 0 && version == 0 && objects == 0 { return .empty }
        if applicationID != Int64(StoreSchema.applicationID) {
            throw CacheError(
                .configuration,
                "\(displayName) is an SQLite database of another application (application_id \(applicationID), \(objects) schema objects), not a swift-caching store; point the backend at a file of its own"
            )
        }
        if version > StoreSchema.version {
            throw CacheError(
                .configuration,
                "\(displayName) was written by a newer swift-caching (store layout \(version)); this version reads layout \(StoreSchema.version). Upgrade swift-caching, or use another path"
            )
        }
        if version < 1 {
            throw CacheError(.storeCorrupt, "\(displayName) is marked as a swift-caching store but has no layout version; delete it to start an empty cache")
        }
        return .current
    }

    /// Per-connection settings for a reader (the writer gets them from ``prepareStore()``).
    func applyConnectionSettings() throws {
        let synchronous = store.configuration.synchronous == .full ? "FULL" : "NORMAL"
        try execute("PRAGMA synchronous = \(synchronous)", "configuring")
    }

    /// `PRAGMA journal_mode=WAL`, retried while another process holds the lock it needs (the busy
    /// handler does not cover a journal-mode change).
    private func enableWAL() throws {
        let deadline = ContinuousClock.now + store.configuration.busyTimeout
        while true {
            do {
                let mode = try text("PRAGMA journal_mode = WAL", "switching to WAL")
                if mode?.lowercased() != "wal" {
                    throw CacheError(
                        .configuration,
                        "\(displayName) cannot use write-ahead logging (journal mode stays '\(mode ?? "?")'); the file system may not support the shared memory WAL needs, so use a local disk"
                    )
                }
                return
            } catch let error as CacheError where error.code == .timeout && ContinuousClock.now < deadline {
                usleep(2_000)
            }
        }
    }
}
