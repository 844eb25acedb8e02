/// An exact least-recently-used cache of keys, with a fixed capacity: the baseline that an
/// eviction policy's hit ratio is compared with.
///
/// It keeps keys only (no values), in a hash table over a slab threaded by a doubly linked
/// list, so ``access(_:)`` is O(1).
///
/// ```swift
/// var lru = ExactLRU<Int>(capacity: 1_000)
/// for key in trace { _ = lru.access(key) }
/// print(lru.hitRatio)
/// ```
public struct ExactLRU<Key: Hashable> {
    /// The most keys it holds.
    public let capacity: Int
    private var index: [Key: Int] = [:]
    private var keys: [Key] = []
    private var prev: [Int] = []
    private var next: [Int] = []
    /// Most recently used.
    private var head = -1
    /// Least recently used: the next to go.
    private var tail = -1
    /// Accesses that found their key.
    public private(set) var hits = 0
    /// Accesses that did not.
    public private(set) var misses = 0

    /// Creates an empty LRU.
    /// - Parameter capacity: the most keys to hold; at least 1.
    public init(capacity: Int) {
        precondition(capacity >= 1, "ExactLRU needs a capacity of at least 1, got \(capacity)")
        self.capacity = capacity
        index.reserveCapacity(capacity)
    }

    /// How many keys it holds.
    public var count: Int { index.count }

    /// `hits / (hits + misses)`, or 0 before the first access.
    public var hitRatio: Double {
        hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses)
    }

    /// Whether `key` is held, without changing the order.
    public func contains(_ key: Key) -> Bool { index[key] != nil }

    /// Reads `key`: on a hit it becomes the most recently used; on a miss it is inserted,
    /// evicting the least recently used key if full. Returns whether it was a hit.
    @discardableResult
    public mutating func access(_ key: Key) -> Bool {
        if let slot = index[key] {
            hits += 1
            moveToFront(slot)
            return true
        }
        misses += 1
        insert(key)
        return false
    }

    /// Inserts `key` as the most recently used (or refreshes it), evicting if full.
    public mutating func insert(_ key: Key) {
        if let slot = index[key] {
            moveToFront(slot)
            return
        }
        let slot: Int
        if index.count >= capacity {
            slot = tail
            unlink(slot)
            index.removeValue(forKey: keys[slot])
            keys[slot] = key
        } else {
            slot = keys.count
            keys.append(key)
            prev.append(-1)
            next.append(-1)
        }
        index[key] = slot
        pushFront(slot)
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        pushFront(slot)
    }

    private mutating func pushFront(_ slot: Int) {
        prev[slot] = -1
        next[slot] = head
        if head >= 0 { prev[head] = slot } else { tail = slot }
        head = slot
    }

    private mutating func unlink(_ slot: Int) {
        let p = prev[slot]
        let n = next[slot]
        if p >= 0 { next[p] = n } else { head = n }
        if n >= 0 { prev[n] = p } else { tail = p }
    }
}

extension ExactLRU: Sendable where Key: Sendable {}
