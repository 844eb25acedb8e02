import CLibmemcached
import Caching

/// What a connection thread works with: its libmemcached handle, its text-protocol reader and its
/// server's shared state.
/// It runs the cache operations as sequences of memcached commands.
///
/// Only the connection's own thread touches it.
final class ConnectionContext {
    /// The binary-protocol handle: writes, deletes, counters, CAS, and the reads they need.
    let handle: MemcachedHandle
    /// The text-protocol connection that serves plain reads (`get`, `get(_ keys:)`), with its
    /// own reply parser (see ``MemcachedTextReader``).
    ///
    /// libmemcached sends a binary multi-get as two writes (the GETKQs, then the NOOP that ends
    /// them), so the server often wakes and answers twice: a binary multi-get of one to three
    /// keys takes about 1.6 times as long as one text `get k1 k2 k3`, which is one write and
    /// one answer. Reads need neither CAS nor the binary-only commands, so they go this way.
    let reader: MemcachedTextReader
    /// Both links, for health reporting.
    let handles: [any MemcachedLink]
    let state: ServerState
    let generationCacheTTL: Duration

    init(handle: MemcachedHandle, reader: MemcachedTextReader, state: ServerState, generationCacheTTL: Duration) {
        self.handle = handle
        self.reader = reader
        handles = [handle, reader]
        self.state = state
        self.generationCacheTTL = generationCacheTTL
    }

    // MARK: Errors

    /// Runs one memcached command, turning its failure into a ``CacheError``.
    func io<T>(_ what: String, key: String?, _ body: () throws(MemcachedStatus) -> T) throws(CacheError) -> T {
        do {
            return try body()
        } catch {
            throw cacheError(error, what, key: key)
        }
    }

    func cacheError(_ status: MemcachedStatus, _ what: String, key: String?) -> CacheError {
        let server = state.server
        let keyPart = key.map { " of key \(String(reflecting: String($0.prefix(80))))" } ?? ""
        switch status.code {
        case MEMCACHED_E2BIG:
            return CacheError(.valueTooLarge, "memcached server \(server) refused the value\(keyPart) as larger than its item size limit; store less, or start memcached with a larger -I and raise maxValueSize")
        case MEMCACHED_TIMEOUT:
            return CacheError(.timeout, "memcached server \(server) did not answer \(what)\(keyPart) in time (\(status.message)); it is marked down and retried later")
        case MEMCACHED_MEMORY_ALLOCATION_FAILURE, MEMCACHED_SERVER_MEMORY_ALLOCATION_FAILURE:
            return CacheError(.serverError, "memcached server \(server) is out of memory for \(what)\(keyPart): \(status.message)")
        default:
            if status.isConnectionFailure {
                return CacheError(.connectionFailed, "memcached server \(server) failed \(what)\(keyPart): \(status.message); it is marked down and retried later")
            }
            return CacheError(.serverError, "memcached server \(server) refused \(what)\(keyPart): \(status.message)")
        }
    }

    // MARK: Generations

    /// Where a key's value lives now, and what is there.
    struct Resolved {
        /// The physical key, or `nil` when a namespace generation is missing (so no value can exist).
        var dataKey: MemcachedKey?
        /// The item found there, if any (possibly past its recorded expiry).
        var item: MemcachedItem?
    }

