import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@testable import CacheBench

@Suite struct ReportTests {
    private func sampleReport() -> RunReport {
        func row(_ target: String, _ kind: TargetKind, _ keys: UInt64, referenceFor: String? = nil) -> BenchResult {
            BenchResult(
                target: target, kind: kind, referenceFor: referenceFor, calls: keys, keys: keys, seconds: 1,
                latency: LatencySummary(p50: 15_000, p90: 20_000, p99: 40_000, p999: 90_000, max: 200_000, mean: 16_000),
                hits: keys, misses: 0, errors: kind == .swift ? 2 : 0, firstError: kind == .swift ? "timeout <&>" : nil, concurrency: 1
            )
        }
        let spec = WorkloadPreset.get.spec(defaultStop: .duration(.seconds(2)))
        let workload = WorkloadResult(spec: spec, rows: [row("redis", .swift, 15_000), row("C hiredis", .reference, 20_000, referenceFor: "redis")])
        return RunReport(
            command: "cache-bench --reference", date: "2026-01-01T00:00:00Z",
            machine: MachineInfo(cpus: 2, cpuModel: "Test CPU", kernel: nil, loadAverageAtStart: "0.1 0.1 0.1"),
            placement: PlacementInfo(pin: "split", toolAllowedCPUs: "0", toolRanOn: "cpu0 100%", servers: []),
            backends: [BackendInfo(name: "redis", detail: "redis://127.0.0.1:1")],
            workloads: [workload], goals: Goals.check([workload]), notes: []
        )
    }

    @Test func ratiosToFastestAndToTheCLimit() throws {
        let rows = sampleReport().workloads[0].rows
        #expect(rows[0].ratioToFastest == 0.75 && rows[1].ratioToFastest == 1)
        #expect(rows[0].ratioToReference == 0.75)
        let goal = try #require(sampleReport().goals.first)
        #expect(goal.backend == "redis" && goal.met == false && goal.target == 0.9)
    }

    @Test func anExecutorRowIsComparedWithItsBackendsCLimit() {
        func row(_ target: String, _ kind: TargetKind, _ keys: UInt64, referenceFor: String? = nil) -> BenchResult {
            BenchResult(
                target: target, kind: kind, referenceFor: referenceFor, calls: keys, keys: keys, seconds: 1,
                latency: LatencySummary(p50: 15_000, p90: 20_000, p99: 40_000, p999: 90_000, max: 200_000, mean: 16_000),
                hits: keys, misses: 0, errors: 0, firstError: nil, concurrency: 1
            )
        }
        let spec = WorkloadPreset.get.spec(defaultStop: .duration(.seconds(2)))
        let workload = WorkloadResult(spec: spec, rows: [
            row("memcached", .swift, 18_000), row("memcached-executor", .swift, 40_000),
            row("C libmemcached", .reference, 20_000, referenceFor: "memcached"),
        ])
        #expect(workload.rows[0].ratioToReference == 0.9)
        #expect(workload.rows[1].ratioToReference == 2)
    }

    @Test func everyFormatRenders() throws {
        let report = sampleReport()
        let table = try ReportRenderer.render(report, format: .table)
        #expect(table.contains("C limit") && table.contains("0.75") && table.contains("15.0µs"))
        let markdown = try ReportRenderer.render(report, format: .markdown)
        #expect(markdown.contains("| redis | 15,000 |"))
        let csv = try ReportRenderer.render(report, format: .csv)
        #expect(csv.split(separator: "\n").count == 3)
        let json = try ReportRenderer.render(report, format: .json)
        let decoded = try JSONDecoder().decode(RunReport.self, from: Data(json.utf8))
        #expect(decoded.workloads[0].rows.count == 2)
    }

    @Test func chartIsWellFormedSVG() throws {
        let svg = SVGChart.render(sampleReport())
        #expect(svg.hasPrefix("<?xml"))
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "the SVG does not parse: \(parser.parserError.map { "\($0)" } ?? "")")
        #expect(svg.contains("C hiredis"))
    }

    @Test func unitsReadWell() {
        #expect(Units.latency(nanoseconds: 850) == "850ns")
        #expect(Units.latency(nanoseconds: 12_345) == "12.3µs")
        #expect(Units.latency(nanoseconds: 1_200_000) == "1.20ms")
        #expect(Units.grouped(1_234_567) == "1,234,567")
        #expect(Units.compact(2_500_000) == "2.50M")
        #expect(Units.fixed(0.125, 2) == "0.13" || Units.fixed(0.125, 2) == "0.12")
    }
}
