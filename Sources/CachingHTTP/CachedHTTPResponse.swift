public import HTTPTypes
import Caching

/// A stored response: status, headers, body, when it was stored, for how long, and its ETag.
///
/// It is `Codable` for apps that want to inspect or move entries, but ``HTTPResponseCache``
/// stores it in a compact versioned binary form (``serialized()`` / ``init(serialized:)``),
/// because decoding a body from JSON on every hit would cost more than the cache saves. The
/// binary form is stored as raw bytes, so it is the same whatever `Coder` the `CacheFront` uses.
///
/// The headers are the ones replayed on a hit: the framework's `Date` and `Content-Length`, the
/// hop-by-hop fields, `Cache-Control` (rebuilt on every hit with the remaining TTL), `Age`,
/// `ETag` (held in ``etag``) and the cache status header are left out.
public struct CachedHTTPResponse: Codable, Sendable, Hashable {
    /// One header field as stored.
    public struct Header: Codable, Sendable, Hashable {
        /// The field name as the endpoint wrote it.
        public var name: String
        /// The field value.
        public var value: String

        /// Makes a header field.
        /// - Parameters:
        ///   - name: The field name.
        ///   - value: The field value.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The status code.
    public var status: Int
    /// The reason phrase.
    public var reasonPhrase: String
    /// The header fields replayed on a hit, in order.
    public var headers: [Header]
    /// The body.
    public var body: [UInt8]
    /// When it was stored, in milliseconds since the Unix epoch.
    public var storedAtMilliseconds: Int64
    /// How long it is fresh after ``storedAtMilliseconds``, in milliseconds.
    public var ttlMilliseconds: Int64
    /// The entity tag.
    public var etag: EntityTag
    /// `Cache-Control` directives of the endpoint that the cache does not manage itself
    /// (`immutable`, `no-transform`, `must-revalidate`, …), sent again on every hit.
    public var extraCacheControl: [HTTPCacheControl.Directive]

    /// Makes a stored response.
    /// - Parameters:
    ///   - status: The status code.
    ///   - reasonPhrase: The reason phrase.
    ///   - headers: Header fields to replay.
    ///   - body: The body bytes.
    ///   - storedAtMilliseconds: Storage time, milliseconds since the Unix epoch.
    ///   - ttlMilliseconds: Freshness lifetime in milliseconds.
    ///   - etag: The entity tag.
    ///   - extraCacheControl: Endpoint `Cache-Control` directives to send again.
    public init(
        status: Int,
        reasonPhrase: String,
        headers: [Header],
        body: [UInt8],
        storedAtMilliseconds: Int64,
        ttlMilliseconds: Int64,
        etag: EntityTag,
        extraCacheControl: [HTTPCacheControl.Directive] = []
    ) {
        self.status = status
        self.reasonPhrase = reasonPhrase
        self.headers = headers
        self.body = body
        self.storedAtMilliseconds = storedAtMilliseconds
        self.ttlMilliseconds = ttlMilliseconds
        self.etag = etag
        self.extraCacheControl = extraCacheControl
    }

    /// The milliseconds of freshness left at `now`; zero or negative once stale.
    public func remainingMilliseconds(now: Int64) -> Int64 {
        storedAtMilliseconds &+ ttlMilliseconds &- now
    }

    /// The age in milliseconds at `now` (never negative).
    public func ageMilliseconds(now: Int64) -> Int64 {
        max(0, now &- storedAtMilliseconds)
    }

    /// The stored header fields as `HTTPFields`; names that are no longer valid are skipped.
    public var headerFields: HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count + 4)
        for header in headers {
            guard let name = HTTPField.Name(header.name) else { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        return fields
    }

    /// The compact binary form the cache stores.
    public func serialized() -> [UInt8] {
        var writer = BinaryWriter()
        writer.bytes.reserveCapacity(body.count + 64 + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 8 })
        writer.bytes.append(contentsOf: StoredRecord.magic)
        writer.bytes.append(StoredRecord.Kind.response.rawValue)
        writer.write(UInt32(clamping: status))
        writer.write(reasonPhrase)
        writer.write(UInt64(bitPattern: storedAtMilliseconds))
        writer.write(UInt64(bitPattern: ttlMilliseconds))
        writer.write(etag.opaqueTag)
        writer.bytes.append(etag.isWeak ? 1 : 0)
        writer.write(UInt32(clamping: extraCacheControl.count))
        for directive in extraCacheControl {
            writer.write(directive.name)
            if let value = directive.value {
                writer.bytes.append(1)
                writer.write(value)
            } else {
                writer.bytes.append(0)
            }
        }
        writer.write(UInt32(clamping: headers.count))
        for header in headers {
            writer.write(header.name)
            writer.write(header.value)
        }
        writer.write(UInt32(clamping: body.count))
        writer.bytes.append(contentsOf: body)
        return writer.bytes
    }

    /// Reads the binary form back.
    /// - Parameter bytes: Bytes written by ``serialized()``.
    /// - Throws: `CacheError.decodingFailed` when the bytes are not a stored response (another
    ///   writer's data, a different format version, truncation).
    public init(serialized bytes: [UInt8]) throws {
        guard case .response(let stored) = try StoredRecord(serialized: bytes) else {
            throw CacheError(.decodingFailed, "The cached entry is a Vary record, not a stored HTTP response.")
        }
        self.init(
            status: stored.status, reasonPhrase: stored.reasonPhrase,
            headers: stored.fields.map { Header(name: $0.name.rawName, value: $0.value) },
            body: stored.body, storedAtMilliseconds: stored.storedAtMilliseconds,
            ttlMilliseconds: stored.ttlMilliseconds, etag: stored.etag, extraCacheControl: stored.extraCacheControl
        )
    }
}

