import Caching
import Synchronization

/// A backend whose every operation fails, as a server outage would look to the front.
struct FailingBackend: CacheBackend {
    var name: String { "failing" }
    func fail() -> CacheError { CacheError(.connectionFailed, "test backend is down") }
    func get(_ key: String) async throws -> CacheEntry? { throw fail() }
    func set(_ key: String, to value: [UInt8], ttl: Duration?) async throws { throw fail() }
    func delete(_ key: String) async throws -> Bool { throw fail() }
    func clear(prefix: String) async throws { throw fail() }
    func close() async throws {}
}

/// Counts calls from many tasks.
final class CallCounter: Sendable {
    private let value = Atomic<Int>(0)
    @discardableResult
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var count: Int { value.load(ordering: .relaxed) }
}

struct Person: Codable, Sendable, Equatable {
    var id: Int
    var name: String
    var email: String
    var score: Double
    var active: Bool

    static let alice = Person(id: 1, name: "Alice", email: "alice@example.com", score: 9.5, active: true)
    static let bob = Person(id: 2, name: "Bob", email: "bob@example.com", score: 7.25, active: false)
}

struct TestFailure: Error {}
