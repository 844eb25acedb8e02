#if Hummingbird
import Caching
import CachingTesting
import CachingHTTP
import Synchronization

func makeBackend() -> any CacheBackend { InMemoryBackend() }

#endif
