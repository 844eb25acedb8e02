/// One operation kind, with the codes the C reference uses (`CREF_OP_*`).
enum OperationKind: UInt8, Sendable {
    case get = 0
    case set = 1
    case delete = 2
}

/// Draws operation kinds and keys for a workload. Shared by the Swift runner and the C
/// reference, so both see the same mix and distribution.
struct OperationPlan: Sendable {
    let spec: WorkloadSpec
    private let zipf: ZipfSampler?
    /// Zipf rank → key index, a fixed random permutation so that hot keys are spread over the
    /// key space (and over memcached servers and B-tree pages) as in real traffic.
    private let rankToKey: [UInt32]
    private let getBelow: Int
    private let setBelow: Int

    init(spec: WorkloadSpec, seed: UInt64) {
        self.spec = spec
        getBelow = spec.mix.get
        setBelow = spec.mix.get + spec.mix.set
        switch spec.distribution {
        case .uniform:
            zipf = nil
            rankToKey = []
        case .zipf(let s):
            zipf = ZipfSampler(n: spec.keyCount, exponent: s)
            var permutation = (0..<UInt32(spec.keyCount)).map { $0 }
            var rng = Xoshiro256(seed: seed ^ 0x5A5A_5A5A)
            permutation.shuffle(using: &rng)
            rankToKey = permutation
        }
    }

    @inline(__always)
    func nextKey(_ rng: inout Xoshiro256) -> Int {
        if let zipf {
            return Int(rankToKey[zipf.sample(&rng) - 1])
        }
        return rng.next(below: spec.keyCount)
    }

    @inline(__always)
    func nextOperation(_ rng: inout Xoshiro256) -> OperationKind {
        if setBelow == getBelow && spec.mix.delete == 0 { return .get }
        let r = rng.next(below: spec.mix.total)
        return r < getBelow ? .get : (r < setBelow ? .set : .delete)
    }

    @inline(__always)
    func nextValueSize(_ rng: inout Xoshiro256) -> Int {
        let size = spec.valueSize
        return size.min == size.max ? size.min : size.min + rng.next(below: size.max - size.min + 1)
    }
}

/// The value type that the `binary` and `json` coders store: a small record of five fields,
/// the shape of a typical cached row. `payload` is sized so that the encoded value has about
/// the requested size.
struct BenchRecord: Codable, Sendable, Equatable {
    var id: Int64
    var name: String
    var score: Double
    var active: Bool
    var payload: String

    /// A record whose encoding by `encode` is about `size` bytes.
    static func sized(_ size: Int, id: Int64, encode: (BenchRecord) throws -> [UInt8]) rethrows -> BenchRecord {
        var record = BenchRecord(id: id, name: "user-\(id)", score: 4.25, active: true, payload: "")
        let overhead = try encode(record).count
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        let count = Swift.max(0, size - overhead)
        record.payload = String(decoding: (0..<count).map { letters[$0 % letters.count] }, as: UTF8.self)
        return record
    }
}

/// The values that sets write: a few variants of the requested sizes, built once.
enum ValueVariants {
    static let count = 64

    /// Sizes for the variants, drawn from the spec's size range.
    static func sizes(for spec: WorkloadSpec, seed: UInt64) -> [Int] {
        if spec.valueSize.min == spec.valueSize.max { return [spec.valueSize.min] }
        var rng = Xoshiro256(seed: seed ^ 0xA11C_E5)
        let plan = OperationPlan(spec: WorkloadSpec(
            name: "", mix: spec.mix, keyCount: 1, distribution: .uniform, valueSize: spec.valueSize,
            ttl: nil, concurrency: 1, stop: spec.stop, batch: 1, coder: .raw), seed: seed)
        return (0..<count).map { _ in plan.nextValueSize(&rng) }
    }

    /// Raw byte values of the given sizes.
    static func bytes(sizes: [Int]) -> [[UInt8]] {
        sizes.enumerated().map { index, size in
            (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ index &+ 7) }
        }
    }
}
