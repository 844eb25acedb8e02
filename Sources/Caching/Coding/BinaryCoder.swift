/// A compact, fast binary ``Coder`` for any `Codable` type.
///
/// `BinaryCoder` implements its own `Encoder` and `Decoder`. A small struct takes about half
/// the bytes of its JSON and encodes and decodes several times faster than ``JSONCoder``,
/// which makes it the better choice for values that only your own Swift code reads back.
/// Choose ``JSONCoder`` when other languages or people read the cache.
///
/// ```swift
/// let coder = BinaryCoder()
/// let bytes = try coder.encode(user)
/// let again = try coder.decode(User.self, from: bytes)
/// ```
///
/// ## Wire format (version 1)
///
/// A message is a version byte (`0x01`), one value, and, when any key was fingerprinted, a
/// 4-byte trailer. Every value starts with a one-byte tag. Integers are LEB128 varints (zigzag
/// for negative values) and 0...127 and -32...-1 fit in the tag; a `Double` takes its smallest
/// exact form: a short decimal (`97.25` in 4 bytes), a `Float` (5) or its 64 bits (9); strings and
/// byte blobs (`[UInt8]`, `Data`) are length-prefixed, and strings of up to 31 bytes carry their
/// length in the tag; a `UUID` takes 17 bytes. Unkeyed containers are a count and the elements. A
/// present `Optional` is marked where needed to tell `.some(nil)` from `nil`, at the top level too.
///
/// Keyed containers are a count and entries, each a key token and a value. Keys of a fixed key
/// type (a `CodingKeys` enum, as synthesized `Codable` uses) are written as a one-byte
/// **fingerprint** of their name, so a struct's keys cost one byte each. Other keys (dictionary
/// keys, keys made at run time) are written by **name**, each distinct name once per message and
/// then as a small id. The trailer is a 32-bit sum of checks of the fingerprinted names; decoding
/// verifies it, and that every fingerprinted entry was read, so a type that reads other names than
/// were written gets an error, never another field's value. Docs/Coders.md has the full format.
///
/// ## Determinism
///
/// Equal values give equal bytes, in every process: dictionaries with `String`, `Int` or
/// `CodingKeyRepresentable` keys and sets of `String` or `Int` are written in sorted order
/// (Swift randomizes their iteration order per process). Dictionaries and sets of other
/// element types keep their iteration order, as in `JSONEncoder`.
///
/// ## Compatibility
///
/// Bytes of another format version or another coder fail with
/// ``CacheError/Code/decodingFailed``, which ``CacheFront`` treats as a miss. With the default
/// ``KeyEncoding/fingerprinted`` keys, values written by an older version of a type still decode
/// after you:
/// - add an optional property (it decodes as `nil`), or one that the type's `init(from:)` gives
///   a default when the key is absent;
/// - reorder properties, or make a property optional;
/// - widen an integer type (`Int32` to `Int64`), or change between integer and floating-point
///   types when the value is exact in the new type.
///
/// These changes make old entries fail to decode, so ``CacheFront`` treats them as misses (it
/// removes the entry and computes the value again): removing or renaming a property, adding a
/// non-optional property without a default, and changing a property's type otherwise.
/// ``KeyEncoding/named`` also tolerates removed properties, like JSON, at the cost of bytes.
///
/// ## Limits
///
/// With fingerprinted keys, a type's `init(from:)` must read every key its `encode(to:)` wrote
/// (in any order), and cannot list `allKeys` of its own `CodingKeys` container; use
/// ``KeyEncoding/named`` for such types. Containers are written in place, so a nested container
/// must be filled before its parent writes its next value. Each limit fails with a clear error.
///
/// ## Safety
///
/// Decoding bytes that `BinaryCoder` did not write (random bytes, truncated or JSON input,
/// another format version, huge length prefixes) throws ``CacheError/Code/decodingFailed``:
/// every read is bounds-checked, every length and count is checked against the bytes that
/// remain before anything is allocated, integer conversions never trap, and nesting is
/// limited by ``maxDepth``.
public struct BinaryCoder: Coder {
    /// How keys of keyed containers are written.
    public enum KeyEncoding: Sendable, Hashable {
        /// Keys of `CodingKeys` enums are one-byte fingerprints verified by the message trailer;
        /// other keys are written by name. Compact and fast; the type must read every key it
        /// wrote (synthesized `Codable` does).
        case fingerprinted
        /// Every key is written by name (each distinct name once per message). Larger output,
        /// but any `Codable` type works, including types whose `init(from:)` skips keys or lists
        /// `allKeys` of a `CodingKeys` container.
        case named
    }

    /// The format version this coder writes and reads, the first byte of every message.
    public static let formatVersion: UInt8 = BinaryFormat.version

    /// How keys of keyed containers are written. Decoding reads both encodings.
    public let keyEncoding: KeyEncoding
    /// The deepest nesting of containers encoded or decoded, which bounds recursion on
    /// hostile input and catches reference cycles.
    public let maxDepth: Int
    /// Values handed to `Encoder.userInfo` and `Decoder.userInfo`.
    public let userInfo: [CodingUserInfoKey: any Sendable]
    /// Whether ``BinaryCodable`` values take their field-by-field path (always, except to
    /// check a conformance against the `Codable` path).
    let fieldByField: Bool

