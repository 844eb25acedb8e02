import struct Foundation.Data
import struct Foundation.UUID

// Compact forms for two Foundation types that caches often hold. Both hooks also read what
// the types' own `encode(to:)` writes (an unkeyed container of bytes, a string), and a UUID
// written compactly still decodes as a `String`, so types that merely contain these values,
// or that encode them one way and decode another, keep working.

extension Data: BinaryEncodingHook {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        writer.writeBytes(self)
    }
}

extension Data: BinaryDecodingHook {
    static func decodeBinary(from reader: BinaryReader, at position: Int, key: (any CodingKey)?) throws -> (Data, Int) {
        var p = position
        if try reader.valueTag(&p) == BinaryFormat.bytes {
            let length = try reader.readLength(&p)
            return (Data(reader.bytes[p..<(p + length)]), p + length)
        }
        return try reader.readChild(Data.self, at: position, key: key, useHooks: false)
    }
}

extension UUID: BinaryEncodingHook {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        writer.bytes.append(BinaryFormat.uuid)
        withUnsafeBytes(of: uuid) { writer.bytes.append(contentsOf: $0) }
    }
}

extension UUID: BinaryDecodingHook {
    static func decodeBinary(from reader: BinaryReader, at position: Int, key: (any CodingKey)?) throws -> (UUID, Int) {
        var p = position
        let tag = try reader.valueTag(&p)
        if tag == BinaryFormat.uuid {
            let uuid = try reader.readUUID(&p)
            return (uuid, p)
        }
        p = position
        let string = try reader.readString(&p)
        guard let uuid = UUID(uuidString: string) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: reader.path, debugDescription: "\"\(string.prefix(64))\" is not a UUID (at byte \(position))")
            )
        }
        return (uuid, p)
    }
}

extension BinaryReader {
    /// Reads the 16 bytes of a UUID whose tag was read.
    func readUUID(_ p: inout Int) throws -> UUID {
        guard bytes.count - p >= 16 else { throw truncated(p) }
        let b = bytes
        let s = p
        p += 16
        return UUID(
            uuid: (
                b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
                b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13], b[s + 14], b[s + 15]
            )
        )
    }

    /// A UUID written compactly, read as a `String`.
    func readUUIDString(_ p: inout Int) throws -> String {
        try readUUID(&p).uuidString
    }
}
