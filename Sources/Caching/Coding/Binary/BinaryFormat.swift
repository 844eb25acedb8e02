/// The constants and small helpers of ``BinaryCoder``'s wire format, version 1.
///
/// Docs/Coders.md describes the format for people; this enum is its single source of truth in
/// code. Every value starts with a one-byte tag; small integers, short strings and small
/// containers carry their value or length in the tag itself.
enum BinaryFormat {
    /// The first byte of every message.
    static let version: UInt8 = 1

    // MARK: Value tags

    /// `0x00...0x7F`: the integers 0...127.
    static let fixIntMax: UInt8 = 0x7F
    /// `0x80...0x8F`: a fingerprinted keyed container of 0...15 entries, salt 0, no named entries.
    static let fingerprintedMapFix: UInt8 = 0x80
    /// `0x90...0x9F`: a named keyed container of 0...15 entries.
    static let namedMapFix: UInt8 = 0x90
    /// `0xA0...0xAF`: an unkeyed container of 0...15 elements.
    static let arrayFix: UInt8 = 0xA0
    /// `0xB0...0xCF`: a string of 0...31 UTF-8 bytes.
    static let fixString: UInt8 = 0xB0
    static let fixStringMaxLength = 31
    static let null: UInt8 = 0xD0
    static let falseValue: UInt8 = 0xD1
    static let trueValue: UInt8 = 0xD2
    /// An unsigned LEB128 varint follows.
    static let unsigned: UInt8 = 0xD3
    /// A zigzag LEB128 varint follows.
    static let signed: UInt8 = 0xD4
    /// 4 bytes, the little-endian bit pattern of a `Float`.
    static let float32: UInt8 = 0xD5
    /// 8 bytes, the little-endian bit pattern of a `Double`.
    static let float64: UInt8 = 0xD6
    /// A varint byte length and that many UTF-8 bytes follow.
    static let string: UInt8 = 0xD7
    /// A varint byte length and that many raw bytes follow (`[UInt8]`, `Data`).
    static let bytes: UInt8 = 0xD8
    /// A varint entry count, a flags byte (bits 0-6: salt, bit 7: has named entries), then the entries.
    static let fingerprintedMap: UInt8 = 0xD9
    /// A varint entry count, then the entries.
    static let namedMap: UInt8 = 0xDA
    /// A varint element count, then the elements.
    static let array: UInt8 = 0xDB
    /// A present `Optional`: the wrapped value follows.
    static let some: UInt8 = 0xDC
    /// 16 raw bytes of a `UUID`.
    static let uuid: UInt8 = 0xDD
    /// A `Double` written as a short decimal: a varint `zigzag(m) << 4 | e`, the value being
    /// `Double(m) / 10^e` (an exact IEEE division), with `e` in 0...15.
    static let decimal: UInt8 = 0xDE
    /// `0xE0...0xFF`: the integers -32...-1.
    static let negativeFixIntMin: UInt8 = 0xE0

    // MARK: Key tokens (the first bytes of a keyed container's entry)

    /// Tokens below this are a key fingerprint (in a fingerprinted container) or the id of an
    /// already written key name (in a named container).
    static let tokenLimit: UInt8 = 0xF0
    /// A new key name: varint byte length and UTF-8 bytes. It gets the next name id.
    static let newName: UInt8 = 0xF0
    /// A reference to a key name written before: varint name id.
    static let nameReference: UInt8 = 0xF1
    /// An integer key (a key whose `stringValue` is the decimal form of its `intValue`): zigzag varint.
    static let intKey: UInt8 = 0xF2

    /// At most this many entries of one container are fingerprinted; later ones are named.
    static let maxFingerprintedEntries = 24
    /// Salts are 1...127 (0 is the unsalted fingerprint).
    static let maxSalt: UInt8 = 127
    /// Fingerprints are 0..<240.
    static let fingerprintCount: UInt64 = 240
    static let hasNamedFlag: UInt8 = 0x80

    // MARK: Key hashing

