import Caching

extension RedisConfiguration {
    /// Options read from a Redis URL.
    ///
    /// Accepted forms:
    /// - `redis://[[username]:password@]host[:port][/database][?options]` — TCP; the port
    ///   defaults to 6379, the database to 0; an IPv6 host goes in brackets (`redis://[::1]:6379`).
    /// - `unix://[[username]:password@]/path/to/redis.sock[?options]` — a Unix domain socket.
    ///
    /// The user and password may be percent-encoded (`%40` for `@`). Options in the query:
    /// `db` (database), `pool_size`, `connect_timeout` and `command_timeout` (seconds, decimals
    /// allowed), `username`, `password`. TLS (`rediss://`) is not supported.
    ///
    /// ```swift
    /// let local = try RedisConfiguration(url: "redis://127.0.0.1:6379")
    /// let acl = try RedisConfiguration(url: "redis://cache:s3cret@10.0.0.5:6380/3?command_timeout=0.5")
    /// let socket = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=1&pool_size=4")
    /// ```
    /// - Parameter url: the URL.
    /// - Throws: ``CacheError/Code/configuration`` saying what is wrong; the message never
    ///   contains the password.
    public init(url: String) throws(CacheError) {
        self = try RedisURLParser.parse(url)
        try validate()
    }
}

/// A small, strict parser for Redis URLs (no Foundation).
enum RedisURLParser {
    static func parse(_ url: String) throws(CacheError) -> RedisConfiguration {
        let scheme: Substring
        let rest: Substring
        if let range = url.firstRange(of: "://") {
            scheme = url[..<range.lowerBound]
            rest = url[range.upperBound...]
        } else {
            throw RedisConfiguration.invalid("the URL has no scheme; write redis://host:port or unix:///path.sock")
        }
        switch scheme.lowercased() {
        case "redis":
            return try parseTCP(rest)
        case "unix", "redis+unix":
            return try parseUnix(rest)
        case "rediss":
            throw RedisConfiguration.invalid("TLS (rediss://) is not supported; use redis:// on a trusted network or a TLS tunnel")
        default:
            throw RedisConfiguration.invalid("unknown URL scheme \(String(reflecting: String(scheme.prefix(20)))); use redis:// or unix://")
        }
    }

    private static func parseTCP(_ rest: Substring) throws(CacheError) -> RedisConfiguration {
        let (beforeQuery, query) = split(rest, at: "?")
        let (authority, path) = splitPath(beforeQuery)
        let (userInfo, hostPort) = splitUserInfo(authority)
        let (host, port) = try parseHostPort(hostPort)
        var configuration = RedisConfiguration(host: host, port: port)
        if let userInfo { try applyUserInfo(userInfo, to: &configuration) }
        if let path, !path.isEmpty, path != "/" {
            let digits = path.dropFirst()
            guard let database = Int(digits), database >= 0 else {
                throw RedisConfiguration.invalid("the URL path must be a database number, as in redis://host:6379/2")
            }
            configuration.database = database
        }
        if let query { try applyQuery(query, to: &configuration) }
        return configuration
    }

    private static func parseUnix(_ rest: Substring) throws(CacheError) -> RedisConfiguration {
        let (beforeQuery, query) = split(rest, at: "?")
        var pathPart = beforeQuery
        var userInfo: Substring?
        if !beforeQuery.hasPrefix("/") {
            guard let at = beforeQuery.lastIndex(of: "@") else {
                throw RedisConfiguration.invalid("a unix:// URL needs an absolute socket path, as in unix:///run/redis.sock")
            }
            userInfo = beforeQuery[..<at]
            pathPart = beforeQuery[beforeQuery.index(after: at)...]
        }
        guard pathPart.hasPrefix("/"), pathPart.count > 1 else {
            throw RedisConfiguration.invalid("a unix:// URL needs an absolute socket path, as in unix:///run/redis.sock")
        }
        var configuration = RedisConfiguration(unixSocket: try percentDecode(pathPart, what: "socket path"))
        if let userInfo { try applyUserInfo(userInfo, to: &configuration) }
        if let query { try applyQuery(query, to: &configuration) }
        return configuration
    }

