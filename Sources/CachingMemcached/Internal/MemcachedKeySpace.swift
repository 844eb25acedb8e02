#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Caching

/// A memcached key: at most 250 bytes of printable ASCII.
///
/// Hashes its bytes in one call (an `[UInt8]` feeds `Hasher` byte by byte, which showed up
/// as the top user-space cost of batch reads).
struct MemcachedKey: Hashable, Sendable {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// Whether the key equals the `count` bytes at `pointer`.
    func matches(_ pointer: UnsafePointer<CChar>?, _ count: Int) -> Bool {
        guard count == bytes.count else { return false }
        guard let pointer, count > 0 else { return count == 0 }
        return bytes.withUnsafeBytes { memcmp($0.baseAddress!, pointer, count) == 0 }
    }
}

/// A cache key made ready for memcached: the parts every operation on it needs.
///
/// Built on the calling task, so that the connection threads only assemble bytes.
struct KeyPlan: Sendable {
    /// The key's UTF-8 bytes.
    var bytes: [UInt8]
    /// The index of the server that holds the key.
    var server: Int
    /// `nil` when the key is safe for memcached as it is, else the hex SHA-256 of its bytes.
    var digest: [UInt8]?
    /// The generation counter key of each namespace level of the key, outermost first.
    var generationKeys: [MemcachedKey]

    /// The key as the caller gave it, for error messages.
    var name: String { String(decoding: bytes, as: UTF8.self) }

    /// The physical key of the value under the generation `token` (`nil` when the key has no levels).
    func dataKey(token: UInt64?) -> MemcachedKey {
        dataKey(head: Self.head(token: token))
    }

    /// The start of every physical key under `token`: `v` and the token in hex. A batch builds
    /// it once for all its keys of one namespace.
    static func head(token: UInt64?) -> [UInt8] {
        var head: [UInt8] = [UInt8(ascii: "v")]
        if let token {
            head.reserveCapacity(17)
            MemcachedKeySpace.appendHex(token, to: &head)
        }
        return head
    }

    /// Appends the physical key of the value after `head` (see ``head(token:)``) to `bytes`.
    func appendDataKey(head: [UInt8], to bytes: inout [UInt8]) {
        bytes.append(contentsOf: head)
        if let digest {
            bytes.append(UInt8(ascii: "#"))
            bytes.append(contentsOf: digest)
        } else {
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: self.bytes)
        }
    }

    /// The physical key of the value after `head` (see ``head(token:)``).
    func dataKey(head: [UInt8]) -> MemcachedKey {
        var key: [UInt8] = []
        key.reserveCapacity(head.count + 1 + (digest?.count ?? bytes.count))
        key += head
        if let digest {
            key.append(UInt8(ascii: "#"))
            key += digest
        } else {
            key.append(UInt8(ascii: "="))
            key += bytes
        }
        return MemcachedKey(key)
    }
}

/// How cache keys become memcached keys.
///
/// memcached keys are at most 250 bytes of printable ASCII without spaces. A cache key that is
/// such a string (and at most ``maxPlainLength`` bytes) is stored as it is, behind a short
/// marker; any other key (spaces, control characters, non-ASCII, too long) is stored as the
/// SHA-256 of its UTF-8 bytes in hex. The two forms start with different markers (`=` and
/// `#`), so no plain key can be made to collide with the digest of another.
///
/// The stored (physical) key of a value is
/// `v` + *generation token* (16 hex digits, only when the key has namespace levels) + key part.
/// The token mixes the current generation of every namespace level of the key (`a:`, `a:b:`
/// for `a:b:key`), so bumping one generation moves every key below it to keys nobody reads:
/// that is ``MemcachedBackend/clear(prefix:)``. Generation counters live at `g` + key part of
/// the namespace prefix, on every server.
struct MemcachedKeySpace: Sendable {
    /// The byte that ends a namespace level.
    let delimiter: UInt8
    /// How many namespace levels are tracked.
    let maxDepth: Int

    /// The longest cache key stored in plain form: 250 minus the `v`, the token and the marker.
    static let maxPlainLength = 250 - 18

    /// Whether `a` and `b` have the same namespace levels (the same bytes up to and including
    /// their last tracked delimiter).
    func sameLevels(_ a: [UInt8], as b: [UInt8]) -> Bool {
        guard maxDepth > 0 else { return true }
        var seen = 0
        var end = 0   // one past the last tracked delimiter of `a`
        for index in a.indices where a[index] == delimiter {
            end = index + 1
            seen += 1
            if seen == maxDepth { break }
        }
        guard b.count >= end, a[..<end].elementsEqual(b[..<end]) else { return false }
        // `b` must not have a further tracked delimiter after `end`.
        if seen == maxDepth { return true }
        return !b[end...].contains(delimiter)
    }

    /// The generation keys of `bytes`' namespace levels: one per delimiter, up to ``maxDepth``.
    func generationKeys(of bytes: [UInt8]) -> [MemcachedKey] {
        guard maxDepth > 0 else { return [] }
        var keys: [MemcachedKey] = []
        for index in bytes.indices where bytes[index] == delimiter {
            keys.append(Self.generationKey(bytes[...index]))
            if keys.count == maxDepth { break }
        }
        return keys
    }

    /// How many namespace levels `prefix` has (its delimiters), and whether it ends with one.
    func levels(of prefix: [UInt8]) -> (count: Int, endsAtBoundary: Bool) {
        (prefix.reduce(0) { $0 + ($1 == delimiter ? 1 : 0) }, prefix.last == delimiter)
    }

    /// The generation counter key of the namespace `prefix` (which ends with the delimiter).
    static func generationKey(_ prefix: ArraySlice<UInt8>) -> MemcachedKey {
        MemcachedKey([UInt8(ascii: "g")] + part(prefix))
    }

    /// The physical key of a value: `v`, the token of its generations (if any), its key part.
    static func dataKey(keyPart: [UInt8], token: UInt64?) -> MemcachedKey {
        var key: [UInt8] = []
        key.reserveCapacity(1 + 16 + keyPart.count)
        key.append(UInt8(ascii: "v"))
        if let token { appendHex(token, to: &key) }
        key += keyPart
        return MemcachedKey(key)
    }

    /// `=` + the bytes when memcached can store them as a key, else `#` + SHA-256 hex.
    static func part(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        if let digest = digest(bytes) { return [UInt8(ascii: "#")] + digest }
        return [UInt8(ascii: "=")] + bytes
    }

    /// `nil` when memcached can store the bytes as a key, else their SHA-256 in hex.
    static func digest(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        if bytes.count <= maxPlainLength && bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) { return nil }
        return Array(SHA256.hex(SHA256.hash(bytes)).utf8)
    }

    /// Mixes the generations of a key's namespace levels into one 64-bit token.
    ///
    /// Each step is a bijection (SplitMix64's finalizer of the running value XOR the next
    /// generation), so changing any single generation always changes the token; changing
    /// several at once collides with probability about 2⁻⁶⁴.
    static func token(_ generations: some Sequence<UInt64>) -> UInt64 {
        var h: UInt64 = 0x243f_6a88_85a3_08d3
        for generation in generations {
            var z = h ^ generation
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            h = z ^ (z >> 31)
        }
        return h
    }

    static func appendHex(_ value: UInt64, to bytes: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { table in
            for shift in stride(from: 60, through: 0, by: -4) {
                bytes.append(table[Int((value >> UInt64(shift)) & 0xf)])
            }
        }
    }

    /// Parses an ASCII decimal unsigned 64-bit number (a memcached counter).
    static func parseCounter(_ bytes: some Collection<UInt8>) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }
}
