import Synchronization

/// A `Codable` type that ``BinaryCoder`` encodes and decodes field by field, without going
/// through `Codable`'s keyed containers.
///
/// `Codable` reaches every field of a struct through the standard library's type-erased
/// container boxes; for a small struct that costs several times the work of reading the bytes.
/// A `BinaryCodable` type lists its fields once in ``binaryFields`` and reads and writes them
/// in that order through a ``BinaryFieldReader`` and a ``BinaryFieldWriter``. ``BinaryCoder``
/// then skips the containers: decoding a five-field struct takes less than half the time
/// (`cache-bench micro` measures both).
///
/// The bytes are **exactly** those that the type's `Codable` conformance writes with
/// ``BinaryCoder/KeyEncoding/fingerprinted`` keys, so adopting `BinaryCodable` (or dropping it)
/// never invalidates cached entries, and every compatibility rule of ``BinaryCoder`` still
/// holds: when stored bytes do not have exactly the expected layout (fields reordered, added or
/// removed by another version of the type, keys written by name), ``BinaryCoder`` decodes them
/// through `init(from:)` instead, which gives the same result or the same error as without
/// `BinaryCodable`. JSON and other coders use the `Codable` conformance as usual.
///
/// List the fields as synthesized `Codable` does: every stored property that is decoded, by its
/// `CodingKeys` name, in declaration order. Read and write them in that order, with
/// `decodeIfPresent`/`encodeIfPresent` for optional properties (synthesized `Codable` does the
/// same):
///
/// ```swift
/// struct Profile: Codable, BinaryCodable {
///     var id: Int
///     var name: String
///     var email: String?
///
///     static let binaryFields = BinaryFields("id", "name", "email")
///
///     init(binaryFields fields: inout BinaryFieldReader) throws {
///         id = try fields.decode(Int.self)
///         name = try fields.decode(String.self)
///         email = try fields.decodeIfPresent(String.self)
///     }
///
///     func encode(binaryFields fields: inout BinaryFieldWriter) throws {
///         try fields.encode(id)
///         try fields.encode(name)
///         try fields.encodeIfPresent(email)
///     }
/// }
/// ```
///
/// A mistake in a hand-written conformance cannot return wrong values: a wrong field name
/// makes the message's trailer check fail, a wrong count or order fails encoding with
/// ``CacheError/Code/encodingFailed`` or sends decoding to `init(from:)`. Nested values of any
/// `Codable` type work (`fields.decode([Address].self)`); nested `BinaryCodable` types take the
/// fast path too. Types with more than 24 fields, or whose `Codable` conformance is
/// hand-written to store something else, should not adopt `BinaryCodable`.
public protocol BinaryCodable: Codable {
    /// The names of the fields, in the order ``init(binaryFields:)`` reads them and
    /// ``encode(binaryFields:)`` writes them.
    static var binaryFields: BinaryFields { get }

    /// Reads the fields listed in ``binaryFields``, in order.
    ///
    /// - Parameter fields: the reader positioned at the first field.
    /// - Throws: what the reader throws when the bytes do not match; ``BinaryCoder`` then
    ///   decodes the value through `init(from:)` instead.
    init(binaryFields fields: inout BinaryFieldReader) throws

    /// Writes the fields listed in ``binaryFields``, in order.
    ///
    /// - Parameter fields: the writer positioned at the first field.
    /// - Throws: what the writer throws: a field written out of turn, or a value that cannot
    ///   be encoded.
    func encode(binaryFields fields: inout BinaryFieldWriter) throws
}

