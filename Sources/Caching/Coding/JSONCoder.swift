import Foundation

/// A ``Coder`` that stores values as JSON, with Foundation's `JSONEncoder` and `JSONDecoder`.
///
/// JSON is readable by people and by other languages (a Python service sharing the cache, a
/// `redis-cli` session), at the cost of size and speed; ``BinaryCoder`` is smaller and faster
/// for values only Swift reads back.
///
/// The output is deterministic, so equal values give equal bytes (useful for ETags and for
/// comparing entries): object keys are sorted (`.sortedKeys`), slashes are not escaped
/// (`.withoutEscapingSlashes`), and dates use one fixed strategy, ISO 8601 in UTC with
/// millisecond precision by default (see ``DateEncoding``). Arrays keep their order; a `Set`
/// is written in its iteration order, which Swift randomizes per process.
///
/// A top-level `nil` is stored as `null`, so a cached `nil` is told apart from a miss.
///
/// ```swift
/// let cache = CacheFront(backend: InMemoryBackend(), coder: JSONCoder())
/// ```
public struct JSONCoder: Coder {
    /// How `Date` values are written.
    public enum DateEncoding: Sendable, Hashable {
        /// ISO 8601 in UTC with milliseconds, such as `"2024-05-01T12:30:45.123Z"`. Precision
        /// below a millisecond is lost. Decoding also accepts ISO 8601 without fractional
        /// seconds. The default.
        case iso8601Milliseconds
        /// Milliseconds since 1970-01-01 as a number, such as `1714566645123.0`.
        case millisecondsSince1970
        /// `Date`'s own form, seconds since 2001-01-01 as a number: exact, but not readable.
        case secondsSinceReferenceDate
    }

    /// How `Float` and `Double` values that JSON cannot represent (infinities, NaN) are written.
    public enum NonConformingFloatEncoding: Sendable, Hashable {
        /// Encoding such a value throws ``CacheError/Code/encodingFailed``. The default.
        case `throw`
        /// They are written as the strings `"Infinity"`, `"-Infinity"` and `"NaN"`.
        case strings
    }

    /// How dates are written and read.
    public let dateEncoding: DateEncoding
    /// How infinities and NaN are written and read.
    public let nonConformingFloatEncoding: NonConformingFloatEncoding

    private let encoder: JSONEncoder
    private let decoder: JSONDecoder

    /// A short name for logs: `"json"`.
    public var name: String { "json" }

    /// Creates a JSON coder.
    ///
    /// ```swift
    /// let coder = JSONCoder(dateEncoding: .millisecondsSince1970)
    /// ```
    ///
    /// - Parameters:
    ///   - dateEncoding: how dates are written; ISO 8601 with milliseconds by default.
    ///   - nonConformingFloatEncoding: how infinities and NaN are written; by default they throw.
    ///   - userInfo: values for `Encoder.userInfo` and `Decoder.userInfo`.
    public init(
        dateEncoding: DateEncoding = .iso8601Milliseconds,
        nonConformingFloatEncoding: NonConformingFloatEncoding = .throw,
        userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) {
        self.dateEncoding = dateEncoding
        self.nonConformingFloatEncoding = nonConformingFloatEncoding

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.userInfo = userInfo
        let decoder = JSONDecoder()
        decoder.userInfo = userInfo
        switch dateEncoding {
        case .iso8601Milliseconds:
            encoder.dateEncodingStrategy = .custom { date, encoder in
                var container = encoder.singleValueContainer()
                try container.encode(try Self.iso8601Milliseconds(date, codingPath: encoder.codingPath))
            }
            decoder.dateDecodingStrategy = .custom { decoder in
                let container = try decoder.singleValueContainer()
                let string = try container.decode(String.self)
                if let date = try? Self.iso8601Milliseconds.parse(string) { return date }
                if let date = try? Date.ISO8601FormatStyle().parse(string) { return date }
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: decoder.codingPath,
                        debugDescription: "\"\(string.prefix(64))\" is not an ISO 8601 date"
                    )
                )
            }
        case .millisecondsSince1970:
            encoder.dateEncodingStrategy = .millisecondsSince1970
            decoder.dateDecodingStrategy = .millisecondsSince1970
        case .secondsSinceReferenceDate:
            encoder.dateEncodingStrategy = .deferredToDate
            decoder.dateDecodingStrategy = .deferredToDate
        }
        switch nonConformingFloatEncoding {
        case .throw:
            encoder.nonConformingFloatEncodingStrategy = .throw
            decoder.nonConformingFloatDecodingStrategy = .throw
        case .strings:
            encoder.nonConformingFloatEncodingStrategy = .convertToString(
                positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN"
            )
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(
                positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN"
            )
        }
        self.encoder = encoder
        self.decoder = decoder
    }

    private static let iso8601Milliseconds = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// `date` in ISO 8601, UTC, rounded to the nearest millisecond (Foundation's format style
    /// truncates, which turns `.123` stored as `.12299…` into `.122`).
    private static func iso8601Milliseconds(_ date: Date, codingPath: [any CodingKey]) throws -> String {
        guard let milliseconds = Int64(exactly: (date.timeIntervalSince1970 * 1000).rounded()),
            abs(milliseconds) < 253_402_300_800_000  // year 10000
        else {
            throw EncodingError.invalidValue(
                date, .init(codingPath: codingPath, debugDescription: "\(date) cannot be written as an ISO 8601 date")
            )
        }
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let wholeSeconds = fraction < 0 ? seconds - 1 : seconds
        let millis = fraction < 0 ? fraction + 1000 : fraction
        let base = Date(timeIntervalSince1970: Double(wholeSeconds)).formatted(Date.ISO8601FormatStyle())
        let digits = String(millis)
        return base.dropLast() + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    /// The JSON bytes for `value`.
    ///
    /// - Throws: ``CacheError/Code/encodingFailed`` when the value's `encode(to:)` throws or
    ///   contains a number JSON cannot represent.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw CacheError(
                .encodingFailed,
                "JSONCoder could not encode \(T.self): \(describeCodingError(error))",
                underlying: error
            )
        }
    }

    /// The value of type `type` in the JSON `bytes`.
    ///
    /// - Throws: ``CacheError/Code/decodingFailed`` when `bytes` are not JSON for a `T`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw CacheError(
                .decodingFailed,
                "JSONCoder could not decode \(T.self) from \(bytes.count) bytes: \(describeCodingError(error))",
                underlying: error
            )
        }
    }
}
