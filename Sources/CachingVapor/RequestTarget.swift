#if Vapor
import Foundation
import Vapor

/// The request target (path and query) of a Vapor request, as `URI.string` spells it, without
/// its cost.
///
/// On Linux `URI.string` runs `replacingOccurrences(of: "%3B", with: ";")` through Foundation's
/// `NSString` on every call, which was the largest single cost of a cache hit (more than the
/// cache lookup). `URI`'s only stored property is its `URLComponents?`; when that still holds
/// (checked once, by reflection, with the sizes compared), the path and query are read from
/// the components directly and `%3B` is restored only when present. Otherwise, and for
/// absolute-form targets, `URI.string` is used.
enum RequestTarget {
    /// Whether `URI` is exactly a wrapper of `URLComponents?`, so that reading one as the
    /// other is sound (a struct with one stored property has that property's layout).
    static let uriWrapsComponents: Bool = {
        let children = Mirror(reflecting: URI(string: "/")).children
        guard children.count == 1, let only = children.first, only.label == "components" else { return false }
        return type(of: only.value) == Optional<URLComponents>.self
            && MemoryLayout<URI>.size == MemoryLayout<URLComponents?>.size
            && MemoryLayout<URI>.alignment == MemoryLayout<URLComponents?>.alignment
            && MemoryLayout<URI>.stride == MemoryLayout<URLComponents?>.stride
    }()

    /// `uri.string` for an origin-form request target (`/path?query`).
    static func path(of uri: URI) -> String {
        guard uriWrapsComponents else { return uri.string }
        // Sound: checked above that URI's only stored property is a `URLComponents?`.
        let components = unsafeBitCast(uri, to: URLComponents?.self)
        guard let components, components.scheme == nil, components.host == nil, components.fragment == nil else { return uri.string }
        var path = components.percentEncodedPath
        if path.utf8.contains(UInt8(ascii: "%")), path.contains("%3B") {
            path = path.replacingOccurrences(of: "%3B", with: ";")
        }
        guard let query = components.percentEncodedQuery else { return path }
        return path + "?" + query
    }
}
#endif