/// The field names of a ``BinaryCodable`` type, with their key fingerprints and the container
/// header computed once.
///
/// ```swift
/// static let binaryFields = BinaryFields("id", "name", "email", "age", "active")
/// ```
///
/// Declare it as a `static let` so that this work is done once per type (it is immutable, so
/// sharing it is safe). A list that
/// ``BinaryCoder`` cannot write field by field (no names, a name twice, more than 24 names) is
/// accepted, and the type then always uses its `Codable` conformance; ``isFieldByField`` tells.
public final class BinaryFields: Sendable {
    /// The field names, in order.
    public let names: [String]
    /// Whether ``BinaryCoder`` reads and writes the type field by field. `false` when the names
    /// are empty, repeat one, or are more than the 24 that a container fingerprints.
    public let isFieldByField: Bool
    /// The one-byte key token of each field.
    let fingerprints: [UInt8]
    /// ``fingerprints`` in a value that a ``BinaryFieldReader`` copies, so that checking a
    /// field's key needs no access to this object (no reference counting per field).
    let inlineFingerprints: InlineArray<24, UInt8>
    /// The bytes of the container's header: its tag, and for a long or salted container the
    /// count and the flags (at most 3 bytes), little-endian in one word.
    let header: UInt32
    /// The number of bytes in ``header``: 1 or 3.
    let headerLength: Int
    /// The sum of the checks of every name, added to the message trailer.
    let checkSum: UInt32
    /// Set once a value of the type needed the full decoder for one of its fields (a nested
    /// type that is not a primitive): ``BinaryCoder``'s top-level path, which has no full
    /// decoder, is then skipped for this type.
    let needsFullDecoder = Atomic<Bool>(false)

    /// The fields `names`, in order.
    ///
    /// - Parameter names: the `CodingKeys` names of the fields, in the order the type reads and
    ///   writes them.
    public convenience init(_ names: String...) {
        self.init(names)
    }

    /// The fields `names`, in order.
    ///
    /// - Parameter names: the `CodingKeys` names of the fields, in the order the type reads and
    ///   writes them.
    public init(_ names: [String]) {
        self.names = names
        let hashes = names.map { BinaryFormat.keyHash($0) }
        var checkSum: UInt32 = 0
        for hash in hashes { checkSum &+= BinaryFormat.check(hash) }
        self.checkSum = checkSum
        // The salt that `BinaryWriter` would choose for these keys: 0 when their fingerprints
        // are distinct, else the first salt under which they are.
        func distinct(_ salt: UInt8) -> Bool {
            var seen = BinaryWriter.FingerprintSet()
            for hash in hashes where seen.insert(BinaryFormat.fingerprint(hash, salt: salt)) {
                return false
            }
            return true
        }
        let salt: UInt8? = distinct(0) ? 0 : (1...BinaryFormat.maxSalt).first(where: distinct)
        let unique = Set(hashes).count == hashes.count && Set(names).count == names.count
        guard let salt, unique, !names.isEmpty, names.count <= BinaryFormat.maxFingerprintedEntries else {
            isFieldByField = false
            fingerprints = []
            inlineFingerprints = InlineArray(repeating: 0)
            header = 0
            headerLength = 0
            return
        }
        isFieldByField = true
        fingerprints = hashes.map { BinaryFormat.fingerprint($0, salt: salt) }
        var inline = InlineArray<24, UInt8>(repeating: 0)
        for (i, fingerprint) in fingerprints.enumerated() { inline[i] = fingerprint }
        inlineFingerprints = inline
        if salt == 0 && names.count <= 15 {
            header = UInt32(BinaryFormat.fingerprintedMapFix | UInt8(names.count))
            headerLength = 1
        } else {
            // The tag, the count as a varint (one byte: at most 24) and the flags (the salt).
            header = UInt32(BinaryFormat.fingerprintedMap) | UInt32(names.count) << 8 | UInt32(salt) << 16
            headerLength = 3
        }
    }
}

/// Thrown inside the field-by-field path when the bytes are not laid out as the type expects;
/// ``BinaryReader`` catches it and decodes through `init(from:)` instead.
struct BinaryFieldMismatch: Error {}

/// Reads the fields of a ``BinaryCodable`` value, in the order of its ``BinaryFields``.
///
/// ``BinaryCoder`` hands one to ``BinaryCodable/init(binaryFields:)``. Each `decode` reads the
/// next field; a field whose key or value does not match makes it throw, and ``BinaryCoder``
/// then decodes the value through `init(from:)`.
public struct BinaryFieldReader: ~Copyable {
    /// The message's bytes. A reader only exists inside ``BinaryCoder``'s scope that holds them
    /// (`withUnsafeBufferPointer`), for the duration of one ``BinaryCodable/init(binaryFields:)``,
    /// and it cannot be copied out of it.
    let base: UnsafePointer<UInt8>
    let count: Int
    /// The full decoder, for fields that are not primitives; `nil` on ``BinaryCoder``'s
    /// top-level path, where such a field sends the whole value to the full decoder instead.
    let reader: BinaryReader?
    // The caller keeps `fields` alive for the reader's whole life (a local of its own), so no
    // reference counting is needed here.
    unowned(unsafe) let fields: BinaryFields
    let fieldCount: Int
    /// The fields' key tokens, copied (see ``BinaryFields/inlineFingerprints``).
    let fingerprints: InlineArray<24, UInt8>
    var position: Int
    var index = 0
    var failed = false
    /// Set when a field needed the full decoder and there was none (the top-level path).
    var neededFullDecoder = false

