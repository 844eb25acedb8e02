import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `cache-bench`: compares swift-caching's backends on the user's own workload.
///
/// `cache-bench` alone runs the backend comparison (``RunCommand``); `cache-bench eviction`
/// compares the in-memory eviction policy with an exact LRU; `cache-bench micro` measures the
/// core's hot paths.
struct CacheBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-bench",
        abstract: "Compares swift-caching backends: throughput, tail latency and hit ratio on your workload.",
        discussion: "Run with no arguments to compare the in-memory and SQLite backends, plus Redis and memcached when they answer on 127.0.0.1:6379 and :11211; --spawn-servers starts private redis-server and memcached processes for the run. Options of the comparison: cache-bench run --help. Guide: Docs/Benchmarking.md.",
        subcommands: [RunCommand.self, EvictionCommand.self, MicroCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// The entry point. Parses the arguments and runs the command, turning every failure into one
/// line on standard error and a non-zero exit status (help and `--version` exit 0 as usual).
@main
enum CacheBenchMain {
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try CacheBenchCommand.parseAsRoot()
        } catch {
            exitWithParseError(error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
            await Cleanup.shared.runAll()
        } catch {
            await Cleanup.shared.runAll()
            if let exitCode = error as? ExitCode {
                exit(exitCode.rawValue)
            }
            if error is CleanExit || CacheBenchCommand.exitCode(for: error) == .success {
                CacheBenchCommand.exit(withError: error)
            }
            Terminal.clearProgress()
            Terminal.writeError("cache-bench: error: \(oneLine(describe(error)))")
            exit((error as? BenchError)?.isUsage == true ? 64 : 1)
        }
    }

    /// Help and version requests print as ArgumentParser prints them; every other parse error
    /// prints as one line.
    private static func exitWithParseError(_ error: any Error) -> Never {
        let code = CacheBenchCommand.exitCode(for: error)
        if code == .success {
            CacheBenchCommand.exit(withError: error)
        }
        let message = CacheBenchCommand.message(for: error)
        Terminal.writeError("cache-bench: error: \(oneLine(message)) (see cache-bench --help)")
        exit(code.rawValue == 0 ? 64 : code.rawValue)
    }

    static func oneLine(_ text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        let kept = lines.filter { !$0.isEmpty && !$0.hasPrefix("Usage:") && !$0.hasPrefix("See '") }
        let joined = kept.joined(separator: " ")
        return joined.hasPrefix("Error: ") ? String(joined.dropFirst(7)) : joined
    }
}

/// A readable one-line description of any error the tool meets.
func describe(_ error: any Error) -> String {
    if let error = error as? BenchError { return error.message }
    return String(describing: error)
}

/// An error that ends the run with a one-line message.
struct BenchError: Error, CustomStringConvertible {
    var message: String
    /// A mistake in the command line (exit status 64) rather than a failure while running (1).
    var isUsage = false
    init(_ message: String) { self.message = message }
    var description: String { message }

    /// Runs `body`, marking the `BenchError`s it throws as command-line mistakes.
    static func usage<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as BenchError {
            error.isUsage = true
            throw error
        }
    }
}
