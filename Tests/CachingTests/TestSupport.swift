import Caching
import CachingTesting
import Synchronization

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
