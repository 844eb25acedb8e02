// swift-tools-version: 6.1
import PackageDescription

// The web-framework adapters are behind package traits (SE-0450) so that an app that only
// wants a cache does not build Hummingbird or Vapor. `swift test --enable-all-traits`
// (what scripts/test.sh runs) builds and tests everything.
let package = Package(
    name: "swift-caching",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Caching", targets: ["Caching"]),
        .library(name: "CachingTesting", targets: ["CachingTesting"]),
        .library(name: "CachingSQLite", targets: ["CachingSQLite"]),
        .library(name: "CachingRedis", targets: ["CachingRedis"]),
        .library(name: "CachingMemcached", targets: ["CachingMemcached"]),
        .library(name: "CachingHTTP", targets: ["CachingHTTP"]),
        .library(name: "CachingHummingbird", targets: ["CachingHummingbird"]),
        .library(name: "CachingVapor", targets: ["CachingVapor"]),
        .executable(name: "cache-bench", targets: ["CacheBench"]),
        .executable(name: "cache-example-hummingbird", targets: ["HummingbirdExample"]),
        .executable(name: "cache-example-vapor", targets: ["VaporExample"]),
        .executable(name: "http-cache-hitpath", targets: ["HTTPCacheHitPathBench"]),
    ],
    traits: [
        .trait(name: "Hummingbird", description: "Builds the Hummingbird 2 middleware in CachingHummingbird."),
        .trait(name: "Vapor", description: "Builds the Vapor 4 middleware in CachingVapor."),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.100.0"),
    ],
    targets: [
        // MARK: Core
        .target(
            name: "Caching",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "CachingTesting", dependencies: ["Caching"]),

        // MARK: C libraries
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibmemcached", providers: [.apt(["libmemcached-dev"])]),

        // MARK: Backends
        .target(
            name: "CachingSQLite",
            dependencies: [
                "Caching", "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "CachingRedis",
            dependencies: [
                "Caching", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "CachingMemcached",
            dependencies: ["Caching", "CLibmemcached", .product(name: "Logging", package: "swift-log")]
        ),

        // MARK: HTTP
        .target(
            name: "CachingHTTP",
            dependencies: [
                "Caching",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "CachingHummingbird",
            dependencies: [
                "CachingHTTP",
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
            ]
        ),
        .target(
            name: "CachingVapor",
            dependencies: [
                "CachingHTTP",
                .product(name: "Vapor", package: "vapor", condition: .when(traits: ["Vapor"])),
            ]
        ),

        // MARK: Examples (HTTP caching; each needs its framework's trait)
        .executableTarget(
            name: "HummingbirdExample",
            dependencies: [
                "Caching", "CachingHTTP", "CachingHummingbird",
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
            ],
            path: "Examples/HummingbirdExample"
        ),
        .executableTarget(
            name: "VaporExample",
            dependencies: [
                "Caching", "CachingHTTP", "CachingVapor",
                .product(name: "Vapor", package: "vapor", condition: .when(traits: ["Vapor"])),
            ],
            path: "Examples/VaporExample"
        ),

        // MARK: Benchmarks
        .executableTarget(
            name: "CacheBench",
            dependencies: [
                "Caching", "CachingTesting", "CachingSQLite", "CachingRedis", "CachingMemcached", "CReference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/CacheBench"
        ),
        // The C limit for `cache-bench --reference`: the same workloads straight through the C libraries.
        .target(
            name: "CReference",
            path: "Benchmarks/CReference",
            linkerSettings: [.linkedLibrary("hiredis"), .linkedLibrary("memcached"), .linkedLibrary("sqlite3")]
        ),

        .testTarget(name: "CacheBenchTests", dependencies: ["CacheBench"], path: "Benchmarks/CacheBenchTests"),

        .executableTarget(
            name: "HTTPCacheHitPathBench",
            dependencies: ["Caching", "CachingHTTP", .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Benchmarks/http/HitPathBench"
        ),

        // MARK: Tests
        .testTarget(
            name: "CachingTests",
            dependencies: ["Caching", "CachingTesting", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(
            name: "CachingSQLiteTests",
            dependencies: [
                "CachingSQLite", "CachingTesting", "CSQLite", "SQLiteStressWorker",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A second process for the multi-process tests of CachingSQLite.
        .executableTarget(name: "SQLiteStressWorker", dependencies: ["CachingSQLite"], path: "Tests/Support/SQLiteStressWorker"),
        .testTarget(name: "CachingRedisTests", dependencies: ["CachingRedis", "CachingTesting"]),
        .testTarget(name: "CachingMemcachedTests", dependencies: ["CachingMemcached", "CachingTesting"]),
        .testTarget(
            name: "CachingHTTPTests",
            dependencies: ["CachingHTTP", "CachingTesting", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(
            name: "CachingHummingbirdTests",
            dependencies: [
                "CachingHummingbird", "CachingTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird", condition: .when(traits: ["Hummingbird"])),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "CachingVaporTests",
            dependencies: [
                "CachingVapor", "CachingTesting",
                .product(name: "VaporTesting", package: "vapor", condition: .when(traits: ["Vapor"])),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
    ]
)
