import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The things to undo when the run ends, however it ends: servers to stop, files to remove.
///
/// Actions run in reverse order of registration, once, on normal exit, on an error, and on
/// SIGINT / SIGTERM / SIGHUP (then the process exits with 128 + the signal number).
final class Cleanup: Sendable {
    static let shared = Cleanup()

    private struct Action {
        var id: Int
        var name: String
        var run: @Sendable () -> Void
    }

    private let actions = Mutex<[Action]>([])
    private let nextID = Atomic<Int>(0)
    /// Signal sources must stay alive for as long as the handlers are wanted.
    private let sources = Mutex<[SignalSource]>([])

    /// A signal source kept alive for the life of the process.
    ///
    /// `@unchecked Sendable`: the source is created, resumed and then only retained; nothing
    /// calls it after it is stored.
    private struct SignalSource: @unchecked Sendable {
        let source: any DispatchSourceSignal
    }

    private init() {}

    /// Registers `action`; returns an id that ``remove(_:)`` takes.
    @discardableResult
    func add(_ name: String, _ action: @escaping @Sendable () -> Void) -> Int {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        actions.withLock { $0.append(Action(id: id, name: name, run: action)) }
        return id
    }

    /// Runs and removes one action (when the run is done with what it undoes).
    func run(_ id: Int) {
        let action = actions.withLock { list -> Action? in
            guard let index = list.firstIndex(where: { $0.id == id }) else { return nil }
            return list.remove(at: index)
        }
        action?.run()
    }

    /// Runs every registered action, newest first.
    func runAll() async {
        runAllNow()
    }

    fileprivate func runAllNow() {
        let list = actions.withLock { list -> [Action] in
            defer { list.removeAll() }
            return list
        }
        for action in list.reversed() { action.run() }
    }

    /// Installs the signal handlers (once, at start-up).
    func installSignalHandlers() {
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                Terminal.clearProgress()
                Terminal.writeError("cache-bench: interrupted (signal \(signalNumber)); stopping servers and removing temporary files")
                runAllNow()
                exit(128 + signalNumber)
            }
            source.resume()
            sources.withLock { $0.append(SignalSource(source: source)) }
        }
    }
}