    init(base: UnsafePointer<UInt8>, count: Int, reader: BinaryReader?, fields: BinaryFields, position: Int) {
        self.base = base
        self.count = count
        self.reader = reader
        self.fields = fields
        self.fieldCount = min(fields.fingerprints.count, 24)
        self.fingerprints = fields.inlineFingerprints
        self.position = position
    }

    /// Gives up: the bytes are not what this path reads. The full decoder takes over.
    @inline(__always)
    mutating func mismatch() -> BinaryFieldMismatch {
        failed = true
        return BinaryFieldMismatch()
    }

    /// Moves past the next field's key token, which must be the next field's.
    @inline(__always)
    mutating func next() throws {
        guard index < fieldCount, position < count, base[position] == fingerprints[index] else {
            throw mismatch()
        }
        position &+= 1
        index &+= 1
    }

    @inline(__always)
    mutating func tag() throws -> UInt8 {
        guard position < count else { throw mismatch() }
        let tag = base[position]
        position &+= 1
        return tag
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while shift < 63 {
            let b = try tag()
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
        let b = try tag()
        guard b <= 1 else { throw mismatch() }
        return result | (UInt64(b) << 63)
    }

    // The common encodings of each primitive; anything else (a float where an integer is
    // expected, a UUID where a string is, a `some` marker) goes to the full decoder, which
    // reads every encoding.

    /// A little-endian 64-bit word; the caller checked that 8 bytes remain.
    @inline(__always)
    mutating func fixed64() -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(base[position &+ i]) << UInt64(8 * i) }
        position &+= 8
        return value
    }

    /// A little-endian 32-bit word; the caller checked that 4 bytes remain.
    @inline(__always)
    mutating func fixed32() -> UInt32 {
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(base[position &+ i]) << UInt32(8 * i) }
        position &+= 4
        return value
    }

    mutating func signed() throws -> Int64 {
        let tag = try tag()
        switch tag {
        case 0...BinaryFormat.fixIntMax: return Int64(tag)
        case BinaryFormat.negativeFixIntMin...0xFF: return Int64(Int8(bitPattern: tag))
        case BinaryFormat.unsigned:
            let value = try varint()
            guard value <= UInt64(Int64.max) else { throw mismatch() }
            return Int64(value)
        case BinaryFormat.signed: return BinaryFormat.unzigzag(try varint())
        default: throw mismatch()
        }
    }

    mutating func unsigned() throws -> UInt64 {
        let tag = try tag()
        switch tag {
        case 0...BinaryFormat.fixIntMax: return UInt64(tag)
        case BinaryFormat.unsigned: return try varint()
        default: throw mismatch()
        }
    }

    mutating func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        try next()
        if I.isSigned {
            guard let value = I(exactly: try signed()) else { throw mismatch() }
            return value
        }
        guard let value = I(exactly: try unsigned()) else { throw mismatch() }
        return value
    }

    mutating func string() throws -> String {
        let tag = try tag()
        let length: Int
        switch tag {
        case BinaryFormat.fixString...(BinaryFormat.fixString + UInt8(BinaryFormat.fixStringMaxLength)):
            length = Int(tag &- BinaryFormat.fixString)
        case BinaryFormat.string:
            let value = try varint()
            guard value <= UInt64(count) else { throw mismatch() }
            length = Int(value)
        default:
            throw mismatch()
        }
        guard length <= count &- position else { throw mismatch() }
        let slice = UnsafeBufferPointer(start: base + position, count: length)
        var bits: UInt8 = 0
        for byte in slice { bits |= byte }
        let string: String
        if bits < 0x80 {
            string = String(decoding: slice, as: UTF8.self)
        } else {
            guard let valid = String(validating: slice, as: UTF8.self) else { throw mismatch() }
            string = valid
        }
        position &+= length
        return string
    }

    mutating func bool() throws -> Bool {
        switch try tag() {
        case BinaryFormat.trueValue: return true
        case BinaryFormat.falseValue: return false
        default: throw mismatch()
        }
    }

    mutating func double() throws -> Double {
        switch try tag() {
        case BinaryFormat.decimal:
            let packed = try varint()
            return Double(BinaryFormat.unzigzag(packed >> 4)) / BinaryFormat.powersOfTen[Int(packed & 0x0F)]
        case BinaryFormat.float64:
            guard count &- position >= 8 else { throw mismatch() }
            return Double(bitPattern: fixed64())
        case BinaryFormat.float32:
            guard count &- position >= 4 else { throw mismatch() }
            return Double(Float(bitPattern: fixed32()))
        default:
            throw mismatch()
        }
    }

    /// Whether the next field's value is `nil`; moves past its key, and past the value if so.
    @inline(__always)
    mutating func nextIsNil() throws -> Bool {
        try next()
        guard position < count else { throw mismatch() }
        let tag = base[position]
        if tag == BinaryFormat.null {
            position &+= 1
            return true
        }
        if tag == BinaryFormat.some { position &+= 1 }
        return false
    }

    /// Decodes a value of any type with the full decoder.
    mutating func full<T: Decodable>(_ type: T.Type) throws -> T {
        guard let reader else {
            neededFullDecoder = true
            throw mismatch()
        }
        do {
            let (value, end) = try reader.readValue(T.self, at: position, key: nil)
            position = end
            return value
        } catch {
            failed = true
            throw error
        }
    }

    /// The next field, a `String`.
    public mutating func decode(_ type: String.Type) throws -> String {
        try next()
        return try string()
    }
    /// The next field, a `Bool`.
    public mutating func decode(_ type: Bool.Type) throws -> Bool {
        try next()
        return try bool()
    }
    /// The next field, a `Double`.
    public mutating func decode(_ type: Double.Type) throws -> Double {
        try next()
        return try double()
    }
    /// The next field, a `Float`.
    public mutating func decode(_ type: Float.Type) throws -> Float {
        try next()
        return try full(Float.self)
    }
    /// The next field, an `Int`.
    public mutating func decode(_ type: Int.Type) throws -> Int { try integer(Int.self) }
    /// The next field, an `Int8`.
    public mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self) }
    /// The next field, an `Int16`.
    public mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(Int16.self) }
    /// The next field, an `Int32`.
    public mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(Int32.self) }
    /// The next field, an `Int64`.
    public mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(Int64.self) }
    /// The next field, a `UInt`.
    public mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self) }
    /// The next field, a `UInt8`.
    public mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self) }
    /// The next field, a `UInt16`.
    public mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self) }
    /// The next field, a `UInt32`.
    public mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(UInt32.self) }
    /// The next field, a `UInt64`.
    public mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(UInt64.self) }

    /// The next field, of any `Decodable` type: decoded as ``BinaryCoder`` decodes it anywhere
    /// (a nested `BinaryCodable` type field by field, others through `init(from:)`).
    ///
    /// For an optional property, prefer `decodeIfPresent(_:)`; both read the same bytes.
    public mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next()
        return try full(T.self)
    }

    /// The next field, an optional `String`, as synthesized `Codable` reads it.
    public mutating func decodeIfPresent(_ type: String.Type) throws -> String? {
        try nextIsNil() ? nil : try string()
    }
    /// The next field, an optional `Bool`, as synthesized `Codable` reads it.
    public mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? {
        try nextIsNil() ? nil : try bool()
    }
    /// The next field, an optional `Double`, as synthesized `Codable` reads it.
    public mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? {
        try nextIsNil() ? nil : try double()
    }
    /// The next field, an optional `Int`, as synthesized `Codable` reads it.
    public mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? {
        if try nextIsNil() { return nil }
        guard let value = Int(exactly: try signed()) else { throw mismatch() }
        return value
    }
    /// The next field, an optional `Int64`, as synthesized `Codable` reads it.
    public mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? {
        try nextIsNil() ? nil : try signed()
    }

    /// The next field, an optional value of any `Decodable` type, as synthesized `Codable`
    /// reads an optional property (`decodeIfPresent`).
    public mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? {
        try nextIsNil() ? nil : try full(T.self)
    }
}

