/// Turns values into bytes for a backend, and bytes back into values.
///
/// ``CacheFront`` calls its coder for every value except `[UInt8]` and `String`, which it
/// stores as they are (see ``CacheFront``). Two coders ship with swift-caching:
/// ``JSONCoder`` (readable, interoperable) and ``BinaryCoder`` (compact and fast). A coder must
/// never crash on bytes it did not write: it throws ``CacheError/Code/decodingFailed``, and the
/// front treats the entry as a miss and removes it.
///
/// ```swift
/// let cache = CacheFront(backend: InMemoryBackend(), coder: BinaryCoder())
/// ```
public protocol Coder: Sendable {
    /// A short name for logs, such as `"json"`.
    var name: String { get }

    /// The bytes for `value`.
    /// - Throws: ``CacheError/Code/encodingFailed``.
    func encode<T: Encodable>(_ value: T) throws -> [UInt8]

    /// The value of type `type` in `bytes`.
    /// - Throws: ``CacheError/Code/decodingFailed`` when the bytes are not a `T` this coder wrote.
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T
}