    private static func split(_ text: Substring, at separator: Character) -> (Substring, Substring?) {
        guard let index = text.firstIndex(of: separator) else { return (text, nil) }
        return (text[..<index], text[text.index(after: index)...])
    }

    private static func splitPath(_ text: Substring) -> (authority: Substring, path: Substring?) {
        // The authority ends at the first "/" after the last "@" (a password may contain "/").
        let searchStart = text.lastIndex(of: "@").map { text.index(after: $0) } ?? text.startIndex
        guard let slash = text[searchStart...].firstIndex(of: "/") else { return (text, nil) }
        return (text[..<slash], text[slash...])
    }

    private static func splitUserInfo(_ authority: Substring) -> (userInfo: Substring?, hostPort: Substring) {
        guard let at = authority.lastIndex(of: "@") else { return (nil, authority) }
        return (authority[..<at], authority[authority.index(after: at)...])
    }

    private static func parseHostPort(_ text: Substring) throws(CacheError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw RedisConfiguration.invalid("an IPv6 host needs a closing bracket, as in redis://[::1]:6379")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw RedisConfiguration.invalid("unexpected text after the IPv6 host")
                }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        if host.isEmpty {
            throw RedisConfiguration.invalid("the URL has no host, as in redis://127.0.0.1:6379")
        }
        var port = 6379
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw RedisConfiguration.invalid("the port must be a number in 1...65535")
            }
            port = value
        }
        host = Substring(try percentDecode(host, what: "host"))
        return (String(host), port)
    }

    private static func applyUserInfo(_ userInfo: Substring, to configuration: inout RedisConfiguration) throws(CacheError) {
        guard let colon = userInfo.firstIndex(of: ":") else {
            throw RedisConfiguration.invalid(
                "the URL has a user but no password; write redis://:PASSWORD@host for requirepass, or redis://USER:PASSWORD@host for an ACL user"
            )
        }
        let user = try percentDecode(userInfo[..<colon], what: "user name")
        let password = try percentDecode(userInfo[userInfo.index(after: colon)...], what: "password")
        configuration.username = user.isEmpty ? nil : user
        configuration.password = password
    }

    private static func applyQuery(_ query: Substring, to configuration: inout RedisConfiguration) throws(CacheError) {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (name, valueText) = split(pair, at: "=")
            let value = try percentDecode(valueText ?? "", what: "query option")
            switch name {
            case "db":
                guard let database = Int(value), database >= 0 else {
                    throw RedisConfiguration.invalid("db must be a database number")
                }
                configuration.database = database
            case "pool_size":
                guard let size = Int(value) else { throw RedisConfiguration.invalid("pool_size must be a number") }
                configuration.poolSize = size
            case "connect_timeout":
                configuration.connectTimeout = try seconds(value, option: "connect_timeout")
            case "command_timeout":
                configuration.commandTimeout = try seconds(value, option: "command_timeout")
            case "username":
                configuration.username = value.isEmpty ? nil : value
            case "password":
                configuration.password = value
            default:
                throw RedisConfiguration.invalid(
                    "unknown URL option \(String(reflecting: String(name.prefix(40)))); known: db, pool_size, connect_timeout, command_timeout, username, password"
                )
            }
        }
    }

    private static func seconds(_ text: String, option: String) throws(CacheError) -> Duration {
        guard let value = Double(text), value.isFinite, value > 0, value < 86_400 * 365 else {
            throw RedisConfiguration.invalid("\(option) must be a positive number of seconds, such as 0.5")
        }
        return .microseconds(Int64((value * 1_000_000).rounded(.up)))
    }

    /// Decodes `%XX` escapes. The error never echoes the text, which may be a password.
    static func percentDecode(_ text: Substring, what: String) throws(CacheError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw RedisConfiguration.invalid("the \(what) has a bad percent escape (write %XX with two hex digits)")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw RedisConfiguration.invalid("the \(what) is not valid UTF-8 once percent-decoded")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Percent-encodes everything but unreserved characters, for printing a user name in a URL.
    static func percentEncode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%"
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return result
    }
}
