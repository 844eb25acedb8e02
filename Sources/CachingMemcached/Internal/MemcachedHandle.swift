#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CLibmemcached
import Caching

/// An item as memcached returned it.
struct MemcachedItem: Sendable {
    var value: [UInt8]
    var flags: UInt32
    var cas: UInt64
}

/// A libmemcached status code with the library's description of what happened.
struct MemcachedStatus: Error, Sendable, CustomStringConvertible {
    var raw: UInt32
    var message: String

    var code: memcached_return_t { memcached_return_t(rawValue: raw) }
    var description: String { message }

    /// True for the failures that say the server or the connection is broken (rather than
    /// the request), which mark the server down.
    var isConnectionFailure: Bool {
        switch code {
        case MEMCACHED_CONNECTION_FAILURE, MEMCACHED_CONNECTION_SOCKET_CREATE_FAILURE, MEMCACHED_TIMEOUT,
             MEMCACHED_ERRNO, MEMCACHED_SERVER_TEMPORARILY_DISABLED, MEMCACHED_SERVER_MARKED_DEAD,
             MEMCACHED_HOST_LOOKUP_FAILURE, MEMCACHED_WRITE_FAILURE, MEMCACHED_READ_FAILURE,
             MEMCACHED_UNKNOWN_READ_FAILURE, MEMCACHED_PROTOCOL_ERROR, MEMCACHED_PARTIAL_READ,
             MEMCACHED_NO_SERVERS, MEMCACHED_FAILURE, MEMCACHED_SOME_ERRORS, MEMCACHED_IN_PROGRESS,
             MEMCACHED_CONNECTION_BIND_FAILURE, MEMCACHED_FAIL_UNIX_SOCKET:
            return true
        default:
            return false
        }
    }
}

/// A connection to one server that can read keys and reports what its calls said about the
/// server (a libmemcached handle, or the text-protocol ``MemcachedTextReader``).
protocol MemcachedLink: AnyObject {
    /// Set when a call failed in a way that says the connection or server is broken.
    var connectionFailure: MemcachedStatus? { get }
    /// Set when a call reached the server and got an answer.
    var answered: Bool { get }
    /// Multi-gets sent since the connection last collected the count.
    var multiGets: Int { get set }
    /// Reads `keys` in one round trip; the items come back aligned with `keys`, `nil` for misses.
    func get(_ keys: [MemcachedKey]) throws(MemcachedStatus) -> [MemcachedItem?]
    /// Forgets the last failure (after the connection reported it).
    func clearFailureState()
    /// Closes the connection, so that the next call connects again.
    func reset()
    /// Lets the next call try the server even if a back-off of the link's own is running.
    func allowRetry()
}

/// One libmemcached handle (`memcached_st`) talking to one server in the binary protocol:
/// writes, deletes, counters, CAS (plain reads go through ``MemcachedTextReader``).
///
/// Not thread-safe, like the handle it wraps: a ``MemcachedConnection`` creates it and only its
/// own thread uses it.
final class MemcachedHandle: MemcachedLink {
    let server: MemcachedServer
    private let memc: UnsafeMutablePointer<memcached_st>
    private let result: UnsafeMutablePointer<memcached_result_st>
    /// Set when a call failed in a way that says the connection or server is broken; the
    /// connection clears it after reporting to the server's health.
    private(set) var connectionFailure: MemcachedStatus?
    /// Set when a call reached the server and got an answer.
    private(set) var answered = false
    /// Multi-gets sent since the connection last collected the count.
    var multiGets = 0

