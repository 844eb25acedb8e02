import Caching
import Foundation

// Stand-ins for core pieces that are not in main yet. Each is removed when the real one lands;
// the bench module's own declarations shadow the imported ones, so the switch is a deletion.

/// STAND-IN for `BinaryCoder` (not in main yet): JSON, so that `--coder binary` runs.
struct BinaryCoder: Coder {
    static let isStandIn = true
    var name: String { "binary(stand-in: json)" }
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] { try JSONCoder().encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T { try JSONCoder().decode(type, from: bytes) }
}
