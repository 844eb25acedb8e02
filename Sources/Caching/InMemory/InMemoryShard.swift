import DequeModule

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Keys are compared as their UTF-8 bytes, as Redis, memcached and SQLite compare them, and as
/// ``InMemoryBackend/clear(prefix:)`` matches them. Swift's `String ==` uses Unicode canonical
/// equivalence instead, which would make `"caf\u{E9}"` and `"cafe\u{301}"` one key here and two
/// keys everywhere else.
///
/// The hash is still `String.hashValue` (seeded SipHash over the normalized form; the fastest
/// string hash the standard library offers): byte-equal keys are canonically equal, so they
/// hash alike, and the rare equivalent-but-different keys merely share a probe sequence.
enum KeyBytes {
    /// Whether `a` and `b` have the same UTF-8 bytes.
    @inline(__always)
    static func equal(_ a: String, _ b: String) -> Bool {
        // A String value is entirely its 16 bytes: equal bits mean the same small-string bytes
        // or the same storage, so the same UTF-8. This settles every small key (up to 15
        // bytes, kept inline) without touching memory; anything else falls through to the
        // byte comparison.
        if unsafeBitCast(a, to: (UInt64, UInt64).self) == unsafeBitCast(b, to: (UInt64, UInt64).self) {
            return true
        }
        let count = a.utf8.count
        guard count == b.utf8.count else { return false }
        let fast: Bool?? = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return count == 0 }
                return memcmp(x, y, count) == 0
            }
        }
        if let fast, let fast { return fast }
        return a.utf8.elementsEqual(b.utf8)
    }
}

/// The limits of one shard: its part of the backend's limits, and the S3-FIFO queue sizes.
struct ShardLimits: Sendable {
    /// The most entries the shard holds.
    let maxEntries: Int
    /// The most key + value bytes the shard holds.
    let maxBytes: Int
    /// The small (probationary) queue's target: 10 % of the shard.
    let smallMaxEntries: Int
    let smallMaxBytes: Int
    /// The ghost queue remembers as many evicted keys as the main queue holds entries.
    let ghostMaxEntries: Int
    let ghostMaxBytes: Int

    init(maxEntries: Int, maxBytes: Int) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.smallMaxEntries = max(1, maxEntries / 10)
        self.smallMaxBytes = max(1, maxBytes / 10)
        self.ghostMaxEntries = max(1, maxEntries - smallMaxEntries)
        self.ghostMaxBytes = max(1, maxBytes - smallMaxBytes)
    }
}

/// Which queue a slot is on.
enum QueueID: UInt8 {
    case free = 0
    case small = 1
    case main = 2
}

/// One entry of a shard's slab. Slots are linked into the small or main FIFO by index.
///
/// The fields a hit reads and writes (key, value, expiry, counter) come first, so that they
/// usually share one cache line.
struct Slot {
    var key: String
    var value: [UInt8]
    /// Expiry on the backend clock in milliseconds; `Int64.max` never expires.
    var expiresAt: Int64
    /// S3-FIFO's 2-bit access counter (0...3).
    var freq: UInt8
    var queue: QueueID
    /// Towards the head (newer); for a free slot, unused.
    var prev: Int32
    /// Towards the tail (older); for a free slot, the next free slot.
    var next: Int32
    /// The key's hash, kept for the ghost queue.
    var hash: Int
    /// `key.utf8.count + value.count`, what the byte limit counts.
    var size: Int

    static func free(next: Int32) -> Slot {
        Slot(key: "", value: [], expiresAt: .max, freq: 0, queue: .free, prev: -1, next: next, hash: 0, size: 0)
    }
}

/// A FIFO threaded through the slab: `head` is the newest slot, `tail` the oldest.
struct FIFO {
    var head: Int32 = -1
    var tail: Int32 = -1
    var count = 0
    var bytes = 0
}

