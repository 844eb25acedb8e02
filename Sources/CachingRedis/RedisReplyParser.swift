import Caching

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds where complete RESP2 replies end in the byte stream from the server, without
/// allocating and without building anything: the connection's thread only needs to know when a
/// request's replies are all in, to hand their bytes to the caller, who decodes them with
/// ``RedisReplyParser`` on its own thread.
///
/// Resumable: when the bytes end inside a reply, ``next(in:cursor:)`` returns `false` with
/// `cursor` at the start of the incomplete element and the open arrays remembered, and carries
/// on from there when more bytes arrive. It checks the framing strictly (type bytes, lengths,
/// CRLF after bulk strings, nesting depth) and throws ``RedisProtocolError`` on anything else,
/// so the caller's parser only ever sees well-framed replies.
struct RedisReplyScanner {
    /// Elements still expected by each open array, innermost last.
    private var open: [Int] = []
    /// Deeper nesting than any reply to the commands this backend sends is a protocol error
    /// (hiredis's own limit is 7).
    static let maximumDepth = 8

    init() {
        open.reserveCapacity(Self.maximumDepth)
    }

    /// Forgets any partial reply (after the connection was dropped).
    mutating func reset() {
        open.removeAll(keepingCapacity: true)
    }

    /// Scans from `cursor`; returns `true` with `cursor` just after the first complete
    /// top-level reply, or `false` with `cursor` where scanning must resume once more bytes
    /// are in `bytes`.
    mutating func next(in bytes: UnsafeRawBufferPointer, cursor: inout Int) throws(RedisProtocolError) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let count = bytes.count
        while true {
            guard cursor < count else { return false }
            let type = base.load(fromByteOffset: cursor, as: UInt8.self)
            if type == UInt8(ascii: "$"), let (length, end) = Self.bulkHeader(base, from: cursor + 1, count: count) {
                // The common case (a value of an `MGET` reply) in one pass over the header.
                let start = end + 2
                let (valueEnd, overflow) = start.addingReportingOverflow(length)
                if overflow { throw RedisProtocolError("a bulk string has an invalid length") }
                guard valueEnd + 2 <= count else { return false }
                guard base.load(fromByteOffset: valueEnd, as: UInt8.self) == 13,
                    base.load(fromByteOffset: valueEnd + 1, as: UInt8.self) == 10
                else {
                    throw RedisProtocolError("a bulk string is not followed by CRLF")
                }
                cursor = valueEnd + 2
                if closeElement() { return true }
                continue
            }
            guard let lineEnd = RedisReplyParser.lineEnd(base, from: cursor + 1, count: count) else {
                return false
            }
            switch type {
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                cursor = lineEnd + 2
            case UInt8(ascii: ":"):
                guard RedisReplyParser.integer(base, from: cursor + 1, to: lineEnd) != nil else {
                    throw RedisProtocolError("an integer reply is not a number")
                }
                cursor = lineEnd + 2
            case UInt8(ascii: "$"):
                guard let length = RedisReplyParser.integer(base, from: cursor + 1, to: lineEnd), length >= -1 else {
                    throw RedisProtocolError("a bulk string has an invalid length")
                }
                if length == -1 {
                    cursor = lineEnd + 2
                } else {
                    let start = lineEnd + 2
                    let (end, overflow) = start.addingReportingOverflow(Int(length))
                    if overflow { throw RedisProtocolError("a bulk string has an invalid length") }
                    guard end + 2 <= count else { return false }
                    guard base.load(fromByteOffset: end, as: UInt8.self) == 13,
                        base.load(fromByteOffset: end + 1, as: UInt8.self) == 10
                    else {
                        throw RedisProtocolError("a bulk string is not followed by CRLF")
                    }
                    cursor = end + 2
                }
            case UInt8(ascii: "*"):
                guard let elements = RedisReplyParser.integer(base, from: cursor + 1, to: lineEnd), elements >= -1 else {
                    throw RedisProtocolError("an array has an invalid length")
                }
                cursor = lineEnd + 2
                if elements > 0 {
                    guard open.count < Self.maximumDepth else { throw RedisProtocolError("arrays are nested too deeply") }
                    open.append(Int(elements))
                    continue  // the array is complete once its elements are
                }
            default:
                throw RedisProtocolError("unknown reply type byte \(type)")
            }
            if closeElement() { return true }
        }
    }

    /// Counts one complete element in the arrays it closes; true when a top-level reply is complete.
    @inline(__always)
    private mutating func closeElement() -> Bool {
        while let last = open.last {
            if last > 1 {
                open[open.count - 1] = last - 1
                return false
            }
            open.removeLast()
        }
        return true
    }

    /// The length and the offset of the CR of a bulk string header `$<digits>\r\n` whose digits
    /// start at `from`, when it is complete and plain (1 to 18 digits); `nil` otherwise (`$-1`,
    /// incomplete or broken headers take the general path, which decides).
    @inline(__always)
    static func bulkHeader(_ base: UnsafeRawPointer, from: Int, count: Int) -> (length: Int, lineEnd: Int)? {
        var offset = from
        var length = 0
        let limit = min(count, from + 18)
        while offset < limit {
            let digit = base.load(fromByteOffset: offset, as: UInt8.self) &- UInt8(ascii: "0")
            if digit > 9 { break }
            length = length &* 10 &+ Int(digit)
            offset += 1
        }
        guard offset > from, offset + 1 < count,
            base.load(fromByteOffset: offset, as: UInt8.self) == 13,
            base.load(fromByteOffset: offset + 1, as: UInt8.self) == 10
        else { return nil }
        return (length, offset)
    }
}

