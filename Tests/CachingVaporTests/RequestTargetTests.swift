#if Vapor
import Testing
import Vapor

@testable import CachingVapor

/// The fast request target equals what `URI.string` gives, for every shape of target.
@Suite struct RequestTargetTests {
    @Test func layoutCheckHolds() {
        #expect(RequestTarget.uriWrapsComponents, "Vapor's URI is no longer a URLComponents wrapper: the slow path is used")
    }

    @Test(arguments: [
        "/", "/items", "/items?b=2&a=1", "/items?", "/a%20b/c?q=%C3%A9", "/semi;colon", "/semi%3Bcolon?x=%3B",
        "//double/slash", "/caf%C3%A9", "/path#fragment", "/p?q=1#frag", "http://example.com/abs?x=1", "*",
    ])
    func matchesURIString(_ target: String) {
        // How Vapor's request decoder builds `Request.url`.
        let uri = URI(path: target)
        #expect(RequestTarget.path(of: uri) == uri.string)
    }
}
#endif
