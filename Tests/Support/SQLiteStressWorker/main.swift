// A helper process for the multi-process tests of CachingSQLite (Tests/CachingSQLiteTests).
//
//   SQLiteStressWorker stress PATH WORKER COUNT
//       COUNT rounds on the store at PATH: set its own key, increment a shared counter, try to `add`
//       a key that every worker contends for, read back its own earlier keys and the other workers'.
//       Prints "ok adds=N" and exits 0, or prints the first error and exits 1.
//   SQLiteStressWorker set PATH KEY VALUE
//       Stores VALUE (UTF-8) at KEY in the store at PATH, closes it, prints "ok" and exits 0: a write
//       from another process, for the tests that check a reader sees it at once.
//   SQLiteStressWorker open-as-nobody PATH
//       Drops root privileges (uid/gid 65534), opens PATH, and prints "code=CODE message" of the
//       CacheError it gets (exit 0), or "opened" (exit 2). Lets a test running as root check the
//       read-only errors, which root itself never hits.
import Caching
import CachingSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func fail(_ message: String) -> Never {
    print("error: \(message)")
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: SQLiteStressWorker stress PATH WORKER COUNT | set PATH KEY VALUE | open-as-nobody PATH") }

switch arguments[1] {
case "stress":
    guard arguments.count == 5, let worker = Int(arguments[3]), let count = Int(arguments[4]) else {
        fail("usage: SQLiteStressWorker stress PATH WORKER COUNT")
    }
    do {
        let backend = try await SQLiteBackend(path: arguments[2])
        var adds = 0
        for i in 0..<count {
            let own = "mp:w\(worker):\(i)"
            try await backend.set(own, to: Array("w\(worker)-\(i)".utf8), ttl: .seconds(600))
            _ = try await backend.increment("mp:counter", by: 1, ttl: nil)
            if try await backend.add("mp:add:\(i)", value: Array("w\(worker)".utf8), ttl: .seconds(600)) { adds += 1 }
            if i % 10 == 0 {
                let earlier = "mp:w\(worker):\(i / 2)"
                guard try await backend.get(earlier)?.value == Array("w\(worker)-\(i / 2)".utf8) else {
                    fail("worker \(worker) lost its own write \(earlier)")
                }
                _ = try await backend.get(["mp:w0:\(i)", "mp:w1:\(i)", "mp:w2:\(i)"])
            }
            if i % 100 == 0 {
                try await backend.set([(key: "mp:batch:w\(worker):\(i)", value: [1, 2, 3])], ttl: nil)
            }
        }
        try await backend.close()
        print("ok adds=\(adds)")
        exit(0)
    } catch {
        fail("worker \(worker): \(error)")
    }

case "set":
    guard arguments.count == 5 else { fail("usage: SQLiteStressWorker set PATH KEY VALUE") }
    do {
        let backend = try await SQLiteBackend(path: arguments[2])
        try await backend.set(arguments[3], to: Array(arguments[4].utf8), ttl: nil)
        try await backend.close()
        print("ok")
        exit(0)
    } catch {
        fail("set: \(error)")
    }

case "open-as-nobody":
    if getuid() == 0 {
        guard setgid(65534) == 0, setuid(65534) == 0 else { fail("cannot drop privileges to uid 65534") }
    }
    do {
        let backend = try await SQLiteBackend(path: arguments[2])
        try await backend.close()
        print("opened")
        exit(2)
    } catch let error as CacheError {
        print("code=\(error.code) \(error.message)")
        exit(0)
    } catch {
        fail("unexpected error \(error)")
    }

default:
    fail("unknown mode \(arguments[1])")
}