    /// Reads the current namespace generations of `plans` and their values, in one round trip
    /// when the remembered generations are still current (two when another process cleared a
    /// namespace, or on the first use of a namespace).
    ///
    /// - Parameter createGenerations: create missing generation counters (for operations that
    ///   are about to write); otherwise a missing counter means the key holds nothing.
    /// - Parameter deduplicate: ask for each physical key once (for merged requests, where many
    ///   tasks often want the same key); a lone request asks for its keys as they are.
    /// - Parameter via: the link to read with (the text-protocol ``reader`` for plain reads).
    func resolve(
        _ plans: [KeyPlan], createGenerations: Bool, deduplicate: Bool = false, via reading: (any MemcachedLink)? = nil, for what: String
    ) throws(CacheError) -> [Resolved] {
        let reading: any MemcachedLink = reading ?? handle
        let keyName = plans.count == 1 ? plans[0].name : nil
        // Group the plans by their namespace levels: neighbours in a batch usually share them
        // (and the same array), so the generation work below is done once per group.
        struct Group {
            var positions: [Int]          // into `generationKeys`
            var rememberedToken: UInt64?  // from the generations this process remembers
            var freshToken: UInt64?       // from the generations just read
            var complete = false          // every fresh generation is known
        }
        var generationKeys: [MemcachedKey] = []
        var generationIndex: [MemcachedKey: Int] = [:]
        var groups: [Group] = []
        var groupOf = [Int](repeating: 0, count: plans.count)
        var previousKeys: [MemcachedKey]?
        for (index, plan) in plans.enumerated() {
            if let previousKeys, !groups.isEmpty, plan.generationKeys == previousKeys {
                groupOf[index] = groups.count - 1
                continue
            }
            previousKeys = plan.generationKeys
            var positions: [Int] = []
            positions.reserveCapacity(plan.generationKeys.count)
            for key in plan.generationKeys {
                if let position = generationIndex[key] {
                    positions.append(position)
                } else {
                    generationIndex[key] = generationKeys.count
                    positions.append(generationKeys.count)
                    generationKeys.append(key)
                }
            }
            groupOf[index] = groups.count
            groups.append(Group(positions: positions))
        }
        let remembered = state.generations(generationKeys).map { $0?.value }
        func token(_ positions: [Int], _ values: [UInt64?]) -> UInt64?? {
            if positions.isEmpty { return .some(nil) }
            var generations: [UInt64] = []
            generations.reserveCapacity(positions.count)
            for position in positions {
                guard let value = values[position] else { return nil }
                generations.append(value)
            }
            return .some(MemcachedKeySpace.token(generations))
        }
        var guessable = [Bool](repeating: false, count: groups.count)
        for index in groups.indices {
            if let rememberedToken = token(groups[index].positions, remembered) {
                groups[index].rememberedToken = rememberedToken
                guessable[index] = true
            }
        }

        // Guess each physical key from the remembered generations, and check them in the same read.
        var request = generationKeys
        request.reserveCapacity(generationKeys.count + plans.count)
        var guesses = [MemcachedKey?](repeating: nil, count: plans.count)
        var guessPositions = [Int](repeating: -1, count: plans.count)
        var requestIndex: [MemcachedKey: Int] = [:]
        var heads = [[UInt8]?](repeating: nil, count: groups.count)
        for (index, plan) in plans.enumerated() where guessable[groupOf[index]] {
            let group = groupOf[index]
            let head = heads[group] ?? KeyPlan.head(token: groups[group].rememberedToken)
            heads[group] = head
            let guess = plan.dataKey(head: head)
            guesses[index] = guess
            if !deduplicate {
                guessPositions[index] = request.count
                request.append(guess)
            } else if let position = requestIndex[guess] {
                guessPositions[index] = position
            } else {
                requestIndex[guess] = request.count
                guessPositions[index] = request.count
                request.append(guess)
            }
        }
        let items = try io(what, key: keyName) { () throws(MemcachedStatus) in try reading.get(request) }

        var fresh: [UInt64?] = generationKeys.indices.map { items[$0].flatMap { MemcachedKeySpace.parseCounter($0.value) } }
        if createGenerations {
            for index in fresh.indices where fresh[index] == nil {
                fresh[index] = try createGeneration(generationKeys[index], overwrite: items[index] != nil)
            }
        }
        if !generationKeys.isEmpty {
            state.remember(generationKeys.indices.map { (generationKeys[$0], fresh[$0]) })
        }
        for index in groups.indices {
            if let freshToken = token(groups[index].positions, fresh) {
                groups[index].freshToken = freshToken
                groups[index].complete = true
            }
        }

        var resolved: [Resolved] = []
        resolved.reserveCapacity(plans.count)
        var secondRound: [Int] = []
        for (index, plan) in plans.enumerated() {
            let group = groups[groupOf[index]]
            guard group.complete else {
                resolved.append(Resolved(dataKey: nil, item: nil))
                continue
            }
            if let guess = guesses[index], group.freshToken == group.rememberedToken {
                resolved.append(Resolved(dataKey: guess, item: items[guessPositions[index]]))
            } else {
                resolved.append(Resolved(dataKey: plan.dataKey(token: group.freshToken), item: nil))
                secondRound.append(index)
            }
        }
        if !secondRound.isEmpty {
            var keys: [MemcachedKey] = []
            var positions: [MemcachedKey: Int] = [:]
            for index in secondRound {
                if let key = resolved[index].dataKey, positions[key] == nil {
                    positions[key] = keys.count
                    keys.append(key)
                }
            }
            let more = try io(what, key: keyName) { () throws(MemcachedStatus) in try reading.get(keys) }
            for index in secondRound {
                if let key = resolved[index].dataKey, let position = positions[key] { resolved[index].item = more[position] }
            }
        }
        return resolved
    }