/// Writes the fields of a ``BinaryCodable`` value, in the order of its ``BinaryFields``.
///
/// ``BinaryCoder`` hands one to ``BinaryCodable/encode(binaryFields:)``. Each `encode` writes
/// the next field's key and value, exactly as the type's `Codable` conformance would.
public struct BinaryFieldWriter: ~Copyable {
    // Unowned for the same reason as in `BinaryFieldReader`: it only exists inside
    // `BinaryWriter.writeFieldByField`, which keeps both alive.
    unowned(unsafe) let writer: BinaryWriter
    unowned(unsafe) let fields: BinaryFields
    let type: Any.Type
    var index = 0

    init(writer: BinaryWriter, fields: BinaryFields, type: Any.Type) {
        self.writer = writer
        self.fields = fields
        self.type = type
    }

    /// Writes the next field's key token.
    @inline(__always)
    mutating func next() throws {
        guard index < fields.fingerprints.count else {
            throw writer.error(
                "\(type).encode(binaryFields:) wrote more fields than the \(fields.names.count) its binaryFields lists"
            )
        }
        writer.bytes.append(fields.fingerprints[index])
        index &+= 1
    }

    /// Writes the next field, a `String`.
    public mutating func encode(_ value: String) throws {
        try next()
        writer.writeString(value)
    }
    /// Writes the next field, a `Bool`.
    public mutating func encode(_ value: Bool) throws {
        try next()
        writer.writeBool(value)
    }
    /// Writes the next field, a `Double`.
    public mutating func encode(_ value: Double) throws {
        try next()
        writer.writeDouble(value)
    }
    /// Writes the next field, a `Float`.
    public mutating func encode(_ value: Float) throws {
        try next()
        writer.writeFloat(value)
    }
    /// Writes the next field, an `Int`.
    public mutating func encode(_ value: Int) throws {
        try next()
        writer.writeSigned(Int64(value))
    }
    /// Writes the next field, an `Int8`.
    public mutating func encode(_ value: Int8) throws {
        try next()
        writer.writeSigned(Int64(value))
    }
    /// Writes the next field, an `Int16`.
    public mutating func encode(_ value: Int16) throws {
        try next()
        writer.writeSigned(Int64(value))
    }
    /// Writes the next field, an `Int32`.
    public mutating func encode(_ value: Int32) throws {
        try next()
        writer.writeSigned(Int64(value))
    }
    /// Writes the next field, an `Int64`.
    public mutating func encode(_ value: Int64) throws {
        try next()
        writer.writeSigned(value)
    }
    /// Writes the next field, a `UInt`.
    public mutating func encode(_ value: UInt) throws {
        try next()
        writer.writeUnsigned(UInt64(value))
    }
    /// Writes the next field, a `UInt8`.
    public mutating func encode(_ value: UInt8) throws {
        try next()
        writer.writeUnsigned(UInt64(value))
    }
    /// Writes the next field, a `UInt16`.
    public mutating func encode(_ value: UInt16) throws {
        try next()
        writer.writeUnsigned(UInt64(value))
    }
    /// Writes the next field, a `UInt32`.
    public mutating func encode(_ value: UInt32) throws {
        try next()
        writer.writeUnsigned(UInt64(value))
    }
    /// Writes the next field, a `UInt64`.
    public mutating func encode(_ value: UInt64) throws {
        try next()
        writer.writeUnsigned(value)
    }

