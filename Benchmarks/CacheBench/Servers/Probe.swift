import Caching

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks whether something accepts TCP connections, with a short timeout, off the
/// cooperative pool (name resolution and `poll` block).
enum Probe {
    private static let worker = BlockingWorker(name: "cache-bench-probe")

    /// What to send after connecting, and the replies that show the right kind of server.
    struct Handshake: Sendable {
        var request: String
        var replies: [String]
        var server: String

        /// Redis answers PING with +PONG, or with an error when it wants AUTH.
        static let redis = Handshake(request: "PING\r\n", replies: ["+PONG", "-NOAUTH", "-WRONGPASS", "-ERR"], server: "a Redis server")
        /// memcached answers `version` with `VERSION x.y.z`.
        static let memcached = Handshake(request: "version\r\n", replies: ["VERSION "], server: "a memcached server")
    }

    /// Whether `address` accepts a TCP connection within `timeout` (and, with `handshake`,
    /// answers like the expected server); the error text otherwise.
    static func tcp(_ address: HostPort, timeout: Duration, handshake: Handshake? = nil) async -> String? {
        do {
            return try await worker.run {
                connectError(address, timeoutMilliseconds: Int32(clamping: timeout.nanoseconds / 1_000_000), handshake: handshake)
            }
        } catch {
            return describe(error)
        }
    }

    /// Whether a Unix socket accepts connections.
    static func unix(_ path: String) async -> String? {
        do {
            return try await worker.run { () -> String? in
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
                defer { close(fd) }
                var addr = sockaddr_un()
                addr.sun_family = sa_family_t(AF_UNIX)
                let bytes = Array(path.utf8)
                guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return "socket path too long" }
                withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                    for (i, b) in bytes.enumerated() { raw[i] = b }
                }
                let rc = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                return rc == 0 ? nil : String(cString: strerror(errno))
            }
        } catch {
            return describe(error)
        }
    }

    /// Sends the handshake's request on the connected socket `fd` and checks the reply.
    private static func handshakeError(_ fd: Int32, _ handshake: Handshake, timeoutMilliseconds: Int32) -> String? {
        let request = Array(handshake.request.utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return "cannot send: \(String(cString: strerror(errno)))"
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        let deadline = nowNanos() + UInt64(timeoutMilliseconds) * 1_000_000
        while !reply.contains(UInt8(ascii: "\n")) && reply.count < 256 {
            let left = Int64(deadline) - Int64(nowNanos())
            if left <= 0 { return "connected, but no answer within \(timeoutMilliseconds) ms: is it \(handshake.server)?" }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(left / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return "the connection was closed without an answer: is it \(handshake.server)?" }
            reply.append(contentsOf: buffer[0..<n])
        }
        let text = String(decoding: reply, as: UTF8.self)
        if handshake.replies.contains(where: { text.hasPrefix($0) }) { return nil }
        let firstLine = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return "it answered '\(firstLine.prefix(60))', not like \(handshake.server)"
    }

    /// nil when the connection (and handshake) succeeded.
    private static func connectError(_ address: HostPort, timeoutMilliseconds: Int32, handshake: Handshake?) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard rc == 0, let first = list else {
            return "cannot resolve \(address.host): \(String(cString: gai_strerror(rc)))"
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            defer { close(fd) }
            let flags = fcntl(fd, F_GETFL, 0)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                return handshake.flatMap { handshakeError(fd, $0, timeoutMilliseconds: timeoutMilliseconds) }
            }
            guard errno == EINPROGRESS else { lastError = String(cString: strerror(errno)); continue }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&pfd, 1, timeoutMilliseconds)
            if ready == 0 { lastError = "no answer within \(timeoutMilliseconds) ms"; continue }
            if ready < 0 { lastError = String(cString: strerror(errno)); continue }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError == 0 {
                return handshake.flatMap { handshakeError(fd, $0, timeoutMilliseconds: timeoutMilliseconds) }
            }
            lastError = String(cString: strerror(soError))
        }
        return lastError
    }

    /// A TCP port on 127.0.0.1 that is free now (the kernel picks it).
    static func freeLoopbackPort() throws(BenchError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("cannot create a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw BenchError("cannot bind a loopback port: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw BenchError("cannot read a loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
