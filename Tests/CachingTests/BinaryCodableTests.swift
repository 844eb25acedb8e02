@testable import Caching
import CachingTesting
import Foundation
import Testing

// Types coded both ways: `Codable` (synthesized) and `BinaryCodable` (hand-written, as a user
// would write it). Each `Plain…` twin has the same fields and only `Codable`, like an older
// build of the same type.

fileprivate struct Profile: Codable, Equatable, BinaryCodable {
    var id: Int
    var name: String
    var email: String
    var age: Int
    var active: Bool

    static let binaryFields = BinaryFields("id", "name", "email", "age", "active")

    init(id: Int, name: String, email: String, age: Int, active: Bool) {
        self.id = id
        self.name = name
        self.email = email
        self.age = age
        self.active = active
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(Int.self)
        name = try fields.decode(String.self)
        email = try fields.decode(String.self)
        age = try fields.decode(Int.self)
        active = try fields.decode(Bool.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
        try fields.encode(name)
        try fields.encode(email)
        try fields.encode(age)
        try fields.encode(active)
    }
}

fileprivate struct PlainProfile: Codable, Equatable {
    var id: Int
    var name: String
    var email: String
    var age: Int
    var active: Bool
}

fileprivate struct Address: Codable, Equatable {
    var city: String
    var zip: String?
}

/// Every kind of field: optionals of each fast type, numbers of every width, a nested plain
/// `Codable` type, a nested `BinaryCodable` type, collections, `Date` and `UUID`.
fileprivate struct Account: Codable, Equatable, BinaryCodable {
    var id: UInt64
    var nickname: String?
    var score: Double
    var ratio: Float
    var level: Int8
    var small: Int16
    var medium: Int32
    var big: Int64
    var unsignedSmall: UInt8
    var unsignedMedium: UInt16
    var unsignedBig: UInt32
    var unsigned: UInt
    var maybeCount: Int?
    var maybeFlag: Bool?
    var maybeScore: Double?
    var maybeBig: Int64?
    var address: Address
    var owner: Profile?
    var tags: [String]
    var created: Date
    var token: UUID

    static let binaryFields = BinaryFields(
        "id", "nickname", "score", "ratio", "level", "small", "medium", "big", "unsignedSmall", "unsignedMedium",
        "unsignedBig", "unsigned", "maybeCount", "maybeFlag", "maybeScore", "maybeBig", "address", "owner", "tags",
        "created", "token"
    )

    init(
        id: UInt64, nickname: String?, score: Double, ratio: Float, level: Int8, small: Int16, medium: Int32, big: Int64,
        unsignedSmall: UInt8, unsignedMedium: UInt16, unsignedBig: UInt32, unsigned: UInt, maybeCount: Int?,
        maybeFlag: Bool?, maybeScore: Double?, maybeBig: Int64?, address: Address, owner: Profile?, tags: [String],
        created: Date, token: UUID
    ) {
        self.id = id
        self.nickname = nickname
        self.score = score
        self.ratio = ratio
        self.level = level
        self.small = small
        self.medium = medium
        self.big = big
        self.unsignedSmall = unsignedSmall
        self.unsignedMedium = unsignedMedium
        self.unsignedBig = unsignedBig
        self.unsigned = unsigned
        self.maybeCount = maybeCount
        self.maybeFlag = maybeFlag
        self.maybeScore = maybeScore
        self.maybeBig = maybeBig
        self.address = address
        self.owner = owner
        self.tags = tags
        self.created = created
        self.token = token
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(UInt64.self)
        nickname = try fields.decodeIfPresent(String.self)
        score = try fields.decode(Double.self)
        ratio = try fields.decode(Float.self)
        level = try fields.decode(Int8.self)
        small = try fields.decode(Int16.self)
        medium = try fields.decode(Int32.self)
        big = try fields.decode(Int64.self)
        unsignedSmall = try fields.decode(UInt8.self)
        unsignedMedium = try fields.decode(UInt16.self)
        unsignedBig = try fields.decode(UInt32.self)
        unsigned = try fields.decode(UInt.self)
        maybeCount = try fields.decodeIfPresent(Int.self)
        maybeFlag = try fields.decodeIfPresent(Bool.self)
        maybeScore = try fields.decodeIfPresent(Double.self)
        maybeBig = try fields.decodeIfPresent(Int64.self)
        address = try fields.decode(Address.self)
        owner = try fields.decodeIfPresent(Profile.self)
        tags = try fields.decode([String].self)
        created = try fields.decode(Date.self)
        token = try fields.decode(UUID.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
        try fields.encodeIfPresent(nickname)
        try fields.encode(score)
        try fields.encode(ratio)
        try fields.encode(level)
        try fields.encode(small)
        try fields.encode(medium)
        try fields.encode(big)
        try fields.encode(unsignedSmall)
        try fields.encode(unsignedMedium)
        try fields.encode(unsignedBig)
        try fields.encode(unsigned)
        try fields.encodeIfPresent(maybeCount)
        try fields.encodeIfPresent(maybeFlag)
        try fields.encodeIfPresent(maybeScore)
        try fields.encodeIfPresent(maybeBig)
        try fields.encode(address)
        try fields.encodeIfPresent(owner)
        try fields.encode(tags)
        try fields.encode(created)
        try fields.encode(token)
    }

    static func sample(filled: Bool) -> Account {
        Account(
            id: filled ? UInt64.max : 0, nickname: filled ? "Ünïcödé ✓ and a string longer than thirty-one bytes" : nil,
            score: filled ? 97.25 : -0.0, ratio: filled ? 0.1 : .infinity, level: filled ? -128 : 0,
            small: filled ? Int16.min : 1, medium: filled ? Int32.max : -1, big: filled ? Int64.min : 127,
            unsignedSmall: 255, unsignedMedium: filled ? 65_535 : 128, unsignedBig: filled ? UInt32.max : 0,
            unsigned: filled ? UInt.max : 1, maybeCount: filled ? -33 : nil, maybeFlag: filled ? false : nil,
            maybeScore: filled ? 1e300 : nil, maybeBig: filled ? Int64.max : nil,
            address: Address(city: "Zürich", zip: filled ? "8000" : nil),
            owner: filled ? Profile(id: 7, name: "Ada", email: "ada@example.com", age: 36, active: true) : nil,
            tags: filled ? ["a", "", "c"] : [], created: Date(timeIntervalSince1970: filled ? 1_714_566_645.123 : 0),
            token: UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
        )
    }
}

/// Two names whose one-byte fingerprints collide without a salt (`field14` and `title`), so the
/// container is written with a salt, in the long header form.
fileprivate struct Salted: Codable, Equatable, BinaryCodable {
    var field14: String
    var title: String

    static let binaryFields = BinaryFields("field14", "title")

    init(field14: String, title: String) {
        self.field14 = field14
        self.title = title
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        field14 = try fields.decode(String.self)
        title = try fields.decode(String.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(field14)
        try fields.encode(title)
    }
}

/// The same fields as `Profile`, declared in another order: entries written by `Profile` are
/// not laid out as it expects, so it decodes them through `init(from:)`.
fileprivate struct ReorderedProfile: Codable, Equatable, BinaryCodable {
    var active: Bool
    var age: Int
    var email: String
    var name: String
    var id: Int

    static let binaryFields = BinaryFields("active", "age", "email", "name", "id")

    init(binaryFields fields: inout BinaryFieldReader) throws {
        active = try fields.decode(Bool.self)
        age = try fields.decode(Int.self)
        email = try fields.decode(String.self)
        name = try fields.decode(String.self)
        id = try fields.decode(Int.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(active)
        try fields.encode(age)
        try fields.encode(email)
        try fields.encode(name)
        try fields.encode(id)
    }
}

/// A later version of `Profile` with an added optional field.
fileprivate struct ProfileV2: Codable, Equatable, BinaryCodable {
    var id: Int
    var name: String
    var email: String
    var age: Int
    var active: Bool
    var nickname: String?

    static let binaryFields = BinaryFields("id", "name", "email", "age", "active", "nickname")

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(Int.self)
        name = try fields.decode(String.self)
        email = try fields.decode(String.self)
        age = try fields.decode(Int.self)
        active = try fields.decode(Bool.self)
        nickname = try fields.decodeIfPresent(String.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
        try fields.encode(name)
        try fields.encode(email)
        try fields.encode(age)
        try fields.encode(active)
        try fields.encodeIfPresent(nickname)
    }
}

/// A broken conformance: it writes one field fewer than it lists.
fileprivate struct ShortWriter: Codable, Equatable, BinaryCodable {
    var a: Int
    var b: Int

    static let binaryFields = BinaryFields("a", "b")

    init(a: Int, b: Int) {
        self.a = a
        self.b = b
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        a = try fields.decode(Int.self)
        b = try fields.decode(Int.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(a)
    }
}

/// A broken conformance: it lists a field under another name than its `CodingKeys`.
fileprivate struct MisnamedFields: Codable, Equatable, BinaryCodable {
    var a: Int
    var b: Int

    static let binaryFields = BinaryFields("a", "bee")

    init(a: Int, b: Int) {
        self.a = a
        self.b = b
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        a = try fields.decode(Int.self)
        b = try fields.decode(Int.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(a)
        try fields.encode(b)
    }
}

/// Tells which path decoded it: `init(binaryFields:)` or `init(from:)`.
fileprivate struct PathMarker: Codable, Equatable, BinaryCodable {
    var id: Int
    var decodedBy = ""

    enum CodingKeys: String, CodingKey { case id }

    static let binaryFields = BinaryFields("id")

    init(id: Int) { self.id = id }

    init(from decoder: any Decoder) throws {
        id = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .id)
        decodedBy = "init(from:)"
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(Int.self)
        decodedBy = "init(binaryFields:)"
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
    }
}


/// Only primitive fields, optional ones among them: read by BinaryCoder's top-level path.
fileprivate struct Reading: Codable, Equatable, BinaryCodable {
    var id: Int64
    var value: Double
    var unit: String?
    var flags: UInt8
    var count: Int?
    var ok: Bool?

    static let binaryFields = BinaryFields("id", "value", "unit", "flags", "count", "ok")

    init(id: Int64, value: Double, unit: String?, flags: UInt8, count: Int?, ok: Bool?) {
        self.id = id
        self.value = value
        self.unit = unit
        self.flags = flags
        self.count = count
        self.ok = ok
    }

    init(binaryFields fields: inout BinaryFieldReader) throws {
        id = try fields.decode(Int64.self)
        value = try fields.decode(Double.self)
        unit = try fields.decodeIfPresent(String.self)
        flags = try fields.decode(UInt8.self)
        count = try fields.decodeIfPresent(Int.self)
        ok = try fields.decodeIfPresent(Bool.self)
    }

    func encode(binaryFields fields: inout BinaryFieldWriter) throws {
        try fields.encode(id)
        try fields.encode(value)
        try fields.encodeIfPresent(unit)
        try fields.encode(flags)
        try fields.encodeIfPresent(count)
        try fields.encodeIfPresent(ok)
    }
}

/// Decodes through the `Decodable` overload of `BinaryCoder.decode` (the generic `T` is only
/// `Decodable` here), to compare with the `BinaryCodable` overload.
fileprivate func decodeThroughDecodable<T: Decodable>(_ coder: BinaryCoder, _ type: T.Type, _ bytes: [UInt8]) -> Result<T, CacheError> {
    do {
        return .success(try coder.decode(type, from: bytes))
    } catch let error as CacheError {
        return .failure(error)
    } catch {
        return .failure(CacheError(.internalError, "not a CacheError: \(error)"))
    }
}

/// The same through the `BinaryCodable` overload.
fileprivate func decodeFieldByField<T: BinaryCodable>(_ coder: BinaryCoder, _ type: T.Type, _ bytes: [UInt8]) -> Result<T, CacheError> {
    do {
        return .success(try coder.decode(type, from: bytes))
    } catch let error as CacheError {
        return .failure(error)
    } catch {
        return .failure(CacheError(.internalError, "not a CacheError: \(error)"))
    }
}

@Suite("BinaryCodable: field-by-field coding")
fileprivate struct BinaryCodableTests {
    let coder = BinaryCoder()
    let profile = Profile(id: 100_042, name: "User Number 42", email: "user42@example.com", age: 62, active: true)

    @Test("writes exactly the bytes of the Codable conformance, and reads them back")
    func sameBytesAsCodable() throws {
        try coder.verifyFieldByField(profile)
        try coder.verifyFieldByField(Account.sample(filled: true))
        try coder.verifyFieldByField(Account.sample(filled: false))
        try coder.verifyFieldByField(Salted(field14: "x", title: "y"))
        let plain = PlainProfile(id: profile.id, name: profile.name, email: profile.email, age: profile.age, active: profile.active)
        #expect(try coder.encode(profile) == coder.encode(plain))
    }

    @Test("a field list whose fingerprints collide is written salted, in the long header form")
    func saltedHeader() throws {
        let bytes = try coder.encode(Salted(field14: "x", title: "y"))
        #expect(bytes[1] == 0xD9)  // the long fingerprinted container tag
        #expect(bytes[3] != 0)  // a salt
        #expect(try coder.decode(Salted.self, from: bytes) == Salted(field14: "x", title: "y"))
    }

    @Test("more than 15 fields use the long header, and nested BinaryCodable values work inside Codable ones")
    func longAndNested() throws {
        let account = Account.sample(filled: true)
        let bytes = try coder.encode([account, Account.sample(filled: false)])
        #expect(try coder.decode([Account].self, from: bytes) == [account, Account.sample(filled: false)])
        #expect(try coder.decode([String: Profile].self, from: coder.encode(["a": profile])) == ["a": profile])
    }

    @Test("entries written by other versions of the type decode through init(from:)")
    func otherLayoutsFallBack() throws {
        let bytes = try coder.encode(profile)
        let reordered = try coder.decode(ReorderedProfile.self, from: bytes)
        #expect(reordered.id == profile.id && reordered.name == profile.name && reordered.active == profile.active)
        let newer = try coder.decode(ProfileV2.self, from: bytes)
        #expect(newer.id == profile.id && newer.nickname == nil)
        let named = BinaryCoder(keyEncoding: .named)
        let namedBytes = try named.encode(profile)
        #expect(namedBytes != bytes)
        #expect(try coder.decode(Profile.self, from: namedBytes) == profile)
        #expect(try named.decode(Profile.self, from: bytes) == profile)
        // A field removed in the newer version: a miss (an error), as through Codable alone.
        let withNickname = try coder.encode(
            try coder.decode(ProfileV2.self, from: bytes)
        )
        #expect(throws: CacheError.self) { try coder.decode(Profile.self, from: withNickname) }
        #expect(throws: CacheError.self) { try coder.decode(PlainProfile.self, from: withNickname) }
    }

    @Test("BinaryCoder decodes field by field when the layout matches, through init(from:) otherwise")
    func pathTaken() throws {
        let bytes = try coder.encode(PathMarker(id: 5))
        #expect(try coder.decode(PathMarker.self, from: bytes).decodedBy == "init(binaryFields:)")
        #expect(try coder.decode([PathMarker].self, from: coder.encode([PathMarker(id: 6)])).first?.decodedBy == "init(binaryFields:)")
        let named = try BinaryCoder(keyEncoding: .named).encode(PathMarker(id: 5))
        let fallback = try coder.decode(PathMarker.self, from: named)
        #expect(fallback.id == 5 && fallback.decodedBy == "init(from:)")
        // A wrong value type in the stored bytes (a string where an Int is expected) also goes to
        // init(from:), which reports the error.
        struct Other: Codable { var id: String }
        let error = try #require(throws: CacheError.self) { try coder.decode(PathMarker.self, from: coder.encode(Other(id: "x"))) }
        #expect(error.code == .decodingFailed)
        let json = JSONCoder()
        #expect(try json.decode(PathMarker.self, from: json.encode(PathMarker(id: 1))).decodedBy == "init(from:)")
    }

    @Test("JSONCoder uses the Codable conformance")
    func jsonUsesCodable() throws {
        let json = JSONCoder()
        #expect(try json.decode(Profile.self, from: json.encode(profile)) == profile)
    }

    @Test("a conformance that writes too few fields fails to encode, with a clear error")
    func shortWriterFails() throws {
        let error = try #require(throws: CacheError.self) { try coder.encode(ShortWriter(a: 1, b: 2)) }
        #expect(error.code == .encodingFailed)
        #expect(error.message.contains("wrote 1 fields"))
        #expect(throws: CacheError.self) { try coder.verifyFieldByField(ShortWriter(a: 1, b: 2)) }
    }

    @Test("verifyFieldByField finds a misnamed field")
    func verifyFindsMisnamedField() throws {
        let error = try #require(throws: CacheError.self) { try coder.verifyFieldByField(MisnamedFields(a: 1, b: 2)) }
        #expect(error.code == .encodingFailed)
        #expect(error.message.contains("other bytes than its Codable conformance"))
    }

    @Test("damaged bytes never crash: every truncation and every single-byte change throws or decodes")
    func damagedBytes() throws {
        let bytes = try coder.encode(Account.sample(filled: true))
        for length in 0..<bytes.count {
            #expect(throws: CacheError.self) { try coder.decode(Account.self, from: Array(bytes[0..<length])) }
        }
        var decodedAnyway = 0
        for index in bytes.indices {
            for value: UInt8 in [0x00, 0x7F, 0x80, 0xD0, 0xDC, 0xFF] where value != bytes[index] {
                var damaged = bytes
                damaged[index] = value
                do {
                    _ = try coder.decode(Account.self, from: damaged)
                    decodedAnyway += 1
                } catch let error as CacheError {
                    #expect(error.code == .decodingFailed)
                }
            }
        }
        // Some changes are harmless (a number's value, a string's character); most are not.
        #expect(decodedAnyway < bytes.count * 6 / 2)
    }

    @Test("CacheFront stores and reads BinaryCodable values, and Codable-only readers share its entries")
    func throughTheFront() async throws {
        let front = CacheFront(backend: InMemoryBackend(), prefix: "t", coder: BinaryCoder()).namespace("users")
        try await front.set(profile, forKey: "42")
        #expect(try await front.get("42", as: Profile.self) == profile)
        let plain = try #require(try await front.get("42", as: PlainProfile.self))
        #expect(plain.id == profile.id && plain.email == profile.email)
        try await front.set(plain, forKey: "43")
        #expect(try await front.get("43", as: Profile.self) == Profile(
            id: plain.id, name: plain.name, email: plain.email, age: plain.age, active: plain.active
        ))
    }


    @Test("the BinaryCodable overload of decode gives the same value or the same error as the Decodable one, for every truncation and byte change")
    func topLevelMatchesDecodable() throws {
        let samples: [[UInt8]] = try [
            coder.encode(profile),
            coder.encode(Reading(id: -7, value: 2.5, unit: "kPa", flags: 200, count: 3, ok: false)),
            coder.encode(Reading(id: 1 << 40, value: .pi, unit: nil, flags: 0, count: nil, ok: nil)),
            coder.encode(Reading(id: 0, value: 1e300, unit: "ünïcødé", flags: 1, count: -1_000_000, ok: true)),
        ]
        var compared = 0
        var decodedBoth = 0
        func check(_ bytes: [UInt8]) {
            let (fast, slow) = (decodeFieldByField(coder, Profile.self, bytes), decodeThroughDecodable(coder, Profile.self, bytes))
            #expect("\(fast)" == "\(slow)", "Profile from \(bytes)")
            let (fastReading, slowReading) = (decodeFieldByField(coder, Reading.self, bytes), decodeThroughDecodable(coder, Reading.self, bytes))
            #expect("\(fastReading)" == "\(slowReading)", "Reading from \(bytes)")
            if case .success = fastReading { decodedBoth += 1 }
            if case .success = fast { decodedBoth += 1 }
            compared += 2
        }
        for bytes in samples {
            check(bytes)
            for length in 0..<bytes.count { check(Array(bytes[0..<length])) }
            for index in bytes.indices {
                for value: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xC0, 0xD0, 0xDC, 0xFF] where value != bytes[index] {
                    var damaged = bytes
                    damaged[index] = value
                    check(damaged)
                }
            }
        }
        #expect(compared > 1_000)
        #expect(decodedBoth >= samples.count)  // the undamaged samples, at least
        #expect(try coder.decode(Reading.self, from: samples[1]) == Reading(id: -7, value: 2.5, unit: "kPa", flags: 200, count: 3, ok: false))
    }

    @Test("the BinaryCodable overload reads primitives at the top level and takes the full decoder for other fields")
    func topLevelPath() throws {
        #expect(try coder.decode(PathMarker.self, from: coder.encode(PathMarker(id: 9))).decodedBy == "init(binaryFields:)")
        let markerNeedsFull = PathMarker.binaryFields.needsFullDecoder.load(ordering: .relaxed)
        #expect(!markerNeedsFull)
        // Account has nested, Date and UUID fields: the first read finds out, later ones skip
        // the top-level attempt; every read gives the value.
        let account = Account.sample(filled: true)
        let bytes = try coder.encode(account)
        #expect(try coder.decode(Account.self, from: bytes) == account)
        let accountNeedsFull = Account.binaryFields.needsFullDecoder.load(ordering: .relaxed)
        #expect(accountNeedsFull)
        #expect(try coder.decode(Account.self, from: bytes) == account)
        #expect(try coder.decode(Account.self, from: coder.encode(Account.sample(filled: false))) == Account.sample(filled: false))
        // A coder made to skip BinaryCodable still reads through init(from:).
        let codableOnly = BinaryCoder(codableOnly: coder)
        #expect(try codableOnly.decode(PathMarker.self, from: coder.encode(PathMarker(id: 9))).decodedBy == "init(from:)")
    }

    @Test("CacheFront reads BinaryCodable values field by field with a BinaryCoder")
    func frontOverloads() async throws {
        let memory = InMemoryBackend()
        let front = CacheFront(backend: memory, prefix: "t", coder: BinaryCoder()).namespace("m")
        #expect(front.shared.binaryCoder != nil)
        try await front.set(PathMarker(id: 3), forKey: "k", ttl: .seconds(60))
        #expect(try await front.get("k", as: PathMarker.self)?.decodedBy == "init(binaryFields:)")
        let withTTL = try #require(try await front.getWithTTL("k", as: PathMarker.self))
        #expect(withTTL.value.id == 3 && withTTL.value.decodedBy == "init(binaryFields:)")
        #expect(try #require(withTTL.ttl) > .seconds(50))
        #expect(try await front.get("absent", as: PathMarker.self) == nil)
        // Another backend gives the same answers.
        let asyncBackend = AsyncOnlyBackend()
        let asyncOnly = CacheFront(backend: asyncBackend, prefix: "t", coder: BinaryCoder()).namespace("m")
        try await asyncOnly.set(PathMarker(id: 3), forKey: "k")
        #expect(try await asyncOnly.get("k", as: PathMarker.self)?.decodedBy == "init(binaryFields:)")
        #expect(asyncBackend.asyncReads.count == 1)
        // Another coder reads through Codable.
        let json = CacheFront(backend: InMemoryBackend(), coder: JSONCoder())
        #expect(json.shared.binaryCoder == nil)
        try await json.set(PathMarker(id: 4), forKey: "k")
        #expect(try await json.get("k", as: PathMarker.self)?.decodedBy == "init(from:)")
        // An entry that does not decode is a miss and is removed, on both paths.
        try await memory.set("t:m:bad", to: [0xFF, 0x00], ttl: nil)
        #expect(try await front.get("bad", as: PathMarker.self) == nil)
        #expect(try await memory.get("t:m:bad") == nil)
    }

    @Test("getOrSet and cached read BinaryCodable hits field by field with a BinaryCoder")
    func readThroughOverloads() async throws {
        let memory = InMemoryBackend()
        let front = CacheFront(backend: memory, prefix: "t", coder: BinaryCoder()).namespace("rt")
        #expect(try await front.getOrSet("k") { PathMarker(id: 5) }.id == 5)
        let hit = try await front.getOrSet("k") { PathMarker(id: 99) }
        #expect(hit.id == 5 && hit.decodedBy == "init(binaryFields:)")
        let marker = front.cached(name: "marker") { (id: Int) async throws -> PathMarker in PathMarker(id: id) }
        #expect(try await marker(7).id == 7)
        let again = try await marker(7)
        #expect(again.id == 7 && again.decodedBy == "init(binaryFields:)")
        // The Codable overloads still serve Codable-only types, and another coder reads through
        // init(from:).
        #expect(try await front.getOrSet("plain") { [1, 2] as [Int] } == [1, 2])
        #expect(try await front.getOrSet("plain") { [3] as [Int] } == [1, 2])
        let json = CacheFront(backend: InMemoryBackend(), coder: JSONCoder())
        _ = try await json.getOrSet("k") { PathMarker(id: 1) }
        let jsonHit = try await json.getOrSet("k") { PathMarker(id: 2) }
        #expect(jsonHit.id == 1 && jsonHit.decodedBy == "init(from:)")
        let jsonMarker = json.cached(name: "marker") { (id: Int) async throws -> PathMarker in PathMarker(id: id) }
        _ = try await jsonMarker(3)
        #expect(try await jsonMarker(3).decodedBy == "init(from:)")
        // An entry that does not decode is a miss: removed, computed again and stored.
        try await memory.set("t:rt:bad", to: [0xFF, 0x00], ttl: nil)
        #expect(try await front.getOrSet("bad") { PathMarker(id: 8) }.id == 8)
        #expect(try await front.get("bad", as: PathMarker.self)?.id == 8)
    }

    @Test("the batch get reads BinaryCodable values field by field with a BinaryCoder")
    func batchOverload() async throws {
        let memory = InMemoryBackend()
        let front = CacheFront(backend: memory, prefix: "t", coder: BinaryCoder()).namespace("b")
        try await front.set(["a": PathMarker(id: 1), "b": PathMarker(id: 2)])
        try await memory.set("t:b:bad", to: [0xFF, 0x00], ttl: nil)
        let found = try await front.get(["a", "missing", "b", "bad"], as: PathMarker.self)
        #expect(found.map { $0?.id } == [1, nil, 2, nil])
        #expect(found.compactMap { $0?.decodedBy } == ["init(binaryFields:)", "init(binaryFields:)"])
        // The undecodable entry was removed.
        #expect(try await memory.get("t:b:bad") == nil)
        // Codable-only types and other coders are unchanged.
        #expect(try await front.get(["a"], as: Int.self) == [nil])
        let json = CacheFront(backend: InMemoryBackend(), coder: JSONCoder())
        try await json.set(PathMarker(id: 3), forKey: "k")
        #expect(try await json.get(["k"], as: PathMarker.self).first??.decodedBy == "init(from:)")
    }

    @Test("a field list that cannot be coded field by field makes the type use Codable")
    func unusableFieldLists() throws {
        #expect(!BinaryFields([]).isFieldByField)
        #expect(!BinaryFields("a", "a").isFieldByField)
        #expect(!BinaryFields((0..<25).map { "f\($0)" }).isFieldByField)
        #expect(BinaryFields((0..<24).map { "f\($0)" }).isFieldByField)
        #expect(BinaryFields("id").names == ["id"])
    }
}

