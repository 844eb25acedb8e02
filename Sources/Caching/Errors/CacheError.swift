/// The one error type of swift-caching: what went wrong, and what to do about it.
///
/// Match on ``code`` to react to a kind of failure; show ``message`` to a person. New codes
/// may be added in minor releases, so a `switch` over codes needs a `default`.
///
/// ```swift
/// do {
///     try await cache.set(hugeValue, forKey: "report")
/// } catch let error as CacheError where error.code == .valueTooLarge {
///     logger.warning("not cached: \(error)")
/// }
/// ```
public struct CacheError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure. Compare with `==` against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidKey, invalidTTL, valueTooLarge, invalidArgument
            case notANumber, encodingFailed, decodingFailed
            case connectionFailed, timeout, serverError, closed
            case storeCorrupt, readOnly, configuration, cancelled, unsupported, internalError
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The key cannot be stored (empty, or refused by the backend).
        public static var invalidKey: Self { .init(.invalidKey) }
        /// The time to live is zero or negative.
        public static var invalidTTL: Self { .init(.invalidTTL) }
        /// The value is larger than the configured or server limit.
        public static var valueTooLarge: Self { .init(.valueTooLarge) }
        /// An argument is outside what the operation accepts.
        public static var invalidArgument: Self { .init(.invalidArgument) }
        /// `increment` found a value that is not a decimal 64-bit integer, or the result overflowed.
        public static var notANumber: Self { .init(.notANumber) }
        /// A ``Coder`` could not encode a value.
        public static var encodingFailed: Self { .init(.encodingFailed) }
        /// A ``Coder`` could not decode bytes (they were written by another coder or type, or are damaged).
        public static var decodingFailed: Self { .init(.decodingFailed) }
        /// The backend could not reach its server or store.
        public static var connectionFailed: Self { .init(.connectionFailed) }
        /// The backend did not answer in time.
        public static var timeout: Self { .init(.timeout) }
        /// The server answered with an error; ``CacheError/message`` carries its text.
        public static var serverError: Self { .init(.serverError) }
        /// The backend was closed.
        public static var closed: Self { .init(.closed) }
        /// The store on disk is damaged or is not a cache store.
        public static var storeCorrupt: Self { .init(.storeCorrupt) }
        /// The store cannot be written.
        public static var readOnly: Self { .init(.readOnly) }
        /// The backend's configuration (a URL, an option) is invalid.
        public static var configuration: Self { .init(.configuration) }
        /// The calling task was cancelled.
        public static var cancelled: Self { .init(.cancelled) }
        /// The backend does not support this operation.
        public static var unsupported: Self { .init(.unsupported) }
        /// A bug in swift-caching: please report it.
        public static var internalError: Self { .init(.internalError) }

        public var description: String { value.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong and what to do, for people. Never contains passwords.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    /// - Parameters:
    ///   - code: the kind of failure.
    ///   - message: what went wrong and what to do.
    ///   - underlying: the error that caused this one.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying {
            return "CacheError.\(code): \(message) (caused by: \(underlying))"
        }
        return "CacheError.\(code): \(message)"
    }
}

extension CacheError {
    /// A TTL that is zero or negative.
    public static func invalidTTL(_ ttl: Duration) -> CacheError {
        CacheError(.invalidTTL, "TTL \(ttl) is not positive; pass a positive Duration, or nil for the default")
    }

    /// A value over a size limit.
    public static func valueTooLarge(size: Int, limit: Int, key: String? = nil) -> CacheError {
        let keyPart = key.map { " for key \(String(reflecting: String($0.prefix(80))))" } ?? ""
        return CacheError(
            .valueTooLarge,
            "value of \(size) bytes\(keyPart) is over the limit of \(limit) bytes; store less, or raise the limit"
        )
    }

    /// An operation on a closed backend.
    public static func closed(_ backend: String) -> CacheError {
        CacheError(.closed, "the \(backend) backend is closed; create a new one")
    }

    /// The calling task was cancelled.
    public static var cancelled: CacheError {
        CacheError(.cancelled, "the task was cancelled before the operation finished")
    }
}