    /// A fresh random generation: new counters start anywhere in 1...2⁶², so a counter that
    /// memcached evicted and this backend creates again never repeats an old generation.
    private static func randomGeneration() -> UInt64 {
        UInt64.random(in: 1...(1 << 62))
    }

    /// Creates the generation counter `key` (or replaces it when it holds something that is not
    /// a counter) and returns its value.
    private func createGeneration(_ key: MemcachedKey, overwrite: Bool) throws(CacheError) -> UInt64 {
        if !overwrite {
            do {
                let initial = Self.randomGeneration()
                if let value = try handle.arithmetic(.incrementWithInitial(0, initial: initial, exptime: 0), key: key) {
                    return value
                }
            } catch {
                if error.code == MEMCACHED_NOTSTORED {
                    // Another connection or client created it between our read and this call
                    // (memcached answers the losing INCR-with-initial with NOT_STORED): use theirs.
                    let current = try io("reading a namespace generation", key: nil) { () throws(MemcachedStatus) in
                        try handle.arithmetic(.increment(0), key: key)
                    }
                    if let current { return current }
                } else {
                    guard error.code == MEMCACHED_UNKNOWN_READ_FAILURE else { throw cacheError(error, "creating a namespace generation", key: nil) }
                    handle.forgiveArithmeticFailure()
                }
            }
        }
        let value = Self.randomGeneration()
        _ = try io("replacing a damaged namespace generation", key: nil) { () throws(MemcachedStatus) in
            try handle.store(.set, key: key, value: Array(String(value).utf8), expiry: MemcachedExpiry.Plan(exptime: 0, flags: 0))
        }
        return value
    }

    /// The generations to write `plans` with: remembered ones younger than
    /// `generationCacheTTL`, the others read (and created when missing) in one round trip.
    func generationsForWrite(_ plans: [KeyPlan], for what: String) throws(CacheError) -> [MemcachedKey: UInt64] {
        var keys: [MemcachedKey] = []
        var seen = Set<MemcachedKey>()
        for plan in plans {
            for key in plan.generationKeys where seen.insert(key).inserted { keys.append(key) }
        }
        if keys.isEmpty { return [:] }
        var result: [MemcachedKey: UInt64] = [:]
        var needed: [MemcachedKey] = []
        let now = ContinuousClock.now
        for (key, remembered) in zip(keys, state.generations(keys)) {
            if let remembered, let value = remembered.value, now - remembered.readAt < generationCacheTTL {
                result[key] = value
            } else {
                needed.append(key)
            }
        }
        if needed.isEmpty { return result }
        let items = try io(what, key: plans.count == 1 ? plans[0].name : nil) { () throws(MemcachedStatus) in try handle.get(needed) }
        var learned: [(key: MemcachedKey, value: UInt64?)] = []
        for (key, item) in zip(needed, items) {
            let value: UInt64
            if let item, let parsed = MemcachedKeySpace.parseCounter(item.value) {
                value = parsed
            } else {
                value = try createGeneration(key, overwrite: item != nil)
            }
            result[key] = value
            learned.append((key, value))
        }
        state.remember(learned)
        return result
    }

    /// The physical key of `plan` under `generations`.
    static func dataKey(_ plan: KeyPlan, _ generations: [MemcachedKey: UInt64]) -> MemcachedKey {
        if plan.generationKeys.isEmpty { return plan.dataKey(token: nil) }
        return plan.dataKey(token: MemcachedKeySpace.token(plan.generationKeys.map { generations[$0] ?? 0 }))
    }

    // MARK: Operations

    /// The live entries of `plans`, aligned with them.
    func read(_ plans: [KeyPlan], deduplicate: Bool = false) throws(CacheError) -> [CacheEntry?] {
        if plans.count == 1 { return [try readOne(plans[0])] }
        if !deduplicate, let entries = try readOneNamespace(plans) { return entries }
        let resolved = try resolve(plans, createGenerations: false, deduplicate: deduplicate, via: reader, for: "a read")
        let now = MemcachedExpiry.now()
        return resolved.map { resolved in
            guard let item = resolved.item, let remaining = MemcachedExpiry.remaining(flags: item.flags, now: now) else { return nil }
            return CacheEntry(value: item.value, ttl: remaining)
        }
    }