/// Hashes of keys recently evicted from the small queue (S3-FIFO's ghost queue), in FIFO order.
///
/// A key that is set again while its hash is here skips the small queue and goes straight to
/// the main one: it was evicted too early.
struct GhostQueue {
    private struct Item {
        var hash: Int
        var size: Int
        var sequence: UInt64
    }
    let maxEntries: Int
    let maxBytes: Int
    private var ring = Deque<Item>()
    /// hash → the sequence number of its newest ring item. A ring item whose sequence no longer
    /// matches (the hash was re-inserted, or removed by a hit) is stale and ignored.
    private var members: [Int: UInt64] = [:]
    private var bytes = 0
    private var nextSequence: UInt64 = 0

    init(maxEntries: Int, maxBytes: Int) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    var count: Int { members.count }

    mutating func insert(hash: Int, size: Int) {
        let sequence = nextSequence
        nextSequence &+= 1
        ring.append(Item(hash: hash, size: size, sequence: sequence))
        members[hash] = sequence
        bytes += size
        while ring.count > maxEntries || bytes > maxBytes, let oldest = ring.popFirst() {
            bytes -= oldest.size
            if members[oldest.hash] == oldest.sequence {
                members.removeValue(forKey: oldest.hash)
            }
        }
    }

    /// Forgets `hash`; returns whether it was remembered.
    mutating func remove(hash: Int) -> Bool {
        members.removeValue(forKey: hash) != nil
    }

    mutating func removeAll() {
        ring = Deque()
        members = [:]
        bytes = 0
    }
}

/// A bucket of a shard's hash index (8 bytes): a slot, and the low 32 bits of its key's hash,
/// which give the bucket's home (a table never exceeds 2^32 buckets) and rule out most
/// mismatches without touching the slot. Empty when `slot < 0`.
struct Bucket {
    var slot: Int32
    var tag: UInt32

    static var empty: Bucket { Bucket(slot: -1, tag: 0) }

    @inline(__always)
    static func tag(_ hash: Int) -> UInt32 { UInt32(truncatingIfNeeded: hash) }
}

/// The state of one shard of ``InMemoryBackend``: a hash index over a slab of slots, the two
/// S3-FIFO queues threaded through the slab, and the ghost queue. Always used under its mutex.
///
/// The index is an open-addressing table of 8-byte buckets with linear probing, at most half
/// full, and backward-shift deletion (no tombstones). It is keyed by the hash the backend
/// computes once per key: a lookup hashes the key once (its top bits pick the shard, its low
/// bits the bucket) and compares 32 bits of it before the key's bytes.
struct ShardState {
    let limits: ShardLimits
    private var table: [Bucket]
    private var tableMask: Int
    private var slots: [Slot] = []
    private var freeHead: Int32 = -1
    private var small = FIFO()
    private var main = FIFO()
    private var ghost: GhostQueue

    var closed = false
    private(set) var hits = 0
    private(set) var misses = 0
    private(set) var evictions = 0
    private(set) var expirations = 0

    private static let initialTableSize = 16

    init(limits: ShardLimits) {
        self.limits = limits
        self.ghost = GhostQueue(maxEntries: limits.ghostMaxEntries, maxBytes: limits.ghostMaxBytes)
        self.table = Array(repeating: .empty, count: Self.initialTableSize)
        self.tableMask = Self.initialTableSize - 1
    }

    var count: Int { small.count + main.count }
    var bytes: Int { small.bytes + main.bytes }
    var ghostCount: Int { ghost.count }
    /// How many slots the slab has (live and free): the range a sweep walks.
    var slotCount: Int { slots.count }

    // MARK: Reads

    /// The value of `key` and its remaining TTL in milliseconds (-1: never expires), counting a
    /// hit or a miss. An expired entry is removed. `now` is the time read before the call, or
    /// `nil` to read `clock` if the entry has an expiry.
    @inline(__always)
    mutating func get(_ key: String, hash: Int, now: Int64?, clock: any CacheClock) -> (value: [UInt8], remaining: Int64)? {
        let i = findForRead(key, hash: hash)
        guard i >= 0 else {
            misses &+= 1
            return nil
        }
        let expiresAt = slots[i].expiresAt
        var remaining: Int64 = -1
        if expiresAt != .max {
            let now = now ?? clock.now()
            if expiresAt <= now {
                remove(i)
                expirations &+= 1
                misses &+= 1
                return nil
            }
            remaining = expiresAt &- now
        }
        if slots[i].freq < 3 { slots[i].freq &+= 1 }
        hits &+= 1
        return (slots[i].value, remaining)
    }

