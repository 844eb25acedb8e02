import Foundation
import HTTPTypes
import Testing

@testable import CachingHTTP

@Suite struct CacheControlParsingTests {
    @Test func parsesDirectivesCaseInsensitively() {
        let directives = HTTPCacheControl(parsing: "Public, MAX-AGE=60, no-transform")
        #expect(directives.isPublic)
        #expect(directives.maxAge == 60)
        #expect(directives.contains("No-Transform"))
        #expect(directives.directives.map(\.name) == ["public", "max-age", "no-transform"])
    }

    @Test func quotedArgumentsMayContainCommas() {
        let directives = HTTPCacheControl(parsing: #"private="set-cookie, x-user", max-age=5"#)
        #expect(directives.value(of: "private") == "set-cookie, x-user")
        #expect(directives.maxAge == 5)
        #expect(directives.directives.count == 2)
    }

    @Test func escapedQuotesInsideQuotedStrings() {
        let directives = HTTPCacheControl(parsing: #"ext="a \"b\", c", no-cache"#)
        #expect(directives.value(of: "ext") == #"a "b", c"#)
        #expect(directives.noCache)
    }

    @Test func emptyMembersAndWhitespaceAreIgnored() {
        let directives = HTTPCacheControl(parsing: " ,  no-store ,, \tmax-age = 3 ,")
        #expect(directives.noStore)
        #expect(directives.maxAge == 3)
        #expect(directives.directives.count == 2)
    }

    @Test func deltaSecondsValidation() {
        #expect(HTTPCacheControl(parsing: "max-age=abc").maxAge == nil)
        #expect(HTTPCacheControl(parsing: "max-age=-1").maxAge == nil)
        #expect(HTTPCacheControl(parsing: "max-age=").maxAge == nil)
        #expect(HTTPCacheControl(parsing: "max-age=\"10\"").maxAge == 10)
        #expect(HTTPCacheControl(parsing: "max-age=0").maxAge == 0)
        // RFC 9111 §1.2.2: too large values are taken as 2^31.
        #expect(HTTPCacheControl(parsing: "max-age=99999999999999999999").maxAge == 2_147_483_648)
    }

    @Test func severalFieldLinesFormOneList() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .cacheControl, value: "no-cache"))
        fields.append(HTTPField(name: .cacheControl, value: "max-age=0, only-if-cached"))
        let directives = HTTPCacheControl(parsing: fields)
        #expect(directives.noCache)
        #expect(directives.maxAge == 0)
        #expect(directives.onlyIfCached)
    }

    @Test func headerValueQuotesWhenNeeded() {
        let directives = HTTPCacheControl([.init("public"), .init("max-age", "30"), .init("ext", "a b")])
        #expect(directives.headerValue == #"public, max-age=30, ext="a b""#)
        #expect(HTTPCacheControl(parsing: directives.headerValue) == directives)
    }
}

@Suite struct EntityTagTests {
    @Test func parsesStrongAndWeakTags() {
        #expect(EntityTag(parsing: #""abc""#) == EntityTag("abc"))
        #expect(EntityTag(parsing: #"W/"abc""#) == EntityTag("abc", isWeak: true))
        #expect(EntityTag(parsing: #"  "x"  "#) == EntityTag("x"))
        #expect(EntityTag(parsing: #""""#) == EntityTag(""))
    }

    @Test func rejectsMalformedTags() {
        #expect(EntityTag(parsing: "abc") == nil)
        #expect(EntityTag(parsing: #""abc"#) == nil)
        #expect(EntityTag(parsing: #"w/"abc""#) == nil)
        #expect(EntityTag(parsing: #""a"b""#) == nil)
        #expect(EntityTag(parsing: #""a b""#) == nil)
    }

    @Test func headerValueRoundTrips() {
        #expect(EntityTag("abc").headerValue == #""abc""#)
        #expect(EntityTag("abc", isWeak: true).headerValue == #"W/"abc""#)
    }

    @Test func comparisons() {
        let strong = EntityTag("1")
        let weak = EntityTag("1", isWeak: true)
        #expect(strong.weaklyMatches(weak))
        #expect(!strong.stronglyMatches(weak))
        #expect(strong.stronglyMatches(EntityTag("1")))
        #expect(!strong.weaklyMatches(EntityTag("2")))
    }

    /// The ETag of a fixed body is a known constant: the first 16 bytes of its SHA-256. If this
    /// changed, every client's cached ETag would stop matching after an upgrade.
    @Test func strongTagOfFixedBodyIsStable() {
        #expect(EntityTag.strong(forBody: Array("hello".utf8)).headerValue == #""2cf24dba5fb0a30e26e83b2ac5b9e29e""#)
        #expect(EntityTag.strong(forBody: Array(#"{"message":"hello"}"#.utf8)).opaqueTag == "9b2d43affbf49a367028df2e1414f84c")
        #expect(EntityTag.strong(forBody: []).opaqueTag == "e3b0c44298fc1c149afbf4c8996fb924")
        #expect(!EntityTag.strong(forBody: [1]).isWeak)
    }
}

