#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts the operating-system threads that do blocking work off Swift's cooperative pool: the
/// one place that calls `pthread_create`, for ``BlockingWorker`` and the connection, queue and
/// executor threads of the SQLite, Redis and memcached backends.
///
/// Package-internal plumbing, not public API:
/// ```swift
/// switch OSThread.start({ connection.threadMain() }) {
/// case .success(let thread): self.thread = thread          // join or detach it later
/// case .failure(let error): throw CacheError(.internalError, "no thread (pthread_create: \(error.code))")
/// }
/// ```
package enum OSThread {
    /// `pthread_create` failed with `code` (`EAGAIN`: the process or system is out of threads).
    package struct StartError: Error {
        package let code: Int32
    }

    /// Starts a thread that runs `body` once and ends.
    ///
    /// The thread keeps `body` (and what it captures) alive until it returns. The caller owns the
    /// returned handle: it must join or detach it, once.
    /// - Returns: the new thread's handle, or the error of `pthread_create` (then `body` is
    ///   released without running).
    package static func start(_ body: @escaping @Sendable () -> Void) -> Result<pthread_t, StartError> {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        #if canImport(Darwin)
        var tid: pthread_t?
        #else
        var tid = pthread_t()
        #endif
        let rc = pthread_create(&tid, nil, { raw in
            #if !canImport(Darwin)
            guard let raw else { return nil }
            #endif
            Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, box)
        #if canImport(Darwin)
        guard rc == 0, let tid else {
            Unmanaged<Body>.fromOpaque(box).release()
            return .failure(StartError(code: rc == 0 ? EAGAIN : rc))
        }
        #else
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            return .failure(StartError(code: rc))
        }
        #endif
        return .success(tid)
    }

    /// Ends the caller's ownership of `thread`: joins it (waits for it to return) when `join` is
    /// true and it is not the calling thread, which would wait for itself; detaches it otherwise,
    /// so that it is reaped when it returns. Call it once per thread, off the cooperative pool
    /// when joining.
    package static func end(_ thread: pthread_t, join: Bool) {
        if join && pthread_equal(thread, pthread_self()) == 0 {
            pthread_join(thread, nil)
        } else {
            pthread_detach(thread)
        }
    }

    /// The closure, as an object whose reference passes through `pthread_create`'s pointer.
    private final class Body: Sendable {
        let run: @Sendable () -> Void

        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
