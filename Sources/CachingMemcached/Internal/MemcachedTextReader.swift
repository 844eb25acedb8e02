#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CLibmemcached
import Caching

/// The connection that serves plain reads (`get`, `get(_ keys:)`): one socket to one server,
/// speaking memcached's text protocol (`get k1 k2 …`), with its own reply parser.
///
/// libmemcached's text-protocol reader copies each reply line byte by byte, tests every byte
/// of every returned key with `iscntrl` and `isspace` (two libc calls per byte), parses the
/// numbers with `strtoull` and copies each value into its result object, which the caller then
/// copies again: `perf` showed that work as most of a connection thread's time in a batch
/// read, about twice the C loop's whole client time per key (the backend's keys carry a
/// namespace token, so they are longer). This parser finds each line with `memchr`, reads the
/// numbers in place and copies each value once, from the receive buffer into its array.
///
/// The socket is non-blocking; every wait is a `poll` bounded by the I/O timeout (the connect
/// by the connect timeout), so a silent server costs at most that, and the connection is then
/// closed so that a late answer is never read as the answer to the next request. Any failure
/// closes the connection; the next read connects again.
///
/// Not thread-safe: a ``MemcachedConnection`` creates it and only its own thread uses it.
final class MemcachedTextReader: MemcachedLink {
    let server: MemcachedServer
    private let connectTimeout: Int32
    private let ioTimeout: Int32
    /// How long to poll the socket for a reply before sleeping in `poll`
    /// (``MemcachedBackend/Configuration/replySpin``), and whether replies are fast enough for it.
    private let replySpin: ReplyWait
    /// The limit on readers polling at once (``ReplySpinSlots``); `nil`: none.
    private let spinSlots: ReplySpinSlots?
    /// Counts the reads that polled for their reply (shared by a backend's readers, for tests
    /// and diagnostics).
    private let polledReads: PolledReads?
    /// Whether the next reads may poll for their reply (set by the connection thread: only for a
    /// request that is alone on its connection; always true on the `taskExecutor` thread).
    var mayPollForReply = true
    /// Reads since the last one that polled; while replies are slow, one read in 32 polls anyway,
    /// since a reply waited for in `poll` also pays the wake-up that polling would save.
    private var readsWithoutPolling = 0
    private var fd: Int32 = -1
    /// The receive buffer: `buffer[start..<end]` is received and not yet parsed.
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0
    /// The request being written (`get k1 k2 …\r\n`) and where each key is in it.
    private var list = MemcachedKeyList()
    /// Set when a call failed in a way that says the connection or server is broken; the
    /// connection clears it after reporting to the server's health.
    private(set) var connectionFailure: MemcachedStatus?
    /// Set when a call reached the server and got an answer.
    private(set) var answered = false
    /// Multi-gets sent since the connection last collected the count.
    var multiGets = 0

    /// The initial receive buffer; it grows to hold the largest value read.
    private static let initialCapacity = 64 * 1024

