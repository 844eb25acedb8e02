// Profiling harness for the Redis batch get (not a target of Package.swift, so not built by default;
// Docs/RedisBackend.md says how to build and run it): a C MGET loop, RedisBackend.get(keys) and
// CacheFront.get(keys) alternately in one process, with keys/s and client CPU time per batch.
// Usage: RedisBatchHarness PORT ROUNDS SECONDS MODES (modes: c,backend,front,proposed,prebuilt,cget,get,conc).
import CHiredis
import Caching
import CachingRedis
import Foundation

let args = CommandLine.arguments
let port = Int32(args.count > 1 ? Int(args[1])! : 6379)
let rounds = args.count > 2 ? Int(args[2])! : 5
let seconds = args.count > 3 ? Double(args[3])! : 1.0
let only = args.count > 4 ? args[4] : "c,backend,front"
let keyCount = 10_000
let batch = 100
let prefix = "cache-bench-1763730000:batch-get:"
let value = [UInt8](repeating: 0x61, count: 100)

struct Rng { var s: UInt64; mutating func next() -> UInt64 { s &+= 0x9E3779B97F4A7C15; var z = s; z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB; return z ^ (z >> 31) } }

func now() -> UInt64 { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec) }

final class CLoop: @unchecked Sendable {
    let c: UnsafeMutablePointer<redisContext>
    let keys: [[CChar]]
    init(port: Int32) {
        c = redisConnect("127.0.0.1", port)!
        keys = (0..<keyCount).map { Array("\(prefix)k\($0)".utf8CString.dropLast()) }
    }
    func run(seconds: Double) -> Double {
        var rng = Rng(s: 42)
        var argv = [UnsafePointer<CChar>?](repeating: nil, count: batch + 1)
        var lens = [Int](repeating: 0, count: batch + 1)
        let mget: StaticString = "MGET"
        argv[0] = UnsafeRawPointer(mget.utf8Start).assumingMemoryBound(to: CChar.self); lens[0] = 4
        var n = 0; var hits = 0
        let start = now(); let end = start + UInt64(seconds * 1e9)
        var keyPtrs: [UnsafeMutablePointer<CChar>] = keys.map { k in let p = UnsafeMutablePointer<CChar>.allocate(capacity: k.count); p.initialize(from: k, count: k.count); return p }
        defer { for p in keyPtrs { p.deallocate() }; keyPtrs = [] }
        while now() < end {
            for k in 0..<batch { let i = Int(rng.next() % UInt64(keyCount)); argv[k + 1] = UnsafePointer(keyPtrs[i]); lens[k + 1] = keys[i].count }
            let r = redisCommandArgv(c, Int32(batch + 1), &argv, &lens)!.assumingMemoryBound(to: redisReply.self)
            for k in 0..<r.pointee.elements where r.pointee.element[k]!.pointee.type == REDIS_REPLY_STRING { hits += 1 }
            freeReplyObject(r)
            n += 1
        }
        precondition(hits == n * batch, "C misses")
        return Double(n * batch) / (Double(now() - start) / 1e9)
    }
}

extension CLoop {
    func runGet(seconds: Double) -> Double {
        var rng = Rng(s: 42)
        var n = 0
        let start = now(); let end = start + UInt64(seconds * 1e9)
        let get: StaticString = "GET"
        var argv: [UnsafePointer<CChar>?] = [UnsafeRawPointer(get.utf8Start).assumingMemoryBound(to: CChar.self), nil]
        var lens = [3, 0]
        while now() < end {
            let i = Int(rng.next() % UInt64(keyCount))
            keys[i].withUnsafeBufferPointer { k in
                argv[1] = k.baseAddress; lens[1] = k.count
                let r = redisCommandArgv(c, 2, &argv, &lens)!.assumingMemoryBound(to: redisReply.self)
                precondition(r.pointee.type == REDIS_REPLY_STRING)
                freeReplyObject(r)
            }
            n += 1
        }
        return Double(n) * Double(batch) / (Double(now() - start) / 1e9)  // scaled like batches: ratio only
    }
}
func runCGet(_ loop: CLoop, seconds: Double) async -> Double {
    await withCheckedContinuation { cont in
        Thread { cont.resume(returning: loop.runGet(seconds: seconds)) }.start()
    }
}
func runBackendGet(_ backend: RedisBackend, keys: [String], seconds: Double) async throws -> Double {
    var rng = Rng(s: 42)
    var n = 0
    let start = now(); let end = start + UInt64(seconds * 1e9)
    while now() < end {
        let i = Int(rng.next() % UInt64(keyCount))
        let found = try await backend.get(keys[i])
        precondition(found != nil)
        n += 1
    }
    return Double(n) * Double(batch) / (Double(now() - start) / 1e9)
}

