import Foundation

/// The output formats of `--format`.
enum OutputFormat: String, CaseIterable, Sendable {
    case table
    case json
    case csv
    case markdown
}

/// Turns a ``RunReport`` into text.
enum ReportRenderer {
    // MARK: Tables

    private struct Column {
        var title: String
        var leftAligned = false
    }

    private static func cells(for row: BenchResult, batch: Int) -> [String] {
        let empty = row.calls == 0
        func latency(_ value: Double) -> String { empty ? "—" : Units.latency(nanoseconds: value) }
        let vsC: String
        switch row.kind {
        case .reference: vsC = "C limit"
        case .external: vsC = ""
        case .swift: vsC = row.ratioToReference.map { Units.fixed($0, 2) } ?? "—"
        }
        return [
            row.target,
            Units.grouped(row.opsPerSecond),
            row.ratioToFastest.map { Units.fixed($0, 2) } ?? "—",
            latency(row.latency.p50),
            latency(row.latency.p99),
            latency(row.latency.p999),
            row.hitRatio.map { Units.fixed($0 * 100, 1) + "%" } ?? "—",
            Units.grouped(Double(row.errors)),
            vsC,
        ]
    }

    private static func columns(batch: Int) -> [Column] {
        [
            Column(title: "backend", leftAligned: true),
            Column(title: batch > 1 ? "keys/s" : "ops/s"),
            Column(title: "×fastest"),
            Column(title: batch > 1 ? "p50/call" : "p50"),
            Column(title: "p99"),
            Column(title: "p99.9"),
            Column(title: "hits"),
            Column(title: "errors"),
            Column(title: "vs C"),
        ]
    }

    /// The heading line of a workload.
    static func heading(_ workload: WorkloadResult) -> String {
        "\(workload.name): \(workload.summary)"
    }

    /// Columns and cells of a workload, without the "vs C" column when there is no reference row.
    private static func grid(_ workload: WorkloadResult) -> (columns: [Column], rows: [[String]]) {
        var cols = columns(batch: workload.batch)
        var rows = workload.rows.map { cells(for: $0, batch: workload.batch) }
        if !workload.rows.contains(where: { $0.kind == .reference }) {
            cols.removeLast()
            rows = rows.map { Array($0.dropLast()) }
        }
        return (cols, rows)
    }

