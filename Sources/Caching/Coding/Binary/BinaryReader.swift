import Synchronization

/// The state of one ``BinaryCoder`` decoding: the input, the containers being read, the key
/// names seen so far and the running fingerprint check.
///
/// Every read checks its bounds against the input first, every count and length is checked
/// against the bytes that remain before anything is allocated for it, and every varint is read
/// without overflowing, so bytes that ``BinaryCoder`` did not write make it throw, never crash.
final class BinaryReader {
    struct Frame {
        enum Kind: UInt8 {
            case keyed
            case unkeyed
        }

        let kind: Kind
        let serial: Int
        /// Where the value of this container starts (its tag, or a `some` marker before it).
        let valuePosition: Int
        /// Entry or element count.
        let count: Int
        let entriesStart: Int
        let fingerprinted: Bool
        let salt: UInt8
        let hasNamed: Bool
        /// An unkeyed container over a byte blob: elements are raw bytes.
        let blob: Bool
        /// Where this container's match slots start in ``BinaryReader/slots``.
        let slotBase: Int
        /// `path.count` for this container's coding path.
        let pathEnd: Int
        var cursorIndex = 0
        var cursorPosition: Int
        /// Where the value ends, once known.
        var end = -1
        /// Where this container's entry positions start in ``BinaryReader/index``, once built.
        var indexBase = -1

        init(
            kind: Kind, serial: Int, valuePosition: Int, count: Int, entriesStart: Int, fingerprinted: Bool,
            salt: UInt8, hasNamed: Bool, blob: Bool, slotBase: Int, pathEnd: Int
        ) {
            self.kind = kind
            self.serial = serial
            self.valuePosition = valuePosition
            self.count = count
            self.entriesStart = entriesStart
            self.fingerprinted = fingerprinted
            self.salt = salt
            self.hasNamed = hasNamed
            self.blob = blob
            self.slotBase = slotBase
            self.pathEnd = pathEnd
            self.cursorPosition = entriesStart
        }
    }

    /// An entry found by a key lookup.
    struct Entry {
        let index: Int
        let valuePosition: Int
        /// Found at the container's cursor: the cursor moves past it once its value is read.
        let sequential: Bool
        let check: UInt32
        let fingerprinted: Bool
    }

    enum Token {
        case fingerprint(UInt8)
        case name(start: Int, length: Int)
        case int(Int64)
    }

    static let matched: UInt64 = 1 << 32
    static let subtreeCounted: UInt64 = 1 << 33

