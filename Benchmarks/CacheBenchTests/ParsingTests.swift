import Testing

@testable import CacheBench

@Suite struct WorkloadParsingTests {
    @Test func distributions() throws {
        #expect(try KeyDistribution.parse("uniform") == .uniform)
        #expect(try KeyDistribution.parse("zipf") == .zipf(0.99))
        #expect(try KeyDistribution.parse("zipf:1.2") == .zipf(1.2))
        #expect(try KeyDistribution.parse("Zipf(0.8)") == .zipf(0.8))
        for bad in ["zipf:0", "zipf:-1", "zipf:abc", "zipf:nan", "zipf:11", "pareto", "zipf:"] {
            #expect(throws: BenchError.self, "\(bad)") { try KeyDistribution.parse(bad) }
        }
    }

    @Test func operationMixes() throws {
        #expect(try OperationMix.parse("90:8:2") == OperationMix(get: 90, set: 8, delete: 2))
        #expect(try OperationMix.parse("90/10") == OperationMix(get: 90, set: 10, delete: 0))
        #expect(try OperationMix.parse("get=1,delete=3") == OperationMix(get: 1, set: 0, delete: 3))
        #expect(try OperationMix.parse("90:8:2").description == "90% get 8% set 2% delete")
        for bad in ["0:0:0", "a:b", "1:2:3:4", "get=x", "put=3", "-1:2"] {
            #expect(throws: BenchError.self, "\(bad)") { try OperationMix.parse(bad) }
        }
    }

    @Test func valueSizes() throws {
        #expect(try ValueSize.parse("100") == ValueSize(min: 100, max: 100))
        #expect(try ValueSize.parse("4k") == ValueSize(min: 4096, max: 4096))
        #expect(try ValueSize.parse("64-1KiB") == ValueSize(min: 64, max: 1024))
        for bad in ["10-5", "abc", "-5", "17MiB", "1-2-3"] {
            #expect(throws: BenchError.self, "\(bad)") { try ValueSize.parse(bad) }
        }
    }

    @Test func durations() throws {
        #expect(try parseDuration("3s", what: "x") == .seconds(3))
        #expect(try parseDuration("500ms", what: "x") == .milliseconds(500))
        #expect(try parseDuration("2m", what: "x") == .seconds(120))
        #expect(try parseDuration("1.5", what: "x") == .milliseconds(1500))
        for bad in ["0", "-1s", "soon", "1x"] {
            #expect(throws: BenchError.self, "\(bad)") { try parseDuration(bad, what: "x") }
        }
    }

    @Test func redisURLs() throws {
        let full = try RedisAddress.parse("redis://alice:s3cret@cache.local:6380/2")
        #expect(full.host == "cache.local" && full.port == 6380 && full.database == 2)
        #expect(full.username == "alice" && full.password == "s3cret")
        #expect(!full.display.contains("s3cret"))
        let bare = try RedisAddress.parse("127.0.0.1")
        #expect(bare.port == 6379 && bare.password == nil)
        let unix = try RedisAddress.parse("unix:///run/redis.sock?db=3")
        #expect(unix.unixPath == "/run/redis.sock" && unix.database == 3)
        #expect(throws: BenchError.self) { try RedisAddress.parse("redis://h:notaport") }
        #expect(throws: BenchError.self) { try RedisAddress.parse("http://h:1") }
        do {
            _ = try RedisAddress.parse("redis://u:topsecret@h:99999")
            Issue.record("an out-of-range port must throw")
        } catch {
            #expect(!error.message.contains("topsecret"), "the password leaked: \(error.message)")
        }
    }

    @Test func memcachedServers() throws {
        let servers = try HostPort.parseMemcached("memcached://a:1,b")
        #expect(servers == [HostPort(host: "a", port: 1), HostPort(host: "b", port: 11211)])
        #expect(throws: BenchError.self) { try HostPort.parseMemcached("") }
        #expect(throws: BenchError.self) { try HostPort.parseMemcached("a:0") }
    }

    @Test func backendsAndPins() throws {
        #expect(try BackendKind.parseList("memory,redis,memory") == [.memory, .redis])
        #expect(throws: BenchError.self) { try BackendKind.parseList("mongodb") }
        #expect(try PinSpec.parse("none") == .none)
        #expect(try PinSpec.parse("same").servers == [0])
        #expect(try PinSpec.parse("0/").servers == nil)
        #expect(throws: BenchError.self) { try PinSpec.parse("9999/0") }
        #expect(throws: BenchError.self) { try PinSpec.parse("fast") }
        #expect(try CPUPlacement.parseList("0") == [0])
        #expect(CPUPlacement.formatList([0, 1, 2, 5]) == "0-2,5")
    }
}

@Suite struct RunArgumentTests {
    private func settings(_ arguments: [String]) throws -> RunSettings {
        try RunCommand.parse(arguments).validatedSettings()
    }

    @Test func defaultsRunEveryPreset() throws {
        let run = try settings([])
        #expect(run.specs.map(\.name) == WorkloadPreset.allCases.map(\.rawValue))
        #expect(run.specs.allSatisfy { $0.stop == .duration(.seconds(2)) && $0.keyCount == 10_000 })
        #expect(run.kinds == nil && !run.spawnServers && !run.reference)
    }

    @Test func shapingOptionsMakeOneCustomWorkload() throws {
        let run = try settings(["--mix", "50:50", "--keys", "500", "--concurrency", "3", "--ops", "1000", "--coder", "raw", "--ttl", "none"])
        #expect(run.specs.count == 1)
        let spec = try #require(run.specs.first)
        #expect(spec.name == "custom" && spec.keyCount == 500 && spec.concurrency == 3)
        #expect(spec.stop == .operations(1000) && spec.coder == .raw && spec.ttl == nil)
    }

    @Test func shapingOptionsApplyToChosenPresets() throws {
        let run = try settings(["--workload", "get,batch-get", "--value-size", "1k"])
        #expect(run.specs.map(\.name) == ["get", "batch-get"])
        #expect(run.specs.allSatisfy { $0.valueSize == ValueSize(min: 1024, max: 1024) })
        #expect(run.specs[1].batch == 100)
    }

    @Test func badArgumentsAreOneLineErrors() {
        let cases: [[String]] = [
            ["--backends", "foo"], ["--concurrency", "0"], ["--distribution", "zipf:0"], ["--keys", "0"],
            ["--batch", "0"], ["--ops", "0"], ["--duration", "1s", "--ops", "5"], ["--workload", "nope"],
            ["--coder", "xml"], ["--pin", "x"], ["--redis", "redis://h:port"], ["--connect-timeout", "1h"],
        ]
        for arguments in cases {
            do {
                _ = try settings(arguments)
                Issue.record("\(arguments) was accepted")
            } catch let error as BenchError {
                #expect(!error.message.contains("\n"), "\(arguments): \(error.message)")
                #expect(!error.message.isEmpty)
            } catch {
                Issue.record("\(arguments) threw \(error), not a BenchError")
            }
        }
    }
}
