import ArgumentParser

struct EvictionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eviction", abstract: "Compare InMemoryBackend's hit ratio with an exact LRU.")
    func run() async throws {}
}
