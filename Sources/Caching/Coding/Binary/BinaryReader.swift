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
    /// Whether ``BinaryCodable`` values are read field by field (set by each decoding).
    @exclusivity(unchecked) var fieldByField = true
    /// The last ``BinaryCodable`` type decoded, to skip the dynamic casts.
    @exclusivity(unchecked) var lastFieldByFieldType: ObjectIdentifier?
    @exclusivity(unchecked) var lastFieldByFieldMetatype: (any BinaryCodable.Type)?
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