    init(server: MemcachedServer, configuration: MemcachedBackend.Configuration) throws(CacheError) {
        self.server = server
        guard let memc = memcached_create(nil) else {
            throw CacheError(.internalError, "memcached_create failed: out of memory")
        }
        self.memc = memc
        result = .allocate(capacity: 1)
        result.initialize(to: memcached_result_st())
        _ = memcached_result_create(memc, result)
        let rc = memcached_server_add_with_weight(memc, server.host, in_port_t(server.port), UInt32(server.weight))
        guard rc == MEMCACHED_SUCCESS else {
            let message = String(cString: memcached_strerror(memc, rc))
            throw CacheError(.configuration, "memcached server \(server) cannot be used: \(message)")
        }
        let ioMilliseconds = configuration.ioTimeout.libmemcachedMilliseconds
        let behaviors: [(memcached_behavior_t, UInt64)] = [
            (MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1),
            (MEMCACHED_BEHAVIOR_TCP_NODELAY, 1),
            (MEMCACHED_BEHAVIOR_TCP_KEEPALIVE, 1),
            (MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1),
            (MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, configuration.connectTimeout.libmemcachedMilliseconds),
            (MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ioMilliseconds),
            (MEMCACHED_BEHAVIOR_SND_TIMEOUT, ioMilliseconds * 1000),
            (MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ioMilliseconds * 1000),
            // libmemcached's own back-off after a failed connect, the same as ours (see ServerHealth).
            (MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, configuration.retryTimeout.wholeSecondsRoundedUp),
            // Never eject: one server per handle, and moving keys would serve stale values later.
            (MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 0),
        ]
        for (behavior, value) in behaviors {
            let rc = memcached_behavior_set(memc, behavior, value)
            guard rc == MEMCACHED_SUCCESS else {
                let message = String(cString: memcached_strerror(memc, rc))
                throw CacheError(.internalError, "libmemcached refused behavior \(behavior.rawValue) = \(value): \(message)")
            }
        }
    }

    deinit {
        memcached_result_free(result)
        result.deallocate()
        memcached_free(memc)
    }

    /// Forgets the last failure (after the connection reported it).
    func clearFailureState() {
        connectionFailure = nil
        answered = false
    }

    /// Closes the connection, so that the next call reconnects; needed after a timeout, when a
    /// late answer could otherwise be read as the answer to the next request.
    func reset() {
        memcached_quit(memc)
    }

    /// Lets libmemcached try the server on the next call even if its own back-off is running.
    func allowRetry() {
        if let instance = memcached_server_instance_by_position(memc, 0) {
            memcached_instance_next_retry(instance, 0)
        }
    }

    /// Records `rc` and returns it as an error.
    private func status(_ rc: memcached_return_t) -> MemcachedStatus {
        var text = String(cString: memcached_strerror(memc, rc))
        if let detail = memcached_last_error_message(memc) {
            let detailText = String(cString: detail)
            if !detailText.isEmpty && detailText != text { text += " (\(detailText))" }
        }
        let status = MemcachedStatus(raw: rc.rawValue, message: text)
        if status.isConnectionFailure {
            if connectionFailure == nil { connectionFailure = status }
        } else {
            answered = true
        }
        return status
    }

    // MARK: Commands