    /// Writes the next field, of any `Encodable` type, as ``BinaryCoder`` writes it anywhere.
    ///
    /// An `Optional` value is written as synthesized `Codable` writes an optional property
    /// (`encodeIfPresent(_:)`).
    public mutating func encode<T: Encodable>(_ value: T) throws {
        try next()
        if let optional = T.self as? any BinaryPresentEncodable.Type {
            try optional.encodePresent(value, into: writer)
        } else {
            try writer.writeValue(value, key: nil)
        }
    }

    /// Writes the next field, an optional value, as synthesized `Codable` writes an optional
    /// property (`encodeIfPresent`): `nil`, or the value itself.
    public mutating func encodeIfPresent<T: Encodable>(_ value: T?) throws {
        try next()
        if let value {
            try writer.writeValue(value, key: nil)
        } else {
            writer.writeNil()
        }
    }
    /// Writes the next field, an optional `String`, as synthesized `Codable` does.
    public mutating func encodeIfPresent(_ value: String?) throws {
        try next()
        if let value { writer.writeString(value) } else { writer.writeNil() }
    }
    /// Writes the next field, an optional `Int`, as synthesized `Codable` does.
    public mutating func encodeIfPresent(_ value: Int?) throws {
        try next()
        if let value { writer.writeSigned(Int64(value)) } else { writer.writeNil() }
    }
}

