#if Vapor
import CachingHTTP
import NIOCore
import Synchronization
import Vapor

/// The producer of a streamed Vapor response body (`Response.Body(stream:)`,
/// `Response.Body(asyncStream:)`, `managedAsyncStream`, `FileIO` streams), so that the cache can
/// read the body chunk by chunk and stop at its size limit instead of buffering it whole.
///
/// Vapor keeps a body's stream (`Response.BodyStream`, `Response.AsyncBodyStream`: a `count`
/// and a `callback`) `internal`, and offers middleware only `Response.Body.collect(on:)`, which
/// reads the whole stream into one buffer whatever its size. The stream is found here with
/// Swift's reflection (`Mirror`), and read only when it has exactly the expected shape: the
/// enum case `stream`/`asyncStream` holding a struct whose stored properties are `count: Int`
/// and `callback` of exactly Vapor's callback type, with the size and alignment of
/// ``EventLoopStreamLayout``/``AsyncStreamLayout``. If a future Vapor lays the body out
/// differently, ``init(_:)`` returns `nil` and the middleware falls back to collecting only
/// declared lengths within the limit, never buffering an unknown one; the tests
/// `streamedBodyOfUnknownLength*` then fail, so the change is noticed.
struct StreamedBody: Sendable {
    typealias EventLoopCallback = @Sendable (any BodyStreamWriter) -> Void
    typealias AsyncCallback = @Sendable (any AsyncBodyStreamWriter) async throws -> Void

    /// The layout of Vapor's `Response.BodyStream`.
    struct EventLoopStreamLayout {
        let count: Int
        let callback: EventLoopCallback
    }

    /// The layout of Vapor's `Response.AsyncBodyStream`.
    struct AsyncStreamLayout {
        let count: Int
        let callback: AsyncCallback
    }

    enum Producer: Sendable {
        /// `Response.Body(stream:)`: a callback that writes with promises from its event loop.
        case eventLoop(EventLoopCallback)
        /// `Response.Body(asyncStream:)` and `managedAsyncStream`.
        case async(AsyncCallback)
    }

    /// The declared length, or `-1` when unknown (chunked).
    let count: Int
    let producer: Producer

    /// The stream inside `body`, or `nil` when the body is in memory, empty, or not a stream of
    /// the expected shape.
    init?(_ body: Response.Body) {
        guard let storage = Mirror(reflecting: body).descendant("storage") else { return nil }
        let cases = Mirror(reflecting: storage)
        guard cases.displayStyle == .enum, let payload = cases.children.first else { return nil }
        let stream = Mirror(reflecting: payload.value)
        guard stream.displayStyle == .struct, stream.children.map(\.label) == ["count", "callback"],
            let callback = stream.descendant("callback")
        else { return nil }
        // Casting the callback out of `Any` is not an option: a function value cast from `Any`
        // to an `async` function type crashes when called (Swift 6.3). The struct holding it is
        // copied instead, as the struct of the same layout.
        switch payload.label {
        case "stream":
            guard type(of: callback) == EventLoopCallback.self,
                let layout = Self.reinterpret(payload.value, as: EventLoopStreamLayout.self)
            else { return nil }
            self.count = layout.count
            self.producer = .eventLoop(layout.callback)
        case "asyncStream":
            guard type(of: callback) == AsyncCallback.self,
                let layout = Self.reinterpret(payload.value, as: AsyncStreamLayout.self)
            else { return nil }
            self.count = layout.count
            self.producer = .async(layout.callback)
        default:
            return nil
        }
    }

    /// `value` read as a `Layout`, when both have the same size, alignment and stride.
    ///
    /// Safe for the callers above: they have checked that `Value` is a struct whose stored
    /// properties are exactly those of `Layout`, in the same order and of the same types, and
    /// two such structs have the same layout.
    private static func reinterpret<Value, Layout>(_ value: Value, as _: Layout.Type) -> Layout? {
        guard MemoryLayout<Value>.size == MemoryLayout<Layout>.size,
            MemoryLayout<Value>.alignment == MemoryLayout<Layout>.alignment,
            MemoryLayout<Value>.stride == MemoryLayout<Layout>.stride
        else { return nil }
        return unsafeBitCast(value, to: Layout.self)
    }

