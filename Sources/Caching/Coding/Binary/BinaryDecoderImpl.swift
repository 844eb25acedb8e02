/// The `Decoder` that ``BinaryCoder`` hands to `init(from:)`: a reader and the position of
/// the value to decode. Three words, so that passing it as `any Decoder` does not allocate.
struct BinaryDecoderImpl: Decoder {
    let reader: BinaryReader
    let position: Int
    /// `mark << 32 | pathEnd`: the first frame of this decoder's scope and its coding path length.
    private let packed: Int

    init(reader: BinaryReader, position: Int, mark: Int, pathEnd: Int) {
        self.reader = reader
        self.position = position
        self.packed = mark << 32 | (pathEnd & 0xFFFF_FFFF)
    }

    var mark: Int { packed >> 32 }
    var pathEnd: Int { packed & 0xFFFF_FFFF }

    var codingPath: [any CodingKey] { reader.pathPrefix(pathEnd) }
    var userInfo: [CodingUserInfoKey: Any] { reader.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let frame = try reader.openKeyed(at: position, searchFrom: mark)
        return KeyedDecodingContainer(
            BinaryKeyedDecoder<Key>(reader: reader, frame: frame, serial: reader.frames[frame].serial)
        )
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let frame = try reader.openUnkeyed(at: position)
        return BinaryUnkeyedDecoder(reader: reader, frame: frame, serial: reader.frames[frame].serial)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        BinarySingleValueDecoder(reader: reader, position: position, pathEnd: pathEnd)
    }
}

