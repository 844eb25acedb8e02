import Caching

/// Where and how ``RedisBackend`` connects: the server, credentials, database, timeouts and
/// pool size.
///
/// Build one from a URL or from its properties:
///
/// ```swift
/// let fromURL = try RedisConfiguration(url: "redis://cache:s3cret@10.0.0.5:6379/2")
///
/// var options = RedisConfiguration(host: "10.0.0.5", port: 6379)
/// options.username = "cache"
/// options.password = "s3cret"
/// options.database = 2
/// options.commandTimeout = .milliseconds(500)
/// let backend = try RedisBackend(configuration: options)
/// ```
///
/// The password is never printed: ``description`` and the reflection used by `dump` and the
/// debugger show `***` in its place, and no error message contains it.
public struct RedisConfiguration: Sendable, Hashable {
    /// The address of a Redis server.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A TCP server, by host name or IP address (IPv6 without brackets).
        case tcp(host: String, port: Int)
        /// A Unix domain socket, by file system path.
        case unixSocket(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port):
                return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path):
                return path
            }
        }
    }

    /// How long to wait between reconnection attempts after a connection fails.
    ///
    /// The first attempt after a working connection drops is immediate; each failed attempt
    /// doubles the wait, from ``initial`` up to ``maximum``, with ±20 % jitter so that many
    /// clients do not reconnect in lockstep.
    public struct Backoff: Sendable, Hashable {
        /// The wait after the first failed attempt.
        public var initial: Duration
        /// The longest wait between attempts.
        public var maximum: Duration

        /// Creates a backoff policy.
        /// - Parameters:
        ///   - initial: the wait after the first failed attempt (positive).
        ///   - maximum: the longest wait (at least `initial`).
        public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(2)) {
            self.initial = initial
            self.maximum = maximum
        }
    }

    /// The server to connect to.
    public var endpoint: Endpoint
    /// The ACL user for `AUTH user password`; `nil` authenticates as the default user
    /// (`AUTH password`), as servers configured with `requirepass` expect.
    public var username: String?
    /// The password for `AUTH`; `nil` skips authentication. Never printed.
    public var password: String?
    /// The logical database chosen with `SELECT` on every connection (0 by default).
    public var database: Int
    /// The longest wait for a TCP or Unix-socket connection to be established.
    public var connectTimeout: Duration
    /// The longest wait for the server to accept a write or send a reply. A server that stops
    /// answering makes calls fail with ``CacheError/Code/timeout`` after this long, and the
    /// connection is replaced.
    public var commandTimeout: Duration
    /// How many connections the backend keeps, each owned by its own thread.
    ///
    /// Commands issued concurrently share round trips on each connection (automatic
    /// pipelining), so a few connections serve many tasks; more connections add parallelism on
    /// the server's network threads and the client's cores.
    public var poolSize: Int
    /// The wait between reconnection attempts.
    public var reconnectBackoff: Backoff
    /// The `COUNT` hint of the `SCAN` pages that ``RedisBackend/clear(prefix:)`` walks.
    public var scanCount: Int
    /// Whether the batch `get` of ``RedisBackend`` also reads each key's remaining TTL
    /// (one `PTTL` per key, pipelined with the `MGET`). Off by default: the entries' `ttl` is
    /// then `nil`, and a batch of 100 keys costs about half as much. The single-key `get`
    /// always reads the TTL.
    public var batchGetReadsTTL: Bool
    /// The largest value ``RedisBackend`` sends, in bytes (Redis refuses more than
    /// `proto-max-bulk-len`, 512 MiB by default).
    public var maxValueSize: Int

    /// Options for a TCP server.
    ///
    /// ```swift
    /// var configuration = RedisConfiguration(host: "cache.internal")
    /// configuration.password = secrets.redisPassword
    /// ```
    /// - Parameters:
    ///   - host: a host name or IP address.
    ///   - port: the TCP port (6379 by default).
    ///   - username: the ACL user, or `nil` for the default user.
    ///   - password: the `AUTH` password, or `nil` for none.
    ///   - database: the database number for `SELECT`.
    ///   - connectTimeout: the longest wait to connect.
    ///   - commandTimeout: the longest wait for a reply.
    ///   - poolSize: the number of connections.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        poolSize: Int = RedisConfiguration.defaultPoolSize
    ) {
        self.endpoint = .tcp(host: host, port: port)
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.reconnectBackoff = Backoff()
        self.scanCount = 1000
        self.batchGetReadsTTL = false
        self.maxValueSize = 512 * 1024 * 1024
    }

    /// Options for a server listening on a Unix domain socket.
    ///
    /// ```swift
    /// let configuration = RedisConfiguration(unixSocket: "/run/redis/redis.sock")
    /// ```
    /// - Parameters:
    ///   - path: the socket's path.
    ///   - username: the ACL user, or `nil` for the default user.
    ///   - password: the `AUTH` password, or `nil` for none.
    ///   - database: the database number for `SELECT`.
    ///   - connectTimeout: the longest wait to connect.
    ///   - commandTimeout: the longest wait for a reply.
    ///   - poolSize: the number of connections.
    public init(
        unixSocket path: String,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        poolSize: Int = RedisConfiguration.defaultPoolSize
    ) {
        self.init(
            host: "", port: 0, username: username, password: password, database: database,
            connectTimeout: connectTimeout, commandTimeout: commandTimeout, poolSize: poolSize
        )
        self.endpoint = .unixSocket(path: path)
    }

    /// The default number of connections: 2.
    ///
    /// Automatic pipelining lets two connections carry the load of hundreds of concurrent
    /// tasks; raise it when one client process drives a server with many cores of its own.
    public static let defaultPoolSize = 2

    /// Checks every option and throws the first problem found.
    /// - Throws: ``CacheError/Code/configuration`` naming the bad option.
    public func validate() throws(CacheError) {
        switch endpoint {
        case .tcp(let host, let port):
            if host.isEmpty { throw Self.invalid("the host is empty") }
            if host.utf8.contains(0) { throw Self.invalid("the host contains a zero byte") }
            if !(1...65535).contains(port) { throw Self.invalid("port \(port) is outside 1...65535") }
        case .unixSocket(let path):
            if path.isEmpty { throw Self.invalid("the Unix socket path is empty") }
            if path.utf8.contains(0) { throw Self.invalid("the Unix socket path contains a zero byte") }
        }
        if password == nil, username != nil {
            throw Self.invalid("username \(String(reflecting: username ?? "")) has no password; set both, or neither")
        }
        if database < 0 { throw Self.invalid("database \(database) is negative") }
        if connectTimeout <= .zero { throw Self.invalid("connectTimeout \(connectTimeout) is not positive") }
        if commandTimeout <= .zero { throw Self.invalid("commandTimeout \(commandTimeout) is not positive") }
        if poolSize < 1 || poolSize > 1024 { throw Self.invalid("poolSize \(poolSize) is outside 1...1024") }
        if reconnectBackoff.initial <= .zero || reconnectBackoff.maximum < reconnectBackoff.initial {
            throw Self.invalid("reconnectBackoff needs 0 < initial <= maximum")
        }
        if scanCount < 1 { throw Self.invalid("scanCount \(scanCount) is not positive") }
        if maxValueSize < 0 { throw Self.invalid("maxValueSize \(maxValueSize) is negative") }
    }

    static func invalid(_ problem: String) -> CacheError {
        CacheError(.configuration, "invalid Redis configuration: \(problem)")
    }
}

