import Foundation

/// Sorted-key JSON for arguments in keys: the same value gives the same bytes in every process.
enum CanonicalJSON {
    static func encode<T: Encodable>(_ value: T) throws(CacheError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw CacheError(
                .encodingFailed,
                "could not encode a \(T.self) argument for a cache key: \(error); make the argument Encodable without throwing",
                underlying: error
            )
        }
    }
}