/// A new array holding `bytes`: one allocation and one `memcpy` (the generic
/// `Array(_: some Sequence)` initializer costs more per call, and values are copied 100 at a
/// time in a batch get).
@inline(__always)
func copyBytes(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
    let count = bytes.count
    guard count > 0, let source = bytes.baseAddress else { return [] }
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        guard let target = buffer.baseAddress else { return }
        UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: count)
        initialized = count
    }
}

/// The server broke the RESP2 framing (or the stream was corrupted): the connection is reset.
struct RedisProtocolError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Decodes complete, well-framed RESP2 replies (found by ``RedisReplyScanner`` on the
/// connection's thread) on the caller's thread, straight from the received bytes: bulk strings
/// are copied once, into the arrays the caller keeps.
///
/// Every read is bounds-checked; bytes that do not hold what the scanner promised throw
/// ``RedisProtocolError`` instead of trapping.
struct RedisReplyParser {
    private let base: UnsafeRawPointer
    private let count: Int
    /// The offset of the next reply.
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty buffer still needs an address; nothing is ever read from it.
        base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        count = bytes.baseAddress == nil ? 0 : bytes.count
    }

    var isAtEnd: Bool { position >= count }

    /// The next reply as a ``RedisValue``.
    mutating func value(depth: Int = 0) throws(RedisProtocolError) -> RedisValue {
        let (type, lineEnd) = try header()
        switch type {
        case UInt8(ascii: "+"):
            defer { position = lineEnd + 2 }
            return .status(text(from: position + 1, to: lineEnd))
        case UInt8(ascii: "-"):
            defer { position = lineEnd + 2 }
            return .error(text(from: position + 1, to: lineEnd))
        case UInt8(ascii: ":"):
            guard let value = Self.integer(base, from: position + 1, to: lineEnd) else {
                throw RedisProtocolError("an integer reply is not a number")
            }
            position = lineEnd + 2
            return .integer(value)
        case UInt8(ascii: "$"):
            return try bulk(lineEnd: lineEnd).map(RedisValue.bulk) ?? .null
        case UInt8(ascii: "*"):
            guard let elements = Self.integer(base, from: position + 1, to: lineEnd), elements >= -1,
                depth < RedisReplyScanner.maximumDepth
            else {
                throw RedisProtocolError("an array has an invalid length")
            }
            position = lineEnd + 2
            if elements == -1 { return .null }
            // Never trust a length for an allocation: each element takes at least 3 bytes.
            var values: [RedisValue] = []
            values.reserveCapacity(min(Int(elements), (count - position) / 3))
            for _ in 0..<elements { values.append(try value(depth: depth + 1)) }
            return .array(values)
        default:
            throw RedisProtocolError("unknown reply type byte \(type)")
        }
    }

    /// The next reply as entries without TTLs if it is an array of bulk strings and nils (an
    /// `MGET` reply); otherwise `nil`, with the position unchanged.
    mutating func entries() throws(RedisProtocolError) -> [CacheEntry?]? {
        let start = position
        let (type, lineEnd) = try header()
        guard type == UInt8(ascii: "*"), let elements = Self.integer(base, from: position + 1, to: lineEnd), elements >= 0 else {
            position = start
            return nil
        }
        position = lineEnd + 2
        var entries: [CacheEntry?] = []
        entries.reserveCapacity(min(Int(elements), (count - position) / 3))
        for _ in 0..<elements {
            if position < count, base.load(fromByteOffset: position, as: UInt8.self) == UInt8(ascii: "$"),
                let (length, lineEnd) = RedisReplyScanner.bulkHeader(base, from: position + 1, count: count)
            {
                // The common case, in one pass over the header.
                let start = lineEnd + 2
                guard length <= count - start - 2 else { throw RedisProtocolError("a bulk string ends early") }
                position = start + length + 2
                entries.append(CacheEntry(value: copyBytes(UnsafeRawBufferPointer(start: base + start, count: length)), ttl: nil))
                continue
            }
            let (elementType, elementEnd) = try header()
            guard elementType == UInt8(ascii: "$") else {
                position = start
                return nil
            }
            if let bytes = try bulk(lineEnd: elementEnd) {
                entries.append(CacheEntry(value: bytes, ttl: nil))
            } else {
                entries.append(nil)
            }
        }
        return entries
    }

    /// The type byte and the offset of the CR ending the header line at `position`.
    private func header() throws(RedisProtocolError) -> (type: UInt8, lineEnd: Int) {
        guard position < count, let lineEnd = Self.lineEnd(base, from: position + 1, count: count) else {
            throw RedisProtocolError("a reply ends early")
        }
        return (base.load(fromByteOffset: position, as: UInt8.self), lineEnd)
    }

    /// The bulk string whose `$` header line ends at `lineEnd` (nil for a nil bulk string).
    private mutating func bulk(lineEnd: Int) throws(RedisProtocolError) -> [UInt8]? {
        guard let length = Self.integer(base, from: position + 1, to: lineEnd), length >= -1 else {
            throw RedisProtocolError("a bulk string has an invalid length")
        }
        if length == -1 {
            position = lineEnd + 2
            return nil
        }
        let start = lineEnd + 2
        guard Int(length) <= count - start - 2 else { throw RedisProtocolError("a bulk string ends early") }
        position = start + Int(length) + 2
        return copyBytes(UnsafeRawBufferPointer(start: base + start, count: Int(length)))
    }

    private func text(from start: Int, to end: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + start, count: end - start), as: UTF8.self)
    }

    /// The offset of the `\r` of the first CRLF at or after `from`, or `nil` if the bytes end first.
    @inline(__always)
    static func lineEnd(_ base: UnsafeRawPointer, from: Int, count: Int) -> Int? {
        // Header lines (`$100`, `*2`, `:1`) are short: a plain loop beats a call to memchr.
        var offset = from
        let shortLimit = min(count - 1, from + 24)
        while offset < shortLimit {
            if base.load(fromByteOffset: offset, as: UInt8.self) == 13 {
                if base.load(fromByteOffset: offset + 1, as: UInt8.self) == 10 { return offset }
            }
            offset += 1
        }
        while offset < count - 1 {
            guard let found = memchr(base + offset, 13, count - 1 - offset) else { return nil }
            let index = base.distance(to: UnsafeRawPointer(found))
            if base.load(fromByteOffset: index + 1, as: UInt8.self) == 10 { return index }
            offset = index + 1
        }
        return nil
    }

    /// The decimal integer in `[start, end)` (an optional `-`, then digits), or `nil` if it is
    /// not one or does not fit in an `Int64`.
    @inline(__always)
    static func integer(_ base: UnsafeRawPointer, from start: Int, to end: Int) -> Int64? {
        var offset = start
        let negative = offset < end && base.load(fromByteOffset: offset, as: UInt8.self) == UInt8(ascii: "-")
        if negative { offset += 1 }
        let digits = end - offset
        guard digits > 0, digits <= 20 else { return nil }
        var magnitude: UInt64 = 0
        while offset < end {
            let digit = base.load(fromByteOffset: offset, as: UInt8.self) &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(digit))
            if overflow || carry { return nil }
            magnitude = sum
            offset += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }
}
