/// Keyed and unkeyed containers: key tokens and names, the entry lookup (at the cursor, then
/// by an index of the entries), and the bookkeeping that checks every fingerprinted field was read.
extension BinaryReader {
    // MARK: Key tokens

    func readToken(_ p: inout Int, fingerprinted: Bool) throws -> Token {
        let start = p
        let b = try byte(at: p)
        p &+= 1
        if b < BinaryFormat.tokenLimit {
            if fingerprinted { return .fingerprint(b) }
            let id = Int(b)
            guard id < nameStarts.count else { throw corrupt("unknown key name id \(id)", at: start) }
            return .name(start: nameStarts[id], length: nameLengths[id])
        }
        switch b {
        case BinaryFormat.newName:
            let length = try readLength(&p)
            let nameStart = p
            p += length
            try registerName(start: nameStart, length: length)
            return .name(start: nameStart, length: length)
        case BinaryFormat.nameReference:
            let id = try readVarint(&p)
            guard id < UInt64(nameStarts.count) else { throw corrupt("unknown key name id \(id)", at: start) }
            return .name(start: nameStarts[Int(id)], length: nameLengths[Int(id)])
        case BinaryFormat.intKey:
            return .int(BinaryFormat.unzigzag(try readVarint(&p)))
        default:
            throw corrupt("invalid key token 0x\(String(b, radix: 16))", at: start)
        }
    }