extension RedisConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The configuration as a URL with the password replaced by `***`, plus the options a URL
    /// does not show.
    public var description: String {
        "\(redactedURL) (pool \(poolSize), connect timeout \(connectTimeout), command timeout \(commandTimeout))"
    }

    public var debugDescription: String { "RedisConfiguration(\(description))" }

    /// A mirror without the password, so that `dump(configuration)` and debuggers do not show it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "endpoint": endpoint as Any,
                "username": username as Any,
                "password": (password == nil ? "nil" : "***") as Any,
                "database": database as Any,
                "connectTimeout": connectTimeout as Any,
                "commandTimeout": commandTimeout as Any,
                "poolSize": poolSize as Any,
                "reconnectBackoff": reconnectBackoff as Any,
                "scanCount": scanCount as Any,
                "batchGetReadsTTL": batchGetReadsTTL as Any,
                "maxValueSize": maxValueSize as Any,
            ],
            displayStyle: .struct
        )
    }

    /// The server's address as a URL with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        var credentials = ""
        if password != nil {
            credentials = (username.map { RedisURLParser.percentEncode($0) } ?? "") + ":***@"
        }
        switch endpoint {
        case .tcp:
            return "redis://\(credentials)\(endpoint)" + (database == 0 ? "" : "/\(database)")
        case .unixSocket(let path):
            return "unix://\(credentials)\(path)" + (database == 0 ? "" : "?db=\(database)")
        }
    }
}
