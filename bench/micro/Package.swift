// swift-tools-version:6.1
// Micro-benchmarks of tunnelfwd's per-packet functions (pure Swift, no DPDK), with
// ordo-one's package-benchmark. Run: bench/micro/run.sh (see bench/README.md).
import PackageDescription

// SwiftPM names a path dependency after its directory (the checkout may not be called
// "tunnelfwd"), so the root package's identity is derived from where this package sits.
let rootIdentity = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { $0.lowercased() } ?? "tunnelfwd"

let package = Package(
    name: "tunnelfwd-micro",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        // Only the MallocInterposer trait: the default RuntimeInterposer trait would pull in
        // swift-runtime-interposer, which is not needed for malloc counts.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TunnelCore", package: rootIdentity),
            ],
            path: "Benchmarks/HotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
