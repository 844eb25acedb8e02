import Caching
import Foundation
import Testing

// MARK: - Fixtures shared by the coder tests

struct User: Codable, Equatable, Sendable {
    var id: Int
    var name: String
    var email: String
    var score: Double
    var active: Bool

    static let sample = User(id: 42, name: "Ada Lovelace", email: "ada@example.com", score: 97.25, active: true)
}

enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rectangle(width: Double, height: Double)
    case labelled(Int, String)
    case point
    case nested(inner: [Shape], note: String?)
}

enum Color: String, Codable, CaseIterable {
    case red, green, blue
}

enum Weekday: String, Codable, CodingKeyRepresentable, Hashable {
    case monday, tuesday, wednesday
}

struct Item: Codable, Equatable {
    var sku: String
    var quantity: UInt16
    var price: Decimal
}

struct Order: Codable, Equatable {
    var id: UUID
    var user: User
    var items: [Item]
    var tags: Set<String>
    var attributes: [String: String]
    var countsByWeek: [Int: Int]
    var byDay: [Weekday: [Double]]
    var note: String?
    var discount: Double?
    var created: Date
    var thumbnail: [UInt8]
    var payload: Data
    var link: URL
    var relativeLink: URL
    var colors: [Color]
    var shape: Shape
    var matrix: [[Int]]
    var empty: [String]
    var emptyMap: [String: Int]

    static let sample = Order(
        id: UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F")!,
        user: .sample,
        items: [
            Item(sku: "A-1", quantity: 3, price: Decimal(string: "19.99")!),
            Item(sku: "B-22", quantity: 65535, price: Decimal(string: "-0.5")!),
        ],
        tags: ["new", "gift", "express"],
        attributes: ["colour": "red", "size": "XL", "ünïcödé": "✓", "": "empty key"],
        countsByWeek: [1: 10, -3: 7, 52: 0],
        byDay: [.monday: [1.5, 2.5], .wednesday: []],
        note: nil,
        discount: 0.15,
        created: Date(timeIntervalSince1970: 1_714_566_645.123),
        thumbnail: [0, 1, 2, 255, 0],
        payload: Data([0xDE, 0xAD, 0xBE, 0xEF]),
        link: URL(string: "https://example.com/a/b?q=1#frag")!,
        relativeLink: URL(string: "c/d", relativeTo: URL(string: "https://example.com/a/"))!,
        colors: [.red, .blue],
        shape: .nested(inner: [.circle(radius: 1), .point, .labelled(-7, "x")], note: "n"),
        matrix: [[1, 2], [], [3]],
        empty: [],
        emptyMap: [:]
    )
}

struct Optionals: Codable, Equatable {
    var plain: Int?
    var double: Int??
    var triple: String???
    var list: [Int?]
    var map: [String: Int?]
    var nestedList: [[String?]?]
}

struct Integers: Codable, Equatable {
    var i: Int, i8: Int8, i16: Int16, i32: Int32, i64: Int64
    var u: UInt, u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64
    var i128: Int128, u128: UInt128

    static let minimums = Integers(
        i: .min, i8: .min, i16: .min, i32: .min, i64: .min, u: .min, u8: .min, u16: .min, u32: .min, u64: .min,
        i128: .min, u128: .min
    )
    static let maximums = Integers(
        i: .max, i8: .max, i16: .max, i32: .max, i64: .max, u: .max, u8: .max, u16: .max, u32: .max, u64: .max,
        i128: .max, u128: .max
    )
    static let edges = Integers(
        i: -33, i8: -32, i16: 128, i32: -1, i64: 127, u: 128, u8: 127, u16: 300, u32: 1 << 31, u64: 1 << 63,
        i128: Int128(Int64.min) - 1, u128: UInt128(UInt64.max) + 1
    )
}

struct Floats: Codable {
    var d: Double
    var f: Float
}

/// A class hierarchy whose subclass writes its superclass through `superEncoder()`.
class Animal: Codable, Equatable {
    var name: String
    var legs: Int