    /// Creates a reader for `server`.
    /// - Parameters:
    ///   - spinSlots: the limit on readers polling at once that this one counts against
    ///   (the process-wide one for pool connections); `nil` polls without one (the
    ///   `taskExecutor` thread, which runs one call at a time anyway).
    ///   - polledReads: where to count the reads that polled.
    init(
        server: MemcachedServer,
        configuration: MemcachedBackend.Configuration,
        spinSlots: ReplySpinSlots?,
        polledReads: PolledReads? = nil
    ) {
        self.server = server
        connectTimeout = Int32(configuration.connectTimeout.libmemcachedMilliseconds)
        ioTimeout = Int32(configuration.ioTimeout.libmemcachedMilliseconds)
        replySpin = ReplyWait(budget: configuration.replySpin)
        self.spinSlots = spinSlots
        self.polledReads = polledReads
        capacity = Self.initialCapacity
        buffer = .allocate(capacity: capacity)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    /// Forgets the last failure (after the connection reported it).
    func clearFailureState() {
        connectionFailure = nil
        answered = false
    }

    /// Closes the connection, so that the next call connects again.
    func reset() {
        close()
    }

    /// Nothing to do: the reader has no back-off of its own (the server's health decides when
    /// to try again).
    func allowRetry() {}

    private func close() {
        if fd >= 0 {
            _ = systemClose(fd)
            fd = -1
        }
        start = 0
        end = 0
    }

    /// Records a failure and returns it as an error; a connection failure also closes the socket.
    private func failure(_ code: memcached_return_t, _ message: String, closing: Bool = true) -> MemcachedStatus {
        let status = MemcachedStatus(raw: code.rawValue, message: message)
        if status.isConnectionFailure {
            if connectionFailure == nil { connectionFailure = status }
        } else {
            answered = true
        }
        if closing { close() }
        return status
    }

    private static func errorText(_ number: Int32) -> String {
        String(cString: strerror(number))
    }

    // MARK: Connecting

    private func connect() throws(MemcachedStatus) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(server.host, String(server.port), &hints, &list)
        guard rc == 0, let list else {
            throw failure(MEMCACHED_HOST_LOOKUP_FAILURE, "cannot resolve \(server.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError: MemcachedStatus?
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let address = entry {
            entry = address.pointee.ai_next
            do {
                try connect(to: address.pointee)
                return
            } catch {
                lastError = error
                connectionFailure = nil
            }
        }
        let status = lastError ?? MemcachedStatus(raw: MEMCACHED_CONNECTION_FAILURE.rawValue, message: "no address for \(server.host)")
        throw failure(status.code, status.message)
    }

    private func connect(to address: addrinfo) throws(MemcachedStatus) {
        #if canImport(Darwin)
        let socketType = address.ai_socktype
        #else
        let socketType = address.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #endif
        let socketFD = socket(address.ai_family, socketType, address.ai_protocol)
        guard socketFD >= 0 else {
            throw failure(MEMCACHED_CONNECTION_SOCKET_CREATE_FAILURE, "socket() failed: \(Self.errorText(errno))", closing: false)
        }
        fd = socketFD
        var one: Int32 = 1
        #if canImport(Darwin)
        _ = fcntl(socketFD, F_SETFL, fcntl(socketFD, F_GETFL) | O_NONBLOCK)
        _ = setsockopt(socketFD, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        _ = setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(socketFD, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        if systemConnect(socketFD, address.ai_addr, address.ai_addrlen) == 0 { return }
        guard errno == EINPROGRESS || errno == EINTR else {
            throw failure(MEMCACHED_CONNECTION_FAILURE, "connect failed: \(Self.errorText(errno))")
        }
        let ready = try wait(for: Int16(POLLOUT), timeout: connectTimeout, what: "connect")
        guard ready else { throw failure(MEMCACHED_TIMEOUT, "connect timed out") }
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(socketFD, SOL_SOCKET, SO_ERROR, &socketError, &length) == 0, socketError == 0 else {
            throw failure(MEMCACHED_CONNECTION_FAILURE, "connect failed: \(Self.errorText(socketError == 0 ? errno : socketError))")
        }
    }

    /// Polls the socket for `events`; false on timeout.
    private func wait(for events: Int16, timeout: Int32, what: String) throws(MemcachedStatus) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let rc = poll(&entry, 1, timeout)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno == EINTR { continue }
            throw failure(MEMCACHED_ERRNO, "poll during \(what) failed: \(Self.errorText(errno))")
        }
    }

    // MARK: Reading

    /// Reads `keys` with one `get k1 k2 …` in one round trip; the items come back aligned with
    /// `keys`, `nil` for misses. Items carry no CAS (the text `get` does not return one).
    func get(_ keys: [MemcachedKey]) throws(MemcachedStatus) -> [MemcachedItem?] {
        try get(count: keys.count) { list in
            for key in keys {
                list.beginKey()
                list.bytes.append(contentsOf: key.bytes)
                list.endKey()
            }
        }
    }

    /// Reads the `count` keys that `writeKeys` writes into the request (each between
    /// ``MemcachedKeyList/beginKey()`` and ``MemcachedKeyList/endKey()``), with no key object
    /// per key; the items come back in the order of the keys, `nil` for misses.
    func get(count: Int, _ writeKeys: (inout MemcachedKeyList) -> Void) throws(MemcachedStatus) -> [MemcachedItem?] {
        if count == 0 { return [] }
        if fd < 0 { try connect() }
        start = 0
        end = 0
        list.reset()
        writeKeys(&list)
        list.bytes.append(contentsOf: "\r\n".utf8)
        multiGets += 1
        try send()
        return try readItems()
    }

    /// Writes `request`; while the socket cannot take more, keeps receiving, so that a server
    /// that answers the start of a long multi-get is never blocked by us not reading.
    private func send() throws(MemcachedStatus) {
        var sent = 0
        let count = list.bytes.count
        while sent < count {
            let written = list.bytes.withUnsafeBytes { raw in
                systemSend(fd, raw.baseAddress.map { $0 + sent }, count - sent, sendFlags)
            }
            if written > 0 {
                sent += written
                continue
            }
            let error = errno
            if error == EINTR { continue }
            guard error == EAGAIN || error == EWOULDBLOCK else {
                throw failure(MEMCACHED_WRITE_FAILURE, "send failed: \(Self.errorText(error))")
            }
            guard try wait(for: Int16(POLLOUT) | Int16(POLLIN), timeout: ioTimeout, what: "send") else {
                throw failure(MEMCACHED_TIMEOUT, "no progress sending a request for \(ioTimeout) ms")
            }
            try receiveAvailable()
        }
    }

    /// Receives what the socket holds now (none is fine).
    private func receiveAvailable() throws(MemcachedStatus) {
        reserve(4096)
        let received = recv(fd, buffer + end, capacity - end, Int32(MSG_DONTWAIT))
        if received > 0 {
            end += received
        } else if received == 0 {
            throw failure(MEMCACHED_CONNECTION_FAILURE, "the server closed the connection")
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            throw failure(MEMCACHED_READ_FAILURE, "recv failed: \(Self.errorText(errno))")
        }
    }

    /// Tries to receive the reply without sleeping, for up to `nanoseconds` after `sentAt`: a
    /// non-blocking `recv`, a few spin-wait hints, and a `sched_yield` (so a server on this
    /// core runs) per turn. True once bytes came; false when the budget ran out or is 0 (the
    /// caller then sleeps in `poll`).
    private func spinForReply(_ nanoseconds: Int64, sentAt: Int64) throws(MemcachedStatus) -> Bool {
        if nanoseconds <= 0 { return false }
        reserve(4096)
        let deadline = sentAt + nanoseconds
        while true {
            let received = recv(fd, buffer + end, capacity - end, Int32(MSG_DONTWAIT))
            if received > 0 {
                end += received
                return true
            }
            if received == 0 { throw failure(MEMCACHED_CONNECTION_FAILURE, "the server closed the connection") }
            let error = errno
            guard error == EAGAIN || error == EWOULDBLOCK || error == EINTR else {
                throw failure(MEMCACHED_READ_FAILURE, "recv failed: \(Self.errorText(error))")
            }
            for _ in 0..<16 { clibmemcached_cpu_relax() }
            sched_yield()
            if Spin.now() >= deadline { return false }
        }
    }

    /// Makes room for at least `more` bytes after `end`, moving the unparsed bytes to the front
    /// of the buffer or growing it.
    private func reserve(_ more: Int) {
        if capacity - end >= more { return }
        if start > 0 {
            let pending = end - start
            if pending > 0 { memmove(buffer, buffer + start, pending) }   // the regions may overlap
            start = 0
            end = pending
            if capacity - end >= more { return }
        }
        var newCapacity = capacity
        while newCapacity - end < more { newCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        grown.update(from: buffer, count: end)
        buffer.deallocate()
        buffer = grown
        capacity = newCapacity
    }

    /// Waits for and receives more bytes (at least one), keeping room for `atLeast` in total
    /// after `start`.
    private func receiveMore(atLeast total: Int = 0) throws(MemcachedStatus) {
        reserve(max(4096, total - (end - start)))
        while true {
            let received = recv(fd, buffer + end, capacity - end, Int32(MSG_DONTWAIT))
            if received > 0 {
                end += received
                return
            }
            if received == 0 { throw failure(MEMCACHED_CONNECTION_FAILURE, "the server closed the connection") }
            let error = errno
            if error == EINTR { continue }
            guard error == EAGAIN || error == EWOULDBLOCK else {
                throw failure(MEMCACHED_READ_FAILURE, "recv failed: \(Self.errorText(error))")
            }
            guard try wait(for: Int16(POLLIN), timeout: ioTimeout, what: "read") else {
                throw failure(MEMCACHED_TIMEOUT, "no answer for \(ioTimeout) ms")
            }
        }
    }

    /// The end of the line that starts at `start` (the index of its `\r`), receiving until it is in.
    private func lineEnd() throws(MemcachedStatus) -> Int {
        var from = start
        while true {
            if end > from, let found = memchr(buffer + from, Int32(UInt8(ascii: "\n")), end - from) {
                let newline = buffer.distance(to: found.assumingMemoryBound(to: UInt8.self))
                guard newline > start, buffer[newline - 1] == UInt8(ascii: "\r") else {
                    throw failure(MEMCACHED_PROTOCOL_ERROR, "malformed reply line")
                }
                return newline - 1
            }
            from = end
            let offset = from - start
            if end - start > 1 << 20 { throw failure(MEMCACHED_PROTOCOL_ERROR, "reply line too long") }
            try receiveMore()
            from = start + offset
        }
    }

    private func readItems() throws(MemcachedStatus) -> [MemcachedItem?] {
        let keyCount = list.starts.count
        var items = [MemcachedItem?](repeating: nil, count: keyCount)
        // One server answers in request order, skipping misses: match by walking forward.
        var cursor = 0
        // With replySpin, poll for the reply a moment before sleeping, while recent replies came
        // within the budget (a server across a network stops the polling until they do again).
        var spin = mayPollForReply ? replySpin.budget() : 0
        if spin == 0 && mayPollForReply && replySpin.isEnabled {
            readsWithoutPolling += 1
            if readsWithoutPolling >= 32 {
                readsWithoutPolling = 0
                spin = replySpin.configuredBudget
            }
        }
        let sentAt = replySpin.isEnabled ? Spin.now() : 0
        if end == start {
            var replied = false
            // A poller keeps its core busy: only as many at once as the slots allow.
            if spin > 0, spinSlots?.acquire() ?? true {
                defer { spinSlots?.release() }
                polledReads?.count.add(1, ordering: .relaxed)
                replied = try spinForReply(spin, sentAt: sentAt)
            }
            if !replied {
                // Nothing came while sending, and the reply cannot be there yet: wait for it
                // before the first receive (which would otherwise fail with EAGAIN).
                guard try wait(for: Int16(POLLIN), timeout: ioTimeout, what: "read") else {
                    throw failure(MEMCACHED_TIMEOUT, "no answer for \(ioTimeout) ms")
                }
                try receiveMore()
            }
        }
        if replySpin.isEnabled { replySpin.record(Spin.now() - sentAt) }
        while true {
            let lineStop = try lineEnd()
            let line = UnsafeBufferPointer(start: buffer + start, count: lineStop - start)
            guard line.starts(with: Self.valuePrefix) else {
                if line.elementsEqual(Self.endLine) {
                    start = lineStop + 2
                    break
                }
                throw serverError(line)
            }
            guard let header = Self.parseValueHeader(line) else {
                throw failure(MEMCACHED_PROTOCOL_ERROR, "malformed VALUE line")
            }
            let headerLength = lineStop + 2 - start
            let needed = headerLength + header.length + 2
            // The key must be compared before the buffer moves: find its position now.
            let keyPointer = UnsafeRawPointer(buffer + start + header.keyStart).assumingMemoryBound(to: CChar.self)
            var position = cursor
            while position < keyCount && !list.key(position, matches: keyPointer, header.keyLength) { position += 1 }
            if position == keyCount {
                position = (0..<cursor).first { list.key($0, matches: keyPointer, header.keyLength) } ?? -1
            } else {
                cursor = position + 1
            }
            while end - start < needed { try receiveMore(atLeast: needed) }
            let data = buffer + start + headerLength
            guard data[header.length] == UInt8(ascii: "\r"), data[header.length + 1] == UInt8(ascii: "\n") else {
                throw failure(MEMCACHED_PROTOCOL_ERROR, "value not followed by CRLF")
            }
            if position >= 0 {
                items[position] = MemcachedItem(value: Array(UnsafeBufferPointer(start: data, count: header.length)), flags: header.flags, cas: 0)
            }
            start += needed
        }
        answered = true
        // Bytes after END answer nothing that was asked: start the next request on a new connection.
        if start != end { close() }
        return items
    }

    private static let valuePrefix = Array("VALUE ".utf8)
    private static let endLine = Array("END".utf8)

    /// The reply to a request the server refused (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`),
    /// or anything else it should not have sent. The connection is closed either way, so that
    /// the next request starts on a clean stream.
    private func serverError(_ line: UnsafeBufferPointer<UInt8>) -> MemcachedStatus {
        let text = String(decoding: line.prefix(200), as: UTF8.self)
        if line.starts(with: "SERVER_ERROR".utf8) {
            if text.contains("out of memory") { return failure(MEMCACHED_SERVER_MEMORY_ALLOCATION_FAILURE, text) }
            return failure(MEMCACHED_SERVER_ERROR, text)
        }
        if line.starts(with: "CLIENT_ERROR".utf8) { return failure(MEMCACHED_CLIENT_ERROR, text) }
        if line.elementsEqual("ERROR".utf8) { return failure(MEMCACHED_ERROR, text) }
        return failure(MEMCACHED_PROTOCOL_ERROR, "unexpected reply: \(text)")
    }

    /// The parts of `VALUE <key> <flags> <bytes> [<cas>]`, as offsets into the line.
    private static func parseValueHeader(_ line: UnsafeBufferPointer<UInt8>) -> (keyStart: Int, keyLength: Int, flags: UInt32, length: Int)? {
        var index = valuePrefix.count
        let keyStart = index
        while index < line.count && line[index] != UInt8(ascii: " ") { index += 1 }
        let keyLength = index - keyStart
        guard keyLength > 0, index < line.count else { return nil }
        index += 1
        guard let flags = number(line, &index), flags <= UInt64(UInt32.max), index < line.count, line[index] == UInt8(ascii: " ") else { return nil }
        index += 1
        guard let length = number(line, &index), length <= UInt64(Int32.max) else { return nil }
        return (keyStart, keyLength, UInt32(flags), Int(length))
    }

    /// The decimal number at `index`, which moves past it; nil if there is none or it overflows.
    private static func number(_ line: UnsafeBufferPointer<UInt8>, _ index: inout Int) -> UInt64? {
        let first = index
        var value: UInt64 = 0
        while index < line.count, line[index] >= UInt8(ascii: "0"), line[index] <= UInt8(ascii: "9") {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(line[index] - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = sum
            index += 1
        }
        return index > first ? value : nil
    }
}

/// Non-blocking, and a closed socket is an error rather than a SIGPIPE.
#if canImport(Darwin)
private let sendFlags = MSG_DONTWAIT
#else
private let sendFlags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
#endif

// The libc calls whose names the reader's own methods shadow.
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 { connect(fd, address, length) }
private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int { send(fd, bytes, count, flags) }

/// The keys of a text-protocol `get` request, written straight into the request bytes, with
/// where each one is (to match the reply's keys without a key object per key).
struct MemcachedKeyList {
    /// `get k1 k2 …` so far.
    var bytes: [UInt8] = []
    /// The start of each key in `bytes`.
    private(set) var starts: [Int] = []
    /// The end of each key in `bytes`.
    private(set) var ends: [Int] = []

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: "get".utf8)
        starts.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    /// Starts a key: append its bytes to ``bytes`` next, then call ``endKey()``.
    mutating func beginKey() {
        bytes.append(UInt8(ascii: " "))
        starts.append(bytes.count)
    }

    mutating func endKey() {
        ends.append(bytes.count)
    }

    /// Whether key `index` equals the `count` bytes at `pointer`.
    func key(_ index: Int, matches pointer: UnsafePointer<CChar>, _ count: Int) -> Bool {
        let start = starts[index]
        guard ends[index] - start == count else { return false }
        return bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return count == 0 }
            return memcmp(base + start, pointer, count) == 0
        }
    }
}
