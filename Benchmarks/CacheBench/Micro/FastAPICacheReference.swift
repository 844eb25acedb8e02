import Foundation

/// Measures Python's fastapi-cache (`InMemoryBackend.get` + `JsonCoder.decode`, the work of a
/// cache hit behind its `@cache` decorator) on the same keys and values as `cache-bench micro`,
/// so that issue 2's "10 times fastapi-cache" goal is a ratio from one run.
///
/// It needs a Python with `fastapi-cache2` installed (`pip install fastapi-cache2`), named by
/// `--python` or `CACHE_BENCH_PYTHON`; without one, `micro` compares with the figure the issue
/// quotes (266k/s) and says so.
enum FastAPICacheReference {
    /// The script: the same 5-field record as `Profile` (JSON), the same key names, the same
    /// shuffled order. It fills the backend, prints `ready`, then runs one round of `seconds`
    /// for each line it reads and prints that round's rate, until its input ends.
    static let script = """
    import asyncio, random, sys, time
    from fastapi_cache.backends.inmemory import InMemoryBackend
    from fastapi_cache.coder import JsonCoder

    async def main(keys, seconds):
        backend = InMemoryBackend()
        for i in range(keys):
            record = {"id": 100000 + i, "name": f"User Number {i}", "email": f"user{i}@example.com",
                      "age": 20 + i % 60, "active": i % 3 != 0}
            await backend.set(f"micro:users:{i}", JsonCoder.encode(record), 3600)
        order = [f"micro:users:{i}" for i in range(keys)]
        random.Random(7).shuffle(order)
        print("ready", flush=True)
        for _ in sys.stdin:
            n = 0
            start = time.perf_counter()
            end = start + seconds
            now = start
            while now < end:
                for _ in range(1024):
                    value = await backend.get(order[n % keys])
                    if JsonCoder.decode(value) is None:
                        raise SystemExit("a stored record read back as None")
                    n += 1
                now = time.perf_counter()
            print(n / (now - start), flush=True)

    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
    """

    /// A running reference process that measures one round when asked, so that its rounds
    /// alternate with the Swift rounds they are compared with (the machine's load then weighs
    /// on both alike).
    final class Session {
        let process: Process
        let input: FileHandle
        let output: FileHandle
        let errors: Pipe
        let directory: URL
        let python: String
        let cleanup: Int
        var buffer = Data()

        /// Starts `python` on the script and waits until it has filled its backend.
        init(python: String, keys: Int, seconds: Double) throws {
            self.python = python
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("cache-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let file = directory.appendingPathComponent("fastapi_cache_get.py")
            try script.write(to: file, atomically: true, encoding: .utf8)
            process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [file.path, "\(keys)", "\(seconds)"]
            let inputPipe = Pipe()
            let outputPipe = Pipe()
            errors = Pipe()
            process.standardInput = inputPipe
            process.standardOutput = outputPipe
            process.standardError = errors
            input = inputPipe.fileHandleForWriting
            output = outputPipe.fileHandleForReading
            do {
                try process.run()
            } catch {
                try? FileManager.default.removeItem(at: directory)
                throw BenchError("cannot run \(python) for the fastapi-cache reference: \(error)")
            }
            let pid = process.processIdentifier
            let process = self.process
            cleanup = Cleanup.shared.add("stop the fastapi-cache reference") { if process.isRunning { kill(pid, SIGKILL) } }
            guard try line() == "ready" else { throw failure("it did not start") }
        }

        /// One round: the median-free rate of `seconds` of get-hits.
        func round() throws -> Double {
            input.write(Data("round\n".utf8))
            guard let text = try line(), let rate = Double(text), rate > 0 else { throw failure("it printed no rate") }
            return rate
        }

        /// The next line of output, or nil when the process ended. The harness waits here on
        /// purpose: nothing else runs while the reference measures.
        private func line() throws -> String? {
            while true {
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let text = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    return text
                }
                let chunk = output.availableData
                if chunk.isEmpty { return nil }
                buffer.append(chunk)
            }
        }

        private func failure(_ what: String) -> BenchError {
            process.waitUntilExit()
            let reason = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(separator: "\n").last.map(String.init) ?? "no output"
            return BenchError("the fastapi-cache reference failed (\(python)): \(what): \(reason); "
                + "install it with `\(python) -m pip install fastapi-cache2`")
        }

        /// Ends the process (its input closes) and removes the script.
        func stop() {
            try? input.close()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            Cleanup.shared.run(cleanup)
            try? FileManager.default.removeItem(at: directory)
        }
    }
}
