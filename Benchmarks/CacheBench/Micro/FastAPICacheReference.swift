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
    /// shuffled order, rounds of `seconds` each; prints the median rate.
    static let script = """
    import asyncio, json, random, sys, time
    from fastapi_cache.backends.inmemory import InMemoryBackend
    from fastapi_cache.coder import JsonCoder

    async def main(keys, seconds, rounds):
        backend = InMemoryBackend()
        for i in range(keys):
            record = {"id": 100000 + i, "name": f"User Number {i}", "email": f"user{i}@example.com",
                      "age": 20 + i % 60, "active": i % 3 != 0}
            await backend.set(f"micro:users:{i}", JsonCoder.encode(record), 3600)
        order = [f"micro:users:{i}" for i in range(keys)]
        random.Random(7).shuffle(order)
        rates = []
        for _ in range(rounds):
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
            rates.append(n / (now - start))
        rates.sort()
        print(json.dumps({"rate": rates[len(rates) // 2], "rounds": rates}))

    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
    """

    /// The median get-hit rate of fastapi-cache, or an error saying why it could not be measured.
    static func measure(python: String, keys: Int, seconds: Double, rounds: Int) throws -> Double {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("cache-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("fastapi_cache_get.py")
        try script.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [file.path, "\(keys)", "\(seconds)", "\(rounds)"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw BenchError("cannot run \(python) for the fastapi-cache reference: \(error)")
        }
        let pid = process.processIdentifier
        let cleanup = Cleanup.shared.add("stop the fastapi-cache reference") { if process.isRunning { kill(pid, SIGKILL) } }
        defer { Cleanup.shared.run(cleanup) }
        // Bounded: filling the keys and the rounds take well under this.
        let deadline = Date().addingTimeInterval(seconds * Double(rounds) * 3 + 60)
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning {
            if Date() > deadline {
                kill(pid, SIGKILL)
                throw BenchError("the fastapi-cache reference did not finish in time")
            }
            usleep(10_000)
        }
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: stderr, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "no output"
            throw BenchError("the fastapi-cache reference failed (\(python), exit \(process.terminationStatus)): \(reason); install it with `\(python) -m pip install fastapi-cache2`")
        }
        struct Output: Decodable { var rate: Double }
        guard let parsed = try? JSONDecoder().decode(Output.self, from: stdout), parsed.rate > 0 else {
            throw BenchError("the fastapi-cache reference printed no rate: \(String(decoding: stdout, as: UTF8.self).prefix(200))")
        }
        return parsed.rate
    }
}
