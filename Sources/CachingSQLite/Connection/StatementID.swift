/// Every statement the backend runs more than once, prepared once per connection and reused.
///
/// Keys are BLOBs compared with `memcmp`, so every key parameter is bound as a blob (a key bound as
/// TEXT would never match: SQLite orders all TEXT before all BLOB). Times are Unix milliseconds.
enum StatementID: Int, CaseIterable {
    case beginDeferred
    case beginImmediate
    case commit
    case rollback
    case savepoint
    case release
    case rollbackToSavepoint

    /// ?1 key → value, expires_at, accessed_at.
    case get
    /// ?1 key → expires_at.
    case exists
    /// ?1 key, ?2 value, ?3 expires_at, ?4 accessed_at.
    case set
    /// ?1 key, ?2 value, ?3 expires_at, ?4 accessed_at, ?5 now; changes() == 1 when stored.
    case add
    /// ?1 key → the deleted row's expires_at.
    case delete
    /// ?1 key, ?2 new expires_at, ?3 now; changes() == 1 when the key was live.
    case touch
    /// ?1 key, ?2 now: records a read for least-recently-used eviction.
    case markAccessed
    /// ?1 prefix, ?2 successor of the prefix.
    case clearRange
    /// ?1 prefix (the prefix has no successor: it is empty or all 0xFF bytes).
    case clearFrom
    /// ?1 lower key, ?2 offset → the key that ends this sweep chunk.
    case sweepBoundary
    /// ?1 lower key, ?2 upper key, ?3 now.
    case sweepRange
    /// ?1 lower key, ?2 now: the last chunk.
    case sweepFrom
    /// → entries, bytes (kept by triggers once a size limit is in use).
    case stats
    /// ?1 now, ?2 limit → key, size; expired rows first, then least recently used.
    case evictionCandidates
    /// ?1 key (eviction, no result needed).
    case evict
    /// ?1 now → live entries, live bytes.
    case liveStatistics

    var sql: String {
        switch self {
        case .beginDeferred: "BEGIN DEFERRED"
        case .beginImmediate: "BEGIN IMMEDIATE"
        case .commit: "COMMIT"
        case .rollback: "ROLLBACK"
        case .savepoint: "SAVEPOINT caching_operation"
        case .release: "RELEASE caching_operation"
        case .rollbackToSavepoint: "ROLLBACK TO caching_operation"
        case .get: "SELECT value, expires_at, accessed_at FROM cache WHERE key = ?1"
        case .exists: "SELECT expires_at FROM cache WHERE key = ?1"
        case .set:
            """
            INSERT INTO cache (key, value, expires_at, accessed_at) VALUES (?1, ?2, ?3, ?4) \
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, \
            accessed_at = excluded.accessed_at
            """
        case .add:
            """
            INSERT INTO cache (key, value, expires_at, accessed_at) VALUES (?1, ?2, ?3, ?4) \
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, \
            accessed_at = excluded.accessed_at WHERE cache.expires_at IS NOT NULL AND cache.expires_at <= ?5
            """
        case .delete: "DELETE FROM cache WHERE key = ?1 RETURNING expires_at"
        case .touch: "UPDATE cache SET expires_at = ?2 WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?3)"
        case .markAccessed: "UPDATE cache SET accessed_at = ?2 WHERE key = ?1 AND accessed_at < ?2"
        case .clearRange: "DELETE FROM cache WHERE key >= ?1 AND key < ?2"
        case .clearFrom: "DELETE FROM cache WHERE key >= ?1"
        case .sweepBoundary: "SELECT key FROM cache WHERE key >= ?1 ORDER BY key LIMIT 1 OFFSET ?2"
        case .sweepRange: "DELETE FROM cache WHERE key >= ?1 AND key <= ?2 AND expires_at <= ?3"
        case .sweepFrom: "DELETE FROM cache WHERE key >= ?1 AND expires_at <= ?2"
        case .stats: "SELECT entries, bytes FROM cache_stats WHERE id = 0"
        case .evictionCandidates:
            """
            SELECT key, length(key) + length(value) FROM cache \
            ORDER BY (expires_at IS NOT NULL AND expires_at <= ?1) DESC, accessed_at, key LIMIT ?2
            """
        case .evict: "DELETE FROM cache WHERE key = ?1"
        case .liveStatistics:
            """
            SELECT count(*), total(length(key) + length(value)) FROM cache \
            WHERE expires_at IS NULL OR expires_at > ?1
            """
        }
    }
}