func runConcurrent(_ backend: RedisBackend, keys: [String], seconds: Double) async throws -> Double {
    let start = now(); let end = start + UInt64(seconds * 1e9)
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for t in 0..<64 {
            group.addTask {
                var rng = Rng(s: UInt64(t))
                var n = 0
                while now() < end {
                    let found = try await backend.get(keys[Int(rng.next() % UInt64(keyCount))])
                    precondition(found != nil)
                    n += 1
                }
                return n
            }
        }
        return try await group.reduce(0, +)
    }
    return Double(total) * Double(batch) / (Double(now() - start) / 1e9)
}

func runC(_ loop: CLoop, seconds: Double) async -> Double {
    await withCheckedContinuation { cont in
        Thread { cont.resume(returning: loop.run(seconds: seconds)) }.start()
    }
}

func runBackend(_ backend: RedisBackend, keys: [String], seconds: Double) async throws -> Double {
    var rng = Rng(s: 42)
    var idx = [Int](repeating: 0, count: batch)
    var n = 0
    let start = now(); let end = start + UInt64(seconds * 1e9)
    while now() < end {
        for k in 0..<batch { idx[k] = Int(rng.next() % UInt64(keyCount)) }
        let found = try await backend.get(idx.map { keys[$0] })
        var hits = 0
        for e in found where e != nil { hits += 1 }
        precondition(hits == batch)
        n += 1
    }
    return Double(n * batch) / (Double(now() - start) / 1e9)
}

func runFront(_ front: CacheFront, keys: [String], seconds: Double) async throws -> Double {
    var rng = Rng(s: 42)
    var idx = [Int](repeating: 0, count: batch)
    var n = 0
    let start = now(); let end = start + UInt64(seconds * 1e9)
    while now() < end {
        for k in 0..<batch { idx[k] = Int(rng.next() % UInt64(keyCount)) }
        let found = try await front.get(idx.map { keys[$0] }, as: [UInt8].self)
        var hits = 0
        for e in found where e != nil { hits += 1 }
        precondition(hits == batch)
        n += 1
    }
    return Double(n * batch) / (Double(now() - start) / 1e9)
}

import Metrics
/// The proposed CacheFront.get(_ keys:as:) (inlinable, decode without an await per key, one metrics update per batch), outside the core.
let protoHits = Counter(label: "proto.hits")
let protoMisses = Counter(label: "proto.misses")
// nonisolated(unsafe): set by the main loop between runs, read by the one task that runs a mode.
nonisolated(unsafe) var skipStorageKeys = false
func proposedGet<T: Decodable & Sendable>(_ front: CacheFront, _ backend: any CacheBackend, _ keys: [String], as: T.Type) async throws -> [T?] {
    var storageKeys: [String] = []
    storageKeys.reserveCapacity(keys.count)
    if skipStorageKeys { storageKeys = keys } else {
    for key in keys { storageKeys.append(try front.storageKey(key)) }
    }
    let entries = try await backend.get(storageKeys)
    var result: [T?] = []
    result.reserveCapacity(entries.count)
    var hits = 0
    var misses = 0
    for entry in entries {
        guard let entry else { misses += 1; result.append(nil); continue }
        if T.self == [UInt8].self, let raw = entry.value as? T { result.append(raw); hits += 1; continue }
        result.append(nil)
    }
    if hits > 0 { protoHits.increment(by: hits) }
    if misses > 0 { protoMisses.increment(by: misses) }
    return result
}
func runProposed(_ front: CacheFront, _ backend: any CacheBackend, keys: [String], seconds: Double) async throws -> Double {
    var rng = Rng(s: 42)
    var idx = [Int](repeating: 0, count: batch)
    var n = 0
    let start = now(); let end = start + UInt64(seconds * 1e9)
    while now() < end {
        for k in 0..<batch { idx[k] = Int(rng.next() % UInt64(keyCount)) }
        let found = try await proposedGet(front, backend, idx.map { keys[$0] }, as: [UInt8].self)
        var hits = 0
        for e in found where e != nil { hits += 1 }
        precondition(hits == batch)
        n += 1
    }
    return Double(n * batch) / (Double(now() - start) / 1e9)
}