    /// An aligned text table for one workload, with notes on errors below it.
    static func table(_ workload: WorkloadResult) -> String {
        let (cols, rows) = grid(workload)
        var widths = cols.map { $0.title.count }
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ values: [String]) -> String {
            var parts: [String] = []
            for (i, value) in values.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - value.count)
                parts.append(cols[i].leftAligned ? value + pad : pad + value)
            }
            return parts.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = ["== " + heading(workload)]
        out.append(line(cols.map(\.title)))
        out.append(String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1)))
        out.append(contentsOf: rows.map(line))
        out.append(contentsOf: rowNotes(workload).map { "  " + $0 })
        return out.joined(separator: "\n")
    }

    /// Notes under a table: first errors, and how external rows were made.
    static func rowNotes(_ workload: WorkloadResult) -> [String] {
        var notes: [String] = []
        for row in workload.rows {
            if row.errors > 0, let error = row.firstError {
                notes.append("\(row.target): \(row.errors) errors; first: \(error)")
            }
            if let note = row.note, row.kind == .external { notes.append("\(row.target): \(note)") }
        }
        return notes
    }

    /// A Markdown table for one workload.
    static func markdown(_ workload: WorkloadResult) -> String {
        let (cols, rows) = grid(workload)
        var out = ["### \(workload.name)", "", workload.summary, ""]
        out.append("| " + cols.map(\.title).joined(separator: " | ") + " |")
        out.append("|" + cols.map { $0.leftAligned ? " --- |" : " ---: |" }.joined())
        for row in rows {
            out.append("| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        let notes = rowNotes(workload)
        if !notes.isEmpty {
            out.append("")
            out.append(contentsOf: notes.map { "- " + $0 })
        }
        return out.joined(separator: "\n")
    }

    /// Lines that describe the machine, the placement and the backends.
    static func preamble(_ report: RunReport) -> [String] {
        var lines: [String] = []
        let m = report.machine
        lines.append("machine: \(m.cpus) CPUs\(m.cpuModel.map { " (\($0))" } ?? ""), load \(m.loadAverageAtStart ?? "?") at start")
        lines.append(placementLine(report.placement))
        for backend in report.backends {
            lines.append("\(backend.name): \(backend.detail)")
        }
        return lines
    }

    /// One line on where things ran.
    static func placementLine(_ p: PlacementInfo) -> String {
        var parts = ["placement: --pin \(p.pin)", "tool allowed CPUs \(p.toolAllowedCPUs ?? "?")"]
        if let ran = p.toolRanOn { parts.append("tool threads ran on \(ran)") }
        for server in p.servers {
            guard server.spawned else {
                parts.append("\(server.kind) at \(server.address): not spawned, placement not measured")
                continue
            }
            var text = "\(server.kind)\(server.pid.map { " pid \($0)" } ?? "") allowed CPUs \(server.allowedCPUs ?? "unknown")"
            if let ran = server.ranOn { text += ", ran on \(ran)" }
            parts.append(text)
        }
        return parts.joined(separator: "; ")
    }

    // MARK: Whole reports

    static func render(_ report: RunReport, format: OutputFormat) throws -> String {
        switch format {
        case .table:
            var out = preamble(report)
            for workload in report.workloads { out.append(""); out.append(table(workload)) }
            if !report.goals.isEmpty { out.append(""); out.append(contentsOf: Goals.lines(report.goals)) }
            if !report.notes.isEmpty { out.append(""); out.append(contentsOf: report.notes) }
            return out.joined(separator: "\n")
        case .markdown:
            var out = ["## cache-bench results", "", "`\(report.command)`", ""]
            out.append(contentsOf: preamble(report).map { "- " + $0 })
            for workload in report.workloads { out.append(""); out.append(markdown(workload)) }
            if !report.goals.isEmpty {
                out.append("")
                out.append("| backend | goal | ratio | target | result |")
                out.append("| --- | --- | ---: | ---: | --- |")
                for g in report.goals {
                    out.append("| \(g.backend) | \(g.goal) | \(Units.fixed(g.ratio, 2))× | \(g.target.map { "≥ " + Units.fixed($0, 2) + "×" } ?? "—") | \(g.met.map { $0 ? "met" : "missed" } ?? "reported") |")
                }
            }
            if !report.notes.isEmpty { out.append(""); out.append(contentsOf: report.notes.map { "- " + $0 }) }
            return out.joined(separator: "\n")
        case .csv:
            return csv(report)
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(report), as: UTF8.self)
        }
    }

    static func csv(_ report: RunReport) -> String {
        var out = ["workload,target,kind,reference_for,mix,keys,distribution,value_size,ttl,concurrency,batch,coder,ops_per_sec,calls_per_sec,ratio_to_fastest,ratio_to_c,p50_us,p90_us,p99_us,p999_us,max_us,hit_ratio,errors,calls,seconds"]
        func field(_ text: String) -> String {
            text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        func number(_ value: Double?, _ digits: Int) -> String { value.map { Units.fixed($0, digits) } ?? "" }
        for w in report.workloads {
            for r in w.rows {
                let values: [String] = [
                    w.name, r.target, r.kind.rawValue, r.referenceFor ?? "", w.mix, String(w.keyCount), w.distribution,
                    w.valueSize, w.ttl ?? "", String(r.concurrency), String(w.batch), w.coder,
                    number(r.opsPerSecond, 1), number(r.callsPerSecond, 1), number(r.ratioToFastest, 4),
                    number(r.ratioToReference, 4), number(r.latency.p50 / 1000, 3), number(r.latency.p90 / 1000, 3),
                    number(r.latency.p99 / 1000, 3), number(r.latency.p999 / 1000, 3), number(r.latency.max / 1000, 3),
                    number(r.hitRatio, 4), String(r.errors), String(r.calls), number(r.seconds, 3),
                ]
                out.append(values.map(field).joined(separator: ","))
            }
        }
        return out.joined(separator: "\n")
    }
}
