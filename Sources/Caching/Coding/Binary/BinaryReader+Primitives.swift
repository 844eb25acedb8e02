/// Reading primitives (tags, varints, integers, floats, strings) and skipping whole values,
/// every read checked against the bounds of the input first.
extension BinaryReader {
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
}
