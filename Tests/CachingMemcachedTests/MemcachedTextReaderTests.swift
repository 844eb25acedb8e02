import Caching
@testable import CachingMemcached
import Foundation
import Testing

/// The text-protocol reader against a scripted server: replies cut at every byte, values that
/// contain protocol text, error replies and a server that hangs up. Needs no memcached.
struct MemcachedTextReaderTests {
    /// A one-connection server on a free loopback port: it reads one request line, checks it, and
    /// writes `reply` in `chunk`-byte pieces with a pause between them (then closes, if asked).
    final class ScriptedServer: @unchecked Sendable {
        // @unchecked: `listener` is set in init and only read after; `request` is written by the
        // server thread before `done` is signalled and read by the test after waiting on it.
        let port: Int
        private let listener: Int32
        private(set) var request = ""
        private let done = DispatchSemaphore(value: 0)

        init(reply: [UInt8], chunk: Int, closeAfter: Bool = true) throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard listener >= 0 else { throw TestError("socket failed") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(listener, 1) == 0 else {
                close(listener)
                throw TestError("bind/listen failed")
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
            }
            self.listener = listener
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread.detachNewThread { [self] in
                defer { close(listener); done.signal() }
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                defer { if closeAfter { close(fd) } }
                var line: [UInt8] = []
                var byte: UInt8 = 0
                while read(fd, &byte, 1) == 1 {
                    line.append(byte)
                    if line.suffix(2) == [13, 10] { break }
                }
                request = String(decoding: line, as: UTF8.self)
                var offset = 0
                while offset < reply.count {
                    let count = min(chunk, reply.count - offset)
                    _ = reply[offset..<offset + count].withUnsafeBytes { write(fd, $0.baseAddress, count) }
                    offset += count
                    if offset < 256 { usleep(200) }   // the reader waits between the first pieces
                }
                if !closeAfter { usleep(300_000) }
            }
        }

        /// Waits for the server thread to finish (at most 5 s).
        func finish() -> Bool { done.wait(timeout: .now() + 5) == .success }
    }

    static func reader(port: Int) -> MemcachedTextReader {
        var configuration = MemcachedBackend.Configuration(servers: [MemcachedServer(host: "127.0.0.1", port: port)])
        configuration.ioTimeout = .seconds(2)
        return MemcachedTextReader(server: configuration.servers[0], configuration: configuration, spinSlots: nil)
    }

    static func keys(_ names: String...) -> [MemcachedKey] { names.map { MemcachedKey(Array($0.utf8)) } }

    /// What a read against a scripted server gave.
    struct Outcome: Sendable {
        var items: Result<[MemcachedItem?], MemcachedStatus>
        var request: String
        var connectionFailure: MemcachedStatus?
        var answered: Bool
        var serverFinished: Bool
    }

    /// Runs a read of `keys` against a server that answers `reply`, on a thread of its own: the
    /// reader and the scripted server block, which must not happen on the cooperative pool
    /// (other tests' tasks would wait for it).
    static func readScripted(_ keys: [MemcachedKey], reply: [UInt8], chunk: Int = 4096, closeAfter: Bool = true) async throws -> Outcome {
        let worker = BlockingWorker(name: "reader-test")
        defer { worker.shutdown() }
        return try await worker.run {
            let server = try ScriptedServer(reply: reply, chunk: chunk, closeAfter: closeAfter)
            let reader = reader(port: server.port)
            let items: Result<[MemcachedItem?], MemcachedStatus>
            do throws(MemcachedStatus) { items = .success(try reader.get(keys)) } catch { items = .failure(error) }
            let finished = server.finish()
            return Outcome(items: items, request: server.request, connectionFailure: reader.connectionFailure, answered: reader.answered, serverFinished: finished)
        }
    }

    @Test(arguments: [1, 3, 7, 4096])
    func repliesCutAnywhereParse(chunk: Int) async throws {
        // A value that contains protocol text, an empty value, a miss, and a value of 100 kB
        // (larger than the reader's first buffer).
        let big = [UInt8](repeating: 0x41, count: 100_000)
        var reply = Array("VALUE k1 5 11\r\nx\r\nEND\r\nVAL\r\n".utf8)
        reply += Array("VALUE k3 0 0\r\n\r\n".utf8)
        reply += Array("VALUE k4 4294967295 100000\r\n".utf8) + big + Array("\r\nEND\r\n".utf8)
        let outcome = try await Self.readScripted(Self.keys("k1", "k2", "k3", "k4"), reply: reply, chunk: chunk, closeAfter: false)
        #expect(outcome.serverFinished)
        #expect(outcome.request == "get k1 k2 k3 k4\r\n")
        let items = try outcome.items.get()
        #expect(items.count == 4)
        #expect(items.first??.value == Array("x\r\nEND\r\nVAL".utf8))
        #expect(items.first??.flags == 5)
        #expect(items.count > 1 && items[1] == nil)
        #expect(items.count > 2 && items[2]?.value == [])
        #expect(items.last??.value == big)
        #expect(items.last??.flags == UInt32.max)
        #expect(outcome.connectionFailure == nil)
        #expect(outcome.answered)
    }

    @Test func aServerErrorIsAnErrorOfTheRequestNotOfTheConnection() async throws {
        let outcome = try await Self.readScripted(Self.keys("k1"), reply: Array("SERVER_ERROR out of memory writing get response\r\n".utf8))
        #expect(outcome.serverFinished)
        guard case .failure(let status) = outcome.items else {
            Issue.record("a SERVER_ERROR reply was read as items")
            return
        }
        #expect(!status.isConnectionFailure)
        #expect(status.message.contains("out of memory"))
        #expect(outcome.connectionFailure == nil)
    }

    @Test func aServerThatHangsUpMidValueIsAConnectionFailure() async throws {
        let outcome = try await Self.readScripted(Self.keys("k1"), reply: Array("VALUE k1 0 10\r\nabc".utf8))
        #expect(outcome.serverFinished)
        guard case .failure(let status) = outcome.items else {
            Issue.record("a cut reply was read as items")
            return
        }
        #expect(status.isConnectionFailure)
        #expect(outcome.connectionFailure?.isConnectionFailure == true)
    }

    @Test func garbageIsAProtocolError() async throws {
        let outcome = try await Self.readScripted(Self.keys("k1"), reply: Array("VALUE k1 zero 3\r\nabc\r\nEND\r\n".utf8))
        #expect(outcome.serverFinished)
        guard case .failure(let status) = outcome.items else {
            Issue.record("a malformed reply was read as items")
            return
        }
        #expect(status.isConnectionFailure)
        #expect(status.message.contains("malformed VALUE line"))
    }

    @Test func aRefusedConnectIsAConnectionFailure() async throws {
        let worker = BlockingWorker(name: "reader-test")
        defer { worker.shutdown() }
        let result: Result<[MemcachedItem?], MemcachedStatus> = try await worker.run {
            // A port nothing listens on: a scripted server's, once it is done.
            let server = try ScriptedServer(reply: [], chunk: 1)
            if let poke = TestEnvironment.connectSocket(host: "127.0.0.1", port: server.port) { close(poke) }
            _ = server.finish()
            let reader = Self.reader(port: server.port)
            do throws(MemcachedStatus) { return .success(try reader.get(Self.keys("k1"))) } catch { return .failure(error) }
        }
        guard case .failure(let status) = result else {
            Issue.record("a read from a closed port returned items")
            return
        }
        #expect(status.isConnectionFailure)
    }
}
