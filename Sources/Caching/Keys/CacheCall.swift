/// One call of a cached function, as a ``KeyBuilder`` sees it.
///
/// ``CacheFront/cached(ttl:name:fileID:function:line:_:)`` makes one per call and asks its key
/// builder for the storage key. Every key a builder returns must start with ``scope``, so that
/// ``CacheFront/clear()`` finds it.
public struct CacheCall: Sendable, Hashable {
    /// The front's prefix and namespaces, joined and ending in `:` (`"shop:users:"`), or `""`
    /// when the front has neither.
    public var scope: String
    /// The function's identity: the name given to `cached(...)`, or `file:function:line` of the call site.
    public var function: String
    /// The arguments in canonical text form, one string each (see ``CacheArgument``).
    public var arguments: [CacheArgument]

    /// Creates a call description.
    public init(scope: String, function: String, arguments: [CacheArgument]) {
        self.scope = scope
        self.function = function
        self.arguments = arguments
    }
}

/// One argument of a ``CacheCall``, in two stable forms.
///
/// The forms never depend on the process (no `hashValue`, no addresses), so the same call gives
/// the same key on every machine.
public struct CacheArgument: Sendable, Hashable {
    /// An unambiguous encoding: a one-letter type tag and the value (`s42` for the string
    /// `"42"`, `i42` for the integer, `j{...}` for other `Encodable` values as sorted-key JSON).
    public var canonical: String
    /// A readable form for keys meant for people: the string itself, the number's digits, or the JSON.
    public var readable: String

    /// Creates an argument from its two forms.
    public init(canonical: String, readable: String) {
        self.canonical = canonical
        self.readable = readable
    }

    /// The stable forms of any `Encodable` value.
    ///
    /// Strings, integers, booleans and floating-point numbers take a fast path; anything else is
    /// encoded as JSON with sorted keys.
    /// - Throws: ``CacheError/Code/encodingFailed`` when the value cannot be encoded.
    public init<T: Encodable>(_ value: T) throws {
        switch value {
        case let string as String:
            self.init(canonical: "s" + string, readable: string)
        case let int as Int:
            self.init(canonical: "i\(int)", readable: "\(int)")
        case let int as Int64:
            self.init(canonical: "i\(int)", readable: "\(int)")
        case let int as Int32:
            self.init(canonical: "i\(int)", readable: "\(int)")
        case let int as UInt:
            self.init(canonical: "i\(int)", readable: "\(int)")
        case let int as UInt64:
            self.init(canonical: "i\(int)", readable: "\(int)")
        case let bool as Bool:
            self.init(canonical: bool ? "b1" : "b0", readable: bool ? "true" : "false")
        case let double as Double:
            self.init(canonical: "d\(double)", readable: "\(double)")
        default:
            let json = String(decoding: try CanonicalJSON.encode(value), as: UTF8.self)
            self.init(canonical: "j" + json, readable: json)
        }
    }
}
