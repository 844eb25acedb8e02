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

    /// Whether `address` accepts a TCP connection within `timeout`; the error text otherwise.
    static func tcp(_ address: HostPort, timeout: Duration) async -> String? {
        do {
            return try await worker.run { connectError(address, timeoutMilliseconds: Int32(clamping: timeout.nanoseconds / 1_000_000)) }
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

    /// nil when the connection succeeded.
    private static func connectError(_ address: HostPort, timeoutMilliseconds: Int32) -> String? {
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
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return nil }
            guard errno == EINPROGRESS else { lastError = String(cString: strerror(errno)); continue }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&pfd, 1, timeoutMilliseconds)
            if ready == 0 { lastError = "no answer within \(timeoutMilliseconds) ms"; continue }
            if ready < 0 { lastError = String(cString: strerror(errno)); continue }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError == 0 { return nil }
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
