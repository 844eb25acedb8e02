import Caching
import CachingTesting
import CachingHTTP
import HTTPTypes
import Synchronization

func request(_ path: String, _ fields: HTTPFields = [:], method: HTTPRequest.Method = .get) -> HTTPRequest {
    HTTPRequest(method: method, scheme: nil, authority: nil, path: path, headerFields: fields)
}

func makeBackend() -> any CacheBackend { InMemoryBackend() }
