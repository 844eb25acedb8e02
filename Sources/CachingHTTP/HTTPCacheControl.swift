public import HTTPTypes

/// The directives of a `Cache-Control` field (RFC 9111 §5.2), parsed leniently.
///
/// Directive names are case-insensitive and stored lowercased; arguments may be tokens or
/// quoted strings (quoted strings may contain commas). Several `Cache-Control` lines count as
/// one comma-separated list. Unknown directives are kept, so a response's own extensions
/// (`immutable`, `no-transform`, …) survive a trip through the cache.
///
/// ```swift
/// let directives = HTTPCacheControl(parsing: "public, max-age=60, stale-while-revalidate=30")
/// directives.maxAge                 // 60
/// directives.contains("public")     // true
/// directives.headerValue            // "public, max-age=60, stale-while-revalidate=30"
/// ```
public struct HTTPCacheControl: Sendable, Hashable, CustomStringConvertible {
    /// One directive: a lowercased name and its argument, when it has one.
    public struct Directive: Sendable, Hashable, Codable {
        /// The directive name, lowercased (`max-age`, `no-store`, …).
        public var name: String
        /// The argument after `=`, with quotes and escapes removed; `nil` when there is none.
        public var value: String?

        /// Makes a directive.
        /// - Parameters:
        ///   - name: The directive name; it is lowercased.
        ///   - value: The argument, or `nil`.
        public init(_ name: String, _ value: String? = nil) {
            // Most names are already lowercase; skip the allocation then.
            self.name = name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name
            self.value = value
        }
    }

    /// The directives in the order they appeared.
    public var directives: [Directive]

    /// Makes a list of directives.
    /// - Parameter directives: The directives, in order.
    public init(_ directives: [Directive] = []) {
        self.directives = directives
    }

    /// Parses one `Cache-Control` field value. Malformed members are skipped, never fatal.
    /// - Parameter value: The field value, e.g. `"no-cache, max-age=0"`.
    public init(parsing value: String) {
        self.directives = HTTPListParser.members(of: value).compactMap { member in
            let (name, argument) = HTTPListParser.splitDirective(member)
            guard !name.isEmpty else { return nil }
            return Directive(name, argument)
        }
    }

    /// Parses every `Cache-Control` field in `fields`, as one list.
    /// - Parameter fields: Request or response header fields.
    public init(parsing fields: HTTPFields) {
        var all: [Directive] = []
        for value in fields[values: .cacheControl] {
            all.append(contentsOf: HTTPCacheControl(parsing: value).directives)
        }
        self.directives = all
    }

    /// Whether the directive `name` (case-insensitive) is present.
    public func contains(_ name: String) -> Bool {
        guard !directives.isEmpty else { return false }
        let lowered = Directive(name).name
        return directives.contains { $0.name == lowered }
    }

    /// The argument of the first directive called `name` (case-insensitive), or `nil`.
    public func value(of name: String) -> String? {
        guard !directives.isEmpty else { return nil }
        let lowered = Directive(name).name
        return directives.first { $0.name == lowered }?.value
    }

    /// The delta-seconds argument of `name` (RFC 9111 §1.2.2): `nil` when absent or not a
    /// non-negative integer; values too large for 31 bits are capped at 2147483648.
    public func seconds(_ name: String) -> Int? {
        guard let value = value(of: name), !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        let cap = 2_147_483_648
        guard value.utf8.count <= 10, let parsed = Int(value) else { return cap }
        return min(parsed, cap)
    }

    /// `no-store`: the message must not be stored.
    public var noStore: Bool { contains("no-store") }
    /// `no-cache`: a stored response must not be used without revalidation.
    public var noCache: Bool { contains("no-cache") }
    /// `private`: the response is meant for one user.
    public var isPrivate: Bool { contains("private") }
    /// `public`: any cache may store the response.
    public var isPublic: Bool { contains("public") }
    /// `max-age` in seconds.
    public var maxAge: Int? { seconds("max-age") }
    /// `s-maxage` in seconds (shared caches).
    public var sharedMaxAge: Int? { seconds("s-maxage") }
    /// `min-fresh` in seconds (requests).
    public var minFresh: Int? { seconds("min-fresh") }
    /// `only-if-cached` (requests): answer from the cache or with 504.
    public var onlyIfCached: Bool { contains("only-if-cached") }

    /// The field value: directives joined by `", "`, arguments quoted when they need it.
    public var headerValue: String {
        directives.map { directive in
            guard let value = directive.value else { return directive.name }
            if !value.isEmpty, value.utf8.allSatisfy(HTTPListParser.isTokenCharacter) {
                return "\(directive.name)=\(value)"
            }
            var quoted = "\""
            for character in value {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            quoted.append("\"")
            return "\(directive.name)=\(quoted)"
        }.joined(separator: ", ")
    }

    /// Same as ``headerValue``.
    public var description: String { headerValue }
}

/// Splitting of comma-separated HTTP lists (RFC 9110 §5.6.1) that respects quoted strings.
enum HTTPListParser {
    /// The non-empty, trimmed members of a comma-separated list; commas inside quoted strings
    /// do not split.
    static func members(of value: String) -> [Substring] {
        var result: [Substring] = []
        var start = value.startIndex
        var index = value.startIndex
        var inQuotes = false
        var escaped = false
        while index < value.endIndex {
            let character = value[index]
            if inQuotes {
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    inQuotes = false
                }
            } else if character == "\"" {
                inQuotes = true
            } else if character == "," {
                let member = trim(value[start..<index])
                if !member.isEmpty { result.append(member) }
                start = value.index(after: index)
            }
            index = value.index(after: index)
        }
        let last = trim(value[start..<value.endIndex])
        if !last.isEmpty { result.append(last) }
        return result
    }

    /// Splits `name=value` (value a token or quoted string) into a trimmed name and unquoted value.
    static func splitDirective(_ member: Substring) -> (String, String?) {
        guard let equals = member.firstIndex(of: "=") else {
            return (String(trim(member)), nil)
        }
        let name = String(trim(member[member.startIndex..<equals]))
        let rawValue = trim(member[member.index(after: equals)...])
        return (name, unquote(rawValue))
    }

    /// Removes surrounding quotes and backslash escapes from a quoted string; returns other
    /// text unchanged.
    static func unquote(_ text: Substring) -> String {
        guard text.count >= 2, text.first == "\"", text.last == "\"" else { return String(text) }
        var result = ""
        var escaped = false
        for character in text.dropFirst().dropLast() {
            if escaped {
                result.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }

    /// Trims optional whitespace (spaces and horizontal tabs).
    static func trim(_ text: Substring) -> Substring {
        var result = text
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }

    /// `tchar` from RFC 9110 §5.6.2.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
