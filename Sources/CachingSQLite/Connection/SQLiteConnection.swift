import CSQLite
import Caching
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `sqlite3` connection with its prepared statements.
///
/// Not thread-safe, on purpose: a connection belongs to one ``ConnectionThread`` and only that thread
/// calls into it (the one exception is `sqlite3_interrupt`, which SQLite allows from any thread). The
/// connection is opened with `SQLITE_OPEN_NOMUTEX`, so SQLite takes no lock of its own on each call.
final class SQLiteConnection {
    /// The `sqlite3*` handle.
    let handle: OpaquePointer
    /// Where the database lives, for messages: `'/var/cache/app.sqlite'` or `the in-memory database`.
    let displayName: String
    /// What the store shares between its connections: configuration, access-time buffer.
    let store: StoreContext
    /// The prepared statements, by ``StatementID/rawValue``; prepared on first use, kept until close.
    private var statements: [OpaquePointer?]
    private var isClosed = false
    /// Set when the running request's task is cancelled. `sqlite3_interrupt` stops the statement that
    /// is running; this flag also stops a request of several statements between two of them (SQLite
    /// forgets an interrupt once no statement is active).
    private let interruptRequested = Atomic<Bool>(false)

    // Held reads (see `SQLiteConnection+HeldRead.swift`); only this connection's thread uses these.
    /// Whether this connection may keep a read transaction open between requests (reader
    /// connections of a WAL database); set by its thread after opening.
    var allowsHeldReads = false
    /// The wal-index in shared memory, once found; `nil` before the first read or without one.
    var walIndex: UnsafeRawPointer?
    /// Set once looking for the wal-index failed (no WAL): never look again.
    var walIndexUnavailable = false
    /// Whether a held read transaction is open now.
    var holdsRead = false
    /// The wal-index header when the held read began.
    var heldHeader: WALIndexHeader = (0, 0, 0, 0, 0, 0)
    /// Requests served in the held read so far.
    var heldRequests = 0

    private init(handle: OpaquePointer, displayName: String, store: StoreContext) {
        self.handle = handle
        self.displayName = displayName
        self.store = store
        self.statements = Array(repeating: nil, count: StatementID.allCases.count)
    }

    deinit {
        close()
    }

    // MARK: Opening

    /// Opens a connection and applies the per-connection settings (busy timeout, `synchronous`).
    ///
    /// Only the first statement reads the file; a damaged file is reported by ``SQLiteStore/prepare(_:)``.
    /// - Throws: ``CacheError`` `.configuration` (missing directory), `.readOnly` (the file or directory
    ///   cannot be written), `.connectionFailed` (anything else SQLite refuses).
    static func open(store: StoreContext, creating: Bool) throws -> SQLiteConnection {
        let path: String
        let displayName: String
        switch store.location {
        case .memory:
            path = ":memory:"
            displayName = "the in-memory database"
        case .file(let file):
            path = file
            displayName = "'\(file)'"
            try checkDirectory(of: file)
        }
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        if creating { flags |= SQLITE_OPEN_CREATE }
        var raw: OpaquePointer?
        let rc = sqlite3_open_v2(path, &raw, flags, nil)
        guard let raw else {
            throw CacheError(.internalError, "sqlite3_open_v2 returned no handle for \(displayName) (out of memory?)")
        }
        let connection = SQLiteConnection(handle: raw, displayName: displayName, store: store)
        guard rc == SQLITE_OK else {
            throw connection.error(rc, "opening")
        }
        if sqlite3_db_readonly(raw, "main") == 1 {
            throw CacheError(
                .readOnly,
                "\(displayName) can only be opened read-only; a cache must write. Check the permissions of the file and of its directory (SQLite also creates '-wal' and '-shm' files next to it)"
            )
        }
        sqlite3_extended_result_codes(raw, 1)
        let timeout = CacheTTL.milliseconds(store.configuration.busyTimeout)
        sqlite3_busy_timeout(raw, Int32(clamping: timeout))
        return connection
    }

