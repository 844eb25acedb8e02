import Caching
import Testing

@testable import CachingRedis

@Suite struct RedisConfigurationTests {
    @Test func plainURL() throws {
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1:6380")
        #expect(configuration.endpoint == .tcp(host: "127.0.0.1", port: 6380))
        #expect(configuration.username == nil)
        #expect(configuration.password == nil)
        #expect(configuration.database == 0)
        #expect(configuration.poolSize == RedisConfiguration.defaultPoolSize)
    }

    @Test func defaultPortAndDatabasePath() throws {
        let configuration = try RedisConfiguration(url: "redis://cache.internal/3")
        #expect(configuration.endpoint == .tcp(host: "cache.internal", port: 6379))
        #expect(configuration.database == 3)
        #expect(try RedisConfiguration(url: "redis://h/").database == 0)
    }

    @Test func passwordOnly() throws {
        let configuration = try RedisConfiguration(url: "redis://:s3cret@10.0.0.5:6379/2")
        #expect(configuration.username == nil)
        #expect(configuration.password == "s3cret")
        #expect(configuration.database == 2)
    }

    @Test func aclUserWithPercentEncodedPassword() throws {
        let configuration = try RedisConfiguration(url: "redis://cache%2Dbot:p%40ss%2Fw0rd@[::1]:7000/1")
        #expect(configuration.username == "cache-bot")
        #expect(configuration.password == "p@ss/w0rd")
        #expect(configuration.endpoint == .tcp(host: "::1", port: 7000))
        #expect(configuration.database == 1)
    }

    @Test func passwordWithUnencodedAtAndSlash() throws {
        let configuration = try RedisConfiguration(url: "redis://u:a@b/c@host:1234/5")
        #expect(configuration.username == "u")
        #expect(configuration.password == "a@b/c")
        #expect(configuration.endpoint == .tcp(host: "host", port: 1234))
        #expect(configuration.database == 5)
    }

    @Test func unixSocket() throws {
        let configuration = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=4&pool_size=3")
        #expect(configuration.endpoint == .unixSocket(path: "/run/redis/redis.sock"))
        #expect(configuration.database == 4)
        #expect(configuration.poolSize == 3)
        let withAuth = try RedisConfiguration(url: "unix://alice:pw@/tmp/r.sock")
        #expect(withAuth.username == "alice")
        #expect(withAuth.password == "pw")
        #expect(withAuth.endpoint == .unixSocket(path: "/tmp/r.sock"))
    }

    @Test func queryOptions() throws {
        let configuration = try RedisConfiguration(
            url: "redis://h:1/0?connect_timeout=0.25&command_timeout=1.5&pool_size=8&db=6&username=bob&password=x%26y"
        )
        #expect(configuration.connectTimeout == .milliseconds(250))
        #expect(configuration.commandTimeout == .milliseconds(1500))
        #expect(configuration.poolSize == 8)
        #expect(configuration.database == 6)
        #expect(configuration.username == "bob")
        #expect(configuration.password == "x&y")
    }

    @Test(arguments: [
        "127.0.0.1:6379", "http://h:1", "rediss://h:1", "redis://", "redis://h:0", "redis://h:70000",
        "redis://h:port", "redis://h/notanumber", "redis://h?unknown=1", "redis://h?pool_size=0",
        "redis://h?command_timeout=-1", "redis://[::1", "unix://", "unix://relative.sock", "redis://user@h",
        "redis://:p%4@h", "redis://h?db=-1",
    ])
    func invalidURLs(url: String) async {
        let error = await cacheError { _ = try RedisConfiguration(url: url) }
        #expect(error?.code == .configuration)
    }

    @Test func passwordNeverPrinted() async throws {
        let secret = "Sup3r-S3cret-Value"
        let configuration = try RedisConfiguration(url: "redis://alice:\(secret)@127.0.0.1:6379/2")
        #expect(!configuration.description.contains(secret))
        #expect(!configuration.debugDescription.contains(secret))
        #expect(!String(reflecting: configuration).contains(secret))
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(!dumped.contains(secret))
        #expect(configuration.redactedURL == "redis://alice:***@127.0.0.1:6379/2")
        #expect(configuration.description.contains("***"))

        // URL errors do not echo the URL either.
        let error = await cacheErrorSync { _ = try RedisConfiguration(url: "redis://alice:\(secret)@h:notaport") }
        #expect(error?.code == .configuration)
        #expect(error.map { !$0.description.contains(secret) } == true)
    }

    @Test func optionsValidation() throws {
        var configuration = RedisConfiguration(host: "127.0.0.1")
        configuration.poolSize = 0
        #expect(throws: CacheError.self) { try configuration.validate() }
        configuration = RedisConfiguration(host: "127.0.0.1", username: "alice")
        #expect(throws: CacheError.self) { try configuration.validate() }
        configuration = RedisConfiguration(host: "127.0.0.1")
        configuration.commandTimeout = .zero
        #expect(throws: CacheError.self) { try RedisBackend(configuration: configuration) }
        configuration = RedisConfiguration(unixSocket: "/tmp/x.sock", password: "pw", database: 2)
        #expect(configuration.redactedURL == "unix://:***@/tmp/x.sock?db=2")
    }

    @Test func scanPatternEscapesGlobCharacters() {
        let pattern = String(decoding: RedisBackend.scanPattern(prefix: #"a*b?c[d]e\f:"#), as: UTF8.self)
        #expect(pattern == #"a\*b\?c\[d\]e\\f:*"#)
        #expect(RedisBackend.scanPattern(prefix: "") == Array("*".utf8))
    }
}

/// `cacheError` for synchronous throwing code inside a synchronous test.
private func cacheErrorSync(_ body: () throws -> Void) async -> CacheError? {
    await cacheError { try body() }
}