    /// A stable 64-bit hash of a key's UTF-8 bytes.
    ///
    /// It is part of the wire format and must never change for format version 1: starting from
    /// `0x9E3779B97F4A7C15 ^ byteCount`, each 8-byte little-endian chunk of the bytes (the last
    /// one zero-padded, and one zero chunk for an empty key) is XORed in and the state put
    /// through ``mix(_:)``. It is not Swift's `Hasher`, which is seeded per process.
    @inline(__always)
    static func keyHash(_ key: String) -> UInt64 {
        if let hash = key.utf8.withContiguousStorageIfAvailable({ hashBytes($0) }) {
            return hash
        }
        return Array(key.utf8).withUnsafeBufferPointer { hashBytes($0) }
    }

    @inline(__always)
    static func hashBytes(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let count = bytes.count
        var h: UInt64 = 0x9e37_79b9_7f4a_7c15 ^ UInt64(truncatingIfNeeded: count)
        var i = 0
        while count - i > 8 {
            let chunk = UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = mix(h ^ UInt64(littleEndian: chunk))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        return mix(h ^ tail)
    }

    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }

    /// The one-byte fingerprint (0..<240) of a key hash under a salt.
    @inline(__always)
    static func fingerprint(_ hash: UInt64, salt: UInt8) -> UInt8 {
        let h = salt == 0 ? hash : mix(hash ^ (UInt64(salt) &* 0x9e37_79b9_7f4a_7c15))
        return UInt8(truncatingIfNeeded: (h >> 40) % fingerprintCount)
    }

    /// The 32-bit check value of a key hash, summed into the message trailer.
    @inline(__always)
    static func check(_ hash: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: hash)
    }

    // MARK: Numbers

    /// Exact powers of ten for ``decimal`` values.
    static let powersOfTen: [Double] = [
        1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ]

    /// The shortest decimal form `(m, e)` of `value` with `e` in 0...7 that gives back exactly
    /// `value`, if there is one: `97.25` is `(9725, 2)`, `3.0` is `(3, 0)`.
    @inline(__always)
    static func shortDecimal(_ value: Double) -> (mantissa: Int64, exponent: Int)? {
        let magnitude = abs(value)
        guard magnitude < 9.0e15, magnitude >= 1e-7 || value == 0, value.bitPattern != (-0.0).bitPattern else {
            return nil
        }
        for exponent in 0...7 {
            let scale = powersOfTen[exponent]
            let scaled = (value * scale).rounded()
            guard abs(scaled) < 9.0e15 else { return nil }
            if scaled / scale == value {
                return (Int64(scaled), exponent)
            }
        }
        return nil
    }

    @inline(__always)
    static func zigzag(_ value: Int64) -> UInt64 {
        (UInt64(bitPattern: value) << 1) ^ UInt64(bitPattern: value >> 63)
    }

    @inline(__always)
    static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    @inline(__always)
    static func zigzag128(_ value: Int128) -> UInt128 {
        (UInt128(bitPattern: value) << 1) ^ UInt128(bitPattern: value >> 127)
    }

    @inline(__always)
    static func unzigzag128(_ value: UInt128) -> Int128 {
        Int128(bitPattern: value >> 1) ^ (0 - Int128(bitPattern: value & 1))
    }

    /// Byte count of `value` as a varint.
    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        var n = 1
        var v = value >> 7
        while v != 0 {
            n += 1
            v >>= 7
        }
        return n
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(truncatingIfNeeded: v))
    }

    mutating func appendVarint128(_ value: UInt128) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(truncatingIfNeeded: v))
    }
}

/// A `CodingKey` for keys made at run time: dictionary keys, `super`, array indices in paths.
struct BinaryCodingKey: CodingKey, Sendable {
    let stringValue: String
    let intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }

    init(stringValue: String, intValue: Int?) {
        self.stringValue = stringValue
        self.intValue = intValue
    }

    static let `super` = BinaryCodingKey(stringValue: "super")
}

/// An array index in a coding path, stored without a `String` so that pushing it is free.
struct BinaryIndexKey: CodingKey, Sendable {
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
}

/// Renders a coding path for error messages: `users[3].address.city`.
func describeCodingPath(_ path: [any CodingKey]) -> String {
    if path.isEmpty { return "the top-level value" }
    var out = ""
    for key in path {
        if let index = key as? BinaryIndexKey {
            out += "[\(index.index)]"
        } else if key.stringValue.isEmpty, let i = key.intValue {
            out += "[\(i)]"
        } else {
            if !out.isEmpty { out += "." }
            out += key.stringValue
        }
    }
    return out
}
