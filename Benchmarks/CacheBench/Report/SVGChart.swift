import Foundation

/// A hand-written SVG chart of a run: for each workload, throughput bars (left) and p50 / p99 /
/// p99.9 latency bars on a log scale (right), one row per backend. Plain SVG 1.1 with inline
/// styles, so any browser shows it.
enum SVGChart {
    private static let width = 1040.0
    private static let labelWidth = 175.0
    private static let barWidth = 280.0
    private static let latencyX = 530.0
    private static let latencyWidth = 320.0
    private static let rowHeight = 30.0

    private static let palette: [String: String] = [
        "memory": "#4e79a7", "sqlite": "#f28e2b", "redis": "#e15759", "memcached": "#59a14f",
    ]
    private static let percentileColors = ["#6baed6", "#2171b5", "#08306b"]

    static func render(_ report: RunReport) -> String {
        var body: [String] = []
        var y = 20.0
        body.append(text(x: 20, y: y + 14, "cache-bench: throughput and latency per backend", size: 18, weight: "bold"))
        y += 26
        let m = report.machine
        let header = "\(m.cpus) CPUs\(m.cpuModel.map { ", " + $0 } ?? ""); load at start \(m.loadAverageAtStart ?? "?"); \(ReportRenderer.placementLine(report.placement))"
        for line in wrap(header, width: 170) {
            body.append(text(x: 20, y: y + 12, line, size: 11, fill: "#555"))
            y += 15
        }
        y += 5
        body.append(legend(y: y))
        y += 24
        for workload in report.workloads {
            let (svg, height) = block(workload, y: y)
            body.append(svg)
            y += height
        }
        let height = y + 10
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
            \(body.joined(separator: "\n"))
            </svg>

            """
    }

    private static func legend(y: Double) -> String {
        var parts: [String] = []
        var x = 20.0
        parts.append(text(x: x, y: y + 12, "bars: throughput (ops/s; keys/s for batches). C rows (--reference) are hatched.", size: 11, fill: "#333"))
        x = latencyX
        for (i, name) in ["p50", "p99", "p99.9"].enumerated() {
            parts.append(##"<rect x="\##(fmt(x))" y="\##(fmt(y + 3))" width="12" height="10" fill="\##(percentileColors[i])"/>"##)
            parts.append(text(x: x + 16, y: y + 12, name, size: 11))
            x += 60
        }
        parts.append(text(x: x, y: y + 12, "latency per call, log scale", size: 11, fill: "#333"))
        return parts.joined(separator: "\n")
    }

    private static func block(_ workload: WorkloadResult, y startY: Double) -> (String, Double) {
        var parts: [String] = []
        var y = startY
        parts.append(##"<line x1="20" y1="\##(fmt(y))" x2="\##(fmt(width - 20))" y2="\##(fmt(y))" stroke="#ddd"/>"##)
        y += 20
        parts.append(text(x: 20, y: y, workload.name, size: 15, weight: "bold"))
        parts.append(text(x: 20 + Double(workload.name.count) * 9 + 12, y: y, workload.summary, size: 11, fill: "#555"))
        y += 12
        let rows = workload.rows
        let maxOps = max(1, rows.map(\.opsPerSecond).max() ?? 1)
        let latencies = rows.filter { $0.calls > 0 }.flatMap { [$0.latency.p50, $0.latency.p99, $0.latency.p999] }.filter { $0 > 0 }
        let lo = pow(10, floor(log10(latencies.min() ?? 1000)))
        let hi = pow(10, ceil(log10(max(latencies.max() ?? 10_000, lo * 10))))
        func lx(_ ns: Double) -> Double {
            latencyX + latencyWidth * (log10(max(ns, lo)) - log10(lo)) / (log10(hi) - log10(lo))
        }
        let top = y
        for (index, row) in rows.enumerated() {
            let rowY = top + Double(index) * rowHeight
            let color = color(for: row)
            let hatched = row.kind == .reference
            parts.append(text(x: 20, y: rowY + 19, row.target, size: row.target.count > 18 ? 11 : 12, weight: row.kind == .swift ? "bold" : "normal"))
            let w = max(1, barWidth * row.opsPerSecond / maxOps)
            parts.append(##"<rect x="\##(fmt(labelWidth))" y="\##(fmt(rowY + 6))" width="\##(fmt(w))" height="\##(fmt(rowHeight - 12))" fill="\##(color)" fill-opacity="\##(hatched ? "0.45" : "0.9")"\##(hatched ? ##" stroke="\##(color)" stroke-dasharray="4 2""## : "")/>"##)
            var label = Units.compact(row.opsPerSecond)
            if let r = row.ratioToReference, row.kind == .swift { label += "  (\(Units.fixed(r, 2))× C)" }
            if w > barWidth - 120 {
                parts.append(text(x: labelWidth + w - 6, y: rowY + 19, label, size: 11, weight: "bold", fill: hatched ? "#111" : "#ffffff", anchor: "end"))
            } else {
                parts.append(text(x: labelWidth + w + 6, y: rowY + 19, label, size: 11))
            }
            if row.calls > 0 {
                let values = [row.latency.p50, row.latency.p99, row.latency.p999]
                for (k, value) in values.enumerated() {
                    let barY = rowY + 5 + Double(k) * 7
                    let end = lx(value)
                    parts.append(##"<rect x="\##(fmt(latencyX))" y="\##(fmt(barY))" width="\##(fmt(max(1, end - latencyX)))" height="6" fill="\##(percentileColors[k])"\##(hatched ? ##" fill-opacity="0.5""## : "")/>"##)
                }
                parts.append(text(x: latencyX + latencyWidth + 10, y: rowY + 19,
                                  "\(Units.latency(nanoseconds: row.latency.p50)) / \(Units.latency(nanoseconds: row.latency.p99)) / \(Units.latency(nanoseconds: row.latency.p999))", size: 10, fill: "#333"))
            }
        }
        let bottom = top + Double(rows.count) * rowHeight
        // Latency axis with one tick per decade.
        parts.append(##"<line x1="\##(fmt(latencyX))" y1="\##(fmt(bottom + 2))" x2="\##(fmt(latencyX + latencyWidth))" y2="\##(fmt(bottom + 2))" stroke="#999"/>"##)
        var tick = lo
        while tick <= hi * 1.0001 {
            let x = lx(tick)
            parts.append(##"<line x1="\##(fmt(x))" y1="\##(fmt(top))" x2="\##(fmt(x))" y2="\##(fmt(bottom + 5))" stroke="#e5e5e5"/>"##)
            parts.append(text(x: x - 12, y: bottom + 16, Units.latency(nanoseconds: tick), size: 10, fill: "#666"))
            tick *= 10
        }
        // Throughput axis.
        parts.append(##"<line x1="\##(fmt(labelWidth))" y1="\##(fmt(bottom + 2))" x2="\##(fmt(labelWidth + barWidth))" y2="\##(fmt(bottom + 2))" stroke="#999"/>"##)
        parts.append(text(x: labelWidth, y: bottom + 16, "0", size: 10, fill: "#666"))
        parts.append(text(x: labelWidth + barWidth - 30, y: bottom + 16, Units.compact(maxOps) + "/s", size: 10, fill: "#666"))
        return (parts.joined(separator: "\n"), bottom - startY + 30)
    }

    private static func color(for row: BenchResult) -> String {
        if row.kind == .external { return "#999999" }
        return palette[row.referenceFor ?? row.target] ?? "#7f7f7f"
    }

    private static func text(
        x: Double, y: Double, _ content: String, size: Int, weight: String = "normal", fill: String = "#111", anchor: String = "start"
    ) -> String {
        ##"<text x="\##(fmt(x))" y="\##(fmt(y))" font-size="\##(size)" font-weight="\##(weight)" fill="\##(fill)" text-anchor="\##(anchor)">\##(escape(content))</text>"##
    }

    /// Splits `text` at "; " into lines of at most about `width` characters.
    private static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for part in text.components(separatedBy: "; ") {
            if !current.isEmpty && current.count + part.count + 2 > width {
                lines.append(current + ";")
                current = part
            } else {
                current = current.isEmpty ? part : current + "; " + part
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    private static func fmt(_ value: Double) -> String {
        Units.fixed(value, 1)
    }
}
