import Caching
import Foundation
import Synchronization
import Testing

@testable import CachingSQLite

/// A fresh directory under the system temp directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/caching-sqlite-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CacheError(.internalError, "mkdtemp failed: errno \(errno)")
        }
        path = String(cString: made)
    }

    /// A file path inside the directory.
    func file(_ name: String = "cache.sqlite") -> String { path + "/" + name }

    func remove() {
        chmod(path, 0o755)
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Runs `body` with a backend on a new file in a new directory; closes and removes both after.
func withFileBackend<T>(
    configuration: SQLiteBackend.Configuration = SQLiteBackend.Configuration(),
    _ body: (SQLiteBackend, TemporaryDirectory) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let backend = try await SQLiteBackend(path: directory.file(), configuration: configuration)
    do {
        let result = try await body(backend, directory)
        try await backend.close()
        return result
    } catch {
        try? await backend.close()
        throw error
    }
}

/// The `CacheError` that `body` throws, or `nil` (recorded as a test failure) when it throws none.
func cacheError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> CacheError? {
    do {
        try await body()
        Issue.record("expected a CacheError, but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as CacheError {
        return error
    } catch {
        Issue.record("expected a CacheError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Rows physically in the table, expired or not.
func physicalRows(_ backend: SQLiteBackend) async throws -> Int64 {
    try await backend.runStatement("SELECT count(*) FROM cache", onWriter: true) ?? -1
}

/// The directory of the running test binary, where SwiftPM also puts the helper executables.
func buildProductsDirectory() -> String {
    #if os(Linux)
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    #else
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    #endif
    var directory = executable.deletingLastPathComponent()
    // On macOS the test binary sits inside a .xctest bundle.
    while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
    return directory.path
}

/// The `SQLiteStressWorker` helper executable.
func stressWorkerPath() throws -> String {
    if let override = ProcessInfo.processInfo.environment["SQLITE_STRESS_WORKER"] { return override }
    let path = buildProductsDirectory() + "/SQLiteStressWorker"
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw CacheError(.configuration, "the helper \(path) is not built; run `swift build --build-tests` (or set SQLITE_STRESS_WORKER)")
    }
    return path
}

/// A finished child process.
struct ChildResult: Sendable {
    var status: Int32
    var output: String
    var timedOut: Bool
}

/// Runs `executable` with `arguments`, kills it (by PID) if it runs past `timeout`, and returns its
/// exit status and its standard output and error. The output goes to a file, not a pipe, so no
/// thread ever blocks reading it.
func runChild(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> ChildResult {
    let outputDirectory = try TemporaryDirectory()
    defer { outputDirectory.remove() }
    let outputPath = outputDirectory.file("output.txt")
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = output
    process.standardError = output
    try process.run()
    try output.close()
    let pid = process.processIdentifier
    let deadline = ContinuousClock.now + timeout
    var timedOut = false
    while process.isRunning {
        if ContinuousClock.now > deadline {
            timedOut = true
            kill(pid, SIGKILL)
            break
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return ChildResult(status: process.terminationStatus, output: text, timedOut: timedOut)
}

/// Runs the tests that load the machine or measure timing one at a time: the conformance runs
/// (1 MiB values built on the cooperative pool, TTL windows), the blocking-statement heartbeat, the
/// cancellation timings and the multi-process run. On a 2-core machine, running them side by side
/// makes each one measure the others.
let heavyTests = AsyncGate()

/// An async mutex: `run` waits for the gate, runs `body`, and opens the gate for the next waiter.
final class AsyncGate: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
