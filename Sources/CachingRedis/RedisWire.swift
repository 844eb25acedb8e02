import CHiredis
import Caching

/// A reply from the server (RESP2): decoded by ``RedisReplyParser`` from the bytes the connection
/// received, or copied out of a hiredis reply object (the handshake's blocking commands).
enum RedisValue: Sendable {
    /// A bulk string: binary-safe bytes.
    case bulk([UInt8])
    /// A status reply such as `OK`.
    case status(String)
    /// An integer reply.
    case integer(Int64)
    /// A nil bulk string or nil array.
    case null
    /// An error reply, with the server's text (such as `WRONGTYPE Operation against a key ...`).
    case error(String)
    /// An array reply.
    case array([RedisValue])
    /// An array reply of bulk strings and nils decoded straight into entries without TTLs
    /// (`MGET` with ``RedisDecoding/entries``), skipping the intermediate values.
    case entries([CacheEntry?])

    /// Copies a hiredis reply tree; the caller frees it.
    init(reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            if let str = r.str, r.len > 0 {
                self = .bulk([UInt8](UnsafeRawBufferPointer(start: str, count: r.len)))
            } else {
                self = .bulk([])
            }
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_NIL:
            self = .null
        case REDIS_REPLY_STATUS:
            self = .status(Self.text(r))
        case REDIS_REPLY_ERROR:
            self = .error(Self.text(r))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = chiredis_reply_element(reply, i) {
                    elements.append(RedisValue(reply: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .error("unexpected reply type \(r.type) from hiredis")
        }
    }

    private static func text(_ r: redisReply) -> String {
        guard let str = r.str, r.len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
    }
}

/// How a request's replies are decoded into ``RedisValue``s.
enum RedisDecoding: Sendable {
    /// The generic tree of values.
    case values
    /// An array of bulk strings and nils becomes ``RedisValue/entries(_:)`` (`MGET`).
    case entries
}

/// One or more commands to pipeline, already encoded in the Redis protocol (RESP2
/// multi-bulk requests, the same bytes `redisFormatCommandArgv` produces).
///
/// Built by the calling task, so encoding runs in parallel with the connection's thread, and
/// so that a caller can write its request straight to an idle connection. Every argument is
/// length-prefixed: arguments are binary-safe and may hold zero bytes or CR/LF.
///
/// ```swift
/// var commands = RedisCommands("GET", arguments: 1) { $0.argument(key) }
/// commands.command("PTTL", arguments: 1) { $0.argument(key) }
/// ```
struct RedisCommands: Sendable {
    /// The encoded requests, back to back.
    private(set) var bytes: [UInt8] = []
    /// The number of commands.
    private(set) var count = 0
    /// Arguments still expected by the command being built.
    private var remaining = 0
    /// Whether a command got a different number of arguments than announced (a bug).
    private(set) var isMalformed = false

    init() {}

    /// One command.
    init(_ name: StaticString, arguments: Int = 0, _ body: (inout RedisCommands) -> Void = { _ in }) {
        command(name, arguments: arguments, body)
    }

    /// Appends a command: its name, then the `arguments` arguments that `body` adds.
    mutating func command(_ name: StaticString, arguments: Int = 0, _ body: (inout RedisCommands) -> Void = { _ in }) {
        if remaining != 0 { isMalformed = true }
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(arguments + 1)
        appendCRLF()
        remaining = arguments + 1
        argument(name)
        body(&self)
        if remaining != 0 { isMalformed = true }
        remaining = 0
        count += 1
    }

    /// One command whose arguments are `keys` (`MGET k1 k2 …`, `UNLINK …`), encoded into one
    /// allocation of exactly the right size: the batch hot path.
    init(_ name: StaticString, keys: some Collection<String>) {
        self.init(name, prefix: "", keys: keys)
    }

    /// One command whose arguments are `prefix + key` for each of `keys`, written straight into
    /// the request (no key strings are built): a front's batch get.
    init(_ name: StaticString, prefix: String, keys: some Collection<String>) {
        let nameCount = name.utf8CodeUnitCount
        var prefix = prefix
        prefix.makeContiguousUTF8()
        let prefixCount = prefix.utf8.count
        var size = 1 + Self.decimalCount(keys.count + 1) + 2 + Self.argumentSize(nameCount)
        for key in keys { size += Self.argumentSize(prefixCount + key.utf8.count) }
        var overflowed = false
        bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RedisWriter(buffer)
            writer.byte(UInt8(ascii: "*"))
            writer.decimal(keys.count + 1)
            writer.crlf()
            writer.argument(UnsafeRawBufferPointer(start: name.utf8Start, count: nameCount))
            prefix.utf8.withContiguousStorageIfAvailable { prefixBytes in
                let prefixBytes = UnsafeRawBufferPointer(prefixBytes)
                for key in keys {
                    // Native strings are contiguous UTF-8: no copy, no mutation (hence no retain).
                    let written: Void? = key.utf8.withContiguousStorageIfAvailable {
                        writer.argument(prefixBytes, UnsafeRawBufferPointer($0))
                    }
                    if written == nil { Array(key.utf8).withUnsafeBytes { writer.argument(prefixBytes, $0) } }
                }
            }
            overflowed = writer.overflowed
            initialized = writer.offset
        }
        count = 1
        isMalformed = overflowed || bytes.count != size
    }

    /// The bytes `$<count>\r\n<bytes>\r\n` of an argument of `count` bytes take.
    static func argumentSize(_ count: Int) -> Int {
        1 + decimalCount(count) + 2 + count + 2
    }

    /// The number of decimal digits of a non-negative `value`.
    static func decimalCount(_ value: Int) -> Int {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    mutating func argument(_ text: StaticString) {
        appendArgument(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func argument(_ text: String) {
        var text = text
        text.withUTF8 { appendArgument(UnsafeRawBufferPointer($0)) }
    }

    mutating func argument(_ value: [UInt8]) {
        value.withUnsafeBytes { appendArgument($0) }
    }

    mutating func argument(_ value: Int64) {
        var digits = DecimalDigits(value)
        withUnsafeBytes(of: &digits.storage) { raw in
            appendArgument(UnsafeRawBufferPointer(rebasing: raw[digits.start...]))
        }
    }

    mutating func argument(_ value: Int) {
        argument(Int64(value))
    }

    private mutating func appendArgument(_ argument: UnsafeRawBufferPointer) {
        if remaining <= 0 { isMalformed = true }
        remaining -= 1
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(argument.count)
        appendCRLF()
        bytes.append(contentsOf: argument)
        appendCRLF()
    }

    private mutating func appendCRLF() {
        bytes.append(13)
        bytes.append(10)
    }

    private mutating func appendDecimal(_ value: Int) {
        var digits = DecimalDigits(Int64(value))
        withUnsafeBytes(of: &digits.storage) { raw in
            bytes.append(contentsOf: raw[digits.start...])
        }
    }
}

/// The ASCII decimal digits of an integer, without allocating.
private struct DecimalDigits {
    /// 20 digits and a sign fit in 24 bytes; the digits are right-aligned.
    var storage: (UInt64, UInt64, UInt64) = (0, 0, 0)
    var start = 24

    init(_ value: Int64) {
        let negative = value < 0
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &storage) { raw in
            repeat {
                start -= 1
                raw[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if negative {
                start -= 1
                raw[start] = UInt8(ascii: "-")
            }
        }
    }
}

/// Writes a request into a buffer of a size computed in advance; it stops writing (and says
/// so) rather than run past the end if the size was wrong.
private struct RedisWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    var offset = 0
    var overflowed = false

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    mutating func byte(_ value: UInt8) {
        guard offset < buffer.count else {
            overflowed = true
            return
        }
        buffer[offset] = value
        offset += 1
    }

    mutating func crlf() {
        byte(13)
        byte(10)
    }

    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        guard source.count <= buffer.count - offset else {
            overflowed = true
            return
        }
        if let base = source.baseAddress, let target = buffer.baseAddress, source.count > 0 {
            (target + offset).initialize(from: base.assumingMemoryBound(to: UInt8.self), count: source.count)
        }
        offset += source.count
    }

    mutating func decimal(_ value: Int) {
        var digits = DecimalDigits(Int64(value))
        withUnsafeBytes(of: &digits.storage) { raw in
            bytes(UnsafeRawBufferPointer(rebasing: raw[digits.start...]))
        }
    }

    mutating func argument(_ value: UnsafeRawBufferPointer) {
        argument(UnsafeRawBufferPointer(start: nil, count: 0), value)
    }

    /// One argument made of `head` followed by `tail` (`$<length>\r\n<head><tail>\r\n`), with
    /// one bounds check: the per-key step of a batch request.
    mutating func argument(_ head: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer) {
        let length = head.count + tail.count
        let digits = RedisCommands.decimalCount(length)
        let needed = 1 + digits + 2 + length + 2
        guard needed <= buffer.count - offset, let base = buffer.baseAddress else {
            overflowed = true
            return
        }
        let start = base + offset
        start[0] = UInt8(ascii: "$")
        var rest = length
        var index = digits
        while index > 0 {
            start[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        }
        var position = start + 1 + digits
        position[0] = 13
        position[1] = 10
        position += 2
        if let source = head.baseAddress, head.count > 0 {
            UnsafeMutableRawPointer(position).copyMemory(from: source, byteCount: head.count)
            position += head.count
        }
        if let source = tail.baseAddress, tail.count > 0 {
            UnsafeMutableRawPointer(position).copyMemory(from: source, byteCount: tail.count)
            position += tail.count
        }
        position[0] = 13
        position[1] = 10
        offset += needed
    }
}