    init(name: String, legs: Int) {
        self.name = name
        self.legs = legs
    }

    static func == (lhs: Animal, rhs: Animal) -> Bool {
        lhs.name == rhs.name && lhs.legs == rhs.legs && type(of: lhs) == type(of: rhs) && lhs.isEqual(rhs)
    }

    func isEqual(_ other: Animal) -> Bool { true }
}

final class Dog: Animal {
    var breed: String
    var goodBoy: Bool?

    init(name: String, breed: String, goodBoy: Bool?) {
        self.breed = breed
        self.goodBoy = goodBoy
        super.init(name: name, legs: 4)
    }

    private enum CodingKeys: String, CodingKey {
        case breed, goodBoy
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        goodBoy = try container.decodeIfPresent(Bool.self, forKey: .goodBoy)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        // The superclass first: encode and decode orders differ on purpose.
        var container = encoder.container(keyedBy: CodingKeys.self)
        try super.encode(to: container.superEncoder())
        try container.encode(breed, forKey: .breed)
        try container.encodeIfPresent(goodBoy, forKey: .goodBoy)
    }

    override func isEqual(_ other: Animal) -> Bool {
        guard let other = other as? Dog else { return false }
        return breed == other.breed && goodBoy == other.goodBoy
    }
}

/// A class hierarchy whose subclass shares its encoder with its superclass.
final class Cat: Animal {
    var indoor: Bool

    init(name: String, indoor: Bool) {
        self.indoor = indoor
        super.init(name: name, legs: 4)
    }

    private enum CodingKeys: String, CodingKey {
        case indoor
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        indoor = try container.decode(Bool.self, forKey: .indoor)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(indoor, forKey: .indoor)
    }

    override func isEqual(_ other: Animal) -> Bool {
        (other as? Cat)?.indoor == indoor
    }
}

/// Keys made at run time, read back with `allKeys`.
struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

struct Bag: Codable, Equatable {
    var values: [String: Int]

    init(values: [String: Int]) { self.values = values }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: DynamicKey.self)
        var values: [String: Int] = [:]
        for key in container.allKeys {
            values[key.stringValue] = try container.decode(Int.self, forKey: key)
        }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            try container.encode(value, forKey: DynamicKey(stringValue: key))
        }
    }
}

/// Writes its keys in one order and reads them in another.
struct Reordered: Codable, Equatable {
    var a: Int
    var b: String
    var c: [Double]

    enum CodingKeys: String, CodingKey { case a, b, c }

    init(a: Int, b: String, c: [Double]) {
        self.a = a
        self.b = b
        self.c = c
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        c = try container.decode([Double].self, forKey: .c)
        a = try container.decode(Int.self, forKey: .a)
        b = try container.decode(String.self, forKey: .b)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(b, forKey: .b)
        try container.encode(a, forKey: .a)
        try container.encode(c, forKey: .c)
    }
}

/// Writes a key only when it has a value, and reads it with `decodeIfPresent`.
struct Conditional: Codable, Equatable {
    var title: String
    var subtitle: String?
    var count: Int

    enum CodingKeys: String, CodingKey { case title, subtitle, count }

    init(title: String, subtitle: String?, count: Int) {
        self.title = title
        self.subtitle = subtitle
        self.count = count
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        title = try container.decode(String.self, forKey: .title)
        subtitle = container.contains(.subtitle) ? try container.decode(String.self, forKey: .subtitle) : nil
        count = try container.decode(Int.self, forKey: .count)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(title, forKey: .title)
        if let subtitle { try container.encode(subtitle, forKey: .subtitle) }
        try container.encode(count, forKey: .count)
    }
}

/// More fields than are fingerprinted in one container (24).
struct Wide: Codable, Equatable {
    var f01 = 1, f02 = 2, f03 = 3, f04 = 4, f05 = 5, f06 = 6, f07 = 7, f08 = 8, f09 = 9, f10 = 10
    var f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15, f16 = 16, f17 = 17, f18 = 18, f19 = 19, f20 = 20
    var f21 = 21, f22 = 22, f23 = 23, f24 = 24, f25 = 25, f26 = 26, f27 = 27, f28 = 28, f29 = 29, f30 = 30
    var s31 = "thirty-one", s32: String? = nil, s33: [Int] = [33]
}

