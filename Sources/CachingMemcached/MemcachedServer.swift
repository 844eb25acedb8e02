import Caching

/// One memcached server: where it listens, and its share of the keys.
///
/// ```swift
/// let servers = [
///     MemcachedServer(host: "10.0.0.1"),                       // port 11211, weight 1
///     MemcachedServer(host: "10.0.0.2", port: 11212, weight: 2), // twice the keys of the first
/// ]
/// let backend = try MemcachedBackend(configuration: .init(servers: servers))
/// ```
///
/// With consistent (ketama) hashing a server's weight sets how many points it has on the
/// hash ring, so a server of weight 2 receives about twice the keys of one of weight 1.
public struct MemcachedServer: Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address (IPv6 without brackets).
    public var host: String
    /// The TCP port.
    public var port: Int
    /// The server's relative share of the keys, at least 1.
    public var weight: Int

    /// Creates a server description.
    /// - Parameters:
    ///   - host: the host name or IP address; an IPv6 address is written without brackets.
    ///   - port: the TCP port, 11211 by default.
    ///   - weight: the server's relative share of the keys, 1 by default.
    public init(host: String, port: Int = 11211, weight: Int = 1) {
        self.host = host
        self.port = port
        self.weight = weight
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Parses a server list: `memcached://host:port,host2:port2` or the same without the scheme.
    ///
    /// Each server is `host`, `host:port` or `host:port:weight`; an IPv6 address goes in
    /// brackets (`[::1]:11211`). Spaces around commas are ignored.
    /// - Throws: ``CacheError/Code/configuration`` when the text is not such a list.
    public static func parseList(_ text: String) throws(CacheError) -> [MemcachedServer] {
        var rest = Substring(text.trimmingSpaces)
        if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            let scheme = rest[..<colon].lowercased()
            guard scheme == "memcached" else {
                throw CacheError(.configuration, "memcached server list \(String(reflecting: text)) has scheme \(String(reflecting: scheme)); use memcached://host:port,host2:port2")
            }
            rest = rest[colon...].dropFirst(3)
        }
        if rest.contains("/") || rest.contains("?") || rest.contains("@") {
            throw CacheError(.configuration, "memcached server list \(String(reflecting: text)) has a path, query or user part; write only memcached://host:port,host2:port2 and set options in MemcachedBackend.Configuration")
        }
        var servers: [MemcachedServer] = []
        for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
            servers.append(try parseOne(String(item).trimmingSpaces, in: text))
        }
        if servers.isEmpty {
            throw CacheError(.configuration, "memcached server list \(String(reflecting: text)) names no server")
        }
        return servers
    }

    private static func parseOne(_ item: String, in text: String) throws(CacheError) -> MemcachedServer {
        func bad(_ why: String) -> CacheError {
            CacheError(.configuration, "memcached server \(String(reflecting: item)) in \(String(reflecting: text)): \(why); write host, host:port or host:port:weight")
        }
        guard !item.isEmpty else { throw bad("empty entry") }
        var host: String
        var numbers: [Substring]
        if item.hasPrefix("[") {
            guard let close = item.firstIndex(of: "]") else { throw bad("an IPv6 address without its closing bracket") }
            host = String(item[item.index(after: item.startIndex)..<close])
            let tail = item[item.index(after: close)...]
            if tail.isEmpty {
                numbers = []
            } else {
                guard tail.hasPrefix(":") else { throw bad("unexpected text after the IPv6 address") }
                numbers = tail.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
            }
        } else {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 3 else { throw bad("too many ':' (write an IPv6 address in brackets)") }
            host = String(parts[0])
            numbers = Array(parts.dropFirst())
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" }) else { throw bad("no host") }
        var server = MemcachedServer(host: host)
        if numbers.count >= 1 {
            guard let port = Int(numbers[0]), (1...65535).contains(port) else { throw bad("the port is not a number from 1 to 65535") }
            server.port = port
        }
        if numbers.count == 2 {
            guard let weight = Int(numbers[1]), weight >= 1 else { throw bad("the weight is not a positive number") }
            server.weight = weight
        }
        if numbers.count > 2 { throw bad("too many ':'") }
        return server
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