let backend = try RedisBackend(url: "redis://127.0.0.1:\(port)")
let front = CacheFront(backend: backend, prefix: "cache-bench-1763730000", defaultTTL: nil).namespace("batch-get")
let fullKeys = (0..<keyCount).map { "\(prefix)k\($0)" }
let shortKeys = (0..<keyCount).map { "k\($0)" }
var start = 0
while start < keyCount {
    let end = min(keyCount, start + 100)
    try await backend.set((start..<end).map { (key: fullKeys[$0], value: value) }, ttl: .seconds(600))
    start = end
}
let cloop = CLoop(port: port)
var results: [String: [Double]] = [:]
var cpu: [String: [Double]] = [:]
var sysShare: [String: [Double]] = [:]
func processCPU() -> Double { var u = rusage(); getrusage(Int32(RUSAGE_SELF.rawValue), &u); return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) }
func sysCPU() -> Double { var u = rusage(); getrusage(Int32(RUSAGE_SELF.rawValue), &u); return Double(u.ru_stime.tv_sec) * 1e6 + Double(u.ru_stime.tv_usec) }
func switches() -> Double { var u = rusage(); getrusage(Int32(RUSAGE_SELF.rawValue), &u); return Double(u.ru_nvcsw + u.ru_nivcsw) }
let which = only.split(separator: ",").map(String.init)
for _ in 0..<rounds {
    for w in which {
        let r: Double
        let cpu0 = processCPU()
        let sys0 = sysCPU()
        let cs0 = switches()
        switch w {
        case "c": r = await runC(cloop, seconds: seconds)
        case "backend": r = try await runBackend(backend, keys: fullKeys, seconds: seconds)
        case "cget": r = await runCGet(cloop, seconds: seconds)
        case "conc": r = try await runConcurrent(backend, keys: fullKeys, seconds: seconds)
        case "get": r = try await runBackendGet(backend, keys: fullKeys, seconds: seconds)
        case "proposed": skipStorageKeys = false; r = try await runProposed(front, backend, keys: shortKeys, seconds: seconds)
        case "prebuilt": skipStorageKeys = true; r = try await runProposed(front, backend, keys: fullKeys, seconds: seconds)
        default: r = try await runFront(front, keys: shortKeys, seconds: seconds)
        }
        results[w, default: []].append(r)
        let batches = r * seconds / Double(batch)
        cpu[w, default: []].append((processCPU() - cpu0) / batches)
        sysShare[w, default: []].append((sysCPU() - sys0) / batches)
        sysShare[w + "cs", default: []].append((switches() - cs0) / batches)
    }
}
func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
let c = results["c"].map(median) ?? results["cget"].map(median)
for w in which {
    let m = median(results[w]!)
    print(String(format: "%-8@ %10.0f keys/s  %6.2f us/batch  %@  client CPU %5.1f us/batch (sys %5.1f)  %4.2f switches/batch", w as NSString, m, 1e6 / m * Double(batch), c.map { String(format: "ratio %.3f", m / $0) } ?? "", median(cpu[w]!), median(sysShare[w]!), median(sysShare[w + "cs"]!)))
}
try await backend.close()
