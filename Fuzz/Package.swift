// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets over TunnelCore (README, "Fuzzing"). Build and run them with
// Fuzz/run.sh: they need `--sanitize fuzzer -Xswiftc -sanitize=fuzzer,address
// -Xswiftc -parse-as-library` (libFuzzer supplies main; each target only exports
// LLVMFuzzerTestOneInput).
let core: Target.Dependency = .product(name: "TunnelCore", package: "tunnelfwd")

let package = Package(
    name: "TunnelFuzz",
    dependencies: [.package(name: "tunnelfwd", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [core]),
        .executableTarget(name: "FuzzUplink", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzAccess", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzControl", dependencies: ["FuzzSupport", core]),
        .executableTarget(name: "FuzzConfiguration", dependencies: ["FuzzSupport", core]),
    ]
)