    /// A short name for logs: `"binary"`.
    public var name: String { "binary" }

    /// Creates a binary coder.
    ///
    /// ```swift
    /// let cache = CacheFront(backend: InMemoryBackend(), coder: BinaryCoder())
    /// ```
    ///
    /// - Parameters:
    ///   - keyEncoding: how keys of keyed containers are written; ``KeyEncoding/fingerprinted``
    ///     by default.
    ///   - maxDepth: the deepest nesting of containers accepted; 256 by default.
    ///   - userInfo: values for `Encoder.userInfo` and `Decoder.userInfo`.
    public init(
        keyEncoding: KeyEncoding = .fingerprinted,
        maxDepth: Int = 256,
        userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) {
        self.keyEncoding = keyEncoding
        self.maxDepth = max(1, maxDepth)
        self.userInfo = userInfo
        self.fieldByField = true
    }

    /// A coder like `base` that encodes and decodes ``BinaryCodable`` values through their
    /// `Codable` conformance only.
    init(codableOnly base: BinaryCoder) {
        self.keyEncoding = base.keyEncoding
        self.maxDepth = base.maxDepth
        self.userInfo = base.userInfo
        self.fieldByField = false
    }

    /// The bytes for `value`.
    ///
    /// - Throws: ``CacheError/Code/encodingFailed`` when the value's `encode(to:)` throws, uses
    ///   its encoder in a way this format cannot represent (see ``BinaryCoder``), or nests
    ///   deeper than ``maxDepth``.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var writer = BinaryWriter.make(
            fingerprintKeys: keyEncoding == .fingerprinted, maxDepth: maxDepth, userInfo: userInfo
        )
        defer { BinaryWriter.recycle(&writer) }
        writer.fieldByField = fieldByField
        do {
            try writer.writeValue(value, key: nil)
            return try writer.finish()
        } catch {
            let reason = (writer.deferredError.map { $0 as any Error }) ?? error
            throw CacheError(
                .encodingFailed,
                "BinaryCoder could not encode \(T.self): \(describeCodingError(reason))",
                underlying: reason
            )
        }
    }

    /// The value of type `type` in `bytes`.
    ///
    /// - Throws: ``CacheError/Code/decodingFailed`` when `bytes` are not a `T` written by
    ///   `BinaryCoder`: another coder's output, another type, damaged or truncated bytes, or a
    ///   newer format version.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        guard let version = bytes.first else {
            throw CacheError(.decodingFailed, "BinaryCoder cannot decode \(T.self) from empty input")
        }
        guard version == BinaryFormat.version else {
            throw CacheError(.decodingFailed, "BinaryCoder cannot decode \(T.self): \(Self.describeVersion(bytes))")
        }
        var reader = BinaryReader.make(bytes: bytes, maxDepth: maxDepth, userInfo: userInfo)
        defer { BinaryReader.recycle(&reader) }
        reader.fieldByField = fieldByField
        do {
            let (value, end) = try reader.readValue(type, at: 1, key: nil)
            try reader.verifyTrailer(at: end)
            return value
        } catch {
            let reason = (reader.deferredError.map { $0 as any Error }) ?? error
            throw CacheError(
                .decodingFailed,
                "BinaryCoder could not decode \(T.self): \(describeCodingError(reason))",
                underlying: reason
            )
        }
    }

    /// The ``BinaryCodable`` value of type `type` in `bytes`: the same value, or the same error,
    /// as the `Decodable` overload gives, usually in less time.
    ///
    /// Chosen by the compiler when the type is known to be ``BinaryCodable`` where the call is
    /// written (``CacheFront`` does this for you):
    /// ```swift
    /// let profile = try BinaryCoder().decode(Profile.self, from: bytes)   // Profile: BinaryCodable
    /// ```
    /// When the whole message is the value's fields, as ``BinaryCodable/encode(binaryFields:)``
    /// writes them, and every field is a primitive (a number, `Bool`, `String`, or an optional
    /// of one), it reads them straight from the bytes, with no decoder object at all. Anything
    /// else (another layout, a field of another type) goes to the `Decodable` overload.
    /// - Throws: ``CacheError/Code/decodingFailed``, as the `Decodable` overload does.
    public func decode<T: BinaryCodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let fields = T.binaryFields
        if fieldByField, fields.isFieldByField, !fields.needsFullDecoder.load(ordering: .relaxed) {
            do {
                return try Self.readFields(T.self, fields, from: bytes)
            } catch {}  // not this layout: the full decoder reads it or says what is wrong
        }
        return try decodeThroughCodable(T.self, from: bytes)
    }

    /// The `Decodable` overload of `decode`, for a caller that knows `T` to be ``BinaryCodable``.
    private func decodeThroughCodable<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decode(type, from: bytes)
    }

    /// The top-level field-by-field read: version byte, the container header that `T` writes,
    /// its fields, and the trailer of exactly its own fingerprints. Throws
    /// `BinaryFieldMismatch` on any difference, without saying more (the caller falls back).
    private static func readFields<T: BinaryCodable>(
        _ type: T.Type, _ fields: BinaryFields, from bytes: [UInt8]
    ) throws -> T {
        try bytes.withUnsafeBufferPointer { buffer throws -> T in
            guard let base = buffer.baseAddress, buffer.count > 0, base[0] == BinaryFormat.version else {
                throw BinaryFieldMismatch()
            }
            let count = buffer.count
            let headerLength = fields.headerLength
            guard headerLength < count &- 1 else { throw BinaryFieldMismatch() }
            var i = 0
            while i < headerLength {
                guard base[1 &+ i] == UInt8(truncatingIfNeeded: fields.header >> (8 * i)) else {
                    throw BinaryFieldMismatch()
                }
                i &+= 1
            }
            var reader = BinaryFieldReader(base: base, count: count, reader: nil, fields: fields, position: 1 &+ headerLength)
            let value: T
            do {
                value = try T(binaryFields: &reader)
            } catch {
                if reader.neededFullDecoder { fields.needsFullDecoder.store(true, ordering: .relaxed) }
                throw error
            }
            guard !reader.failed, reader.index == reader.fieldCount else { throw BinaryFieldMismatch() }
            // The trailer: the sum of the checks of the fingerprints read, which are this type's.
            let end = reader.position
            guard count &- end == 4 else { throw BinaryFieldMismatch() }
            var sum: UInt32 = 0
            for j in 0..<4 { sum |= UInt32(base[end &+ j]) << UInt32(8 * j) }
            guard sum == fields.checkSum else { throw BinaryFieldMismatch() }
            return value
        }
    }

    /// Checks that `value`'s ``BinaryCodable`` conformance writes exactly the bytes that its
    /// `Codable` conformance writes, and that both read them back as `value`.
    ///
    /// Call it in a unit test for every type you make `BinaryCodable`, with values that
    /// exercise each field (optionals both `nil` and set):
    ///
    /// ```swift
    /// @Test func profileCodesFieldByField() throws {
    ///     try BinaryCoder().verifyFieldByField(Profile(id: 1, name: "Ada", email: nil))
    /// }
    /// ```
    ///
    /// - Throws: ``CacheError/Code/encodingFailed`` naming the first byte that differs (a field
    ///   missing from ``BinaryCodable/binaryFields``, listed under another name or out of order,
    ///   or read or written with the wrong type), or ``CacheError/Code/decodingFailed`` when a
    ///   path does not read the value back.
    public func verifyFieldByField<T: BinaryCodable & Equatable>(_ value: T) throws {
        let codable = BinaryCoder(codableOnly: self)
        let expected = try codable.encode(value)
        let actual = try encode(value)
        guard T.binaryFields.isFieldByField else {
            throw CacheError(
                .encodingFailed,
                "\(T.self).binaryFields (\(T.binaryFields.names)) cannot be coded field by field: it is empty, "
                    + "repeats a name or has more than 24; BinaryCoder uses the Codable conformance instead"
            )
        }
        if expected != actual {
            let index = zip(expected, actual).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset
                ?? min(expected.count, actual.count)
            throw CacheError(
                .encodingFailed,
                "\(T.self)'s BinaryCodable conformance writes other bytes than its Codable conformance, from byte "
                    + "\(index) on (\(actual.count) bytes against \(expected.count)): check that binaryFields lists the "
                    + "CodingKeys name of every stored property in declaration order, and that encode(binaryFields:) "
                    + "writes each with its own type (encodeIfPresent for optionals)"
            )
        }
        let fast = try decode(T.self, from: actual)
        let slow = try codable.decode(T.self, from: expected)
        guard fast == value, slow == value else {
            throw CacheError(
                .decodingFailed,
                "\(T.self) does not read back as written: init(binaryFields:) gives \(fast), init(from:) gives "
                    + "\(slow), expected \(value)"
            )
        }
    }

    private static func describeVersion(_ bytes: [UInt8]) -> String {
        let first = bytes[0]
        if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") || first == UInt8(ascii: "\"") {
            return "the bytes look like JSON, not BinaryCoder output (was the value written with JSONCoder?)"
        }
        return "the bytes start with 0x\(String(first, radix: 16)), not the format version "
            + "\(BinaryFormat.version) this coder reads (were they written by another coder, or a newer version?)"
    }
}

/// A one-line description of an `EncodingError` or `DecodingError` with its coding path.
func describeCodingError(_ error: any Error) -> String {
    switch error {
    case let error as DecodingError:
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.debugDescription), at \(describeCodingPath(context.codingPath))"
        case .keyNotFound(let key, let context):
            return "no value for the key \"\(key.stringValue)\", at \(describeCodingPath(context.codingPath))"
        @unknown default:
            return "\(error)"
        }
    case let error as EncodingError:
        switch error {
        case .invalidValue(_, let context):
            return "\(context.debugDescription), at \(describeCodingPath(context.codingPath))"
        @unknown default:
            return "\(error)"
        }
    case let error as CacheError:
        return error.message
    default:
        return "\(error)"
    }
}
