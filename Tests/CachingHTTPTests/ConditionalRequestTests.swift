import Caching
import CachingTesting
import HTTPTypes
import Testing

@testable import CachingHTTP

@Suite struct HTTPDateTests {
    @Test func parsesTheThreeFormats() {
        #expect(HTTPDate.secondsSinceEpoch("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.secondsSinceEpoch("Sunday, 06-Nov-94 08:49:37 GMT", now: 1_700_000_000) == 784_111_777)
        #expect(HTTPDate.secondsSinceEpoch("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(HTTPDate.secondsSinceEpoch("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.secondsSinceEpoch("Tue, 29 Feb 2028 23:59:59 GMT") == 1_835_481_599)
    }

    @Test func twoDigitYearsMoreThan50YearsAheadArePast() {
        let now2026: Int64 = 1_795_000_000
        #expect(HTTPDate.secondsSinceEpoch("Monday, 01-Jan-76 00:00:00 GMT", now: now2026) == HTTPDate.secondsSinceEpoch("Thu, 01 Jan 2076 00:00:00 GMT"))
        #expect(HTTPDate.secondsSinceEpoch("Monday, 01-Jan-77 00:00:00 GMT", now: now2026) == HTTPDate.secondsSinceEpoch("Sat, 01 Jan 1977 00:00:00 GMT"))
    }

    @Test(arguments: [
        "", "yesterday", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 06 Nov 19945 08:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 0x Nov 1994 08:49:37 GMT",
    ])
    func rejectsInvalidDates(_ value: String) {
        #expect(HTTPDate.secondsSinceEpoch(value) == nil)
    }
}

/// `If-Modified-Since` against the endpoint's `Last-Modified`, on hits and on misses.
@Suite struct IfModifiedSinceTests {
    let clock = ManualHTTPCacheClock()
    let calls = CallCounter()

    func makeCache() -> HTTPResponseCache {
        HTTPResponseCache(cache: CacheFront(backend: makeBackend(), prefix: "test"), clock: clock.clock)
    }

    func page(lastModified: String?) -> () async throws -> (HTTPResponse, [UInt8]) {
        { [calls] in
            _ = calls.increment()
            var fields: HTTPFields = [.contentType: "text/plain"]
            if let lastModified { fields[.lastModified] = lastModified }
            return (HTTPResponse(status: .ok, headerFields: fields), Array("page".utf8))
        }
    }

    let modified = "Tue, 14 Nov 2023 22:00:00 GMT"

    @Test func notModifiedOnHitWhenUnchangedSince() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/p"), compute: page(lastModified: modified))
        for since in [modified, "Wed, 15 Nov 2023 00:00:00 GMT", "Wednesday, 15-Nov-23 00:00:00 GMT"] {
            let reply = try await cache.respond(to: request("/p", [.ifModifiedSince: since]), compute: page(lastModified: modified))
            #expect(reply.response.status == .notModified, "since \(since)")
            #expect(reply.body.isEmpty && reply.cacheStatus == .hit)
            #expect(reply.response.headerFields[.lastModified] == modified)
            #expect(reply.response.headerFields[.contentLength] == "4")
        }
        let older = try await cache.respond(to: request("/p", [.ifModifiedSince: "Tue, 14 Nov 2023 21:59:59 GMT"]), compute: page(lastModified: modified))
        #expect(older.response.status == .ok && older.body == Array("page".utf8) && older.cacheStatus == .hit)
        #expect(calls.count == 1)
    }

    @Test func notModifiedOnMiss() async throws {
        let cache = makeCache()
        let reply = try await cache.respond(to: request("/p", [.ifModifiedSince: modified]), compute: page(lastModified: modified))
        #expect(reply.response.status == .notModified && reply.body.isEmpty && reply.cacheStatus == .miss)
        let next = try await cache.respond(to: request("/p"), compute: page(lastModified: modified))
        #expect(next.response.status == .ok && next.cacheStatus == .hit, "the response was stored all the same")
    }

    @Test func ignoredWithoutLastModifiedOrWithIfNoneMatchOrInvalid() async throws {
        let cache = makeCache()
        _ = try await cache.respond(to: request("/plain"), compute: page(lastModified: nil))
        let noLastModified = try await cache.respond(to: request("/plain", [.ifModifiedSince: modified]), compute: page(lastModified: nil))
        #expect(noLastModified.response.status == .ok)

        _ = try await cache.respond(to: request("/p"), compute: page(lastModified: modified))
        // If-None-Match takes precedence: a non-matching tag means 200 whatever the date says.
        let withTag = try await cache.respond(to: request("/p", [.ifNoneMatch: #""other""#, .ifModifiedSince: modified]), compute: page(lastModified: modified))
        #expect(withTag.response.status == .ok)
        let invalid = try await cache.respond(to: request("/p", [.ifModifiedSince: "not a date"]), compute: page(lastModified: modified))
        #expect(invalid.response.status == .ok)
        var twice = HTTPFields()
        twice.append(HTTPField(name: .ifModifiedSince, value: modified))
        twice.append(HTTPField(name: .ifModifiedSince, value: modified))
        let twoValues = try await cache.respond(to: request("/p", twice), compute: page(lastModified: modified))
        #expect(twoValues.response.status == .ok)
    }
}
