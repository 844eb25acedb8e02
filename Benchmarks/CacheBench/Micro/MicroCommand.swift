import ArgumentParser

struct MicroCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "micro", abstract: "Measure the core's hot paths.")
    func run() async throws {}
}
