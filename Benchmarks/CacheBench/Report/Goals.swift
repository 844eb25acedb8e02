/// One performance goal of the issues, checked against this run's figures.
struct GoalCheck: Codable, Sendable {
    var backend: String
    /// What is compared, such as `get vs C hiredis (one connection)`.
    var goal: String
    /// The measured ratio.
    var ratio: Double
    /// The ratio the goal asks for; nil when the figure is only reported.
    var target: Double?
    /// Whether the ratio reaches the target (nil when there is no target).
    var met: Bool?
}

/// The performance goals of issues 3, 4 and 5, checked on the preset workloads when the run has
/// the rows they need (`--reference` for the C figures).
enum Goals {
    static func check(_ workloads: [WorkloadResult]) -> [GoalCheck] {
        func row(_ workload: String, _ target: String) -> BenchResult? {
            workloads.first { $0.name == workload }?.rows.first { $0.target == target && $0.calls > 0 }
        }
        func reference(_ workload: String, _ backend: String) -> BenchResult? {
            workloads.first { $0.name == workload }?.rows.first { $0.kind == .reference && $0.referenceFor == backend && $0.calls > 0 }
        }
        var checks: [GoalCheck] = []
        func add(_ backend: String, _ goal: String, _ numerator: BenchResult?, _ denominator: BenchResult?, _ target: Double?, factor: Double = 1) {
            guard let numerator, let denominator, denominator.opsPerSecond > 0 else { return }
            let ratio = numerator.opsPerSecond / (denominator.opsPerSecond * factor)
            checks.append(GoalCheck(backend: backend, goal: goal, ratio: ratio * factor, target: target.map { $0 * factor },
                                    met: target.map { ratio >= $0 }))
        }
        // SQLite (issue 3).
        add("sqlite", "get-hit vs C sqlite3 loop", row("get", "sqlite"), reference("get", "sqlite"), 0.8)
        add("sqlite", "set vs C sqlite3 loop", row("set", "sqlite"), reference("set", "sqlite"), 0.8)
        add("sqlite", "batch set of 100 (one transaction) vs C", row("batch-set", "sqlite"), reference("batch-set", "sqlite"), nil)
        // The opt-in path (callers prefer SQLiteBackend.taskExecutor): reported, never counted as the goal.
        add("sqlite-executor", "get-hit, opt-in taskExecutor, vs C", row("get", "sqlite-executor"), reference("get", "sqlite"), nil)
        // Redis (issue 4).
        add("redis", "one task get vs C hiredis loop", row("get", "redis"), reference("get", "redis"), 0.9)
        add("redis", "64 tasks vs one task", row("concurrent", "redis"), row("get", "redis"), 3)
        add("redis", "64 tasks vs redis-benchmark -c 50 -P 1", row("concurrent", "redis"), row("concurrent", "redis-benchmark"), 1)
        add("redis", "batch get of 100 vs C MGET loop", row("batch-get", "redis"), reference("batch-get", "redis"), 0.8)
        // memcached (issue 5).
        add("memcached", "one task get vs C libmemcached loop", row("get", "memcached"), reference("get", "memcached"), 0.9)
        add("memcached", "64 tasks vs one task", row("concurrent", "memcached"), row("get", "memcached"), 3)
        add("memcached", "batch get of 100 vs C multi-get loop", row("batch-get", "memcached"), reference("batch-get", "memcached"), 0.8)
        // The opt-in path (callers prefer MemcachedBackend.taskExecutor): reported, never counted as the goal.
        add("memcached-executor", "one task get, opt-in taskExecutor, vs C", row("get", "memcached-executor"), reference("get", "memcached"), nil)
        add("memcached-executor", "batch get of 100, opt-in taskExecutor, vs C", row("batch-get", "memcached-executor"), reference("batch-get", "memcached"), nil)
        return checks
    }

    /// Aligned text lines.
    static func lines(_ checks: [GoalCheck]) -> [String] {
        guard !checks.isEmpty else { return [] }
        let width = checks.map { $0.backend.count + $0.goal.count + 2 }.max() ?? 0
        var out = ["goals (issues 3-5; ratios of keys/s):"]
        for check in checks {
            let name = "\(check.backend): \(check.goal)"
            let pad = String(repeating: " ", count: max(0, width - name.count))
            var line = "  \(name)\(pad)  \(Units.fixed(check.ratio, 2))×"
            if let target = check.target, let met = check.met {
                line += "  (goal ≥ \(Units.fixed(target, 2))×: \(met ? "met" : "MISSED"))"
            } else {
                line += "  (reported)"
            }
            out.append(line)
        }
        return out
    }
}