    /// Refuses a path whose directory does not exist, with a message that says so (SQLite only says
    /// "unable to open database file").
    private static func checkDirectory(of path: String) throws {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        var info = stat()
        if stat(directory, &info) != 0 {
            throw CacheError(
                .configuration,
                "the directory '\(directory)' of the SQLite cache file '\(path)' does not exist or cannot be read; create it first"
            )
        }
        if (info.st_mode & S_IFMT) != S_IFDIR {
            throw CacheError(.configuration, "'\(directory)' is not a directory, so the SQLite cache file '\(path)' cannot be created there")
        }
    }

    /// Whether the current user may create files in the directory of `path`.
    private static func directoryIsWritable(of path: String) -> Bool {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        return access(directory, W_OK) == 0
    }

    /// Finalizes every statement and closes the handle. Idempotent.
    func close() {
        guard !isClosed else { return }
        endHeldRead()
        isClosed = true
        for index in statements.indices {
            if let statement = statements[index] { sqlite3_finalize(statement) }
            statements[index] = nil
        }
        sqlite3_close_v2(handle)
    }

    // MARK: Interrupting

    /// Stops the running statement and makes ``checkInterrupt()`` throw. Safe from any thread while
    /// the connection is open.
    func interrupt() {
        interruptRequested.store(true, ordering: .releasing)
        sqlite3_interrupt(handle)
    }

    /// Forgets an earlier interrupt (before the next request starts).
    func clearInterrupt() {
        interruptRequested.store(false, ordering: .relaxed)
    }

    /// Throws `.cancelled` if the running request was interrupted; call between statements of a long request.
    @inline(__always)
    func checkInterrupt() throws {
        if interruptRequested.load(ordering: .acquiring) {
            throw CacheError(.cancelled, "an operation on \(displayName) was interrupted because the calling task was cancelled")
        }
    }

    // MARK: Errors

    /// A ``CacheError`` for SQLite result code `rc`, saying what failed and what to do.
    func error(_ rc: Int32, _ action: String) -> CacheError {
        let sqliteMessage = String(cString: sqlite3_errmsg(handle))
        let detail = "sqlite: \(sqliteMessage), code \(rc)"
        switch rc & 0xFF {
        case SQLITE_BUSY, SQLITE_LOCKED:
            let timeout = CacheTTL.milliseconds(store.configuration.busyTimeout)
            return CacheError(
                .timeout,
                "\(action) \(displayName) failed: another connection or process kept the database locked for longer than the busy timeout of \(timeout) ms; raise Configuration.busyTimeout or keep other writers' transactions short (\(detail))"
            )
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return CacheError(
                .storeCorrupt,
                "\(displayName) is damaged or is not an SQLite database (\(detail)); delete it together with its '-wal' and '-shm' files to start an empty cache, or point the backend at another path"
            )
        case SQLITE_READONLY:
            return CacheError(
                .readOnly,
                "\(action) \(displayName) failed: the database cannot be written (\(detail)); check the permissions of the file, of its '-wal' and '-shm' files and of its directory"
            )
        case SQLITE_CANTOPEN:
            let errno = sqlite3_system_errno(handle)
            if errno == EACCES || errno == EPERM || errno == EROFS {
                return CacheError(
                    .readOnly,
                    "\(action) \(displayName) failed: permission denied or read-only file system (\(detail), errno \(errno)); the cache needs to create and write the file, its '-wal' and '-shm' files, so use a writable directory"
                )
            }
            if errno == ENOENT, case .file(let path) = store.location, !Self.directoryIsWritable(of: path) {
                // SQLite retries a failed create read-only, and that reports ENOENT.
                return CacheError(
                    .readOnly,
                    "\(action) \(displayName) failed: its directory is not writable (\(detail)); the cache needs to create the file, its '-wal' and '-shm' files, so use a writable directory"
                )
            }
            if errno == ENOENT || errno == ENOTDIR {
                return CacheError(.configuration, "\(action) \(displayName) failed: no such file or directory (\(detail)); create the directory first")
            }
            return CacheError(.connectionFailed, "\(action) \(displayName) failed: SQLite cannot open the file (\(detail), errno \(errno))")
        case SQLITE_INTERRUPT:
            return CacheError(.cancelled, "\(action) \(displayName) was interrupted because the calling task was cancelled")
        case SQLITE_TOOBIG:
            return CacheError(.valueTooLarge, "\(action) \(displayName) failed: the value is larger than SQLite's length limit (\(detail))")
        case SQLITE_FULL:
            return CacheError(.serverError, "\(action) \(displayName) failed: the disk is full (\(detail)); free space or set a size limit")
        case SQLITE_IOERR:
            return CacheError(.serverError, "\(action) \(displayName) failed with an I/O error (\(detail), errno \(sqlite3_system_errno(handle)))")
        case SQLITE_MISUSE, SQLITE_RANGE:
            return CacheError(.internalError, "\(action) \(displayName): SQLite reports misuse, a bug in swift-caching; please report it (\(detail))")
        default:
            return CacheError(.serverError, "\(action) \(displayName) failed (\(detail))")
        }
    }

