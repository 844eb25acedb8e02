/// The `Encoder` that ``BinaryCoder`` hands to `encode(to:)`: a writer and the frame it owns.
struct BinaryEncoderImpl: Encoder {
    let writer: BinaryWriter
    let frame: Int
    let serial: Int

    var codingPath: [any CodingKey] { writer.codingPath(frame: frame, serial: serial) }
    var userInfo: [CodingUserInfoKey: Any] { writer.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        guard let opened = writer.openKeyed(frame, serial, type) else {
            return KeyedEncodingContainer(
                BinaryKeyedEncoder<Key>(writer: writer, frame: -1, serial: -1, fingerprinted: false, forceNamed: true)
            )
        }
        return KeyedEncodingContainer(
            BinaryKeyedEncoder<Key>(
                writer: writer, frame: frame, serial: serial,
                fingerprinted: opened.fingerprinted, forceNamed: opened.forceNamed
            )
        )
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        guard writer.openUnkeyed(frame, serial) else {
            return BinaryUnkeyedEncoder(writer: writer, frame: -1, serial: -1)
        }
        return BinaryUnkeyedEncoder(writer: writer, frame: frame, serial: serial)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        guard writer.openSingle(frame, serial) else {
            return BinarySingleValueEncoder(writer: writer, frame: -1, serial: -1)
        }
        return BinarySingleValueEncoder(writer: writer, frame: frame, serial: serial)
    }
}

struct BinaryKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: BinaryWriter
    let frame: Int
    let serial: Int
    /// Whether this container's keys are fingerprinted (and nil optionals written explicitly).
    let fingerprinted: Bool
    /// Whether this container writes its keys by name inside a fingerprinted container.
    let forceNamed: Bool

    var codingPath: [any CodingKey] { writer.codingPath(frame: frame, serial: serial) }

    @inline(__always)
    private func begin(_ key: Key) throws {
        try writer.beginEntry(key, frame, serial, named: forceNamed)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try begin(key)
        writer.writeNil()
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        try begin(key)
        writer.writeBool(value)
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        try begin(key)
        writer.writeString(value)
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        try begin(key)
        writer.writeDouble(value)
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        try begin(key)
        writer.writeFloat(value)
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        try begin(key)
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        try begin(key)
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        try begin(key)
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        try begin(key)
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        try begin(key)
        writer.writeSigned(value)
    }

    mutating func encode(_ value: Int128, forKey key: Key) throws {
        try begin(key)
        writer.writeInt128(value)
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        try begin(key)
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        try begin(key)
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        try begin(key)
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        try begin(key)
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        try begin(key)
        writer.writeUnsigned(value)
    }

    mutating func encode(_ value: UInt128, forKey key: Key) throws {
        try begin(key)
        writer.writeUInt128(value)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try writer.writeValue(value, key: key)
    }

    // In a fingerprinted container a nil optional is written as an explicit nil entry, so that
    // every key the type knows is present and a fingerprint lookup never has to prove a key
    // absent. Named containers omit it, as JSONEncoder does.

    @inline(__always)
    private mutating func encodeAbsent(_ key: Key) throws {
        if fingerprinted { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeAbsent(key) }
    }

    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        guard let value else { return try encodeAbsent(key) }
        if value is any BinaryOptionalMarker {
            // `T` is itself optional: mark this level present, so that `.some(nil)` is not read
            // back as an absent value.
            try begin(key)
            writer.bytes.append(BinaryFormat.some)
            try writer.writeValue(value, key: key)
        } else {
            try encode(value, forKey: key)
        }
    }

    // Entries that hold a nested container are always named: synthesized enum coding finds the
    // case with `allKeys`, which needs the names.

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        guard let (frame, serial) = pushNested(key) else {
            return KeyedEncodingContainer(
                BinaryKeyedEncoder<NestedKey>(writer: writer, frame: -1, serial: -1, fingerprinted: false, forceNamed: true)
            )
        }
        return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard let (frame, serial) = pushNested(key) else {
            return BinaryUnkeyedEncoder(writer: writer, frame: -1, serial: -1)
        }
        return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(key: BinaryCodingKey.super, named: forceNamed)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(key: key, named: forceNamed)
    }

    private func pushNested(_ key: Key) -> (Int, Int)? {
        do {
            try writer.beginEntry(key, frame, serial, named: true)
            return try writer.pushFrame(key: key)
        } catch let error as EncodingError {
            writer.deferError(error)
            return nil
        } catch {
            return nil
        }
    }

    private func superEncoder<K: CodingKey>(key: K, named: Bool) -> any Encoder {
        do {
            try writer.beginEntry(key, frame, serial, named: named)
            let (frame, serial) = try writer.pushFrame(key: key)
            return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial)
        } catch let error as EncodingError {
            writer.deferError(error)
        } catch {}
        return BinaryEncoderImpl(writer: writer, frame: -1, serial: -1)
    }
}