    /// The slot of `key` if it holds a live entry; an expired one is removed. Not an access:
    /// the frequency and the hit counters do not change.
    mutating func liveSlot(_ key: String, hash: Int, clock: any CacheClock) -> Int? {
        let i = find(key, hash: hash)
        guard i >= 0 else { return nil }
        if isExpired(i, clock: clock) {
            remove(i)
            expirations &+= 1
            return nil
        }
        return i
    }

    func value(at slot: Int) -> [UInt8] { slots[slot].value }
    func expiresAt(slot: Int) -> Int64 { slots[slot].expiresAt }

    // MARK: Writes

    /// Stores `value` under `key`. The caller has checked that the entry fits in the shard.
    mutating func set(_ key: String, hash: Int, value: [UInt8], expiresAt: Int64, clock: any CacheClock) {
        let size = key.utf8.count + value.count
        let i = find(key, hash: hash)
        if i >= 0 {
            let delta = size - slots[i].size
            if delta <= 0 || bytes + delta <= limits.maxBytes {
                // In place: the entry keeps its queue position and frequency.
                slots[i].value = value
                slots[i].expiresAt = expiresAt
                slots[i].size = size
                switch slots[i].queue {
                case .small: small.bytes += delta
                case .main: main.bytes += delta
                case .free: break
                }
                return
            }
            // It grows past the byte limit: take it out, make room, put it back at the head of
            // its queue with its frequency, so that making room cannot evict it.
            let queue = slots[i].queue
            let freq = slots[i].freq
            remove(i)
            makeRoom(for: size, clock: clock)
            insert(key, hash: hash, value: value, size: size, expiresAt: expiresAt, queue: queue, freq: freq)
            return
        }
        makeRoom(for: size, clock: clock)
        let queue: QueueID = ghost.remove(hash: hash) ? .main : .small
        insert(key, hash: hash, value: value, size: size, expiresAt: expiresAt, queue: queue, freq: 0)
    }

    /// Gives the entry in `slot` a new expiry.
    mutating func setExpiry(slot: Int, to expiresAt: Int64) {
        slots[slot].expiresAt = expiresAt
    }

    /// Removes `key`; returns whether it held a live entry.
    mutating func delete(_ key: String, hash: Int, clock: any CacheClock) -> Bool {
        let i = find(key, hash: hash)
        guard i >= 0 else { return false }
        let live = !isExpired(i, clock: clock)
        remove(i)
        if !live { expirations &+= 1 }
        return live
    }

    /// Drops every entry and the ghost history, and gives the memory back; the counters stay.
    mutating func removeAll() {
        table = Array(repeating: .empty, count: Self.initialTableSize)
        tableMask = Self.initialTableSize - 1
        slots = []
        freeHead = -1
        small = FIFO()
        main = FIFO()
        ghost.removeAll()
    }

    /// Removes the expired entries in slots `start..<start + limit`.
    /// - Returns: how many it removed, and where the next chunk starts.
    mutating func sweep(from start: Int, limit: Int, now: Int64) -> (removed: Int, next: Int) {
        let end = min(slots.count, start + limit)
        var removed = 0
        var i = start
        while i < end {
            if slots[i].queue != .free && slots[i].expiresAt <= now {
                remove(i)
                removed += 1
            }
            i += 1
        }
        expirations &+= removed
        return (removed, end)
    }

    /// Removes the entries whose key starts with the bytes `prefix` in slots
    /// `start..<start + limit`.
    /// - Returns: how many it removed, and where the next chunk starts.
    mutating func removeKeys(withPrefix prefix: [UInt8], from start: Int, limit: Int) -> (removed: Int, next: Int) {
        let end = min(slots.count, start + limit)
        var removed = 0
        var i = start
        while i < end {
            if slots[i].queue != .free && slots[i].key.utf8.starts(with: prefix) {
                remove(i)
                removed += 1
            }
            i += 1
        }
        return (removed, end)
    }

