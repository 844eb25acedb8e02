/// A host and port.
struct HostPort: Sendable, Equatable, CustomStringConvertible {
    var host: String
    var port: Int
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Where a Redis server is, parsed from `redis://[user:password@]host[:port][/db]` or
/// `unix:///path/to/socket[?db=N]`. The password is kept for connecting and never printed.
struct RedisAddress: Sendable, Equatable {
    var url: String
    var host: String
    var port: Int
    var unixPath: String?
    var username: String?
    var password: String?
    var database: Int

    /// The URL with the password masked, for messages and reports.
    var display: String {
        if let unixPath { return "unix://" + unixPath + (database > 0 ? "?db=\(database)" : "") }
        var text = "redis://"
        if password != nil { text += (username.map { $0 + ":" } ?? ":") + "***@" }
        text += HostPort(host: host, port: port).description
        if database > 0 { text += "/\(database)" }
        return text
    }

    static func parse(_ text: String) throws(BenchError) -> RedisAddress {
        func bad(_ why: String) -> BenchError {
            BenchError("invalid --redis URL '\(maskPassword(text))': \(why) (expected redis://[user:password@]host[:port][/db] or unix:///path)")
        }
        if text.hasPrefix("unix://") {
            var rest = String(text.dropFirst("unix://".count))
            var database = 0
            if let q = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: q)...]
                rest = String(rest[..<q])
                for item in query.split(separator: "&") {
                    let pair = item.split(separator: "=", maxSplits: 1)
                    if pair.count == 2, pair[0] == "db" {
                        guard let n = Int(pair[1]), n >= 0 else { throw bad("db must be a number") }
                        database = n
                    }
                }
            }
            guard rest.hasPrefix("/") else { throw bad("the socket path must be absolute") }
            return RedisAddress(url: text, host: "", port: 0, unixPath: rest, username: nil, password: nil, database: database)
        }
        var rest: Substring
        if text.hasPrefix("redis://") {
            rest = text.dropFirst("redis://".count)
        } else if text.hasPrefix("rediss://") {
            throw bad("TLS (rediss://) is not supported")
        } else if text.contains("://") {
            throw bad("unknown scheme")
        } else {
            rest = Substring(text)
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0 else { throw bad("the database after / must be a number") }
                database = n
            }
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                password = String(credentials)
            }
        }
        let hostPort = try HostPort.parse(String(rest), defaultPort: 6379, what: "--redis", original: maskPassword(text))
        return RedisAddress(url: text, host: hostPort.host, port: hostPort.port, unixPath: nil,
                            username: username, password: password, database: database)
    }

    /// `text` with anything between `://user:` and `@` replaced by `***`.
    static func maskPassword(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text.lastIndex(of: "@"), at > scheme.upperBound else { return text }
        let credentials = text[scheme.upperBound..<at]
        let user = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return String(text[..<scheme.upperBound]) + user + ":***" + String(text[at...])
    }
}

extension HostPort {
    /// Parses `host`, `host:port` or `[v6]:port`.
    static func parse(_ text: String, defaultPort: Int, what: String, original: String? = nil) throws(BenchError) -> HostPort {
        let shown = original ?? text
        var host = text
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw BenchError("bad \(what) address '\(shown)': missing ]") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw BenchError("bad \(what) address '\(shown)': the port must be a number") }
                port = p
            } else if !after.isEmpty {
                throw BenchError("bad \(what) address '\(shown)'")
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            guard let p = Int(text[text.index(after: colon)...]) else {
                throw BenchError("bad \(what) address '\(shown)': the port must be a number")
            }
            port = p
        }
        guard !host.isEmpty else { throw BenchError("bad \(what) address '\(shown)': no host") }
        guard (1...65535).contains(port) else { throw BenchError("bad \(what) address '\(shown)': port \(port) is out of range") }
        return HostPort(host: host, port: port)
    }

    /// Parses a memcached server list: `host:port,host:port`, optionally `memcached://...`.
    static func parseMemcached(_ text: String) throws(BenchError) -> [HostPort] {
        var rest = Substring(text)
        if rest.hasPrefix("memcached://") { rest = rest.dropFirst("memcached://".count) }
        let parts = rest.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        guard !parts.isEmpty else {
            throw BenchError("bad --memcached '\(text)': give servers as host:port[,host:port]")
        }
        var servers: [HostPort] = []
        for part in parts {
            servers.append(try parse(part, defaultPort: 11211, what: "--memcached"))
        }
        return servers
    }
}