    /// Remembers the generation counters read at the start of `items` (one per key of
    /// `generationKeys`) and returns their token, or `nil` when one of them is missing.
    private func learnGenerations(_ generationKeys: [MemcachedKey], from items: [MemcachedItem?]) -> UInt64? {
        var fresh: [UInt64] = []
        fresh.reserveCapacity(generationKeys.count)
        var learned: [(key: MemcachedKey, value: UInt64?)] = []
        learned.reserveCapacity(generationKeys.count)
        for (index, key) in generationKeys.enumerated() {
            let value = items[index].flatMap { MemcachedKeySpace.parseCounter($0.value) }
            learned.append((key, value))
            if let value { fresh.append(value) }
        }
        state.remember(learned)
        return fresh.count == generationKeys.count ? MemcachedKeySpace.token(fresh) : nil
    }

    /// The live entries of a batch whose keys all have the same namespace levels (the usual
    /// batch) and whose generations this process remembers: ``resolve(_:createGenerations:deduplicate:via:for:)``
    /// without its grouping and indexing, and without a key object per key (the physical keys
    /// are written straight into the request). Same round trips and the same answers; `nil`
    /// when the batch does not qualify, before any I/O, or when the generations moved, after
    /// learning them (the general path then reads under the new ones).
    private func readOneNamespace(_ plans: [KeyPlan]) throws(CacheError) -> [CacheEntry?]? {
        guard let first = plans.first else { return [] }
        let generationKeys = first.generationKeys
        for plan in plans.dropFirst() where plan.generationKeys != generationKeys { return nil }
        var rememberedToken: UInt64?
        if !generationKeys.isEmpty {
            var values: [UInt64] = []
            values.reserveCapacity(generationKeys.count)
            for remembered in state.generations(generationKeys) {
                guard let value = remembered?.value else { return nil }
                values.append(value)
            }
            rememberedToken = MemcachedKeySpace.token(values)
        }
        let head = KeyPlan.head(token: rememberedToken)
        let items = try io("a read", key: nil) { () throws(MemcachedStatus) in
            try reader.get(count: generationKeys.count + plans.count) { list in
                for key in generationKeys {
                    list.beginKey()
                    list.bytes.append(contentsOf: key.bytes)
                    list.endKey()
                }
                for plan in plans {
                    list.beginKey()
                    plan.appendDataKey(head: head, to: &list.bytes)
                    list.endKey()
                }
            }
        }
        if !generationKeys.isEmpty {
            // A missing generation: no value can exist under it.
            guard let freshToken = learnGenerations(generationKeys, from: items) else {
                return [CacheEntry?](repeating: nil, count: plans.count)
            }
            // Moved since this process last saw them: read again under the new ones.
            guard freshToken == rememberedToken else { return nil }
        }
        let now = MemcachedExpiry.now()
        var entries: [CacheEntry?] = []
        entries.reserveCapacity(plans.count)
        for item in items[generationKeys.count...] {
            if let item, let remaining = MemcachedExpiry.remaining(flags: item.flags, now: now) {
                entries.append(CacheEntry(value: item.value, ttl: remaining))
            } else {
                entries.append(nil)
            }
        }
        return entries
    }

    /// The live entry of one key: ``resolve(_:createGenerations:deduplicate:via:for:)`` for a
    /// single plan, without the grouping and indexing a batch needs (a third of the
    /// allocations of a read). Same round trips and the same answers.
    func readOne(_ plan: KeyPlan) throws(CacheError) -> CacheEntry? {
        let generationKeys = plan.generationKeys
        var rememberedToken: UInt64?
        var guessable = true
        if !generationKeys.isEmpty {
            var values: [UInt64] = []
            values.reserveCapacity(generationKeys.count)
            for remembered in state.generations(generationKeys) {
                guard let value = remembered?.value else {
                    guessable = false
                    break
                }
                values.append(value)
            }
            if guessable { rememberedToken = MemcachedKeySpace.token(values) }
        }
        // Guess the physical key from the remembered generations and check them in the same read.
        var request = generationKeys
        var guess: MemcachedKey?
        if guessable {
            let key = plan.dataKey(token: rememberedToken)
            guess = key
            request.append(key)
        }
        let items = try io("a read", key: plan.name) { () throws(MemcachedStatus) in try reader.get(request) }
        var item: MemcachedItem?
        if generationKeys.isEmpty {
            item = items[0]
        } else {
            // A missing generation: no value can exist under it.
            guard let freshToken = learnGenerations(generationKeys, from: items) else { return nil }
            if guess != nil, freshToken == rememberedToken {
                item = items[generationKeys.count]
            } else {
                let key = plan.dataKey(token: freshToken)
                item = try io("a read", key: plan.name) { () throws(MemcachedStatus) in try reader.get([key]) }[0]
            }
        }
        guard let item, let remaining = MemcachedExpiry.remaining(flags: item.flags, now: MemcachedExpiry.now()) else { return nil }
        return CacheEntry(value: item.value, ttl: remaining)
    }

