// A minimal JSON coder so that CacheFront has its default; the full JSONCoder (deterministic
// output, date strategy, typed errors) replaces this file.
import Foundation
public struct JSONCoder: Coder {
    public var name: String { "json" }
    public init() {}
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] { Array(try JSONEncoder().encode(value)) }
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T { try JSONDecoder().decode(type, from: Data(bytes)) }
}