indirect enum Tree: Codable, Equatable {
    case leaf(Int)
    case node([Tree])

    static func deep(_ depth: Int) -> Tree {
        var tree = Tree.leaf(0)
        for _ in 0..<depth { tree = .node([tree]) }
        return tree
    }
}

/// Uses every container API by hand: nested keyed and unkeyed containers, explicit nils,
/// super encoders with and without keys, and nested containers inside unkeyed ones.
struct KitchenSink: Codable, Equatable {
    var title: String
    var pairs: [[Int]]
    var maybe: Int?
    var parent: String
    var inner: [String: Bool]

    enum CodingKeys: String, CodingKey { case title, pairs, maybe, base, details }
    enum DetailKeys: String, CodingKey { case inner, count }

    init(title: String, pairs: [[Int]], maybe: Int?, parent: String, inner: [String: Bool]) {
        self.title = title
        self.pairs = pairs
        self.maybe = maybe
        self.parent = parent
        self.inner = inner
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(title, forKey: .title)
        var list = container.nestedUnkeyedContainer(forKey: .pairs)
        for pair in pairs {
            var nested = list.nestedUnkeyedContainer()
            for value in pair { try nested.encode(value) }
            try list.encodeNil()
        }
        if let maybe { try container.encode(maybe, forKey: .maybe) } else { try container.encodeNil(forKey: .maybe) }
        var base = container.superEncoder(forKey: .base).singleValueContainer()
        try base.encode(parent)
        var details = container.nestedContainer(keyedBy: DetailKeys.self, forKey: .details)
        try details.encode(inner, forKey: .inner)
        try details.encode(inner.count, forKey: .count)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        title = try container.decode(String.self, forKey: .title)
        var list = try container.nestedUnkeyedContainer(forKey: .pairs)
        var pairs: [[Int]] = []
        while !list.isAtEnd {
            var nested = try list.nestedUnkeyedContainer()
            var pair: [Int] = []
            while !nested.isAtEnd { pair.append(try nested.decode(Int.self)) }
            pairs.append(pair)
            guard try list.decodeNil() else { throw DecodingError.dataCorruptedError(in: list, debugDescription: "nil") }
        }
        self.pairs = pairs
        maybe = try container.decodeNil(forKey: .maybe) ? nil : try container.decode(Int.self, forKey: .maybe)
        parent = try container.superDecoder(forKey: .base).singleValueContainer().decode(String.self)
        let details = try container.nestedContainer(keyedBy: DetailKeys.self, forKey: .details)
        inner = try details.decode([String: Bool].self, forKey: .inner)
        guard try details.decode(Int.self, forKey: .count) == inner.count, list.count == pairs.count * 2 else {
            throw DecodingError.dataCorruptedError(forKey: .count, in: details, debugDescription: "count")
        }
    }
}

/// A deterministic random number generator for the fuzz tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func roundTrip<T: Codable>(_ value: T, _ coder: some Coder = BinaryCoder()) throws -> T {
    try coder.decode(T.self, from: coder.encode(value))
}

