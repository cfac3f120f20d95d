// swift-tools-version:6.1
import PackageDescription

// SwiftPM cannot read Debian's libdpdk.pc (see README, "How Swift binds DPDK"), so the
// include paths are given by hand. -march=corei7 is needed twice over: DPDK's mbuf and
// memcpy headers require SSSE3, and the same CPU target lets LLVM inline DPDK's
// fast-path inline functions (rx/tx burst, ring ops, checksums) into Swift.
let dpdkFlags: [SwiftSetting] = [
    .unsafeFlags([
        "-Xcc", "-I/usr/include/dpdk",
        "-Xcc", "-I/usr/include/x86_64-linux-gnu/dpdk",
        "-Xcc", "-march=corei7",
    ]),
]

let package = Package(
    name: "tunnelfwd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tunnelfwd", targets: ["tunnelfwd"]),
        .executable(name: "tunnelctl", targets: ["tunnelctl"]),
        .library(name: "TunnelCore", targets: ["TunnelCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CDPDK", path: "CDPDK"),
        .target(
            name: "TunnelCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "TunnelDataplane",
            dependencies: [
                "CDPDK", "TunnelCore",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: dpdkFlags
        ),
        .executableTarget(
            name: "tunnelfwd",
            dependencies: ["TunnelDataplane", "TunnelCore"],
            swiftSettings: dpdkFlags
        ),
        .executableTarget(
            name: "tunnelctl",
            dependencies: [
                "TunnelCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TunnelCoreTests", dependencies: ["TunnelCore"]),
    ]
)