    // The mutable state opts out of dynamic exclusivity checks, which otherwise cost about a
    // quarter of the decoding time. This is safe because a reader is confined to one synchronous
    // `BinaryCoder.decode` call on one thread, and no access to one of these properties is held
    // across a call that touches the same property (each access is a single statement).
    @exclusivity(unchecked) var bytes: [UInt8]
    @exclusivity(unchecked) var frames: [Frame] = []
    /// One slot per entry of every open keyed container: whether it was read, the check of the
    /// key that read it, and whether the fingerprints inside its value were counted.
    @exclusivity(unchecked) var slots: [UInt64] = []
    /// Entry positions of keyed containers that were searched out of order.
    @exclusivity(unchecked) var index: [Int] = []
    /// Start and length of every key name defined so far, by name id.
    @exclusivity(unchecked) var nameStarts: [Int] = []
    @exclusivity(unchecked) var nameLengths: [Int] = []
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var fingerprintCount: UInt64 = 0
    @exclusivity(unchecked) var fingerprintSum: UInt32 = 0
    @exclusivity(unchecked) var nextSerial = 0
    @exclusivity(unchecked) var depth = 0
    @exclusivity(unchecked) var maxDepth: Int
    @exclusivity(unchecked) var sendableUserInfo: [CodingUserInfoKey: any Sendable]
    /// The last type found not to be a ``BinaryDecodingHook``, to skip the dynamic cast.
    @exclusivity(unchecked) var lastPlainType: ObjectIdentifier?
    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }
    /// The first error met where the `Decoder` API cannot throw (`allKeys`, `contains`).
    var deferredError: DecodingError?
    /// Whether ``deferredError`` is set; cheaper to test than the optional.
    @exclusivity(unchecked) var hasDeferredError = false
    /// The end of the last value read by a single value container, to spare a rescan.
    @exclusivity(unchecked) var lastSingleValue: (position: Int, end: Int) = (-1, -1)

    private init(bytes: [UInt8], maxDepth: Int, userInfo: [CodingUserInfoKey: any Sendable]) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.sendableUserInfo = userInfo
    }

    // MARK: Reuse

    /// One spare reader, so that consecutive decodings reuse its arrays instead of allocating
    /// them again. Ownership moves through the atomic exchange, so a reader is only ever used by
    /// one decoding at a time.
    /// The spare object's address (an `Unmanaged` +1 reference), or 0.
    private static let spare = Atomic<Int>(0)

    /// A reader for `bytes`: the spare one if there is one, else a new one.
    static func make(bytes: [UInt8], maxDepth: Int, userInfo: [CodingUserInfoKey: any Sendable]) -> BinaryReader {
        guard let spare = UnsafeMutableRawPointer(bitPattern: spare.exchange(0, ordering: .acquiring)) else {
            return BinaryReader(bytes: bytes, maxDepth: maxDepth, userInfo: userInfo)
        }
        let reader = Unmanaged<BinaryReader>.fromOpaque(spare).takeRetainedValue()
        reader.bytes = bytes
        reader.maxDepth = maxDepth
        reader.sendableUserInfo = userInfo
        return reader
    }

    /// Offers a finished reader for reuse. It is kept only if nothing else references it (a
    /// decoder or container that a type kept past its `init(from:)` must never see it reused)
    /// and if its arrays are small.
    static func recycle(_ reader: inout BinaryReader) {
        guard isKnownUniquelyReferenced(&reader),
            reader.frames.capacity <= 256, reader.slots.capacity <= 4096, reader.index.capacity <= 4096,
            reader.nameStarts.capacity <= 1024, reader.path.capacity <= 256
        else { return }
        reader.bytes = []
        // After a successful decoding the scoped arrays are already empty; `removeAll` is a
        // generic replace even then, so only call it when there is something to remove.
        if !reader.frames.isEmpty { reader.frames.removeAll(keepingCapacity: true) }
        if !reader.slots.isEmpty { reader.slots.removeAll(keepingCapacity: true) }
        if !reader.index.isEmpty { reader.index.removeAll(keepingCapacity: true) }
        if !reader.nameStarts.isEmpty {
            reader.nameStarts.removeAll(keepingCapacity: true)
            reader.nameLengths.removeAll(keepingCapacity: true)
        }
        if !reader.path.isEmpty { reader.path.removeAll(keepingCapacity: true) }
        reader.fingerprintCount = 0
        reader.fingerprintSum = 0
        reader.depth = 0
        if reader.hasDeferredError || reader.deferredError != nil {
            reader.deferredError = nil
            reader.hasDeferredError = false
        }
        reader.lastSingleValue = (-1, -1)
        if !reader.sendableUserInfo.isEmpty { reader.sendableUserInfo = [:] }
        let pointer = Unmanaged.passRetained(reader).toOpaque()
        if !spare.compareExchange(expected: 0, desired: Int(bitPattern: pointer), ordering: .releasing).exchanged {
            Unmanaged<BinaryReader>.fromOpaque(pointer).release()
        }
    }

    // MARK: Errors

    func corrupt(_ message: String, at position: Int) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: "\(message) (at byte \(position))"))
    }

    func truncated(_ position: Int) -> DecodingError {
        corrupt("the input ends in the middle of a value", at: position)
    }

    func mismatch(_ type: Any.Type, expected: String? = nil, found tag: UInt8, at position: Int) -> DecodingError {
        let context = DecodingError.Context(
            codingPath: path,
            debugDescription: "expected \(expected ?? String(describing: type)) but found \(Self.describe(tag)) (at byte \(position))"
        )
        return tag == BinaryFormat.null ? .valueNotFound(type, context) : .typeMismatch(type, context)
    }

    func deferError(_ error: DecodingError) {
        if !hasDeferredError {
            deferredError = error
            hasDeferredError = true
        }
    }

    static func describe(_ tag: UInt8) -> String {
        switch tag {
        case 0...0x7F, 0xE0...0xFF, BinaryFormat.unsigned, BinaryFormat.signed: return "an integer"
        case 0x80...0x9F, BinaryFormat.fingerprintedMap, BinaryFormat.namedMap: return "a keyed container"
        case 0xA0...0xAF, BinaryFormat.array: return "an unkeyed container"
        case 0xB0...0xCF, BinaryFormat.string: return "a string"
        case BinaryFormat.null: return "nil"
        case BinaryFormat.falseValue, BinaryFormat.trueValue: return "a Bool"
        case BinaryFormat.float32, BinaryFormat.float64, BinaryFormat.decimal: return "a floating-point number"
        case BinaryFormat.bytes: return "a byte blob"
        case BinaryFormat.uuid: return "a UUID"
        default: return "the unknown tag 0x\(String(tag, radix: 16))"
        }
    }

    func pathPrefix(_ end: Int) -> [any CodingKey] {
        Array(path[0..<max(0, min(end, path.count))])
    }

    // MARK: Primitive reads

    @inline(__always)
    func byte(at position: Int) throws -> UInt8 {
        guard position >= 0 && position < bytes.count else { throw truncated(position) }
        return bytes[position]
    }

    /// Reads a value's tag, passing over `some` markers.
    @inline(__always)
    func valueTag(_ p: inout Int) throws -> UInt8 {
        var tag = try byte(at: p)
        p &+= 1
        while tag == BinaryFormat.some {
            tag = try byte(at: p)
            p &+= 1
        }
        return tag
    }

    func readVarint(_ p: inout Int) throws -> UInt64 {
        let start = p
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte(at: p)
            p &+= 1
            if shift == 63 {
                guard b <= 1 else { throw corrupt("an integer is longer than 64 bits", at: start) }
                return result | (UInt64(b) << 63)
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    func readVarint128(_ p: inout Int) throws -> UInt128 {
        let start = p
        var result: UInt128 = 0
        var shift: UInt128 = 0
        while true {
            let b = try byte(at: p)
            p &+= 1
            if shift == 126 {
                guard b <= 3 else { throw corrupt("an integer is longer than 128 bits", at: start) }
                return result | (UInt128(b) << 126)
            }
            result |= UInt128(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A byte length, checked against the bytes that remain.
    @inline(__always)
    func readLength(_ p: inout Int) throws -> Int {
        let start = p
        let length = try readVarint(&p)
        guard length <= UInt64(bytes.count - p) else {
            throw corrupt("a length of \(length) bytes is longer than the \(bytes.count - p) bytes that remain", at: start)
        }
        return Int(length)
    }

    /// A container count, checked against the bytes that remain (each item takes at least
    /// `minimumBytes`).
    @inline(__always)
    func readCount(_ p: inout Int, minimumBytes: Int) throws -> Int {
        let start = p
        let count = try readVarint(&p)
        guard count <= UInt64((bytes.count - p) / minimumBytes) else {
            throw corrupt("a container of \(count) items cannot fit in the \(bytes.count - p) bytes that remain", at: start)
        }
        return Int(count)
    }

    @inline(__always)
    func readFixed64(_ p: inout Int) throws -> UInt64 {
        guard bytes.count - p >= 8 else { throw truncated(p) }
        var value: UInt64 = 0
        for i in 0..<8 {
            value |= UInt64(bytes[p &+ i]) << UInt64(8 * i)
        }
        p &+= 8
        return value
    }

    @inline(__always)
    func readFixed32(_ p: inout Int) throws -> UInt32 {
        guard bytes.count - p >= 4 else { throw truncated(p) }
        var value: UInt32 = 0
        for i in 0..<4 {
            value |= UInt32(bytes[p &+ i]) << UInt32(8 * i)
        }
        p &+= 4
        return value
    }

    func readBool(_ p: inout Int) throws -> Bool {
        let start = p
        switch try valueTag(&p) {
        case BinaryFormat.trueValue: return true
        case BinaryFormat.falseValue: return false
        case let tag: throw mismatch(Bool.self, found: tag, at: start)
        }
    }

    func readInteger<I: FixedWidthInteger>(_ type: I.Type, _ p: inout Int) throws -> I {
        let start = p
        let tag = try valueTag(&p)
        let value: I?
        switch tag {
        case 0...BinaryFormat.fixIntMax:
            return I(truncatingIfNeeded: tag)  // 0...127 fits every integer type
        case BinaryFormat.negativeFixIntMin...0xFF:
            value = I(exactly: Int8(bitPattern: tag))
        case BinaryFormat.unsigned:
            value = I.bitWidth > 64 ? I(exactly: try readVarint128(&p)) : I(exactly: try readVarint(&p))
        case BinaryFormat.signed:
            value = I.bitWidth > 64
                ? I(exactly: BinaryFormat.unzigzag128(try readVarint128(&p)))
                : I(exactly: BinaryFormat.unzigzag(try readVarint(&p)))
        case BinaryFormat.float32:
            value = I(exactly: Float(bitPattern: try readFixed32(&p)))
        case BinaryFormat.float64:
            value = I(exactly: Double(bitPattern: try readFixed64(&p)))
        case BinaryFormat.decimal:
            value = I(exactly: try readDecimal(&p))
        default:
            throw mismatch(I.self, found: tag, at: start)
        }
        guard let value else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path, debugDescription: "the number at byte \(start) does not fit in \(I.self)")
            )
        }
        return value
    }

    /// The string in `bytes[start..<start + length]`, or nil if it is not valid UTF-8. ASCII,
    /// the common case, takes a fast path that needs no validation.
    @inline(__always)
    func makeString(start: Int, length: Int) -> String? {
        bytes.withUnsafeBufferPointer { buffer in
            let slice = UnsafeBufferPointer(rebasing: buffer[start..<(start + length)])
            var bits: UInt8 = 0
            for byte in slice { bits |= byte }
            if bits < 0x80 { return String(decoding: slice, as: UTF8.self) }
            return String(validating: slice, as: UTF8.self)
        }
    }

    /// The value of a ``BinaryFormat/decimal`` whose tag was read.
    @inline(__always)
    func readDecimal(_ p: inout Int) throws -> Double {
        let packed = try readVarint(&p)
        return Double(BinaryFormat.unzigzag(packed >> 4)) / BinaryFormat.powersOfTen[Int(packed & 0x0F)]
    }

    func readDouble(_ p: inout Int) throws -> Double {
        let start = p
        let tag = try valueTag(&p)
        switch tag {
        case BinaryFormat.decimal: return try readDecimal(&p)
        case BinaryFormat.float64: return Double(bitPattern: try readFixed64(&p))
        case BinaryFormat.float32: return Double(Float(bitPattern: try readFixed32(&p)))
        case 0...0x7F, 0xE0...0xFF, BinaryFormat.unsigned, BinaryFormat.signed:
            p = start
            let int = try readInteger(Int128.self, &p)
            guard let value = Double(exactly: int) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: path, debugDescription: "the integer at byte \(start) has no exact Double")
                )
            }
            return value
        default:
            throw mismatch(Double.self, found: tag, at: start)
        }
    }

    func readFloat(_ p: inout Int) throws -> Float {
        let start = p
        let tag = try valueTag(&p)
        switch tag {
        case BinaryFormat.float32: return Float(bitPattern: try readFixed32(&p))
        case BinaryFormat.float64, BinaryFormat.decimal:
            let double = tag == BinaryFormat.decimal ? try readDecimal(&p) : Double(bitPattern: try readFixed64(&p))
            let value = Float(double)
            guard value.isFinite || !double.isFinite else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: path, debugDescription: "the number at byte \(start) does not fit in Float")
                )
            }
            return value
        case 0...0x7F, 0xE0...0xFF, BinaryFormat.unsigned, BinaryFormat.signed:
            p = start
            let int = try readInteger(Int128.self, &p)
            guard let value = Float(exactly: int) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: path, debugDescription: "the integer at byte \(start) has no exact Float")
                )
            }
            return value
        default:
            throw mismatch(Float.self, found: tag, at: start)
        }
    }

    func readString(_ p: inout Int) throws -> String {
        let start = p
        let tag = try valueTag(&p)
        let length: Int
        switch tag {
        case BinaryFormat.fixString...(BinaryFormat.fixString + UInt8(BinaryFormat.fixStringMaxLength)):
            length = Int(tag - BinaryFormat.fixString)
            guard length <= bytes.count - p else { throw truncated(p) }
        case BinaryFormat.string:
            length = try readLength(&p)
        case BinaryFormat.uuid:
            return try readUUIDString(&p)
        default:
            throw mismatch(String.self, found: tag, at: start)
        }
        guard let string = makeString(start: p, length: length) else {
            throw corrupt("a string is not valid UTF-8", at: start)
        }
        p += length
        return string
    }

    // MARK: Skipping

    /// The position just after the value at `position`, without decoding it.
    func skipValue(_ position: Int, depth: Int = 0) throws -> Int {
        guard depth <= maxDepth else {
            throw corrupt("values are nested deeper than \(maxDepth) levels", at: position)
        }
        var p = position
        let tag = try valueTag(&p)
        switch tag {
        case 0...0x7F, 0xE0...0xFF, BinaryFormat.null, BinaryFormat.falseValue, BinaryFormat.trueValue:
            return p
        case 0x80...0x8F:
            return try skipEntries(Int(tag & 0x0F), from: p, fingerprinted: true, depth: depth)
        case 0x90...0x9F:
            return try skipEntries(Int(tag & 0x0F), from: p, fingerprinted: false, depth: depth)
        case 0xA0...0xAF:
            return try skipElements(Int(tag & 0x0F), from: p, depth: depth)
        case BinaryFormat.fixString...(BinaryFormat.fixString + UInt8(BinaryFormat.fixStringMaxLength)):
            let length = Int(tag - BinaryFormat.fixString)
            guard length <= bytes.count - p else { throw truncated(p) }
            return p + length
        case BinaryFormat.unsigned, BinaryFormat.signed:
            _ = try readVarint128(&p)
            return p
        case BinaryFormat.decimal:
            _ = try readVarint(&p)
            return p
        case BinaryFormat.float32:
            guard bytes.count - p >= 4 else { throw truncated(p) }
            return p + 4
        case BinaryFormat.float64:
            guard bytes.count - p >= 8 else { throw truncated(p) }
            return p + 8
        case BinaryFormat.uuid:
            guard bytes.count - p >= 16 else { throw truncated(p) }
            return p + 16
        case BinaryFormat.string, BinaryFormat.bytes:
            let length = try readLength(&p)
            return p + length
        case BinaryFormat.fingerprintedMap:
            let count = try readCount(&p, minimumBytes: 2)
            _ = try byte(at: p)
            p += 1
            return try skipEntries(count, from: p, fingerprinted: true, depth: depth)
        case BinaryFormat.namedMap:
            let count = try readCount(&p, minimumBytes: 2)
            return try skipEntries(count, from: p, fingerprinted: false, depth: depth)
        case BinaryFormat.array:
            let count = try readCount(&p, minimumBytes: 1)
            return try skipElements(count, from: p, depth: depth)
        default:
            throw corrupt("unknown value tag 0x\(String(tag, radix: 16))", at: position)
        }
    }

    private func skipEntries(_ count: Int, from position: Int, fingerprinted: Bool, depth: Int) throws -> Int {
        var p = position
        for _ in 0..<count {
            _ = try readToken(&p, fingerprinted: fingerprinted)
            p = try skipValue(p, depth: depth + 1)
        }
        return p
    }

    private func skipElements(_ count: Int, from position: Int, depth: Int) throws -> Int {
        var p = position
        for _ in 0..<count {
            p = try skipValue(p, depth: depth + 1)
        }
        return p
    }

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

    // MARK: Values

    /// Reads any value: primitives directly, hooked types (optionals, byte arrays, `Data`,
    /// `UUID`) specially, everything else through its `init(from:)`.
    func readValue<T: Decodable>(_ type: T.Type, at position: Int, key: (any CodingKey)?) throws -> (T, Int) {
        var p = position
        if T.self == String.self {
            let value = try readString(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int.self {
            let value = try readInteger(Int.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Double.self {
            let value = try readDouble(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Bool.self {
            let value = try readBool(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int64.self {
            let value = try readInteger(Int64.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int32.self {
            let value = try readInteger(Int32.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt64.self {
            let value = try readInteger(UInt64.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt.self {
            let value = try readInteger(UInt.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Float.self {
            let value = try readFloat(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt8.self {
            let value = try readInteger(UInt8.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt32.self {
            let value = try readInteger(UInt32.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int16.self {
            let value = try readInteger(Int16.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt16.self {
            let value = try readInteger(UInt16.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int8.self {
            let value = try readInteger(Int8.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int128.self {
            let value = try readInteger(Int128.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt128.self {
            let value = try readInteger(UInt128.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        }
        return try readChild(type, at: position, key: key, useHooks: true)
    }

    /// Decodes `T` through a hook or its `init(from:)`, in a new scope: containers opened by it
    /// are checked and dropped when it returns, and everything it counted is undone if it throws
    /// (a caller may catch the error and try something else).
    func readChild<T: Decodable>(
        _ type: T.Type, at position: Int, key: (any CodingKey)?, useHooks: Bool
    ) throws -> (T, Int) {
        if useHooks, ObjectIdentifier(T.self) != lastPlainType {
            if let hook = T.self as? any BinaryDecodingHook.Type {
                let (value, end) = try hook.decodeBinary(from: self, at: position, key: key)
                guard let value = value as? T else {
                    throw corrupt("internal error: a decoding hook returned the wrong type", at: position)
                }
                return (value, end)
            }
            lastPlainType = ObjectIdentifier(T.self)
        }
        guard depth < maxDepth else {
            throw corrupt(
                "values are nested deeper than \(maxDepth) levels; raise BinaryCoder's maxDepth if that is expected",
                at: position
            )
        }
        let mark = frames.count
        let slotMark = slots.count
        let indexMark = index.count
        let pathMark = path.count
        let savedCount = fingerprintCount
        let savedSum = fingerprintSum
        if let key { path.append(key) }
        depth += 1
        defer {
            // `removeSubrange` is a generic replace even when nothing is removed: skip it then.
            if frames.count > mark { frames.removeSubrange(mark...) }
            if slots.count > slotMark { slots.removeSubrange(slotMark...) }
            if index.count > indexMark { index.removeSubrange(indexMark...) }
            if path.count > pathMark { path.removeSubrange(pathMark...) }
            depth -= 1
        }
        do {
            let decoder = BinaryDecoderImpl(reader: self, position: position, mark: mark, pathEnd: path.count)
            let value = try T(from: decoder)
            let end = try endOfValue(at: position, framesFrom: mark)
            var i = mark
            while i < frames.count {
                try verifyAllRead(i)
                i += 1
            }
            return (value, end)
        } catch {
            fingerprintCount = savedCount
            fingerprintSum = savedSum
            throw error
        }
    }

    /// Where the value at `position` ends: known from a container opened on it, or found by
    /// skipping it.
    func endOfValue(at position: Int, framesFrom mark: Int) throws -> Int {
        var i = frames.count - 1
        while i >= mark {
            if frames[i].valuePosition == position { return try end(of: i) }
            i -= 1
        }
        if lastSingleValue.position == position { return lastSingleValue.end }
        return try skipValue(position)
    }

    func end(of frameIndex: Int) throws -> Int {
        if frames[frameIndex].end >= 0 { return frames[frameIndex].end }
        let frame = frames[frameIndex]
        var p = frame.cursorPosition
        if frame.kind == .keyed {
            for _ in frame.cursorIndex..<frame.count {
                _ = try readToken(&p, fingerprinted: frame.fingerprinted)
                p = try skipValue(p)
            }
        } else {
            for _ in frame.cursorIndex..<frame.count {
                p = try skipValue(p)
            }
        }
        frames[frameIndex].end = p
        return p
    }

    // MARK: Finishing

    /// Checks the trailer after the top-level value: nothing but the 32-bit sum of the checks of
    /// the fingerprinted keys written may follow it, and the keys that read them must add up to
    /// the same sum.
    func verifyTrailer(at end: Int) throws {
        if hasDeferredError, let deferredError { throw deferredError }
        var p = end
        switch bytes.count - end {
        case 0:
            guard fingerprintCount == 0 else {
                throw corrupt("the trailer of fingerprinted keys is missing", at: end)
            }
            return
        case 4:
            let sum = try readFixed32(&p)
            guard sum == fingerprintSum else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: [],
                        debugDescription: "the field names the type read differ from the names that were written: "
                            + "the bytes were written by a different type, or the type changed"
                    )
                )
            }
        default:
            throw corrupt("\(bytes.count - end) unexpected bytes follow the value", at: end)
        }
    }

    /// Throws if a fingerprinted container has a fingerprinted entry that was never read: the
    /// type changed (a field was removed or renamed), or its `init(from:)` skips a key that its
    /// `encode(to:)` writes. Only fingerprinted entries must be read; named ones are exact.
    func verifyAllRead(_ frameIndex: Int) throws {
        let frame = frames[frameIndex]
        guard frame.kind == .keyed, frame.fingerprinted else { return }
        // Entries before the cursor were all read in order.
        var firstUnread = frame.cursorIndex
        if frame.indexBase >= 0 { firstUnread = 0 }
        for j in firstUnread..<frame.count where slots[frame.slotBase + j] & Self.matched == 0 {
            try buildIndex(frameIndex)
            var p = index[frames[frameIndex].indexBase + j]
            if case .fingerprint = try readToken(&p, fingerprinted: true) {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: pathPrefix(frame.pathEnd),
                        debugDescription: "field \(j + 1) of \(frame.count) of this container was written but not read: "
                            + "the type changed (a field was removed or renamed), or its init(from:) does not read "
                            + "every key its encode(to:) writes (BinaryCoder(keyEncoding: .named) tolerates that)"
                    )
                )
            }
        }
    }
}

/// Types that ``BinaryReader`` decodes specially. Every hook must also accept what the type's
/// own `encode(to:)` would have written, so values written by other paths still decode.
protocol BinaryDecodingHook {
    static func decodeBinary(from reader: BinaryReader, at position: Int, key: (any CodingKey)?) throws -> (Self, Int)
}

/// Lets ``BinaryReader`` tell an `Optional` type from others without knowing its wrapped type.
protocol BinaryOptionalMarker {}

extension Optional: BinaryOptionalMarker {}

extension Optional: BinaryDecodingHook where Wrapped: Decodable {
    static func decodeBinary(from reader: BinaryReader, at position: Int, key: (any CodingKey)?) throws -> (Self, Int) {
        let tag = try reader.byte(at: position)
        if tag == BinaryFormat.null { return (.none, position + 1) }
        let start = tag == BinaryFormat.some ? position + 1 : position
        let (wrapped, end) = try reader.readValue(Wrapped.self, at: start, key: key)
        return (.some(wrapped), end)
    }
}

extension Array: BinaryDecodingHook where Element: Decodable {
    static func decodeBinary(from reader: BinaryReader, at position: Int, key: (any CodingKey)?) throws -> (Self, Int) {
        if Element.self == UInt8.self {
            var p = position
            if try reader.valueTag(&p) == BinaryFormat.bytes {
                let length = try reader.readLength(&p)
                let value = Array<UInt8>(reader.bytes[p..<(p + length)])
                return (unsafeBitCast(value, to: Self.self), p + length)
            }
        }
        return try reader.readChild(Self.self, at: position, key: key, useHooks: false)
    }
}
