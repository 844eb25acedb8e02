public import HTTPTypes
import Caching

/// An HTTP entity tag (RFC 9110 §8.8.3): an opaque quoted string, strong or weak (`W/"…"`).
///
/// The cache gives every stored response a strong tag computed from its body with
/// ``EntityTag/strong(forBody:)``: the first 16 bytes of the body's SHA-256, in hex. SHA-256
/// (not Swift's per-process seeded `Hasher`) keeps the tag the same in every process and on
/// every machine, so a fleet of servers behind a load balancer agrees on it and a client's
/// `If-None-Match` works whichever server answers.
///
/// ```swift
/// let tag = EntityTag.strong(forBody: Array("hello".utf8))
/// tag.headerValue                                        // "\"2cf24dba5fb0a30e26e83b2ac5b9e29e\""
/// EntityTag(parsing: "W/\"abc\"")?.isWeak                // true
/// ```
public struct EntityTag: Sendable, Hashable, CustomStringConvertible {
    /// The characters between the quotes.
    public var opaqueTag: String
    /// Whether the tag is weak (`W/` prefix).
    public var isWeak: Bool

    /// Makes a tag from its opaque part.
    /// - Parameters:
    ///   - opaqueTag: The characters between the quotes (no quotes, no `"`).
    ///   - isWeak: Whether the tag is weak.
    public init(_ opaqueTag: String, isWeak: Bool = false) {
        self.opaqueTag = opaqueTag
        self.isWeak = isWeak
    }

    /// Parses `"x"` or `W/"x"`; returns `nil` for anything else (unquoted tags, stray quotes).
    /// - Parameter text: A field value or list member, surrounding whitespace allowed.
    public init?(parsing text: some StringProtocol) {
        var rest = HTTPListParser.trim(Substring(text))
        var weak = false
        if rest.hasPrefix("W/") {
            weak = true
            rest = rest.dropFirst(2)
        }
        guard rest.count >= 2, rest.first == "\"", rest.last == "\"" else { return nil }
        let inner = rest.dropFirst().dropLast()
        // etagc = %x21 / %x23-7E / obs-text: no DQUOTE, no controls, no spaces.
        guard inner.utf8.allSatisfy({ $0 == 0x21 || ($0 >= 0x23 && $0 != 0x7F) }) else { return nil }
        self.opaqueTag = String(inner)
        self.isWeak = weak
    }

    /// The field value: `"x"` or `W/"x"`.
    public var headerValue: String { isWeak ? "W/\"\(opaqueTag)\"" : "\"\(opaqueTag)\"" }

    /// Same as ``headerValue``.
    public var description: String { headerValue }

    /// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, whatever their weakness.
    /// This is the comparison `If-None-Match` uses.
    public func weaklyMatches(_ other: EntityTag) -> Bool { opaqueTag == other.opaqueTag }

    /// Strong comparison: both strong and the opaque tags are equal.
    public func stronglyMatches(_ other: EntityTag) -> Bool { !isWeak && !other.isWeak && opaqueTag == other.opaqueTag }

    /// The strong tag of a body: the first 16 bytes of its SHA-256 as 32 lowercase hex digits.
    ///
    /// Stable across processes, machines and Swift versions. 128 bits keep accidental collisions
    /// out of reach while staying short on the wire.
    /// - Parameter body: The exact bytes of the response body.
    public static func strong(forBody body: some Sequence<UInt8>) -> EntityTag {
        let digest = SHA256.hash(body)
        return EntityTag(SHA256.hexString(Array(digest.prefix(16))))
    }
}

/// The condition of an `If-None-Match` request field (RFC 9110 §13.1.2).
///
/// ```swift
/// let condition = IfNoneMatch(parsing: "W/\"a\", \"b\"")
/// condition?.matches(EntityTag("a"))   // true: weak comparison
/// IfNoneMatch(parsing: "*")?.matches(EntityTag("anything"))   // true
/// ```
public enum IfNoneMatch: Sendable, Hashable {
    /// `*`: matches any current representation.
    case any
    /// A list of entity tags, compared weakly.
    case tags([EntityTag])

    /// Parses one field value. Returns `nil` when it holds neither `*` nor a valid tag, so a
    /// malformed field is ignored rather than treated as a match.
    /// - Parameter value: The field value, e.g. `"\"a\", W/\"b\""`.
    public init?(parsing value: String) {
        let members = HTTPListParser.members(of: value)
        if members.contains(where: { $0 == "*" }) {
            self = .any
            return
        }
        let tags = members.compactMap { EntityTag(parsing: $0) }
        guard !tags.isEmpty else { return nil }
        self = .tags(tags)
    }

    /// Parses every `If-None-Match` field of `fields` as one list; `nil` when there is none
    /// (or none is valid).
    /// - Parameter fields: Request header fields.
    public init?(fields: HTTPFields) {
        let values = fields[values: .ifNoneMatch]
        guard !values.isEmpty, let parsed = IfNoneMatch(parsing: values.joined(separator: ", ")) else { return nil }
        self = parsed
    }

    /// Whether a representation tagged `tag` matches the condition (weak comparison), in which
    /// case a GET or HEAD is answered with `304 Not Modified`.
    public func matches(_ tag: EntityTag) -> Bool {
        switch self {
        case .any: return true
        case .tags(let tags): return tags.contains { $0.weaklyMatches(tag) }
        }
    }
}

extension EntityTag: Codable {
    /// Decodes the field form (`"x"` or `W/"x"`).
    /// - Throws: `DecodingError.dataCorrupted` when the string is not an entity tag.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let tag = EntityTag(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(text) is not an entity tag")
        }
        self = tag
    }

    /// Encodes the field form (`"x"` or `W/"x"`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(headerValue)
    }
}