@Suite struct IfNoneMatchTests {
    @Test func parsesLists() {
        let condition = IfNoneMatch(parsing: #""a", W/"b" ,"c""#)
        #expect(condition == .tags([EntityTag("a"), EntityTag("b", isWeak: true), EntityTag("c")]))
        #expect(condition?.matches(EntityTag("c")) == true)
        #expect(condition?.matches(EntityTag("d")) == false)
    }

    @Test func weakComparisonMatchesEitherWay() {
        #expect(IfNoneMatch(parsing: #"W/"x""#)?.matches(EntityTag("x")) == true)
        #expect(IfNoneMatch(parsing: #""x""#)?.matches(EntityTag("x", isWeak: true)) == true)
    }

    @Test func starMatchesAnything() {
        #expect(IfNoneMatch(parsing: "*") == .any)
        #expect(IfNoneMatch(parsing: " * ")?.matches(EntityTag("whatever")) == true)
    }

    @Test func tagsWithCommasInsideQuotes() {
        let condition = IfNoneMatch(parsing: #""a,b", "c""#)
        #expect(condition == .tags([EntityTag("a,b"), EntityTag("c")]))
    }

    @Test func malformedFieldIsIgnored() {
        #expect(IfNoneMatch(parsing: "abc") == nil)
        #expect(IfNoneMatch(parsing: "") == nil)
        // Valid members survive next to invalid ones.
        #expect(IfNoneMatch(parsing: #"junk, "ok""#) == .tags([EntityTag("ok")]))
    }

    @Test func severalFieldLines() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .ifNoneMatch, value: #""a""#))
        fields.append(HTTPField(name: .ifNoneMatch, value: #""b""#))
        #expect(IfNoneMatch(fields: fields) == .tags([EntityTag("a"), EntityTag("b")]))
        #expect(IfNoneMatch(fields: HTTPFields()) == nil)
    }
}

@Suite struct CacheKeyTests {
    func key(_ path: String) -> String {
        HTTPCachePolicy.defaultKey(for: HTTPRequest(method: .get, scheme: nil, authority: nil, path: path))
    }

    @Test func sortsQueryParametersByName() {
        #expect(key("/s?b=2&a=1&c=3") == "/s?a=1&b=2&c=3")
        #expect(key("/s?a=1&b=2&c=3") == key("/s?c=3&b=2&a=1"))
    }

    @Test func keepsOrderOfRepeatedParameters() {
        #expect(key("/s?tag=z&a=1&tag=y") == "/s?a=1&tag=z&tag=y")
        #expect(key("/s?tag=z&tag=y") != key("/s?tag=y&tag=z"))
    }

    @Test func dropsEmptyMembersAndEmptyQueries() {
        #expect(key("/s?&&b=1&&a&") == "/s?a&b=1")
        #expect(key("/s?") == "/s")
        #expect(key("/s") == "/s")
    }

    @Test func pathAndValuesAreCaseSensitive() {
        #expect(key("/S?a=X") != key("/s?a=x"))
    }

    @Test func variantKeyDependsOnVaryValues() {
        var english = HTTPFields()
        english[.acceptLanguage] = "en"
        var french = HTTPFields()
        french[.acceptLanguage] = "fr"
        let names = ["accept-language"]
        let a = HTTPResponseCache.variantKey("GET /", names: names, fields: english)
        let b = HTTPResponseCache.variantKey("GET /", names: names, fields: french)
        #expect(a != b)
        #expect(a == HTTPResponseCache.variantKey("GET /", names: names, fields: english))
        #expect(a.hasPrefix("GET / #vary:"))
    }
}

@Suite struct StoredFormatTests {
    let response = CachedHTTPResponse(
        status: 200, reasonPhrase: "OK",
        headers: [.init(name: "Content-Type", value: "application/json"), .init(name: "Vary", value: "Accept")],
        body: [0, 1, 2, 255],
        storedAtMilliseconds: 1_700_000_000_123, ttlMilliseconds: 60_000,
        etag: EntityTag("abc"), extraCacheControl: [.init("immutable"), .init("ext", "v")]
    )

    @Test func binaryRoundTrip() throws {
        let bytes = response.serialized()
        #expect(try CachedHTTPResponse(serialized: bytes) == response)
    }

    @Test func codableRoundTrip() throws {
        let data = try JSONEncoder().encode(response)
        #expect(try JSONDecoder().decode(CachedHTTPResponse.self, from: data) == response)
    }

    @Test func corruptBytesThrowInsteadOfCrashing() {
        let bytes = response.serialized()
        #expect(throws: (any Error).self) { try CachedHTTPResponse(serialized: []) }
        #expect(throws: (any Error).self) { try CachedHTTPResponse(serialized: Array("{\"json\":1}".utf8)) }
        for cut in stride(from: 1, to: bytes.count, by: 3) {
            #expect(throws: (any Error).self) { try CachedHTTPResponse(serialized: Array(bytes.prefix(cut))) }
        }
        var huge = bytes
        huge[5] = 0xFF; huge[6] = 0xFF; huge[7] = 0xFF; huge[8] = 0x7F  // impossible lengths follow
        #expect(throws: (any Error).self) { try CachedHTTPResponse(serialized: huge + [0]) }
    }

    @Test func remainingAndAge() {
        #expect(response.remainingMilliseconds(now: 1_700_000_010_123) == 50_000)
        #expect(response.ageMilliseconds(now: 1_700_000_010_123) == 10_000)
        #expect(response.ageMilliseconds(now: 0) == 0)
    }
}