    /// Stores every item (SET, one round trip each); stops at the first failure.
    func write(_ items: [(plan: KeyPlan, value: [UInt8])], ttl: Duration?) throws(CacheError) {
        let generations = try generationsForWrite(items.map(\.plan), for: "a write")
        let expiry = MemcachedExpiry.plan(ttl, now: MemcachedExpiry.now())
        for (plan, value) in items {
            let key = Self.dataKey(plan, generations)
            _ = try io("a write", key: plan.name) { () throws(MemcachedStatus) in try handle.store(.set, key: key, value: value, expiry: expiry) }
        }
    }

    /// Deletes `plans`; returns how many held a live entry.
    func delete(_ plans: [KeyPlan]) throws(CacheError) -> Int {
        let resolved = try resolve(plans, createGenerations: false, for: "a delete")
        let now = MemcachedExpiry.now()
        var count = 0
        for (plan, resolved) in zip(plans, resolved) {
            guard let key = resolved.dataKey, let item = resolved.item else { continue }
            let deleted = try io("a delete", key: plan.name) { () throws(MemcachedStatus) in try handle.delete(key) }
            if deleted, MemcachedExpiry.remaining(flags: item.flags, now: now) != nil { count += 1 }
        }
        return count
    }

    /// How many times an operation retries when another writer changed the key under it.
    static let maxAttempts = 8

    /// ADD: stores `value` if `plan` holds no live entry.
    func add(_ plan: KeyPlan, value: [UInt8], ttl: Duration?) throws(CacheError) -> Bool {
        for _ in 0..<Self.maxAttempts {
            guard let resolved = try resolve([plan], createGenerations: true, for: "an add").first,
                  let key = resolved.dataKey else { break }
            let now = MemcachedExpiry.now()
            let expiry = MemcachedExpiry.plan(ttl, now: now)
            if let item = resolved.item {
                if MemcachedExpiry.remaining(flags: item.flags, now: now) != nil { return false }
                // Expired by its recorded expiry, but memcached still holds it: replace it if unchanged.
                let rc = try io("an add", key: plan.name) { () throws(MemcachedStatus) in
                    try handle.store(.cas(item.cas), key: key, value: value, expiry: expiry)
                }
                if rc == MEMCACHED_SUCCESS { return true }
                continue
            }
            let rc = try io("an add", key: plan.name) { () throws(MemcachedStatus) in
                try handle.store(.add, key: key, value: value, expiry: expiry)
            }
            return rc == MEMCACHED_SUCCESS
        }
        throw CacheError(.serverError, "add of key \(String(reflecting: String(plan.name.prefix(80)))) kept racing with other writers on memcached server \(state.server); try again")
    }