    /// Reads `keys` in one round trip (GETKQ for each, then NOOP); the items come back aligned
    /// with `keys`, `nil` for misses.
    func get(_ keys: [MemcachedKey]) throws(MemcachedStatus) -> [MemcachedItem?] {
        if keys.isEmpty { return [] }
        let total = keys.reduce(0) { $0 + $1.bytes.count }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
        let pointers = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: keys.count)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: keys.count)
        defer {
            buffer.deallocate()
            pointers.deallocate()
            lengths.deallocate()
        }
        var offset = 0
        for (index, key) in keys.enumerated() {
            key.bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { UnsafeMutableRawPointer(buffer + offset).copyMemory(from: base, byteCount: raw.count) }
            }
            pointers[index] = UnsafePointer(buffer + offset)
            lengths[index] = key.bytes.count
            offset += key.bytes.count
        }
        multiGets += 1
        let rc = memcached_mget(memc, pointers, lengths, keys.count)
        guard rc == MEMCACHED_SUCCESS else { throw status(rc) }
        var items = [MemcachedItem?](repeating: nil, count: keys.count)
        // One server answers in request order, skipping misses: match by walking forward.
        var cursor = 0
        while true {
            var fetched = MEMCACHED_SUCCESS
            guard let item = memcached_fetch_result(memc, result, &fetched) else {
                if fetched == MEMCACHED_END || fetched == MEMCACHED_NOTFOUND { break }
                throw status(fetched)
            }
            let keyPointer = memcached_result_key_value(item)
            let keyLength = memcached_result_key_length(item)
            var position = cursor
            while position < keys.count && !keys[position].matches(keyPointer, keyLength) { position += 1 }
            if position == keys.count {
                guard let earlier = keys[..<cursor].firstIndex(where: { $0.matches(keyPointer, keyLength) }) else { continue }
                position = earlier
            } else {
                cursor = position + 1
            }
            let value = Self.bytes(memcached_result_value(item), memcached_result_length(item))
            items[position] = MemcachedItem(value: value, flags: memcached_result_flags(item), cas: memcached_result_cas(item))
        }
        answered = true
        return items
    }

    private static func bytes(_ pointer: UnsafePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }

    /// The storage commands.
    enum Store {
        case set, add, cas(UInt64)
    }

    /// SET, ADD or CAS. Returns `MEMCACHED_SUCCESS`, or for ADD and CAS the "not stored" codes
    /// (`MEMCACHED_NOTSTORED`, `MEMCACHED_DATA_EXISTS`, `MEMCACHED_NOTFOUND`); throws on others.
    func store(_ command: Store, key: MemcachedKey, value: [UInt8], expiry: MemcachedExpiry.Plan) throws(MemcachedStatus) -> memcached_return_t {
        let rc: memcached_return_t = key.bytes.withUnsafeBufferPointer { keyBuffer in
            value.withUnsafeBufferPointer { valueBuffer in
                keyBuffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: keyBuffer.count) { keyPointer in
                    let empty: StaticString = ""
                    let valuePointer = valueBuffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(empty.utf8Start)
                    let valueChars = valuePointer.assumingMemoryBound(to: CChar.self)
                    switch command {
                    case .set:
                        return memcached_set(memc, keyPointer, keyBuffer.count, valueChars, value.count, expiry.exptime, expiry.flags)
                    case .add:
                        return memcached_add(memc, keyPointer, keyBuffer.count, valueChars, value.count, expiry.exptime, expiry.flags)
                    case .cas(let cas):
                        return memcached_cas(memc, keyPointer, keyBuffer.count, valueChars, value.count, expiry.exptime, expiry.flags, cas)
                    }
                }
            }
        }
        switch rc {
        case MEMCACHED_SUCCESS:
            answered = true
            return rc
        case MEMCACHED_NOTSTORED, MEMCACHED_DATA_EXISTS, MEMCACHED_NOTFOUND:
            if case .set = command { throw status(rc) }
            answered = true
            return rc
        default:
            throw status(rc)
        }
    }

    /// DELETE; returns whether the key was there.
    func delete(_ key: MemcachedKey) throws(MemcachedStatus) -> Bool {
        let rc = key.bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                memcached_delete(memc, $0, buffer.count, 0)
            }
        }
        switch rc {
        case MEMCACHED_SUCCESS:
            answered = true
            return true
        case MEMCACHED_NOTFOUND:
            answered = true
            return false
        default:
            throw status(rc)
        }
    }

    /// The arithmetic commands.
    enum Arithmetic {
        /// INCR or DECR of an existing counter: `MEMCACHED_NOTFOUND` when it is missing.
        case increment(UInt64), decrement(UInt64)
        /// INCR or DECR that creates a missing counter with `initial` (binary protocol only).
        case incrementWithInitial(UInt64, initial: UInt64, exptime: time_t)
        case decrementWithInitial(UInt64, initial: UInt64, exptime: time_t)
    }

    /// Runs INCR or DECR. Returns the new value, or `nil` when the key is missing (plain forms).
    /// A value that is not a number makes the server answer with an error that libmemcached
    /// reports as `MEMCACHED_UNKNOWN_READ_FAILURE` (it also closes the connection); that is
    /// thrown with ``MemcachedStatus/isConnectionFailure`` cleared by the caller's check.
    func arithmetic(_ command: Arithmetic, key memcachedKey: MemcachedKey) throws(MemcachedStatus) -> UInt64? {
        var value: UInt64 = 0
        let key = memcachedKey.bytes
        let rc = key.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: key.count) { keyPointer in
                switch command {
                case .increment(let delta):
                    return memcached_increment_by_key(memc, keyPointer, key.count, keyPointer, key.count, delta, &value)
                case .decrement(let delta):
                    return memcached_decrement_by_key(memc, keyPointer, key.count, keyPointer, key.count, delta, &value)
                case .incrementWithInitial(let delta, let initial, let exptime):
                    return memcached_increment_with_initial(memc, keyPointer, key.count, delta, initial, exptime, &value)
                case .decrementWithInitial(let delta, let initial, let exptime):
                    return memcached_decrement_with_initial(memc, keyPointer, key.count, delta, initial, exptime, &value)
                }
            }
        }
        switch rc {
        case MEMCACHED_SUCCESS:
            answered = true
            return value
        case MEMCACHED_NOTFOUND:
            answered = true
            return nil
        default:
            throw status(rc)
        }
    }

    /// Forgets a connection failure that was in fact the server refusing an INCR of a value
    /// that is not a number (see ``arithmetic(_:key:)``).
    func forgiveArithmeticFailure() {
        connectionFailure = nil
        answered = true
    }
}
