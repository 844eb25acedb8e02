import CSQLite

/// Held reads: a reader connection keeps its read transaction open from one single-key read to the
/// next while nothing has been committed to the database in between.
///
/// Every read transaction in WAL mode costs two `fcntl` system calls (a shared lock on one of the
/// wal-index's read marks, and its release) and the bookkeeping around them: about a third of a
/// single-key read from the page cache. The plain C loop pays them on every `SELECT`. A reader
/// connection instead opens a transaction (`BEGIN`) before a lone get and leaves it open after;
/// the next request first compares the wal-index header in shared memory with the copy taken
/// before the transaction began. Every commit, by any connection of any process, rewrites that
/// header (https://sqlite.org/walformat.html), so an unchanged header proves that the open
/// snapshot is still the newest, and the read goes on in it with no system call. A changed header
/// ends the transaction first, so a read never returns older data than a fresh transaction would:
/// reads stay linearizable, and a process sees every write that completed before its read began.
///
/// What bounds a held read: none begins while the WAL is long (``heldReadMaximumWALFrames``); it
/// ends when the header changes, after ``heldReadLimit`` requests,
/// when the connection's thread goes idle (before it sleeps, and after each run of jobs of tasks
/// that prefer it), on any error, and on close. While it is open it only holds a WAL read mark, as
/// any reader does: writers go on, checkpoints copy every frame it can see (it sees them all until
/// the next commit, and then ends at the next request), and only a checkpoint that must restart
/// the WAL (`RESTART`, `TRUNCATE`) waits for it, at most until one of those ends.
///
/// The writer connection never holds reads; nor does a database without a WAL (in memory), where
/// a held transaction would block the writer.
///
/// The wal-index pointer stays valid while the connection is open: in WAL mode every connection
/// keeps a shared lock on the database file, so nobody can switch the file out of WAL mode (which
/// is what unmaps the wal-index) while this one is open (checked: another connection's
/// `PRAGMA journal_mode=DELETE` fails with "database is locked").
/// A copy of the wal-index header: 48 bytes, as six words for the shim's comparisons.
typealias WALIndexHeader = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

extension SQLiteConnection {
    /// The most requests one held read serves before it is ended and begun again.
    static let heldReadLimit = 256

    /// No held read begins while the WAL holds this many frames or more.
    ///
    /// A held read keeps its snapshot's read mark through the next commit, and so through the
    /// checkpoint SQLite runs after that commit once the WAL passes 1,000 pages: the checkpoint
    /// then cannot copy that commit's frames, and SQLite starts the WAL over only after a
    /// checkpoint copied them all. Past this length, reads stop holding until the WAL starts over,
    /// which bounds it at about twice SQLite's checkpoint threshold whatever the timing.
    static let heldReadMaximumWALFrames: UInt32 = 2_000

    /// Ends the held read if something was committed since it began (or its budget is spent); call
    /// at the start of every request on this connection, before any statement runs.
    @inline(__always)
    func validateHeldRead() {
        guard holdsRead else { return }
        heldRequests &+= 1
        if heldRequests > Self.heldReadLimit || !walHeaderUnchanged() {
            endHeldRead()
        } else {
            store.heldReadsKept.add(1, ordering: .relaxed)
        }
    }

    /// Opens a held read before a lone single-key read, when allowed and no transaction is open.
    /// Does nothing (the read then runs in its own implicit transaction) when the wal-index is not
    /// known yet, a commit is updating its header, or `BEGIN` fails.
    @inline(__always)
    func beginHeldReadIfPossible() {
        guard allowsHeldReads, !holdsRead, let walIndex, isAutocommit else { return }
        // The header is copied before the transaction begins: the snapshot is then at least as new
        // as this copy, so a later commit always shows as a changed header.
        let agrees = withUnsafeMutableBytes(of: &heldHeader) { bytes in
            csqlite_wal_header_read(walIndex, bytes.baseAddress?.assumingMemoryBound(to: UInt64.self))
        }
        guard agrees != 0 else { return }
        // A long WAL: let the next checkpoint copy every frame, so the WAL can start over.
        let frames = withUnsafeBytes(of: &heldHeader) { bytes in
            csqlite_wal_header_frames(bytes.baseAddress?.assumingMemoryBound(to: UInt64.self))
        }
        guard frames < Self.heldReadMaximumWALFrames, (try? begin(immediate: false)) != nil else { return }
        holdsRead = true
        heldRequests = 0
        store.heldReadsBegun.add(1, ordering: .relaxed)
    }

    /// Looks the wal-index up after a read ran (the WAL is open then); gives up for good when there
    /// is none or its format is not the one this code knows.
    func findWALIndexIfNeeded() {
        guard allowsHeldReads, walIndex == nil, !walIndexUnavailable else { return }
        // Outside WAL mode the VFS would create a wal-index for this call: ask SQLite first (once).
        guard (try? text("PRAGMA journal_mode", "reading the journal mode of"))?.lowercased() == "wal",
              let region = csqlite_wal_index(handle)
        else {
            walIndexUnavailable = true
            return
        }
        let pointer = UnsafeRawPointer(region)
        var header: WALIndexHeader = (0, 0, 0, 0, 0, 0)
        let version = withUnsafeMutableBytes(of: &header) { bytes -> UInt32 in
            let words = bytes.baseAddress?.assumingMemoryBound(to: UInt64.self)
            _ = csqlite_wal_header_read(pointer, words)
            return csqlite_wal_header_version(words)
        }
        guard version == 3_007_000 else {
            walIndexUnavailable = true
            return
        }
        walIndex = pointer
    }

    /// Ends the held read, if one is open.
    func endHeldRead() {
        guard holdsRead else { return }
        holdsRead = false
        if !isAutocommit, (try? commit()) == nil { rollbackIfNeeded() }
    }

    /// Whether the wal-index header is the one copied when the held read began.
    @inline(__always)
    private func walHeaderUnchanged() -> Bool {
        guard let walIndex else { return false }
        return withUnsafeBytes(of: &heldHeader) { bytes in
            csqlite_wal_header_unchanged(walIndex, bytes.baseAddress?.assumingMemoryBound(to: UInt64.self)) != 0
        }
    }
}