struct BinaryKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let reader: BinaryReader
    let frame: Int
    let serial: Int

    var codingPath: [any CodingKey] {
        guard frame < reader.frames.count, reader.frames[frame].serial == serial else { return reader.path }
        return reader.pathPrefix(reader.frames[frame].pathEnd)
    }

    var allKeys: [Key] {
        do {
            return try reader.allKeys(frame, serial, as: Key.self)
        } catch let error as DecodingError {
            reader.deferError(error)
            return []
        } catch {
            return []
        }
    }

    func contains(_ key: Key) -> Bool {
        do {
            try reader.validate(frame, serial)
            return try reader.lookup(key, in: frame) != nil
        } catch let error as DecodingError {
            reader.deferError(error)
            return false
        } catch {
            return false
        }
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try reader.validate(frame, serial)
        guard let entry = try reader.lookup(key, in: frame) else { throw reader.keyNotFound(key, in: frame) }
        guard try reader.byte(at: entry.valuePosition) == BinaryFormat.null else { return false }
        try reader.record(entry, in: frame)
        reader.advance(frame, past: entry, to: entry.valuePosition + 1)
        return true
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try reader.decodeEntry(key, frame, serial) { try reader.readBool(&$0) }
    }

    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try reader.decodeEntry(key, frame, serial) { try reader.readString(&$0) }
    }

    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        try reader.decodeEntry(key, frame, serial) { try reader.readDouble(&$0) }
    }

    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        try reader.decodeEntry(key, frame, serial) { try reader.readFloat(&$0) }
    }

    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int.self, &$0) }
    }

    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int8.self, &$0) }
    }

    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int16.self, &$0) }
    }

    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int32.self, &$0) }
    }

    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int64.self, &$0) }
    }

    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(Int128.self, &$0) }
    }

    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt.self, &$0) }
    }

    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt8.self, &$0) }
    }

    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt16.self, &$0) }
    }

    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt32.self, &$0) }
    }

    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt64.self, &$0) }
    }

    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 {
        try reader.decodeEntry(key, frame, serial) { try reader.readInteger(UInt128.self, &$0) }
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try reader.decodeEntryValue(type, key, frame, serial)
    }

    // decodeIfPresent: nil when the key is absent or its value is nil. A `some` marker before
    // the value (written for a present optional) belongs to this level, so that `Int??`
    // round-trips.

    private func entryIfPresent(_ key: Key) throws -> BinaryReader.Entry? {
        try reader.validate(frame, serial)
        guard let entry = try reader.lookup(key, in: frame) else { return nil }
        if try reader.byte(at: entry.valuePosition) == BinaryFormat.null {
            try reader.record(entry, in: frame)
            reader.advance(frame, past: entry, to: entry.valuePosition + 1)
            return nil
        }
        return entry
    }

    private func decodePresent<R>(_ key: Key, _ read: (inout Int) throws -> R) throws -> R? {
        guard let entry = try entryIfPresent(key) else { return nil }
        try reader.record(entry, in: frame)
        var p = entry.valuePosition
        let value = try read(&p)
        reader.advance(frame, past: entry, to: p)
        return value
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        try decodePresent(key) { try reader.readBool(&$0) }
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        try decodePresent(key) { try reader.readString(&$0) }
    }

    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        try decodePresent(key) { try reader.readDouble(&$0) }
    }

    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? {
        try decodePresent(key) { try reader.readFloat(&$0) }
    }

    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        try decodePresent(key) { try reader.readInteger(Int.self, &$0) }
    }

    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? {
        try decodePresent(key) { try reader.readInteger(Int8.self, &$0) }
    }

    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? {
        try decodePresent(key) { try reader.readInteger(Int16.self, &$0) }
    }

    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? {
        try decodePresent(key) { try reader.readInteger(Int32.self, &$0) }
    }

    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? {
        try decodePresent(key) { try reader.readInteger(Int64.self, &$0) }
    }

    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? {
        try decodePresent(key) { try reader.readInteger(Int128.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? {
        try decodePresent(key) { try reader.readInteger(UInt.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? {
        try decodePresent(key) { try reader.readInteger(UInt8.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? {
        try decodePresent(key) { try reader.readInteger(UInt16.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? {
        try decodePresent(key) { try reader.readInteger(UInt32.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? {
        try decodePresent(key) { try reader.readInteger(UInt64.self, &$0) }
    }

    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? {
        try decodePresent(key) { try reader.readInteger(UInt128.self, &$0) }
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try reader.validate(frame, serial)
        guard let entry = try reader.lookup(key, in: frame) else { return nil }
        let tag = try reader.byte(at: entry.valuePosition)
        if tag == BinaryFormat.null {
            try reader.record(entry, in: frame)
            reader.advance(frame, past: entry, to: entry.valuePosition + 1)
            return nil
        }
        return try reader.decodeValue(of: entry, type, key, frame, skippingSome: tag == BinaryFormat.some)
    }

    // Nested containers and super decoders: the entry's end is found by skipping it, so that
    // the cursor can move on while the nested container is still in use.

    private func nestedEntry(_ key: some CodingKey) throws -> Int {
        try reader.validate(frame, serial)
        guard let entry = try reader.lookup(key, in: frame) else { throw reader.keyNotFound(key, in: frame) }
        try reader.record(entry, in: frame)
        let end = try reader.skipValue(entry.valuePosition)
        reader.advance(frame, past: entry, to: end)
        reader.path.removeSubrange(min(reader.frames[frame].pathEnd, reader.path.count)...)
        reader.path.append(key)
        return entry.valuePosition
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let position = try nestedEntry(key)
        let nested = try reader.openKeyed(at: position, searchFrom: frame + 1)
        return KeyedDecodingContainer(
            BinaryKeyedDecoder<NestedKey>(reader: reader, frame: nested, serial: reader.frames[nested].serial)
        )
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let position = try nestedEntry(key)
        let nested = try reader.openUnkeyed(at: position)
        return BinaryUnkeyedDecoder(reader: reader, frame: nested, serial: reader.frames[nested].serial)
    }

    func superDecoder() throws -> any Decoder {
        let position = try nestedEntry(BinaryCodingKey.super)
        return BinaryDecoderImpl(reader: reader, position: position, mark: reader.frames.count, pathEnd: reader.path.count)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        let position = try nestedEntry(key)
        return BinaryDecoderImpl(reader: reader, position: position, mark: reader.frames.count, pathEnd: reader.path.count)
    }
}

struct BinaryUnkeyedDecoder: UnkeyedDecodingContainer {
    let reader: BinaryReader
    let frame: Int
    let serial: Int

    private var isValid: Bool {
        frame >= 0 && frame < reader.frames.count && reader.frames[frame].serial == serial
    }

    var codingPath: [any CodingKey] {
        isValid ? reader.pathPrefix(reader.frames[frame].pathEnd) : reader.path
    }

    var count: Int? { isValid ? reader.frames[frame].count : nil }

    var isAtEnd: Bool { !isValid || reader.frames[frame].cursorIndex >= reader.frames[frame].count }

    var currentIndex: Int { isValid ? reader.frames[frame].cursorIndex : 0 }

    /// Checks that there is an element left, and returns its position.
    @inline(__always)
    private func next(_ type: Any.Type) throws -> Int {
        try reader.validate(frame, serial)
        let f = reader.frames[frame]
        guard f.cursorIndex < f.count else {
            throw DecodingError.valueNotFound(
                type,
                .init(
                    codingPath: reader.pathPrefix(f.pathEnd) + [BinaryIndexKey(f.cursorIndex)],
                    debugDescription: "the unkeyed container has no more elements (it has \(f.count))"
                )
            )
        }
        return f.cursorPosition
    }

    private func element<R>(_ type: Any.Type, _ read: (inout Int) throws -> R) throws -> R {
        var p = try next(type)
        if reader.frames[frame].blob {
            throw reader.mismatch(type, found: BinaryFormat.bytes, at: p)
        }
        let value = try read(&p)
        reader.advanceElement(frame, to: p)
        return value
    }

    /// An integer element: from a blob, the next raw byte.
    private func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        var p = try next(type)
        if reader.frames[frame].blob {
            let byte = reader.bytes[p]
            guard let value = I(exactly: byte) else { throw reader.mismatch(type, found: BinaryFormat.bytes, at: p) }
            reader.advanceElement(frame, to: p + 1)
            return value
        }
        let value = try reader.readInteger(type, &p)
        reader.advanceElement(frame, to: p)
        return value
    }

    mutating func decodeNil() throws -> Bool {
        let p = try next(Never.self)
        guard !reader.frames[frame].blob, try reader.byte(at: p) == BinaryFormat.null else { return false }
        reader.advanceElement(frame, to: p + 1)
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try element(type) { try reader.readBool(&$0) } }
    mutating func decode(_ type: String.Type) throws -> String { try element(type) { try reader.readString(&$0) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try element(type) { try reader.readDouble(&$0) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try element(type) { try reader.readFloat(&$0) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = try next(type)
        if reader.frames[frame].blob {
            if let integerType = T.self as? any FixedWidthInteger.Type, let value = try integer(integerType) as? T {
                return value
            }
            throw reader.mismatch(type, found: BinaryFormat.bytes, at: p)
        }
        let (value, end) = try reader.readValue(type, at: p, key: BinaryIndexKey(reader.frames[frame].cursorIndex))
        reader.advanceElement(frame, to: end)
        return value
    }

    private func nestedElement() throws -> Int {
        let p = try next(Any.self)
        if reader.frames[frame].blob {
            throw reader.mismatch(Any.self, expected: "a nested container", found: BinaryFormat.bytes, at: p)
        }
        let index = reader.frames[frame].cursorIndex
        let end = try reader.skipValue(p)
        reader.advanceElement(frame, to: end)
        reader.path.removeSubrange(min(reader.frames[frame].pathEnd, reader.path.count)...)
        reader.path.append(BinaryIndexKey(index))
        return p
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let position = try nestedElement()
        let nested = try reader.openKeyed(at: position, searchFrom: frame + 1)
        return KeyedDecodingContainer(
            BinaryKeyedDecoder<NestedKey>(reader: reader, frame: nested, serial: reader.frames[nested].serial)
        )
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let position = try nestedElement()
        let nested = try reader.openUnkeyed(at: position)
        return BinaryUnkeyedDecoder(reader: reader, frame: nested, serial: reader.frames[nested].serial)
    }

    mutating func superDecoder() throws -> any Decoder {
        let position = try nestedElement()
        return BinaryDecoderImpl(reader: reader, position: position, mark: reader.frames.count, pathEnd: reader.path.count)
    }
}

struct BinarySingleValueDecoder: SingleValueDecodingContainer {
    let reader: BinaryReader
    let position: Int
    let pathEnd: Int

    var codingPath: [any CodingKey] { reader.pathPrefix(pathEnd) }

    func decodeNil() -> Bool {
        position < reader.bytes.count && reader.bytes[position] == BinaryFormat.null
    }

    @inline(__always)
    private func read<R>(_ body: (inout Int) throws -> R) throws -> R {
        var p = position
        let value = try body(&p)
        reader.lastSingleValue = (position, p)
        return value
    }

    func decode(_ type: Bool.Type) throws -> Bool { try read { try reader.readBool(&$0) } }
    func decode(_ type: String.Type) throws -> String { try read { try reader.readString(&$0) } }
    func decode(_ type: Double.Type) throws -> Double { try read { try reader.readDouble(&$0) } }
    func decode(_ type: Float.Type) throws -> Float { try read { try reader.readFloat(&$0) } }
    func decode(_ type: Int.Type) throws -> Int { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: Int8.Type) throws -> Int8 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: Int16.Type) throws -> Int16 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: Int32.Type) throws -> Int32 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: Int64.Type) throws -> Int64 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: Int128.Type) throws -> Int128 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt.Type) throws -> UInt { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try read { try reader.readInteger(type, &$0) } }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try read { try reader.readInteger(type, &$0) } }

    /// Decodes a wrapped value: one `some` marker (written for a present optional) is passed
    /// over, so that `Optional.init(from:)` of a nested optional gets `.some(nil)` back.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        var start = position
        if try reader.byte(at: position) == BinaryFormat.some { start += 1 }
        let (value, end) = try reader.readValue(type, at: start, key: nil)
        reader.lastSingleValue = (position, end)
        return value
    }
}
