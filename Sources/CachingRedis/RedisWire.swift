import CHiredis

/// A reply from the server (RESP2), copied out of hiredis's reply objects.
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

/// One or more commands to pipeline, with every argument packed in one byte buffer.
///
/// Built by the calling task (so that formatting work runs in parallel with the connection's
/// thread), then handed to `redisAppendCommandArgv` by that thread with pointers into `bytes`:
/// arguments are binary-safe and may hold zero bytes.
struct RedisCommands: Sendable {
    /// Every argument of every command, back to back.
    private(set) var bytes: [UInt8] = []
    /// The length of each argument, in order.
    private(set) var lengths: [Int] = []
    /// The number of arguments of each command, in order.
    private(set) var argumentCounts: [Int] = []

    init() {}

    /// One command.
    init(_ name: StaticString, _ body: (inout RedisCommands) -> Void = { _ in }) {
        command(name, body)
    }

    /// The number of commands.
    var count: Int { argumentCounts.count }

    /// Appends a command: its name, then what `body` adds.
    mutating func command(_ name: StaticString, _ body: (inout RedisCommands) -> Void = { _ in }) {
        argumentCounts.append(0)
        argument(name)
        body(&self)
    }

    mutating func argument(_ text: StaticString) {
        let buffer = UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        bytes.append(contentsOf: buffer)
        appended(buffer.count)
    }

    mutating func argument(_ text: String) {
        var text = text
        let count = text.withUTF8 { utf8 in
            bytes.append(contentsOf: utf8)
            return utf8.count
        }
        appended(count)
    }

    mutating func argument(_ value: [UInt8]) {
        bytes.append(contentsOf: value)
        appended(value.count)
    }

    mutating func argument(_ value: Int64) {
        argument(String(value))
    }

    mutating func argument(_ value: Int) {
        argument(String(value))
    }

    private mutating func appended(_ length: Int) {
        lengths.append(length)
        argumentCounts[argumentCounts.count - 1] += 1
    }
}