    /// Gives a newly met key name the next id. Names are met in the order they were written,
    /// because the reader only ever moves forward by parsing; meeting one again is a lookup.
    private func registerName(start: Int, length: Int) throws {
        guard let last = nameStarts.last, start <= last else {
            nameStarts.append(start)
            nameLengths.append(length)
            return
        }
        var low = 0
        var high = nameStarts.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if nameStarts[mid] == start {
                guard nameLengths[mid] == length else { break }
                return
            }
            if nameStarts[mid] < start { low = mid + 1 } else { high = mid - 1 }
        }
        throw corrupt("a key name table entry is inconsistent", at: start)
    }

    @inline(__always)
    func nameEquals(_ name: String, start: Int, length: Int) -> Bool {
        let utf8 = name.utf8
        guard utf8.count == length else { return false }
        let stored = bytes[start..<(start + length)]
        return utf8.withContiguousStorageIfAvailable { $0.elementsEqual(stored) } ?? utf8.elementsEqual(stored)
    }

    @inline(__always)
    func intKeyEquals<K: CodingKey>(_ key: K, _ name: String, _ value: Int64) -> Bool {
        if let int = key.intValue, Int64(int) != value { return false }
        return name == String(value)
    }

    // MARK: Keyed containers

    func openKeyed(at position: Int, searchFrom mark: Int) throws -> Int {
        var i = frames.count - 1
        while i >= mark {
            if frames[i].kind == .keyed && frames[i].valuePosition == position { return i }
            i -= 1
        }
        var p = position
        let tag = try valueTag(&p)
        let count: Int
        let fingerprinted: Bool
        var salt: UInt8 = 0
        var hasNamed = false
        switch tag {
        case 0x80...0x8F:
            count = Int(tag & 0x0F)
            fingerprinted = true
        case 0x90...0x9F:
            count = Int(tag & 0x0F)
            fingerprinted = false
        case BinaryFormat.fingerprintedMap:
            count = try readCount(&p, minimumBytes: 2)
            let flags = try byte(at: p)
            p += 1
            salt = flags & BinaryFormat.maxSalt
            hasNamed = flags & BinaryFormat.hasNamedFlag != 0
            fingerprinted = true
        case BinaryFormat.namedMap:
            count = try readCount(&p, minimumBytes: 2)
            fingerprinted = false
        default:
            throw mismatch([String: Any].self, expected: "a keyed container", found: tag, at: position)
        }
        guard count <= (bytes.count - p) / 2 else { throw truncated(p) }
        var frame = Frame(
            kind: .keyed, serial: nextSerial, valuePosition: position, count: count, entriesStart: p,
            fingerprinted: fingerprinted, salt: salt, hasNamed: hasNamed, blob: false, slotBase: slots.count,
            pathEnd: path.count
        )
        if count == 0 { frame.end = p }
        nextSerial &+= 1
        frames.append(frame)
        let frameIndex = frames.count - 1
        if count > Self.unprovenSlotLimit {
            // Nested containers each claiming most of the remaining input would otherwise make
            // the slots grow with depth times input size: parse the entries first, so that
            // slots are only ever made for entries that exist.
            try buildIndex(frameIndex)
        }
        slots.append(contentsOf: repeatElement(0, count: count))
        return frameIndex
    }

    /// Keyed containers of at most this many entries get their slots before their entries are
    /// parsed; this bounds that memory by `maxDepth` times this limit.
    static let unprovenSlotLimit = 64

    @inline(__always)
    func validate(_ frame: Int, _ serial: Int) throws {
        guard frame >= 0, frame < frames.count, frames[frame].serial == serial else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: path,
                    debugDescription: "a decoding container was used after the value it belongs to was decoded"
                )
            )
        }
    }

    /// Finds the entry for `key`: first at the container's cursor (the usual case, where a
    /// type decodes its keys in the order it encoded them), else by searching every entry.
    func lookup<K: CodingKey>(_ key: K, in frameIndex: Int) throws -> Entry? {
        let name = key.stringValue
        var hash: UInt64 = 0
        var hashed = false
        let frame = frames[frameIndex]
        if frame.cursorIndex < frame.count {
            var p = frame.cursorPosition
            switch try readToken(&p, fingerprinted: frame.fingerprinted) {
            case .fingerprint(let fingerprint):
                // With named entries in the container, `key` may be one of them: search.
                if !frame.hasNamed {
                    hash = BinaryFormat.keyHash(name)
                    hashed = true
                    if fingerprint == BinaryFormat.fingerprint(hash, salt: frame.salt) {
                        return Entry(
                            index: frame.cursorIndex, valuePosition: p, sequential: true,
                            check: BinaryFormat.check(hash), fingerprinted: true
                        )
                    }
                }
            case .name(let start, let length):
                if nameEquals(name, start: start, length: length) {
                    return Entry(index: frame.cursorIndex, valuePosition: p, sequential: true, check: 0, fingerprinted: false)
                }
            case .int(let value):
                if intKeyEquals(key, name, value) {
                    return Entry(index: frame.cursorIndex, valuePosition: p, sequential: true, check: 0, fingerprinted: false)
                }
            }
        }
        try buildIndex(frameIndex)
        let indexed = frames[frameIndex]
        var candidate: Entry?
        for j in 0..<indexed.count {
            var p = index[indexed.indexBase + j]
            switch try readToken(&p, fingerprinted: indexed.fingerprinted) {
            case .fingerprint(let fingerprint):
                if candidate == nil {
                    if !hashed {
                        hash = BinaryFormat.keyHash(name)
                        hashed = true
                    }
                    if fingerprint == BinaryFormat.fingerprint(hash, salt: indexed.salt) {
                        candidate = Entry(
                            index: j, valuePosition: p, sequential: false,
                            check: BinaryFormat.check(hash), fingerprinted: true
                        )
                        // Fingerprints are distinct within a container; only a named entry
                        // could still be a better match.
                        if !indexed.hasNamed { return candidate }
                    }
                }
            case .name(let start, let length):
                if nameEquals(name, start: start, length: length) {
                    return Entry(index: j, valuePosition: p, sequential: false, check: 0, fingerprinted: false)
                }
            case .int(let value):
                if intKeyEquals(key, name, value) {
                    return Entry(index: j, valuePosition: p, sequential: false, check: 0, fingerprinted: false)
                }
            }
        }
        return candidate
    }

    /// Records the positions of every entry of a keyed container, and where it ends.
    func buildIndex(_ frameIndex: Int) throws {
        guard frames[frameIndex].indexBase < 0 else { return }
        let base = index.count
        let fingerprinted = frames[frameIndex].fingerprinted
        var p = frames[frameIndex].entriesStart
        for _ in 0..<frames[frameIndex].count {
            index.append(p)
            _ = try readToken(&p, fingerprinted: fingerprinted)
            p = try skipValue(p)
        }
        frames[frameIndex].indexBase = base
        frames[frameIndex].end = p
    }

    /// Marks an entry as read by a key with the given check.
    @inline(__always)
    func record(_ entry: Entry, in frameIndex: Int) throws {
        let s = frames[frameIndex].slotBase &+ entry.index
        let slot = slots[s]
        if slot & Self.matched == 0 {
            slots[s] = slot | Self.matched | UInt64(entry.check)
            if entry.fingerprinted {
                fingerprintCount &+= 1
                fingerprintSum &+= entry.check
            }
        } else if entry.fingerprinted && UInt32(truncatingIfNeeded: slot) != entry.check {
            throw corrupt(
                "two different keys were read from one fingerprinted field; the bytes were written by another type",
                at: entry.valuePosition
            )
        }
    }

    /// Moves the cursor past an entry found at the cursor, once its value's end is known.
    @inline(__always)
    func advance(_ frameIndex: Int, past entry: Entry, to end: Int) {
        guard entry.sequential, frames[frameIndex].cursorIndex == entry.index else { return }
        frames[frameIndex].cursorIndex = entry.index &+ 1
        frames[frameIndex].cursorPosition = end
        if entry.index &+ 1 == frames[frameIndex].count { frames[frameIndex].end = end }
    }

    func keyNotFound<K: CodingKey>(_ key: K, in frameIndex: Int) -> DecodingError {
        .keyNotFound(
            key,
            .init(
                codingPath: pathPrefix(frames[frameIndex].pathEnd),
                debugDescription: "no value for the key \"\(key.stringValue)\""
            )
        )
    }

    /// Finds, records and decodes the value of `key` with `read`, which reads from a position
    /// and returns the end of what it read.
    @inline(__always)
    func decodeEntry<K: CodingKey, R>(
        _ key: K, _ frameIndex: Int, _ serial: Int, _ read: (inout Int) throws -> R
    ) throws -> R {
        try validate(frameIndex, serial)
        guard let entry = try lookup(key, in: frameIndex) else { throw keyNotFound(key, in: frameIndex) }
        try record(entry, in: frameIndex)
        var p = entry.valuePosition
        let value = try read(&p)
        advance(frameIndex, past: entry, to: p)
        return value
    }

    func decodeEntryValue<K: CodingKey, T: Decodable>(
        _ type: T.Type, _ key: K, _ frameIndex: Int, _ serial: Int
    ) throws -> T {
        try validate(frameIndex, serial)
        guard let entry = try lookup(key, in: frameIndex) else { throw keyNotFound(key, in: frameIndex) }
        return try decodeValue(of: entry, type, key, frameIndex)
    }

    func decodeValue<K: CodingKey, T: Decodable>(
        of entry: Entry, _ type: T.Type, _ key: K, _ frameIndex: Int, skippingSome: Bool = false
    ) throws -> T {
        try record(entry, in: frameIndex)
        let slot = frames[frameIndex].slotBase &+ entry.index
        let savedCount = fingerprintCount
        let savedSum = fingerprintSum
        let (value, end) = try readValue(type, at: entry.valuePosition + (skippingSome ? 1 : 0), key: key)
        if slots[slot] & Self.subtreeCounted != 0 {
            // The value was read before: count the fingerprints inside it once.
            fingerprintCount = savedCount
            fingerprintSum = savedSum
        } else {
            slots[slot] |= Self.subtreeCounted
        }
        advance(frameIndex, past: entry, to: end)
        return value
    }

    func allKeys<K: CodingKey>(_ frameIndex: Int, _ serial: Int, as type: K.Type) throws -> [K] {
        try validate(frameIndex, serial)
        try buildIndex(frameIndex)
        let frame = frames[frameIndex]
        var keys: [K] = []
        keys.reserveCapacity(frame.count)
        for j in 0..<frame.count {
            var p = index[frame.indexBase + j]
            switch try readToken(&p, fingerprinted: frame.fingerprinted) {
            case .fingerprint:
                throw corrupt(
                    "allKeys was asked of a container whose keys were written as fingerprints; BinaryCoder "
                        + "fingerprints the keys of CodingKeys enums, so a type whose init(from:) lists allKeys of "
                        + "such a container needs BinaryCoder(keyEncoding: .named)",
                    at: frame.entriesStart
                )
            case .name(let start, let length):
                guard let name = makeString(start: start, length: length) else {
                    throw corrupt("a key name is not valid UTF-8", at: start)
                }
                if let key = K(stringValue: name) { keys.append(key) }
            case .int(let value):
                if let int = Int(exactly: value), let key = K(intValue: int) {
                    keys.append(key)
                } else if let key = K(stringValue: String(value)) {
                    keys.append(key)
                }
            }
        }
        return keys
    }

    // MARK: Unkeyed containers

    func openUnkeyed(at position: Int) throws -> Int {
        var p = position
        let tag = try valueTag(&p)
        let count: Int
        var blob = false
        switch tag {
        case 0xA0...0xAF:
            count = Int(tag & 0x0F)
            guard count <= bytes.count - p else { throw truncated(p) }
        case BinaryFormat.array:
            count = try readCount(&p, minimumBytes: 1)
        case BinaryFormat.bytes:
            count = try readLength(&p)
            blob = true
        default:
            throw mismatch([Any].self, expected: "an unkeyed container", found: tag, at: position)
        }
        var frame = Frame(
            kind: .unkeyed, serial: nextSerial, valuePosition: position, count: count, entriesStart: p,
            fingerprinted: false, salt: 0, hasNamed: false, blob: blob, slotBase: slots.count, pathEnd: path.count
        )
        if blob || count == 0 { frame.end = p + (blob ? count : 0) }
        nextSerial &+= 1
        frames.append(frame)
        return frames.count - 1
    }

    /// Moves an unkeyed container to its next element, which starts at `end`.
    @inline(__always)
    func advanceElement(_ frameIndex: Int, to end: Int) {
        frames[frameIndex].cursorIndex &+= 1
        frames[frameIndex].cursorPosition = end
        if frames[frameIndex].cursorIndex == frames[frameIndex].count { frames[frameIndex].end = end }
    }
}
