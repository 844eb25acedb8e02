import ArgumentParser
import Caching
import CachingTesting
import Foundation

/// `cache-bench eviction`: replays Zipf and scan traces through `InMemoryBackend` and an exact
/// LRU of the same capacity, and prints both hit ratios.
struct EvictionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eviction",
        abstract: "Compare InMemoryBackend's eviction (S3-FIFO) with an exact LRU of the same capacity.",
        discussion: "Each request is a get, followed by a set on a miss (cache-aside). Traces: Zipf(0.8), Zipf(1.0), and Zipf(1.0) with a sequential scan of never-repeated keys every --scan-every requests."
    )

    @Option(help: "Distinct keys in the Zipf part of the traces.")
    var keys: Int = 100_000

    @Option(help: "Cache capacity in entries (both caches).")
    var capacity: Int = 10_000

    @Option(help: "Zipf requests per trace (scans come on top).")
    var requests: Int = 1_000_000

    @Option(help: "Zipf requests between two scans in the scan trace.")
    var scanEvery: Int = 100_000

    @Option(help: "Keys per scan (default: twice the capacity, enough to flush an LRU).")
    var scanLength: Int?

    @Option(help: "Shards of the InMemoryBackend (a power of two; default: its default, fewer for small capacities).")
    var shards: Int?

    @Option(help: "Seed of the traces.")
    var seed: UInt64 = 1

    @Option(help: "Output format: table, json, csv or markdown.")
    var format: OutputFormat = .table

    func run() async throws {
        let scan = try BenchError.usage { try validated() }
        try await simulate(scanLength: scan)
    }

    /// Checks the options; returns the scan length.
    private func validated() throws -> Int {
        guard keys >= 1, keys <= 50_000_000 else { throw BenchError("--keys must be between 1 and 50,000,000 (got \(keys))") }
        guard capacity >= 1, capacity <= 10_000_000 else { throw BenchError("--capacity must be between 1 and 10,000,000 (got \(capacity))") }
        guard requests >= 1, requests <= 100_000_000 else { throw BenchError("--requests must be between 1 and 100,000,000 (got \(requests))") }
        guard scanEvery >= 1 else { throw BenchError("--scan-every must be at least 1 (got \(scanEvery))") }
        let scan = scanLength ?? capacity * 2
        guard scan >= 0, scan <= 10_000_000 else { throw BenchError("--scan-length must be between 0 and 10,000,000 (got \(scan))") }
        if let shards, shards < 1 || shards > 4096 || shards & (shards - 1) != 0 {
            throw BenchError("--shards must be a power of two between 1 and 4096 (got \(shards))")
        }
        return scan
    }

    private func simulate(scanLength scan: Int) async throws {
        Cleanup.shared.installSignalHandlers()
        let progress = ProgressLine(enabled: true)
        defer { progress.stop() }

        let traces: [(String, () -> EvictionTrace)] = [
            ("zipf(0.8)", { EvictionTrace.zipf(keys: keys, exponent: 0.8, requests: requests, seed: seed) }),
            ("zipf(1.0)", { EvictionTrace.zipf(keys: keys, exponent: 1.0, requests: requests, seed: seed &+ 1) }),
            ("zipf(1.0)+scan", {
                EvictionTrace.zipfWithScans(keys: keys, exponent: 1.0, requests: requests, scanEvery: scanEvery, scanLength: scan, seed: seed &+ 2)
            }),
        ]
        var rows: [EvictionRow] = []
        var shardsUsed = 0
        for (name, make) in traces {
            progress.show("eviction: building \(name)")
            let trace = make()
            let backend = try InMemoryBackend(maxEntries: capacity, maxBytes: 1 << 30, shardCount: shards ?? InMemoryBackend.defaultShardCount)
            shardsUsed = backend.shardCount
            progress.show("eviction: replaying \(trace.requests.count) requests of \(trace.name)")
            let start = nowNanos()
            let result = try await EvictionSimulation.replay(trace: trace, into: backend, valueSize: 8)
            let seconds = Double(nowNanos() - start) / 1e9
            try await backend.close()
            rows.append(EvictionRow(
                trace: trace.name, requests: result.requests, capacity: capacity, keys: keys,
                backendHitRatio: result.backendHitRatio, lruHitRatio: result.lruHitRatio, seconds: seconds
            ))
        }
        progress.stop()
        let report = EvictionReport(machine: .current(), policy: "InMemoryBackend (S3-FIFO, \(shardsUsed) shard\(shardsUsed == 1 ? "" : "s"))", rows: rows)
        Terminal.write(try report.render(format: format))
    }
}

/// One trace's hit ratios.
struct EvictionRow: Codable, Sendable {
    var trace: String
    var requests: Int
    var capacity: Int
    var keys: Int
    var backendHitRatio: Double
    var lruHitRatio: Double
    var seconds: Double
    /// Percentage points the backend gains over the exact LRU.
    var differencePoints: Double { (backendHitRatio - lruHitRatio) * 100 }
}

struct EvictionReport: Codable, Sendable {
    var tool = "cache-bench eviction"
    var machine: MachineInfo
    var policy: String
    var rows: [EvictionRow]

    func render(format: OutputFormat) throws -> String {
        func pct(_ x: Double) -> String { Units.fixed(x * 100, 2) + "%" }
        func diff(_ r: EvictionRow) -> String { (r.differencePoints >= 0 ? "+" : "") + Units.fixed(r.differencePoints, 2) + " pp" }
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        case .csv:
            var out = ["trace,requests,keys,capacity,backend_hit_ratio,lru_hit_ratio,difference_pp"]
            for r in rows {
                out.append("\"\(r.trace)\",\(r.requests),\(r.keys),\(r.capacity),\(Units.fixed(r.backendHitRatio, 5)),\(Units.fixed(r.lruHitRatio, 5)),\(Units.fixed(r.differencePoints, 3))")
            }
            return out.joined(separator: "\n")
        case .markdown:
            var out = ["| trace | requests | capacity | InMemoryBackend | exact LRU | difference |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for r in rows {
                out.append("| \(r.trace) | \(Units.grouped(Double(r.requests))) | \(Units.grouped(Double(r.capacity))) | \(pct(r.backendHitRatio)) | \(pct(r.lruHitRatio)) | \(diff(r)) |")
            }
            return out.joined(separator: "\n")
        case .table:
            let header = ["trace", "requests", "capacity", "InMemoryBackend", "exact LRU", "difference", ""]
            var table = [header]
            for r in rows {
                table.append([r.trace, Units.grouped(Double(r.requests)), Units.grouped(Double(r.capacity)), pct(r.backendHitRatio),
                              pct(r.lruHitRatio), diff(r), r.backendHitRatio > r.lruHitRatio ? "better" : "NOT better"])
            }
            var widths = header.map(\.count)
            for row in table { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
            var out = ["eviction: \(policy) vs an exact LRU of the same capacity; get, then set on a miss", ""]
            for (index, row) in table.enumerated() {
                let cells = row.enumerated().map { i, cell in
                    i == 0 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[i] - cell.count) + cell
                }
                out.append(cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
                if index == 0 { out.append(String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))) }
            }
            if let worst = rows.min(by: { $0.differencePoints < $1.differencePoints }) {
                out.append("")
                out.append(worst.differencePoints > 0
                    ? "InMemoryBackend beats the exact LRU on every trace (smallest gain \(diff(worst)) on \(worst.trace))."
                    : "InMemoryBackend does NOT beat the exact LRU on \(worst.trace) (\(diff(worst))).")
            }
            return out.joined(separator: "\n")
        }
    }
}