    /// Starts the producer, collecting its chunks up to `limit` bytes.
    /// - Parameters:
    ///   - limit: The largest body collected.
    ///   - eventLoop: The event loop an event-loop producer writes from (the request's).
    func collect(limit: Int, eventLoop: any EventLoop) -> StreamingBodyCollector<ByteBuffer> {
        switch producer {
        case .async(let callback):
            return StreamingBodyCollector(limit: limit, size: { $0.readableBytes }) { sink in
                try await callback(SinkAsyncBodyStreamWriter(sink: sink))
            }
        case .eventLoop(let callback):
            return StreamingBodyCollector(limit: limit, size: { $0.readableBytes }) { sink in
                let bridge = SinkBodyStreamWriter(eventLoop: eventLoop)
                defer { bridge.close() }
                eventLoop.execute { callback(bridge) }
                try await bridge.forward(to: sink)
            }
        }
    }
}

/// Writes a Vapor async stream into a collector's sink; the producer suspends while an
/// overflowing body waits for its consumer.
struct SinkAsyncBodyStreamWriter: AsyncBodyStreamWriter {
    let sink: StreamingBodyCollector<ByteBuffer>.Sink

    func write(_ result: BodyStreamResult) async throws {
        switch result {
        case .buffer(let buffer):
            try await sink.write(buffer)
        case .end:
            sink.finish()
        case .error(let error):
            sink.fail(error)
            throw error
        }
    }
}

/// Takes the writes of an event-loop producer (which may call `write` from any thread, with or
/// without a promise) in order, and forwards them to a collector's sink from an async task.
///
/// A write's promise succeeds once the sink has taken the chunk, so a producer that waits for
/// its promises (as `FileIO` does) is held back while an overflowing body waits for the client,
/// and nothing beyond the limit is buffered. A producer that ignores its promises queues its
/// chunks here, as it would queue them in the channel without the cache.
final class SinkBodyStreamWriter: BodyStreamWriter {
    typealias Item = (result: BodyStreamResult, promise: EventLoopPromise<Void>?)

    struct State {
        var items: [Item] = []
        var waiter: CheckedContinuation<Item?, Never>?
        var closed = false
    }

    let eventLoop: any EventLoop
    let state = Mutex(State())

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func write(_ result: BodyStreamResult, promise: EventLoopPromise<Void>?) {
        enum Action { case fail, deliver(CheckedContinuation<Item?, Never>), queued }
        let action: Action = state.withLock { state in
            if state.closed { return .fail }
            if let waiter = state.waiter {
                state.waiter = nil
                return .deliver(waiter)
            }
            state.items.append((result, promise))
            return .queued
        }
        switch action {
        case .fail: promise?.fail(CancellationError())
        case .deliver(let waiter): waiter.resume(returning: (result, promise))
        case .queued: break
        }
    }

    /// The next write, or `nil` once closed (or when the calling task is cancelled).
    func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
                enum Action { case item(Item), end, wait }
                let action: Action = state.withLock { state in
                    if !state.items.isEmpty { return .item(state.items.removeFirst()) }
                    if state.closed { return .end }
                    state.waiter = continuation
                    return .wait
                }
                switch action {
                case .item(let item): continuation.resume(returning: item)
                case .end: continuation.resume(returning: nil)
                case .wait: break
                }
            }
        } onCancel: {
            close()
        }
    }

    /// Forwards every write to `sink` until the producer ends the stream.
    /// - Throws: The producer's `.error`, the sink's `CancellationError` when the consumer went
    ///   away, or `CancellationError` when the task is cancelled.
    func forward(to sink: StreamingBodyCollector<ByteBuffer>.Sink) async throws {
        while let (result, promise) = await next() {
            switch result {
            case .buffer(let buffer):
                do {
                    try await sink.write(buffer)
                } catch {
                    promise?.fail(error)
                    throw error
                }
                promise?.succeed(())
            case .end:
                sink.finish()
                promise?.succeed(())
                return
            case .error(let error):
                sink.fail(error)
                promise?.fail(error)
                throw error
            }
        }
        throw CancellationError()
    }

    /// Refuses further writes and fails the promises of those not forwarded, so none leaks.
    func close() {
        let (items, waiter): ([Item], CheckedContinuation<Item?, Never>?) = state.withLock { state in
            state.closed = true
            defer {
                state.items = []
                state.waiter = nil
            }
            return (state.items, state.waiter)
        }
        waiter?.resume(returning: nil)
        for item in items { item.promise?.fail(CancellationError()) }
    }
}
#endif
