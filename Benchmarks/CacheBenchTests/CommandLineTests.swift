import Foundation
import Testing

@testable import CacheBench

/// Runs the built `cache-bench` binary (next to the test bundle) end to end.
@Suite(.serialized) struct CommandLineTests {
    static let binary: String? = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidate = bundle.appendingPathComponent("cache-bench").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }()
    static let serversInstalled = ServerSpawner.which("redis-server") != nil && ServerSpawner.which("memcached") != nil
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the binary with `arguments`, killing it after `timeout`.
    func run(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> Output {
        let binary = try #require(Self.binary, "build cache-bench first: swift build --product cache-bench")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let killer = Task.detached {
            try? await Task.sleep(for: timeout)
            kill(pid, SIGKILL)
        }
        let stdout = await Self.read(out)
        let stderr = await Self.read(err)
        process.waitUntilExit()
        killer.cancel()
        return Output(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    private static func read(_ pipe: Pipe) async -> String {
        await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }.start()
        }
    }

    @Test(.enabled(if: binary != nil, "cache-bench is not built next to the tests (swift build --product cache-bench)"))
    func badArgumentsGiveOneLineAndNonZeroStatus() async throws {
        let cases: [[String]] = [
            ["--backends", "nosuch"], ["--concurrency", "0"], ["--distribution", "zipf:-2"],
            ["--redis", "redis://127.0.0.1:1"], ["--memcached", "127.0.0.1:1"], ["--keys", "many"], ["--bogus"],
        ]
        for arguments in cases {
            let output = try await run(arguments, timeout: .seconds(30))
            #expect(output.status != 0, "\(arguments)")
            let lines = output.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(arguments): \(output.stderr)")
            #expect(output.stderr.hasPrefix("cache-bench: error: "), "\(arguments): \(output.stderr)")
            #expect(output.stdout.isEmpty, "\(arguments): \(output.stdout)")
        }
    }

    @Test(.enabled(if: binary != nil, "cache-bench is not built next to the tests (swift build --product cache-bench)"))
    func memoryRunPrintsJSON() async throws {
        let output = try await run(["--backends", "memory", "--workload", "get,batch-get", "--ops", "300", "--warmup", "0", "--format", "json"])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(output.stdout.utf8))
        #expect(report.workloads.map(\.name) == ["get", "batch-get"])
        let get = try #require(report.workloads.first?.rows.first)
        #expect(get.target == "memory" && get.calls == 300 && get.errors == 0 && get.hitRatio == 1)
        #expect(report.workloads[1].rows.first?.keys == 300 * 100)
    }

    @Test(.enabled(if: binary != nil && (serversInstalled || isCI), "cache-bench is not built, or redis-server / memcached are not installed"))
    func spawnedServersAreStoppedAfterTheRun() async throws {
        let output = try await run([
            "--backends", "memory,redis,memcached", "--spawn-servers", "--reference", "--workload", "get",
            "--ops", "200", "--warmup", "0", "--format", "json", "--pin", "split",
        ])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(output.stdout.utf8))
        let spawned = report.placement.servers.filter(\.spawned)
        #expect(spawned.count == 2)
        for server in spawned {
            let pid = try #require(server.pid)
            #expect(kill(pid, 0) != 0, "\(server.kind) pid \(pid) still runs after cache-bench exited")
            #expect(server.allowedCPUs == CPUPlacement.formatList([CPUPlacement.cpuCount - 1]))
        }
        let rows = try #require(report.workloads.first?.rows)
        for backend in ["memory", "redis", "memcached"] {
            #expect(rows.contains { $0.target == backend && $0.calls == 200 && $0.hits == 200 && $0.errors == 0 }, "\(backend)")
        }
        #expect(rows.contains { $0.target == "C hiredis" && $0.calls == 200 && $0.hits == 200 })
        #expect(rows.contains { $0.target == "C libmemcached" && $0.calls == 200 && $0.hits == 200 })
        #expect(report.placement.toolAllowedCPUs == "0")
    }
}
