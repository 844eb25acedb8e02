// cache-example-hummingbird: a Hummingbird 2 server showing HTTP response caching.
//
//   swift run --traits Hummingbird cache-example-hummingbird --port 8080
//   curl -i http://127.0.0.1:8080/slow      # X-Cache: MISS after ~200 ms
//   curl -i http://127.0.0.1:8080/slow      # X-Cache: HIT at once, same ETag
//
// Endpoints (all serve JSON):
//   /slow          cached 60 s; computing it takes 200 ms
//   /cached/hello  cached; trivial (to measure what a HIT costs)
//   /hello         the same trivial JSON without the cache middleware
//
// Listens on 127.0.0.1; the port comes from `--port N`, else the PORT environment variable,
// else 8080.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if Hummingbird
import Caching
import CachingHTTP
import CachingHummingbird
import Hummingbird
import Logging

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
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}

var logger = Logger(label: "cache-example-hummingbird")
logger.logLevel = .notice

let backend = InMemoryBackend()
let front = CacheFront(backend: backend, prefix: "example")
let policy = HTTPCachePolicy(ttl: .seconds(60), namespace: "pages", visibility: .public)

let router = Router(options: .autoGenerateHeadEndpoints)
router.get("hello") { _, _ in json(helloJSON) }
router.group("cached")
    .add(middleware: HTTPCacheMiddleware(cache: HTTPResponseCache(cache: front, policy: policy, logger: logger)))
    .get("hello") { _, _ in json(helloJSON) }
router.group("slow")
    .add(middleware: HTTPCacheMiddleware(cache: HTTPResponseCache(cache: front, policy: policy, logger: logger)))
    .get { _, _ in
        try await Task.sleep(for: .milliseconds(200))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return json(#"{"message":"computed slowly","computedAt":\#(now.tv_sec)}"#)
    }

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port()), serverName: nil),
    services: [try backend.sweeper(interval: .seconds(30))],
    logger: logger
)
try await app.runService()
#else
print("cache-example-hummingbird needs the Hummingbird trait: swift run --traits Hummingbird cache-example-hummingbird")
exit(1)
#endif