func expectDecodingFailed(
    _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        try body()
        Issue.record("expected CacheError.decodingFailed, but decoding succeeded", sourceLocation: sourceLocation)
    } catch let error as CacheError {
        #expect(error.code == .decodingFailed, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a CacheError, got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: - Round trips

@Suite struct BinaryCoderTests {
    let coders = [BinaryCoder(), BinaryCoder(keyEncoding: .named)]

    @Test func roundTripsFlatStruct() throws {
        for coder in coders {
            #expect(try roundTrip(User.sample, coder) == User.sample)
        }
    }

    @Test func roundTripsNestedOrderWithFoundationTypes() throws {
        for coder in coders {
            let decoded = try roundTrip(Order.sample, coder)
            #expect(decoded == Order.sample)
            #expect(decoded.relativeLink.absoluteString == Order.sample.relativeLink.absoluteString)
            #expect(decoded.created == Order.sample.created)
        }
    }

    @Test func roundTripsPrimitivesAtTopLevel() throws {
        let coder = BinaryCoder()
        #expect(try roundTrip(42, coder) == 42)
        #expect(try roundTrip(-1, coder) == -1)
        #expect(try roundTrip("", coder) == "")
        #expect(try roundTrip("héllo wörld, a string longer than thirty-one bytes", coder).count == 50)
        #expect(try roundTrip(true, coder) == true)
        #expect(try roundTrip(3.5, coder) == 3.5)
        #expect(try roundTrip(Float(1.1), coder) == Float(1.1))
        #expect(try roundTrip([1, 2, 3], coder) == [1, 2, 3])
        #expect(try roundTrip(["a": 1], coder) == ["a": 1])
        #expect(try roundTrip([UInt8](), coder) == [])
        #expect(try roundTrip(Data(), coder) == Data())
        #expect(try roundTrip(Color.green, coder) == .green)
        #expect(try roundTrip(Shape.point, coder) == .point)
    }

    @Test func roundTripsEveryIntegerWidth() throws {
        for coder in coders {
            for value in [Integers.minimums, Integers.maximums, Integers.edges] {
                #expect(try roundTrip(value, coder) == value)
            }
        }
        var random = SplitMix64(seed: 7)
        let coder = BinaryCoder()
        for _ in 0..<500 {
            let i = Int64(bitPattern: random.next()) >> Int64.random(in: 0...63, using: &random)
            let u = random.next() >> UInt64.random(in: 0...63, using: &random)
            let big = Int128(i) * Int128(Int64(bitPattern: random.next()))
            #expect(try roundTrip(i, coder) == i)
            #expect(try roundTrip(u, coder) == u)
            #expect(try roundTrip(big, coder) == big)
        }
    }

    @Test func numbersTakeTheirSmallestExactForm() throws {
        let coder = BinaryCoder()
        // Version byte + value; no trailer without fingerprinted keys.
        #expect(try coder.encode(5) == [1, 5])
        #expect(try coder.encode(-1) == [1, 0xFF])
        #expect(try coder.encode(-33) == [1, 0xD4, 65])
        #expect(try coder.encode(200) == [1, 0xD3, 0xC8, 0x01])
        #expect(try coder.encode(Int8.min) == [1, 0xD4, 0xFF, 0x01])
        #expect(try coder.encode(3.0) == [1, 0xDE, 0x60])  // zigzag(3) << 4 | 0
        #expect(try coder.encode(0.873).count == 5)
        #expect(try coder.encode(-12.5).count <= 4)
        #expect(try coder.encode(Double.pi).count == 10)
        #expect(try coder.encode(Double(Float(1.1))).count == 6)
        var random = SplitMix64(seed: 99)
        for _ in 0..<2_000 {
            let decimal = Double(Int.random(in: -1_000_000...1_000_000, using: &random)) / 1_000
            let any = Double(bitPattern: random.next())
            #expect(try roundTrip(decimal, coder).bitPattern == decimal.bitPattern)
            #expect(try roundTrip(any, coder).bitPattern == any.bitPattern)
            #expect(try roundTrip(Float(decimal), coder) == Float(decimal))
        }
        // Integers and floating-point numbers read each other when the value is exact.
        #expect(try coder.decode(Double.self, from: coder.encode(42)) == 42)
        #expect(try coder.decode(Int.self, from: coder.encode(42.0)) == 42)
        #expect(try coder.decode(Float.self, from: coder.encode(0.5)) == 0.5)
        expectDecodingFailed { _ = try coder.decode(Int.self, from: coder.encode(42.5)) }
    }

    @Test func roundTripsFloatBitPatterns() throws {
        let doubles: [Double] = [
            0, -0.0, 1, -1, 0.1, 97.25, .pi, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
            .greatestFiniteMagnitude, Double(bitPattern: 0x7FF4_0000_0000_0001),
        ]
        let floats: [Float] = [0, -0.0, 1.5, .pi, .infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for (d, f) in zip(doubles, floats + floats) {
            let decoded = try roundTrip(Floats(d: d, f: f))
            #expect(decoded.d.bitPattern == d.bitPattern)
            #expect(decoded.f.bitPattern == f.bitPattern)
        }
    }

    @Test func roundTripsOptionalsIncludingNestedAndTopLevelNil() throws {
        let values = [
            Optionals(plain: nil, double: nil, triple: nil, list: [], map: [:], nestedList: []),
            Optionals(
                plain: 1, double: .some(nil), triple: .some(.some(nil)), list: [nil, 2, nil],
                map: ["a": nil, "b": 3], nestedList: [nil, [nil, "x"], []]
            ),
            Optionals(
                plain: 0, double: .some(.some(5)), triple: .some(nil), list: [nil], map: ["": nil],
                nestedList: [[nil]]
            ),
        ]
        for coder in coders {
            for value in values {
                #expect(try roundTrip(value, coder) == value)
            }
            #expect(try roundTrip(Optional<User>.none, coder) == nil)
            #expect(try roundTrip(Optional(User.sample), coder) == User.sample)
            #expect(try roundTrip(Optional<Int>.none, coder) == nil)
            let someNil: Int?? = .some(nil)
            #expect(try roundTrip(someNil, coder) == .some(nil))
            let noneOfTwo: Int?? = nil
            #expect(try roundTrip(noneOfTwo, coder) == nil)
            let deep: String???? = .some(.some(.some(nil)))
            #expect(try roundTrip(deep, coder) == deep)
        }
        // A cached nil is not the bytes of a missing value: it decodes, and as nil.
        let bytes = try BinaryCoder().encode(Optional<User>.none)
        #expect(bytes == [1, 0xD0])
        #expect(try BinaryCoder().decode(User?.self, from: bytes) == nil)
    }

    @Test func optionalAndNonOptionalAreInterchangeableWhenPresent() throws {
        let coder = BinaryCoder()
        #expect(try coder.decode(Int.self, from: coder.encode(Optional(5))) == 5)
        #expect(try coder.decode(Int?.self, from: coder.encode(5)) == 5)
        expectDecodingFailed { _ = try coder.decode(Int.self, from: coder.encode(Optional<Int>.none)) }
    }

    @Test func roundTripsEnumsWithAssociatedValues() throws {
        let shapes: [Shape] = [
            .circle(radius: 2), .rectangle(width: 1, height: 0.5), .labelled(3, "three"), .point,
            .nested(inner: [.point, .nested(inner: [], note: nil)], note: nil),
        ]
        for coder in coders {
            #expect(try roundTrip(shapes, coder) == shapes)
            #expect(try roundTrip(Color.allCases, coder) == Color.allCases)
        }
    }

    @Test func roundTripsDictionariesWithStringIntAndEnumKeys() throws {
        let strings = ["b": 2, "a": 1, "": 0, "7": 7, "007": 8, "-3": 9, "ü": 10]
        let ints = [Int.min: "min", -1: "minus one", 0: "zero", 10_000: "big", Int.max: "max"]
        let days: [Weekday: Int] = [.tuesday: 2, .monday: 1]
        let nested: [String: [String: [Int]]] = ["x": ["y": [1, 2]], "z": [:]]
        for coder in coders {
            #expect(try roundTrip(strings, coder) == strings)
            #expect(try roundTrip(ints, coder) == ints)
            #expect(try roundTrip(days, coder) == days)
            #expect(try roundTrip(nested, coder) == nested)
            #expect(try roundTrip([Color.red: 1.5], coder) == [Color.red: 1.5])  // unkeyed key/value pairs
        }
    }

    @Test func roundTripsNestedArraysAndBlobs() throws {
        let matrix: [[[Int]]] = [[[1], [2, 3]], [], [[]]]
        let blobs: [[UInt8]] = [[], [0], Array(0...255), Array(repeating: 0, count: 1000)]
        let data = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        for coder in coders {
            #expect(try roundTrip(matrix, coder) == matrix)
            #expect(try roundTrip(blobs, coder) == blobs)
            #expect(try roundTrip(data, coder) == data)
            #expect(try roundTrip(ContiguousArray<UInt8>([1, 2, 3]), coder) == [1, 2, 3])
        }
        // Bytes are a blob, not an array of varints: 1 tag + 2 length bytes + the bytes.
        #expect(try BinaryCoder().encode(Array(repeating: UInt8(200), count: 1000)).count == 1 + 1 + 2 + 1000)
    }

    @Test func blobsDecodeAsArraysOfIntegersAndBack() throws {
        let coder = BinaryCoder()
        #expect(try coder.decode([Int].self, from: coder.encode([UInt8]([1, 2, 250]))) == [1, 2, 250])
        #expect(try coder.decode([UInt8].self, from: coder.encode([1, 2, 250])) == [1, 2, 250])
        #expect(try coder.decode(Data.self, from: coder.encode([7, 8])) == Data([7, 8]))
        expectDecodingFailed { _ = try coder.decode([UInt8].self, from: coder.encode([1, 256])) }
    }

    @Test func uuidIsCompactAndReadableAsString() throws {
        let coder = BinaryCoder()
        let id = Order.sample.id
        #expect(try coder.encode(id).count == 1 + 17)
        #expect(try coder.decode(String.self, from: coder.encode(id)) == id.uuidString)
        #expect(try coder.decode(UUID.self, from: coder.encode(id.uuidString)) == id)
        expectDecodingFailed { _ = try coder.decode(UUID.self, from: coder.encode("not a uuid")) }
    }

    @Test func roundTripsClassHierarchies() throws {
        for coder in coders {
            let dog = Dog(name: "Rex", breed: "collie", goodBoy: true)
            let decodedDog = try roundTrip(dog, coder)
            #expect(decodedDog == dog)
            #expect(decodedDog.name == "Rex" && decodedDog.legs == 4)
            let unsure = Dog(name: "Max", breed: "pug", goodBoy: nil)
            #expect(try roundTrip(unsure, coder) == unsure)
            let cat = Cat(name: "Tom", indoor: false)
            let decodedCat = try roundTrip(cat, coder)
            #expect(decodedCat == cat)
            #expect(decodedCat.name == "Tom")
        }
    }

    @Test func roundTripsTypesThatDecodeInAnotherOrder() throws {
        let value = Reordered(a: -5, b: "bee", c: [1, 2.5])
        for coder in coders {
            #expect(try roundTrip(value, coder) == value)
        }
    }

    @Test func roundTripsConditionallyWrittenKeys() throws {
        for coder in coders {
            for value in [
                Conditional(title: "t", subtitle: nil, count: 1), Conditional(title: "t", subtitle: "s", count: 2),
            ] {
                #expect(try roundTrip(value, coder) == value)
            }
        }
    }

    @Test func roundTripsDynamicKeysReadWithAllKeys() throws {
        let bag = Bag(values: ["x": 1, "y": 2, "a long key with spaces": 3, "12": 12])
        for coder in coders {
            #expect(try roundTrip(bag, coder) == bag)
        }
    }

    @Test func roundTripsWideStructsPastTheFingerprintLimit() throws {
        var wide = Wide()
        wide.f17 = -17
        wide.s32 = "thirty-two"
        for coder in coders {
            #expect(try roundTrip(wide, coder) == wide)
            #expect(try roundTrip([wide, Wide()], coder) == [wide, Wide()])
        }
    }

    @Test func roundTripsEveryContainerAPI() throws {
        let values = [
            KitchenSink(title: "t", pairs: [[1, 2], [], [3]], maybe: nil, parent: "p", inner: ["a": true, "b": false]),
            KitchenSink(title: "", pairs: [], maybe: 7, parent: "", inner: [:]),
        ]
        for coder in coders {
            #expect(try roundTrip(values, coder) == values)
        }
    }

    @Test func roundTripsManyDistinctKeyNames() throws {
        // More than 240 names, so name ids take the long form.
        let dictionaries = (0..<3).map { copy in
            Dictionary(uniqueKeysWithValues: (0..<600).map { ("key-\($0)", $0 * copy) })
        }
        for coder in coders {
            #expect(try roundTrip(dictionaries, coder) == dictionaries)
        }
        let single = try BinaryCoder().encode(dictionaries[0])
        let triple = try BinaryCoder().encode(dictionaries)
        #expect(triple.count < 2 * single.count, "repeated key names are written once")
    }

    @Test func roundTripsDeepRecursiveValuesWithinMaxDepth() throws {
        let tree = Tree.deep(40)
        #expect(try roundTrip(tree) == tree)
        #expect(throws: CacheError.self) { try BinaryCoder(maxDepth: 20).encode(tree) }
    }

    @Test func arraysOfStructsAreCompact() throws {
        let users = (0..<100).map { User(id: $0, name: "user \($0)", email: "u\($0)@example.com", score: 1, active: true) }
        let binary = try BinaryCoder().encode(users)
        let json = try JSONCoder().encode(users)
        #expect(try BinaryCoder().decode([User].self, from: binary) == users)
        #expect(Double(binary.count) <= 0.5 * Double(json.count), "binary \(binary.count) bytes, JSON \(json.count)")
    }

    // MARK: Size and determinism

    @Test func fiveFieldStructIsAtMostSixtyPercentOfJSON() throws {
        for user in [User.sample, User(id: 1_234_567, name: "B", email: "b@b.io", score: 0.1, active: false)] {
            let binary = try BinaryCoder().encode(user)
            let json = try JSONCoder().encode(user)
            #expect(Double(binary.count) <= 0.6 * Double(json.count), "binary \(binary.count) bytes, JSON \(json.count)")
        }
    }

    @Test func equalValuesGiveEqualBytes() throws {
        let coder = BinaryCoder()
        let first = try coder.encode(Order.sample)
        #expect(try coder.encode(Order.sample) == first)
        // Dictionaries and sets with the same contents but different insertion histories.
        var a: [String: Int] = [:]
        var b: [String: Int] = [:]
        b.reserveCapacity(1000)
        for i in 0..<200 { a["k\(i)"] = i }
        for i in (0..<200).reversed() { b["k\(i)"] = i }
        #expect(try coder.encode(a) == coder.encode(b))
        let s1 = Set((0..<100).map { "s\($0)" })
        var s2 = Set<String>(minimumCapacity: 500)
        for i in (0..<100).reversed() { s2.insert("s\(i)") }
        #expect(try coder.encode(s1) == coder.encode(s2))
        var i1: [Int: String] = [:]
        var i2: [Int: String] = [:]
        i2.reserveCapacity(300)
        for i in 0..<50 { i1[i * 7919 % 1000] = "v" }
        for i in (0..<50).reversed() { i2[i * 7919 % 1000] = "v" }
        #expect(try coder.encode(i1) == coder.encode(i2))
        #expect(try coder.encode(Set([3, 1, 2])) == coder.encode(Set([2, 3, 1])))
    }

    @Test func messageStartsWithTheFormatVersion() throws {
        #expect(BinaryCoder.formatVersion == 1)
        #expect(try BinaryCoder().encode(User.sample).first == 1)
        #expect(BinaryCoder().name == "binary")
    }

    // MARK: Compatibility

    struct UserV1: Codable, Equatable {
        var id: Int
        var name: String
    }

    struct UserV2: Codable, Equatable {
        var id: Int
        var name: String
        var nickname: String?
    }

    struct UserReordered: Codable, Equatable {
        var name: String
        var id: Int
    }

    struct UserWider: Codable, Equatable {
        var id: Int64
        var name: String
    }

    struct UserRenamed: Codable {
        var id: Int
        var fullName: String
    }

    @Test func addingAnOptionalFieldOrReorderingKeepsOldEntriesReadable() throws {
        for coder in coders {
            let old = try coder.encode(UserV1(id: 1, name: "a"))
            #expect(try coder.decode(UserV2.self, from: old) == UserV2(id: 1, name: "a", nickname: nil))
            #expect(try coder.decode(UserReordered.self, from: old) == UserReordered(name: "a", id: 1))
            #expect(try coder.decode(UserWider.self, from: old) == UserWider(id: 1, name: "a"))
        }
    }

    @Test func removingOrRenamingAFieldMakesOldEntriesMiss() throws {
        let coder = BinaryCoder()
        let new = try coder.encode(UserV2(id: 1, name: "a", nickname: "x"))
        expectDecodingFailed { _ = try coder.decode(UserV1.self, from: new) }
        expectDecodingFailed { _ = try coder.decode(UserRenamed.self, from: coder.encode(UserV1(id: 1, name: "a"))) }
        // Named keys tolerate a removed field, as JSON does.
        let named = BinaryCoder(keyEncoding: .named)
        #expect(try named.decode(UserV1.self, from: named.encode(UserV2(id: 1, name: "a", nickname: "x"))) == UserV1(id: 1, name: "a"))
    }

    @Test func anotherTypeWithTheSameShapeIsRejected() throws {
        struct Other: Codable {
            var identifier: Int
            var title: String
            var mail: String
            var rank: Double
            var enabled: Bool
        }
        let bytes = try BinaryCoder().encode(User.sample)
        expectDecodingFailed { _ = try BinaryCoder().decode(Other.self, from: bytes) }
        expectDecodingFailed { _ = try BinaryCoder().decode(Shape.self, from: bytes) }
        expectDecodingFailed { _ = try BinaryCoder().decode([Int].self, from: bytes) }
        expectDecodingFailed { _ = try BinaryCoder().decode(String.self, from: bytes) }
        expectDecodingFailed { _ = try BinaryCoder().decode(Int8.self, from: BinaryCoder().encode(300)) }
        expectDecodingFailed { _ = try BinaryCoder().decode(UInt.self, from: BinaryCoder().encode(-1)) }
    }

    @Test func allKeysOfFingerprintedKeysExplainsTheFix() throws {
        struct Strict: Codable {
            var a: Int
            var b: Int
            enum CodingKeys: String, CodingKey { case a, b }
            init(a: Int, b: Int) {
                self.a = a
                self.b = b
            }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                guard container.allKeys.count == 2 else {
                    throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown keys"))
                }
                a = try container.decode(Int.self, forKey: .a)
                b = try container.decode(Int.self, forKey: .b)
            }
        }
        do {
            _ = try roundTrip(Strict(a: 1, b: 2))
            Issue.record("expected a decoding failure")
        } catch let error as CacheError {
            #expect(error.code == .decodingFailed)
            #expect(error.message.contains("keyEncoding: .named"), "\(error.message)")
        }
        #expect(try roundTrip(Strict(a: 1, b: 2), BinaryCoder(keyEncoding: .named)).b == 2)
    }

    // MARK: Encoding errors

    @Test func reportsEncodingMisuseAsEncodingFailed() throws {
        struct Interleaved: Encodable {
            enum CodingKeys: String, CodingKey { case a, b }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                var first = container.nestedUnkeyedContainer(forKey: .a)
                var second = container.nestedUnkeyedContainer(forKey: .b)
                try second.encode(1)
                try first.encode(2)
            }
        }
        struct Duplicate: Encodable {
            enum CodingKeys: String, CodingKey { case a }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(1, forKey: .a)
                try container.encode(2, forKey: .a)
            }
        }
        struct Throwing: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(1, .init(codingPath: [], debugDescription: "nope"))
            }
        }
        final class Node: Encodable {
            var next: Node?
        }
        let cycle = Node()
        cycle.next = cycle
        for value in [Interleaved() as any Encodable, Duplicate(), Throwing(), cycle] {
            do {
                _ = try BinaryCoder().encode(value)
                Issue.record("expected an encoding failure for \(value)")
            } catch let error as CacheError {
                #expect(error.code == .encodingFailed, "\(error)")
            }
        }
    }
}