/// An `Optional` written as `encodeIfPresent` writes it: `nil`, or the wrapped value without a
/// `some` marker.
protocol BinaryPresentEncodable {
    /// Writes `value`, which must be of this type.
    static func encodePresent<V>(_ value: V, into writer: BinaryWriter) throws
}

extension Optional: BinaryPresentEncodable where Wrapped: Encodable {
    static func encodePresent<V>(_ value: V, into writer: BinaryWriter) throws {
        guard V.self == Self.self else {
            throw writer.error("internal error: an optional field was written as \(V.self), not \(Self.self)")
        }
        if let wrapped = unsafeBitCast(value, to: Self.self) {
            try writer.writeValue(wrapped, key: nil)
        } else {
            writer.writeNil()
        }
    }
}

// MARK: - The field-by-field paths of the reader and the writer

extension BinaryReader {
    /// Decodes a ``BinaryCodable`` value at `position` field by field and sets `end` past it.
    /// Throws ``BinaryFieldMismatch``, leaving no trace, when the bytes are not laid out as its
    /// ``BinaryFields`` say; the caller then decodes through `init(from:)`, which reports any
    /// real error. (Throwing, rather than returning an optional, spares the run-time lookup of
    /// the optional's type metadata.)
    func readFieldByField<F: BinaryCodable, T>(_ fast: F.Type, as type: T.Type, at position: Int, end: inout Int) throws -> T {
        let fields = F.binaryFields
        guard fieldByField, F.self == T.self, fields.isFieldByField, depth < maxDepth else { throw BinaryFieldMismatch() }
        let headerLength = fields.headerLength
        guard headerLength <= bytes.count &- position else { throw BinaryFieldMismatch() }
        var i = 0
        while i < headerLength {
            guard bytes[position &+ i] == UInt8(truncatingIfNeeded: fields.header >> (8 * i)) else {
                throw BinaryFieldMismatch()
            }
            i &+= 1
        }
        let savedCount = fingerprintCount
        let savedSum = fingerprintSum
        depth &+= 1
        defer { depth &-= 1 }
        // No optionals or tuples of `F` here: in unspecialized code each would cost a run-time
        // type metadata lookup, which is as slow as decoding a field.
        do {
            var finish = -1
            let value = try bytes.withUnsafeBufferPointer { buffer throws -> F in
                guard let base = buffer.baseAddress else { throw BinaryFieldMismatch() }
                var reader = BinaryFieldReader(
                    base: base, count: buffer.count, reader: self, fields: fields, position: position &+ headerLength
                )
                let value = try F(binaryFields: &reader)
                guard !reader.failed && reader.index == reader.fieldCount else { throw BinaryFieldMismatch() }
                finish = reader.position
                return value
            }
            fingerprintCount &+= UInt64(fields.fingerprints.count)
            fingerprintSum &+= fields.checkSum
            end = finish
            return unsafeBitCast(consume value, to: T.self)
        } catch {}
        fingerprintCount = savedCount
        fingerprintSum = savedSum
        throw BinaryFieldMismatch()
    }
}

extension BinaryWriter {
    /// Encodes a ``BinaryCodable`` value field by field. Returns false, having written nothing,
    /// when its fields cannot be written that way (the caller then uses `encode(to:)`).
    func writeFieldByField<F: BinaryCodable, T>(_ fast: F.Type, _ value: T) throws -> Bool {
        let fields = F.binaryFields
        guard fieldByField, F.self == T.self, fields.isFieldByField, fingerprintKeys else { return false }
        let typed = unsafeBitCast(value, to: F.self)
        var i = 0
        while i < fields.headerLength {
            bytes.append(UInt8(truncatingIfNeeded: fields.header >> (8 * i)))
            i &+= 1
        }
        var writer = BinaryFieldWriter(writer: self, fields: fields, type: F.self)
        try typed.encode(binaryFields: &writer)
        guard writer.index == fields.fingerprints.count else {
            throw error(
                "\(F.self).encode(binaryFields:) wrote \(writer.index) fields, but its binaryFields lists \(fields.names.count)"
            )
        }
        fingerprintCount &+= UInt64(fields.fingerprints.count)
        fingerprintSum &+= fields.checkSum
        return true
    }
}