/// A stored response as the hit path reads it: the same data as ``CachedHTTPResponse`` with
/// the headers decoded straight into `HTTPFields`, saving an intermediate array per hit.
struct StoredResponse: Sendable {
    var status: Int
    var reasonPhrase: String
    var fields: HTTPFields
    var body: [UInt8]
    var storedAtMilliseconds: Int64
    var ttlMilliseconds: Int64
    var etag: EntityTag
    var extraCacheControl: [HTTPCacheControl.Directive]

    func remainingMilliseconds(now: Int64) -> Int64 { storedAtMilliseconds &+ ttlMilliseconds &- now }
    func ageMilliseconds(now: Int64) -> Int64 { max(0, now &- storedAtMilliseconds) }
}

/// What the cache keeps under a resource key: a response, or the names of the request headers
/// that select a variant (the response's `Vary`), whose variants live under derived keys.
enum StoredRecord: Sendable {
    case response(StoredResponse)
    case vary([String])

    enum Kind: UInt8 {
        case response = 1
        case vary = 2
    }

    /// "SCH" + format version 1.
    static let magic: [UInt8] = [0x53, 0x43, 0x48, 0x01]

    static func serializeVary(_ names: [String]) -> [UInt8] {
        var writer = BinaryWriter()
        writer.bytes.append(contentsOf: magic)
        writer.bytes.append(Kind.vary.rawValue)
        writer.write(UInt32(clamping: names.count))
        for name in names { writer.write(name) }
        return writer.bytes
    }

    init(serialized bytes: [UInt8]) throws {
        var reader = BinaryReader(bytes: bytes)
        guard try reader.read(count: StoredRecord.magic.count) == StoredRecord.magic[...] else {
            throw CacheError(.decodingFailed, "The cached entry is not a swift-caching HTTP response (unknown header or format version).")
        }
        switch Kind(rawValue: try reader.readByte()) {
        case .response:
            let status = Int(try reader.readUInt32())
            let reason = try reader.readString()
            let storedAt = Int64(bitPattern: try reader.readUInt64())
            let ttl = Int64(bitPattern: try reader.readUInt64())
            let tag = try reader.readString()
            let weak = try reader.readByte() != 0
            let directiveCount = try reader.readCount()
            var directives: [HTTPCacheControl.Directive] = []
            for _ in 0..<directiveCount {
                let name = try reader.readString()
                let value: String? = try reader.readByte() != 0 ? try reader.readString() : nil
                directives.append(.init(name, value))
            }
            let headerCount = try reader.readCount()
            var fields = HTTPFields()
            fields.reserveCapacity(headerCount + 4)
            for _ in 0..<headerCount {
                let name = try reader.readString()
                let value = try reader.readString()
                // Names were valid when stored; one that is not (another writer) is skipped.
                guard let fieldName = HTTPField.Name(name) else { continue }
                fields.append(HTTPField(name: fieldName, value: value))
            }
            let bodyCount = try reader.readCount()
            let body = Array(try reader.read(count: bodyCount))
            guard reader.isAtEnd else {
                throw CacheError(.decodingFailed, "The cached HTTP response has trailing bytes; the entry is corrupt.")
            }
            self = .response(
                StoredResponse(
                    status: status, reasonPhrase: reason, fields: fields, body: body,
                    storedAtMilliseconds: storedAt, ttlMilliseconds: ttl,
                    etag: EntityTag(tag, isWeak: weak), extraCacheControl: directives
                )
            )
        case .vary:
            let count = try reader.readCount()
            var names: [String] = []
            for _ in 0..<count { names.append(try reader.readString()) }
            guard reader.isAtEnd else {
                throw CacheError(.decodingFailed, "The cached Vary record has trailing bytes; the entry is corrupt.")
            }
            self = .vary(names)
        case nil:
            throw CacheError(.decodingFailed, "The cached entry has an unknown record kind.")
        }
    }
}

/// Little-endian, length-prefixed writer for the stored records.
struct BinaryWriter {
    var bytes: [UInt8] = []

    mutating func write(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func write(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func write(_ string: String) {
        let utf8 = string.utf8
        write(UInt32(clamping: utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

/// Bounds-checked reader matching ``BinaryWriter``; every read past the end throws.
struct BinaryReader {
    let bytes: [UInt8]
    var offset = 0

    var isAtEnd: Bool { offset == bytes.count }

    mutating func read(count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, bytes.count - offset >= count else {
            throw CacheError(.decodingFailed, "The cached HTTP response is truncated (needed \(count) more bytes at offset \(offset) of \(bytes.count)).")
        }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func readByte() throws -> UInt8 {
        try read(count: 1).first ?? 0
    }

    mutating func readUInt32() throws -> UInt32 {
        var value: UInt32 = 0
        for (index, byte) in try read(count: 4).enumerated() { value |= UInt32(byte) << UInt32(index * 8) }
        return value
    }

    mutating func readUInt64() throws -> UInt64 {
        var value: UInt64 = 0
        for (index, byte) in try read(count: 8).enumerated() { value |= UInt64(byte) << UInt64(index * 8) }
        return value
    }

    /// A count that must fit in the bytes left (each element needs at least one byte), so a
    /// corrupt length cannot make the reader allocate or loop without bound.
    mutating func readCount() throws -> Int {
        let count = Int(try readUInt32())
        guard count <= bytes.count - offset else {
            throw CacheError(.decodingFailed, "The cached HTTP response has an impossible length \(count); the entry is corrupt.")
        }
        return count
    }

    mutating func readString() throws -> String {
        let count = try readCount()
        return String(decoding: try read(count: count), as: UTF8.self)
    }
}
