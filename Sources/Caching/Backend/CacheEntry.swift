/// A stored value as a backend returns it: the bytes, and how long they have left.
///
/// ```swift
/// if let entry = try await backend.get("users:42") {
///     print(entry.value.count, entry.ttl ?? .zero)
/// }
/// ```
public struct CacheEntry: Sendable, Hashable {
    /// The stored bytes.
    public var value: [UInt8]
    /// The remaining time to live, or `nil` when the entry never expires.
    public var ttl: Duration?

    /// Creates an entry.
    /// - Parameters:
    ///   - value: the stored bytes.
    ///   - ttl: the remaining time to live; `nil` when the entry never expires.
    public init(value: [UInt8], ttl: Duration? = nil) {
        self.value = value
        self.ttl = ttl
    }
}