    /// INCR/DECR with the contract of ``CacheBackend/increment(_:by:ttl:)``.
    func increment(_ plan: KeyPlan, by delta: Int64, ttl: Duration?) throws(CacheError) -> Int64 {
        let name = String(reflecting: String(plan.name.prefix(80)))
        func notANumber() -> CacheError {
            CacheError(.notANumber, "the value at key \(name) is not a decimal integer memcached can increment; delete it or use another key")
        }
        for _ in 0..<Self.maxAttempts {
            guard let resolved = try resolve([plan], createGenerations: true, for: "an increment").first,
                  let key = resolved.dataKey else { break }
            let now = MemcachedExpiry.now()
            if let item = resolved.item, MemcachedExpiry.remaining(flags: item.flags, now: now) != nil {
                guard let current = MemcachedKeySpace.parseCounter(item.value), current <= UInt64(Int64.max) else { throw notANumber() }
                if delta > 0 && Int64(current) > Int64.max - delta {
                    throw CacheError(.notANumber, "incrementing \(current) by \(delta) at key \(name) overflows Int64")
                }
                let command: MemcachedHandle.Arithmetic = delta >= 0 ? .increment(UInt64(delta)) : .decrement(delta.magnitude)
                let value: UInt64?
                do {
                    value = try handle.arithmetic(command, key: key)
                } catch {
                    if error.code == MEMCACHED_UNKNOWN_READ_FAILURE {
                        // The server's "non-numeric value" answer: the key changed under us.
                        handle.forgiveArithmeticFailure()
                        throw notANumber()
                    }
                    throw cacheError(error, "an increment", key: plan.name)
                }
                guard let value else { continue }   // deleted or expired meanwhile
                guard value <= UInt64(Int64.max) else {
                    throw CacheError(.notANumber, "the counter at key \(name) went past Int64.max (\(value))")
                }
                return Int64(value)
            }
            // Missing, or expired by its recorded expiry: the counter starts at 0.
            let start = UInt64(max(delta, 0))
            let expiry = MemcachedExpiry.plan(ttl, now: now)
            if let item = resolved.item {
                let rc = try io("an increment", key: plan.name) { () throws(MemcachedStatus) in
                    try handle.store(.cas(item.cas), key: key, value: Array(String(start).utf8), expiry: expiry)
                }
                if rc == MEMCACHED_SUCCESS { return Int64(start) }
                continue
            }
            if ttl == nil {
                // Binary INCR/DECR with an initial value: creates or adds atomically; flags 0 = never expires.
                let command: MemcachedHandle.Arithmetic = delta >= 0
                    ? .incrementWithInitial(UInt64(delta), initial: start, exptime: 0)
                    : .decrementWithInitial(delta.magnitude, initial: start, exptime: 0)
                let value: UInt64?
                do {
                    value = try handle.arithmetic(command, key: key)
                } catch {
                    if error.code == MEMCACHED_UNKNOWN_READ_FAILURE {
                        handle.forgiveArithmeticFailure()
                        throw notANumber()
                    }
                    throw cacheError(error, "an increment", key: plan.name)
                }
                guard let value else { continue }
                guard value <= UInt64(Int64.max) else {
                    throw CacheError(.notANumber, "the counter at key \(name) went past Int64.max (\(value))")
                }
                return Int64(value)
            }
            // With a TTL, create it with ADD so that the item records its expiry in its flags
            // (INCR with an initial value would create it with flags 0, "never expires").
            let rc = try io("an increment", key: plan.name) { () throws(MemcachedStatus) in
                try handle.store(.add, key: key, value: Array(String(start).utf8), expiry: expiry)
            }
            if rc == MEMCACHED_SUCCESS { return Int64(start) }
            // Another writer created it first: increment theirs.
        }
        throw CacheError(.serverError, "increment of key \(name) kept racing with other writers on memcached server \(state.server); try again")
    }

    /// Gives `plan` a new TTL by rewriting its item with CAS (TOUCH cannot change the expiry
    /// recorded in the item's flags).
    func touch(_ plan: KeyPlan, ttl: Duration?) throws(CacheError) -> Bool {
        for _ in 0..<Self.maxAttempts {
            guard let resolved = try resolve([plan], createGenerations: false, for: "a touch").first,
                  let key = resolved.dataKey, let item = resolved.item else { return false }
            let now = MemcachedExpiry.now()
            if MemcachedExpiry.remaining(flags: item.flags, now: now) == nil { return false }
            let rc = try io("a touch", key: plan.name) { () throws(MemcachedStatus) in
                try handle.store(.cas(item.cas), key: key, value: item.value, expiry: MemcachedExpiry.plan(ttl, now: now))
            }
            switch rc {
            case MEMCACHED_SUCCESS: return true
            case MEMCACHED_NOTFOUND: return false
            default: continue   // changed meanwhile: read it again
            }
        }
        throw CacheError(.serverError, "touch of key \(String(reflecting: String(plan.name.prefix(80)))) kept racing with other writers on memcached server \(state.server); try again")
    }

    /// Bumps the generation of the namespace whose counter is `generationKey`.
    func bumpGeneration(_ generationKey: MemcachedKey, prefix: String) throws(CacheError) {
        var value: UInt64?
        do {
            value = try handle.arithmetic(.incrementWithInitial(1, initial: Self.randomGeneration(), exptime: 0), key: generationKey)
        } catch {
            // NOT_STORED: another client created the counter at the same moment; a fresh random
            // generation (below) is as good a bump as any.
            if error.code != MEMCACHED_NOTSTORED {
                guard error.code == MEMCACHED_UNKNOWN_READ_FAILURE else { throw cacheError(error, "clear(prefix:)", key: prefix) }
                handle.forgiveArithmeticFailure()
            }
        }
        if value == nil {
            value = try createGeneration(generationKey, overwrite: true)
        }
        state.remember([(generationKey, value)])
    }
}
