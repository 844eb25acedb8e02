// cache-example-vapor: a Vapor 4 server showing HTTP response caching.
//
//   swift run --traits Vapor cache-example-vapor --port 8081
//   curl -i http://127.0.0.1:8081/slow      # X-Cache: MISS after ~200 ms
//   curl -i http://127.0.0.1:8081/slow      # X-Cache: HIT at once, same ETag
//
// Endpoints (all serve JSON):
//   /slow          cached 60 s; computing it takes 200 ms
//   /cached/hello  cached; trivial (to measure what a HIT costs)
//   /hello         the same trivial JSON without the cache middleware (a synchronous handler)
//   /async/hello   the same, from an `async` handler (what most Vapor routes are): Vapor runs
//                  it in a Task, as it runs every `AsyncMiddleware`, this cache included
//
// Listens on 127.0.0.1; the port comes from `--port N`, else the PORT environment variable,
// else 8080.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if Vapor
import Caching
import CachingHTTP
import CachingVapor
import Vapor

func port() -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--port"), index + 1 < arguments.count, let port = Int(arguments[index + 1]) {
        return port
    }
    if let value = getenv("PORT"), let port = Int(String(cString: value)) { return port }
    return 8080
}

let helloJSON = #"{"message":"hello","items":[1,2,3]}"#

func json(_ text: String) -> Response {
    var headers = HTTPHeaders()
    headers.contentType = .json
    return Response(status: .ok, headers: headers, body: .init(string: text))
}

// Vapor reads its own command line; keep only the program name so `--port` is ours.
var environment = Environment(name: "production", arguments: [CommandLine.arguments[0]])
let app = try await Application.make(environment)
app.logger.logLevel = .notice
app.http.server.configuration.hostname = "127.0.0.1"
app.http.server.configuration.port = port()

let backend = InMemoryBackend()
let front = CacheFront(backend: backend, prefix: "example")
let policy = HTTPCachePolicy(ttl: .seconds(60), namespace: "pages", visibility: .public)
let cache = HTTPCacheMiddleware(cache: HTTPResponseCache(cache: front, policy: policy, logger: app.logger))

app.get("hello") { _ in json(helloJSON) }
app.get("async", "hello") { _ async -> Response in json(helloJSON) }
let cached = app.grouped(cache)
cached.get("cached", "hello") { _ in json(helloJSON) }
cached.get("slow") { _ async throws -> Response in
    try await Task.sleep(for: .milliseconds(200))
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return json(#"{"message":"computed slowly","computedAt":\#(now.tv_sec)}"#)
}

do {
    try await app.execute()
} catch {
    app.logger.report(error: error)
    try? await app.asyncShutdown()
    throw error
}
try await app.asyncShutdown()
#else
print("cache-example-vapor needs the Vapor trait: swift run --traits Vapor cache-example-vapor")
exit(1)
#endif