struct BinaryUnkeyedEncoder: UnkeyedEncodingContainer {
    let writer: BinaryWriter
    let frame: Int
    let serial: Int

    var codingPath: [any CodingKey] { writer.codingPath(frame: frame, serial: serial) }

    var count: Int {
        guard frame >= 0, frame < writer.frames.count, writer.frames[frame].serial == serial else { return 0 }
        return writer.frames[frame].count
    }

    @inline(__always)
    private func begin() throws {
        try writer.beginElement(frame, serial)
    }

    mutating func encodeNil() throws {
        try begin()
        writer.writeNil()
    }

    mutating func encode(_ value: Bool) throws {
        try begin()
        writer.writeBool(value)
    }

    mutating func encode(_ value: String) throws {
        try begin()
        writer.writeString(value)
    }

    mutating func encode(_ value: Double) throws {
        try begin()
        writer.writeDouble(value)
    }

    mutating func encode(_ value: Float) throws {
        try begin()
        writer.writeFloat(value)
    }

    mutating func encode(_ value: Int) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int8) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int16) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int32) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int64) throws {
        try begin()
        writer.writeSigned(value)
    }

    mutating func encode(_ value: Int128) throws {
        try begin()
        writer.writeInt128(value)
    }

    mutating func encode(_ value: UInt) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt8) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt16) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt32) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt64) throws {
        try begin()
        writer.writeUnsigned(value)
    }

    mutating func encode(_ value: UInt128) throws {
        try begin()
        writer.writeUInt128(value)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = count
        try begin()
        try writer.writeValue(value, key: BinaryIndexKey(index))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        guard let (frame, serial) = pushNested() else {
            return KeyedEncodingContainer(
                BinaryKeyedEncoder<NestedKey>(writer: writer, frame: -1, serial: -1, fingerprinted: false, forceNamed: true)
            )
        }
        return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard let (frame, serial) = pushNested() else {
            return BinaryUnkeyedEncoder(writer: writer, frame: -1, serial: -1)
        }
        return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        guard let (frame, serial) = pushNested() else {
            return BinaryEncoderImpl(writer: writer, frame: -1, serial: -1)
        }
        return BinaryEncoderImpl(writer: writer, frame: frame, serial: serial)
    }

    private func pushNested() -> (Int, Int)? {
        do {
            let index = count
            try begin()
            return try writer.pushFrame(key: BinaryIndexKey(index))
        } catch let error as EncodingError {
            writer.deferError(error)
            return nil
        } catch {
            return nil
        }
    }
}

struct BinarySingleValueEncoder: SingleValueEncodingContainer {
    let writer: BinaryWriter
    let frame: Int
    let serial: Int

    var codingPath: [any CodingKey] { writer.codingPath(frame: frame, serial: serial) }

    @inline(__always)
    private func begin() throws {
        try writer.beginSingle(frame, serial)
    }

    mutating func encodeNil() throws {
        try begin()
        writer.writeNil()
    }

    mutating func encode(_ value: Bool) throws {
        try begin()
        writer.writeBool(value)
    }

    mutating func encode(_ value: String) throws {
        try begin()
        writer.writeString(value)
    }

    mutating func encode(_ value: Double) throws {
        try begin()
        writer.writeDouble(value)
    }

    mutating func encode(_ value: Float) throws {
        try begin()
        writer.writeFloat(value)
    }

    mutating func encode(_ value: Int) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int8) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int16) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int32) throws {
        try begin()
        writer.writeSigned(Int64(value))
    }

    mutating func encode(_ value: Int64) throws {
        try begin()
        writer.writeSigned(value)
    }

    mutating func encode(_ value: Int128) throws {
        try begin()
        writer.writeInt128(value)
    }

    mutating func encode(_ value: UInt) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt8) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt16) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt32) throws {
        try begin()
        writer.writeUnsigned(UInt64(value))
    }

    mutating func encode(_ value: UInt64) throws {
        try begin()
        writer.writeUnsigned(value)
    }

    mutating func encode(_ value: UInt128) throws {
        try begin()
        writer.writeUInt128(value)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try writer.writeValue(value, key: nil)
    }
}