    // MARK: S3-FIFO

    private func isExpired(_ i: Int, clock: any CacheClock) -> Bool {
        let expiresAt = slots[i].expiresAt
        return expiresAt != .max && expiresAt <= clock.now()
    }

    /// Evicts until one more entry of `size` bytes fits.
    private mutating func makeRoom(for size: Int, clock: any CacheClock) {
        while count >= limits.maxEntries || bytes + size > limits.maxBytes {
            guard evictOne(clock: clock) else { return }
        }
    }

    /// Removes one entry (S3-FIFO's `evict`); returns `false` when the shard is empty.
    private mutating func evictOne(clock: any CacheClock) -> Bool {
        if small.count > 0
            && (small.count >= limits.smallMaxEntries || small.bytes >= limits.smallMaxBytes || main.count == 0)
        {
            if evictFromSmall(clock: clock) { return true }
        }
        if main.count > 0 {
            evictFromMain(clock: clock)
            return true
        }
        return false
    }

    /// Walks the small queue from its tail: an entry read while it was there moves to the main
    /// queue; the first one that was not is evicted and its hash remembered in the ghost queue.
    /// - Returns: whether it removed an entry (it may only have moved them all to main).
    private mutating func evictFromSmall(clock: any CacheClock) -> Bool {
        while small.tail >= 0 {
            let i = Int(small.tail)
            if isExpired(i, clock: clock) {
                remove(i)
                expirations &+= 1
                return true
            }
            if slots[i].freq > 0 {
                unlink(i)
                slots[i].freq = 0
                pushHead(i, .main)
            } else {
                ghost.insert(hash: slots[i].hash, size: slots[i].size)
                remove(i)
                evictions &+= 1
                return true
            }
        }
        return false
    }

    /// Walks the main queue from its tail: an entry read since it was last looked at goes back
    /// to the head with its counter decremented (reinsertion); the first one that was not is
    /// evicted.
    private mutating func evictFromMain(clock: any CacheClock) {
        while main.tail >= 0 {
            let i = Int(main.tail)
            if isExpired(i, clock: clock) {
                remove(i)
                expirations &+= 1
                return
            }
            if slots[i].freq > 0 {
                slots[i].freq -= 1
                unlink(i)
                pushHead(i, .main)
            } else {
                remove(i)
                evictions &+= 1
                return
            }
        }
    }

    // MARK: Hash index

    /// The slot holding `key`, or -1.
    @inline(__always)
    private func find(_ key: String, hash: Int) -> Int {
        let tag = Bucket.tag(hash)
        var b = Int(tag) & tableMask
        while true {
            let bucket = table[b]
            if bucket.slot < 0 { return -1 }
            if bucket.tag == tag && KeyBytes.equal(slots[Int(bucket.slot)].key, key) { return Int(bucket.slot) }
            b = (b &+ 1) & tableMask
        }
    }

    /// ``find(_:hash:)`` for a read, which will use the entry's value: the value's first bytes
    /// are loaded before the key is compared, so that the two cache misses (the key's bytes and
    /// the value's) overlap instead of following each other.
    @inline(__always)
    private func findForRead(_ key: String, hash: Int) -> Int {
        let tag = Bucket.tag(hash)
        var b = Int(tag) & tableMask
        while true {
            let bucket = table[b]
            if bucket.slot < 0 { return -1 }
            if bucket.tag == tag {
                let i = Int(bucket.slot)
                // Reading the value's count (a plain load of its header, no retain) starts that
                // cache miss now, alongside the key's, instead of after the comparison.
                if slots[i].value.count >= 0 && KeyBytes.equal(slots[i].key, key) { return i }
            }
            b = (b &+ 1) & tableMask
        }
    }

