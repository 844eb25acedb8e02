import Caching

/// What the runner calls: the operations of a workload on one target, by key index.
///
/// A client is made for one workload on one backend; it holds the keys and the values to write.
///
/// The calls are `nonisolated(nonsending)` (SE-0461): they run on the calling task's executor, as a
/// user's own code calling ``CacheFront`` does, so the harness adds no executor switch (and no
/// look-up of the task's executor preference) per call on top of the library's.
protocol BenchClient: Sendable {
    /// Gets one key; returns whether it hit.
    nonisolated(nonsending) func get(_ index: Int) async throws -> Bool
    /// Gets several keys in one call; returns how many hit.
    nonisolated(nonsending) func getMany(_ indices: [Int]) async throws -> Int
    /// Sets one key to value variant `variant`.
    nonisolated(nonsending) func set(_ index: Int, variant: Int) async throws
    /// Sets several keys in one call.
    nonisolated(nonsending) func setMany(_ indices: [Int], variant: Int) async throws
    /// Deletes one key.
    nonisolated(nonsending) func delete(_ index: Int) async throws
    /// Deletes several keys in one call.
    nonisolated(nonsending) func deleteMany(_ indices: [Int]) async throws
    /// Writes every key once, so that gets hit.
    func preload(progress: @Sendable (Int) -> Void) async throws
    /// The executor the caller tasks prefer (SE-0417), or nil for the default (the global pool).
    var taskExecutor: (any TaskExecutor)? { get }
}

extension BenchClient {
    /// No executor preference: the callers run on the global executor.
    var taskExecutor: (any TaskExecutor)? { nil }
}

/// A client over a swift-caching front and backend: the path a user's code takes.
///
/// `Value` is `[UInt8]` for the `raw` coder (stored as is) or ``BenchRecord`` for the typed
/// coders.
struct FrontClient<Value: Codable & Sendable>: BenchClient {
    let front: CacheFront
    let keys: [String]
    let values: [Value]
    let ttl: Duration?
    /// See ``BenchClient/taskExecutor``; set for `sqlite-executor`.
    var taskExecutor: (any TaskExecutor)? = nil

    // `@_specialize`: the runner calls clients through `any BenchClient`, whose witnesses for a generic
    // struct run unspecialized (generic metadata lookups, dynamic casts in the coder dispatch, about
    // 0.3 µs per call) unless a specialized body exists; user code calling `CacheFront.get` with a
    // concrete type gets the specialized path, so the harness should measure that one.
    @_specialize(where Value == [UInt8])
    @_specialize(where Value == BenchRecord)
    nonisolated(nonsending) func get(_ index: Int) async throws -> Bool {
        try await front.get(keys[index], as: Value.self) != nil
    }

    // Specialized for the same reason as `get(_:)`: unspecialized, the front's batch get pays a
    // metadata lookup and a dynamic cast per key (several µs per batch of 100).
    @_specialize(where Value == [UInt8])
    @_specialize(where Value == BenchRecord)
    nonisolated(nonsending) func getMany(_ indices: [Int]) async throws -> Int {
        let found = try await front.get(indices.map { keys[$0] }, as: Value.self)
        var hits = 0
        for value in found where value != nil { hits += 1 }
        return hits
    }

    @_specialize(where Value == [UInt8])
    @_specialize(where Value == BenchRecord)
    nonisolated(nonsending) func set(_ index: Int, variant: Int) async throws {
        try await front.set(values[variant], forKey: keys[index], ttl: ttl)
    }

    nonisolated(nonsending) func setMany(_ indices: [Int], variant: Int) async throws {
        let value = values[variant]
        var items: [String: Value] = [:]
        items.reserveCapacity(indices.count)
        for index in indices { items[keys[index]] = value }
        try await front.set(items, ttl: ttl)
    }

    nonisolated(nonsending) func delete(_ index: Int) async throws {
        try await front.delete(keys[index])
    }

    nonisolated(nonsending) func deleteMany(_ indices: [Int]) async throws {
        try await front.delete(indices.map { keys[$0] })
    }

    func preload(progress: @Sendable (Int) -> Void) async throws {
        let chunk = 100
        var start = 0
        while start < keys.count {
            let end = min(keys.count, start + chunk)
            var items: [String: Value] = [:]
            for index in start..<end { items[keys[index]] = values[index % values.count] }
            try await front.set(items, ttl: ttl)
            start = end
            progress(start)
        }
    }
}