    // MARK: Statements

    /// The prepared statement `id`, prepared on first use and reused after (callers reset it).
    @inline(__always)
    func statement(_ id: StatementID) throws -> OpaquePointer {
        if let statement = statements[id.rawValue] { return statement }
        return try prepare(id)
    }

    private func prepare(_ id: StatementID) throws -> OpaquePointer {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, id.sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw error(rc, "preparing a statement on")
        }
        statements[id.rawValue] = statement
        return statement
    }

    /// Runs statement `id` to completion with no bindings (transaction control, fixed maintenance).
    func run(_ id: StatementID, _ action: String) throws {
        let statement = try statement(id)
        defer { sqlite3_reset(statement) }
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw error(rc, action) }
    }

    /// Runs a one-off SQL script (schema setup); not for anything on a hot path.
    func execute(_ sql: String, _ action: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if let message { sqlite3_free(message) }
        guard rc == SQLITE_OK else { throw error(rc, action) }
    }

    /// The first column of the first row of a one-off query, as an integer (`nil` for no row or NULL).
    func scalar(_ sql: String, _ action: String) throws -> Int64? {
        var statement: OpaquePointer?
        var rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc, action) }
        defer { sqlite3_finalize(statement) }
        rc = sqlite3_step(statement)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else { throw error(rc, action) }
        if sqlite3_column_type(statement, 0) == SQLITE_NULL { return nil }
        return sqlite3_column_int64(statement, 0)
    }

    /// The first column of the first row of a one-off query, as text.
    func text(_ sql: String, _ action: String) throws -> String? {
        var statement: OpaquePointer?
        var rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc, action) }
        defer { sqlite3_finalize(statement) }
        rc = sqlite3_step(statement)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else { throw error(rc, action) }
        guard let text = sqlite3_column_text(statement, 0) else { return nil }
        return String(cString: text)
    }

    // MARK: Transactions

    /// Whether no transaction is open (SQLite's autocommit mode).
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Opens a transaction: `BEGIN IMMEDIATE` (takes the write lock now, waiting up to the busy timeout)
    /// for writes, `BEGIN` (one read snapshot) for reads.
    func begin(immediate: Bool) throws {
        try run(immediate ? .beginImmediate : .beginDeferred, "starting a transaction on")
    }

    func commit() throws {
        try run(.commit, "committing to")
    }

    /// Rolls back the open transaction, if any; errors are ignored (a failed rollback leaves nothing to do).
    func rollbackIfNeeded() {
        guard !isAutocommit, let statement = try? statement(.rollback) else { return }
        sqlite3_step(statement)
        sqlite3_reset(statement)
    }

    /// Runs `body` atomically: in a new transaction when none is open, or inside a savepoint of the open
    /// one (a batch of requests that the connection thread groups), so a failing body never leaves half
    /// of its writes behind.
    func atomically<T>(immediate: Bool, _ body: () throws -> T) throws -> T {
        if isAutocommit {
            try begin(immediate: immediate)
            do {
                let value = try body()
                try commit()
                return value
            } catch {
                rollbackIfNeeded()
                throw error
            }
        }
        try run(.savepoint, "opening a savepoint on")
        do {
            let value = try body()
            try run(.release, "releasing a savepoint on")
            return value
        } catch {
            if !isAutocommit {
                if let undo = try? statement(.rollbackToSavepoint) {
                    sqlite3_step(undo)
                    sqlite3_reset(undo)
                }
                if let release = try? statement(.release) {
                    sqlite3_step(release)
                    sqlite3_reset(release)
                }
            }
            throw error
        }
    }

    /// Runs reads in one read transaction (one snapshot) when none is open; inside the open one otherwise.
    func reading<T>(_ body: () throws -> T) throws -> T {
        guard isAutocommit else { return try body() }
        try begin(immediate: false)
        do {
            let value = try body()
            if (try? commit()) == nil { rollbackIfNeeded() }
            return value
        } catch {
            rollbackIfNeeded()
            throw error
        }
    }

    // MARK: Columns

    /// A copy of blob column `column` of the current row.
    @inline(__always)
    func bytes(_ statement: OpaquePointer, _ column: Int32) -> [UInt8] {
        // sqlite3_column_blob first, then sqlite3_column_bytes, as the SQLite documentation asks.
        let pointer = sqlite3_column_blob(statement, column)
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { memcpy(base, pointer, count) }
            initialized = count
        }
    }

    /// A copy of blob column `column` of the current row, in `buffer`'s storage when it fits there
    /// (the array is moved out of `buffer`, which is left empty), else in a new array. `buffer` must be
    /// empty and uniquely referenced, so appending to it never reallocates or copies.
    @inline(__always)
    func bytes(_ statement: OpaquePointer, _ column: Int32, into buffer: inout [UInt8]) -> [UInt8] {
        let pointer = sqlite3_column_blob(statement, column)
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer else { return [] }
        guard buffer.isEmpty && count <= buffer.capacity else {
            return [UInt8](unsafeUninitializedCapacity: count) { target, initialized in
                if let base = target.baseAddress { memcpy(base, pointer, count) }
                initialized = count
            }
        }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: count))
        var value: [UInt8] = []
        swap(&value, &buffer)
        return value
    }

    /// Integer column `column` of the current row, or `nil` for NULL.
    @inline(__always)
    func optionalInt64(_ statement: OpaquePointer, _ column: Int32) -> Int64? {
        sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : sqlite3_column_int64(statement, column)
    }
}

/// Binds an optional integer: NULL for `nil`.
@inline(__always)
func bind(_ statement: OpaquePointer, _ index: Int32, _ value: Int64?) {
    if let value {
        sqlite3_bind_int64(statement, index, value)
    } else {
        sqlite3_bind_null(statement, index)
    }
}

/// Binds bytes without copying them; they must stay alive until the statement is reset.
@inline(__always)
func bind(_ statement: OpaquePointer, _ index: Int32, _ bytes: UnsafeRawBufferPointer) {
    csqlite_bind_blob(statement, index, bytes.baseAddress, UInt64(bytes.count))
}

/// Resets a statement and drops its bindings, so no pointer to freed Swift memory stays bound.
@inline(__always)
func finish(_ statement: OpaquePointer) {
    sqlite3_reset(statement)
    sqlite3_clear_bindings(statement)
}

/// Calls `body` with the UTF-8 bytes of `key`, the form keys are stored in (a BLOB, compared byte by byte).
@inline(__always)
func withKeyBytes<R>(_ key: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var key = key
    return try key.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
}
