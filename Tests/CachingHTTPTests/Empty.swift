@testable import CachingHTTP
