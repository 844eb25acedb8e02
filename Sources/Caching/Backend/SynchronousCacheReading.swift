/// A backend that can also read without suspending: ``getSynchronously(_:)`` answers from
/// memory the calling thread reaches at once, with no I/O and no waiting for another thread.
///
/// A read that never suspends still pays for being `async` when its caller is not already in
/// a task: a Vapor middleware, for one, has to start a `Task` for every request it answers
/// asynchronously. ``CacheFront/getSynchronously(_:as:)`` reads through this protocol, so such
/// a caller can answer a hit on the spot and start a task only for what needs one (a miss that
/// calls the endpoint, a backend that must wait for a server).
///
/// ```swift
/// let backend = InMemoryBackend()
/// try await backend.set("greeting", to: Array("hello".utf8), ttl: .seconds(30))
/// let entry = try backend.getSynchronously("greeting")   // CacheEntry(value: [104, ...], ttl: ~30 s)
/// ```
///
/// Conform only when a read can never block: no socket, no file, no lock held for more than a
/// few memory accesses. ``InMemoryBackend`` conforms; the SQLite, Redis and Memcached backends
/// do not, since their reads do I/O on a thread of their own.
public protocol SynchronousCacheReading: CacheBackend {
    /// The stored bytes and their remaining TTL, or `nil` on a miss: what ``CacheBackend/get(_:)``
    /// returns, without suspending. Both reads see the same entries and mark them read the same
    /// way (for eviction).
    /// - Throws: The errors ``CacheBackend/get(_:)`` throws for the same key and state (an empty
    ///   key, a closed backend).
    func getSynchronously(_ key: String) throws(CacheError) -> CacheEntry?
}