    /// Adds `slot` under `hash`; the key is not in the table. Keeps the load at most one half.
    private mutating func indexInsert(hash: Int, slot: Int32) {
        if (count + 1) * 2 > table.count {
            growTable()
        }
        let tag = Bucket.tag(hash)
        var b = Int(tag) & tableMask
        while table[b].slot >= 0 { b = (b &+ 1) & tableMask }
        table[b] = Bucket(slot: slot, tag: tag)
    }

    /// Removes `slot` (stored under `hash`) by backward-shift deletion, which leaves no
    /// tombstones: later buckets of the probe run move back into the hole.
    private mutating func indexRemove(hash: Int, slot: Int32) {
        var hole = Int(Bucket.tag(hash)) & tableMask
        while table[hole].slot != slot {
            if table[hole].slot < 0 { return }  // not indexed: nothing to do
            hole = (hole &+ 1) & tableMask
        }
        var j = (hole &+ 1) & tableMask
        while table[j].slot >= 0 {
            let home = Int(table[j].tag) & tableMask
            // Move j into the hole if the hole lies on j's probe path (from home to j).
            if (j &- home) & tableMask >= (j &- hole) & tableMask {
                table[hole] = table[j]
                hole = j
            }
            j = (j &+ 1) & tableMask
        }
        table[hole] = .empty
    }

    private mutating func growTable() {
        let old = table
        let size = old.count * 2
        table = Array(repeating: .empty, count: size)
        tableMask = size - 1
        for bucket in old where bucket.slot >= 0 {
            var b = Int(bucket.tag) & tableMask
            while table[b].slot >= 0 { b = (b &+ 1) & tableMask }
            table[b] = bucket
        }
    }

    // MARK: Slab and lists

    private mutating func insert(
        _ key: String, hash: Int, value: [UInt8], size: Int, expiresAt: Int64, queue: QueueID, freq: UInt8
    ) {
        let slot = Slot(
            key: key, value: value, expiresAt: expiresAt, freq: freq, queue: .free, prev: -1, next: -1, hash: hash,
            size: size
        )
        let i: Int
        if freeHead >= 0 {
            i = Int(freeHead)
            freeHead = slots[i].next
            slots[i] = slot
        } else {
            i = slots.count
            slots.append(slot)
        }
        indexInsert(hash: hash, slot: Int32(truncatingIfNeeded: i))
        pushHead(i, queue == .free ? .small : queue)
    }

    /// Unlinks and frees slot `i`, and drops it from the index.
    private mutating func remove(_ i: Int) {
        unlink(i)
        indexRemove(hash: slots[i].hash, slot: Int32(truncatingIfNeeded: i))
        slots[i] = .free(next: freeHead)
        freeHead = Int32(truncatingIfNeeded: i)
    }

    private mutating func pushHead(_ i: Int, _ queue: QueueID) {
        switch queue {
        case .small: Self.pushHead(i, queue, &small, &slots)
        case .main: Self.pushHead(i, queue, &main, &slots)
        case .free: break
        }
    }

    private mutating func unlink(_ i: Int) {
        switch slots[i].queue {
        case .small: Self.unlink(i, &small, &slots)
        case .main: Self.unlink(i, &main, &slots)
        case .free: break
        }
    }

    private static func pushHead(_ i: Int, _ id: QueueID, _ queue: inout FIFO, _ slots: inout [Slot]) {
        let index = Int32(truncatingIfNeeded: i)
        slots[i].queue = id
        slots[i].prev = -1
        slots[i].next = queue.head
        if queue.head >= 0 {
            slots[Int(queue.head)].prev = index
        } else {
            queue.tail = index
        }
        queue.head = index
        queue.count += 1
        queue.bytes += slots[i].size
    }

    private static func unlink(_ i: Int, _ queue: inout FIFO, _ slots: inout [Slot]) {
        let prev = slots[i].prev
        let next = slots[i].next
        if prev >= 0 {
            slots[Int(prev)].next = next
        } else {
            queue.head = next
        }
        if next >= 0 {
            slots[Int(next)].prev = prev
        } else {
            queue.tail = prev
        }
        slots[i].prev = -1
        slots[i].next = -1
        slots[i].queue = .free
        queue.count -= 1
        queue.bytes -= slots[i].size
    }
}
