import Caching
import Foundation
import Testing

@Suite struct JSONCoderTests {
    let coder = JSONCoder()

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func roundTripsNestedValues() throws {
        var order = Order.sample
        order.created = Date(timeIntervalSince1970: 1_714_566_645)
        // JSON stores a URL as its absolute string: the base URL is not kept.
        order.relativeLink = order.relativeLink.absoluteURL
        #expect(try roundTrip(order, coder) == order)
        #expect(try roundTrip([Shape.circle(radius: 1), .point], coder) == [.circle(radius: 1), .point])
        let dog = Dog(name: "Rex", breed: "collie", goodBoy: nil)
        #expect(try roundTrip(dog, coder) == dog)
        #expect(coder.name == "json")
    }

    @Test func outputIsDeterministicWithSortedKeysAndUnescapedSlashes() throws {
        #expect(
            text(try coder.encode(User.sample))
                == #"{"active":true,"email":"ada@example.com","id":42,"name":"Ada Lovelace","score":97.25}"#
        )
        #expect(text(try coder.encode(["path": "a/b"])) == #"{"path":"a/b"}"#)
        var a: [String: Int] = [:]
        var b: [String: Int] = [:]
        b.reserveCapacity(500)
        for i in 0..<100 { a["key\(i)"] = i }
        for i in (0..<100).reversed() { b["key\(i)"] = i }
        #expect(try coder.encode(a) == coder.encode(b))
        #expect(try coder.encode(Order.sample) == coder.encode(Order.sample))
    }

    @Test func topLevelNilIsNullAndToldApartFromAValue() throws {
        let bytes = try coder.encode(Optional<User>.none)
        #expect(text(bytes) == "null")
        #expect(try coder.decode(User?.self, from: bytes) == nil)
        #expect(try coder.decode(User?.self, from: coder.encode(Optional(User.sample))) == User.sample)
        #expect(throws: CacheError.self) { try coder.decode(User.self, from: bytes) }
    }

    @Test func datesAreISO8601WithMillisecondsByDefault() throws {
        let date = Date(timeIntervalSince1970: 1_714_566_645.123)
        #expect(text(try coder.encode([date])) == #"["2024-05-01T12:30:45.123Z"]"#)
        let decoded = try coder.decode([Date].self, from: Array(#"["2024-05-01T12:30:45.123Z"]"#.utf8))
        #expect(abs(decoded[0].timeIntervalSince(date)) < 0.001)
        let before1970 = Date(timeIntervalSince1970: -0.5)
        #expect(text(try coder.encode([before1970])) == #"["1969-12-31T23:59:59.500Z"]"#)
        #expect(throws: CacheError.self) { try coder.encode([Date(timeIntervalSince1970: 1e300)]) }
        let whole = try coder.decode([Date].self, from: Array(#"["2024-05-01T12:30:45Z"]"#.utf8))
        #expect(whole[0] == Date(timeIntervalSince1970: 1_714_566_645))
        expectDecodingFailed { _ = try coder.decode([Date].self, from: Array(#"["yesterday"]"#.utf8)) }
    }

    @Test func otherDateEncodings() throws {
        let date = Date(timeIntervalSince1970: 1_714_566_645.5)
        let millis = JSONCoder(dateEncoding: .millisecondsSince1970)
        #expect(text(try millis.encode([date])) == "[1714566645500]")
        #expect(try roundTrip([date], millis) == [date])
        let exact = Date(timeIntervalSinceReferenceDate: 12_345.678_901_234)
        #expect(try roundTrip([exact], JSONCoder(dateEncoding: .secondsSinceReferenceDate)) == [exact])
    }

    @Test func nonConformingFloatsThrowOrBecomeStrings() throws {
        do {
            _ = try coder.encode([Double.nan])
            Issue.record("NaN encoded as JSON")
        } catch let error as CacheError {
            #expect(error.code == .encodingFailed)
        }
        let lenient = JSONCoder(nonConformingFloatEncoding: .strings)
        #expect(text(try lenient.encode([Double.infinity])) == #"["Infinity"]"#)
        #expect(try roundTrip([-Double.infinity], lenient) == [-.infinity])
        #expect(try roundTrip([Double.nan], lenient)[0].isNaN)
    }

    @Test func garbageAndOtherTypesThrowDecodingFailed() throws {
        expectDecodingFailed { _ = try coder.decode(User.self, from: []) }
        expectDecodingFailed { _ = try coder.decode(User.self, from: Array("{\"id\":".utf8)) }
        expectDecodingFailed { _ = try coder.decode(User.self, from: BinaryCoder().encode(User.sample)) }
        expectDecodingFailed { _ = try coder.decode([Int].self, from: coder.encode(User.sample)) }
        expectDecodingFailed { _ = try coder.decode(User.self, from: [0xFF, 0xFE, 0x00]) }
    }

    @Test func userInfoReachesTheTypes() throws {
        let key = try #require(CodingUserInfoKey(rawValue: "tenant"))
        struct Tenanted: Codable {
            var tenant: String
            init(tenant: String) { self.tenant = tenant }
            init(from decoder: any Decoder) throws {
                tenant = try #require(decoder.userInfo[CodingUserInfoKey(rawValue: "tenant")!] as? String)
            }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(encoder.userInfo[CodingUserInfoKey(rawValue: "tenant")!] as? String ?? "none")
            }
        }
        for coder in [JSONCoder(userInfo: [key: "acme"]) as any Coder, BinaryCoder(userInfo: [key: "acme"])] {
            #expect(try coder.decode(Tenanted.self, from: coder.encode(Tenanted(tenant: "x"))).tenant == "acme")
        }
    }
}
