// Micro-benchmarks of the functions the worker calls per packet. Each one runs its
// function `scaledIterations` times per sample on inputs that change every iteration
// (so nothing can be hoisted out of the loop), and must not allocate: the static
// thresholds in ../../Thresholds/ hold mallocCountTotal = 0 for every benchmark, and
// `bench/micro/run.sh` fails when a sample's p90 is above it.
//
// All inputs are built before the measured closure runs (in the benchmark's setup), so
// the closure itself touches only preallocated raw memory, as the worker does.

import Benchmark
import TunnelCore

#if canImport(Glibc)
import Glibc
#endif

/// One sample = a million iterations (`.mega`): wall-clock figures are then per iteration,
/// that is per packet.
private func configuration(_ maxDuration: Duration = .seconds(1)) -> Benchmark.Configuration {
    .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 2,
        scalingFactor: .mega,
        maxDuration: maxDuration,
        maxIterations: 50,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
}

// MARK: - Inputs (built once, outside the measured loops)

private let localMAC = MACAddress(rawValue: 0x02AA_BBCC_DD01)
private let localAddress = IPv4Address(10, 0, 0, 1)

/// Real inner frames: 64-byte Ethernet/IPv4/UDP frames of `count` different flows, one per
/// 64-byte slot, so that frame i is at `frames + 64 * i`.
private struct InnerFrames: @unchecked Sendable {
    static let count = 1024
    static let length = 64
    let base: UnsafeMutableRawPointer

    init() {
        base = .allocate(byteCount: Self.count * Self.length, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.count * Self.length)
        for i in 0..<Self.count {
            let f = base + i * Self.length
            MACAddress(rawValue: 0x0242_0000_0000 | UInt64(i)).store(to: f)
            MACAddress(rawValue: 0x0242_FF00_0001).store(to: f + 6)
            f.storeBytes(of: UInt16(0x0800).bigEndian, toByteOffset: 12, as: UInt16.self)
            f.storeBytes(of: 0x45, toByteOffset: 14, as: UInt8.self)
            f.storeBytes(of: UInt16(50).bigEndian, toByteOffset: 16, as: UInt16.self)
            f.storeBytes(of: 64, toByteOffset: 22, as: UInt8.self)
            f.storeBytes(of: 17, toByteOffset: 23, as: UInt8.self)
            let spread = UInt32(truncatingIfNeeded: i &* 2_654_435_761)
            f.storeBytes(of: (0x0A00_0000 | spread >> 8).bigEndian, toByteOffset: 26, as: UInt32.self)
            f.storeBytes(of: (0x0AC8_0000 | UInt32(i)).bigEndian, toByteOffset: 30, as: UInt32.self)
            f.storeBytes(of: UInt16(1024 &+ spread % 60000).bigEndian, toByteOffset: 34, as: UInt16.self)
            f.storeBytes(of: UInt16(1024 &+ UInt32(i &* 7919) % 60000).bigEndian, toByteOffset: 36, as: UInt16.self)
            f.storeBytes(of: UInt16(30).bigEndian, toByteOffset: 38, as: UInt16.self)
        }
    }

    @inline(__always)
    func frame(_ i: Int) -> UnsafeRawPointer { UnsafeRawPointer(base + (i & (Self.count - 1)) * Self.length) }
}

/// The forwarding state of `tunnels` VXLAN tunnels in one segment, built the way the
/// forwarder builds it (configuration -> Overlay -> plan -> snapshot): tunnel n goes to
/// remote 10.0.0.2 + n, inner MAC n is forwarded to tunnel n, every next hop is resolved.
/// `macs` holds the MACs in a scattered order, as a burst to many VMs would bring them.
private struct Forwarding: @unchecked Sendable {
    let snapshot: ForwardingSnapshot
    let nextHops: NextHopTable
    let macs: UnsafeMutablePointer<MACAddress>
    let count: Int

    init(tunnels: Int) {
        let segment = VNI(100)!
        var configuration = Configuration(
            uplink: Uplink(port: .name("uplink"), address: IPv4Interface(address: localAddress, prefixLength: 16)!),
            access: [AccessPort(port: .id(0), segment: segment)])
        configuration.dataplane.maxTunnels = max(tunnels, 16)
        configuration.dataplane.maxNextHops = max(tunnels, 16)
        count = tunnels
        macs = .allocate(capacity: tunnels)
        for n in 0..<tunnels {
            let remote = IPv4Address(rawValue: localAddress.rawValue &+ 1 &+ UInt32(n))
            configuration.tunnels.append(Tunnel(name: "t\(n)", type: .vxlan, remote: remote, vni: segment))
            let mac = MACAddress(rawValue: 0x0242_0000_0000 | UInt64(n))
            configuration.forwarding.append(ForwardingEntry(segment: segment, mac: mac, tunnel: "t\(n)"))
            macs[(n &* 7919) % tunnels] = mac
        }
        let overlay: Overlay
        do {
            overlay = try Overlay(configuration: configuration, localMAC: localMAC, accessPortIDs: [0], nowMs: 0)
        } catch {
            fatalError("benchmark overlay: \(error)")
        }
        nextHops = .allocate(capacity: configuration.dataplane.maxNextHops)
        for tunnel in configuration.tunnels {
            let id = overlay.neighbors[tunnel.remote]!.id
            nextHops.setResolved(id, mac: MACAddress(rawValue: 0x0299_0000_0000 | UInt64(id.rawValue)))
        }
        snapshot = ForwardingSnapshot(overlay.plan())
    }
}

/// Fixtures are globals, so built lazily: each benchmark builds what it uses in its
/// setup hook, outside the measured closure (and `benchmark list` builds nothing).
private let oneTunnel = Forwarding(tunnels: 1)
private let manyTunnels = Forwarding(tunnels: 10_000)
private let frames = InnerFrames()

private func forwarding(_ tunnels: Int) -> Forwarding { tunnels == 1 ? oneTunnel : manyTunnels }

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    // OuterHeaderTemplate.write: the outer header of one packet, per tunnel type.
    for type in EncapsulationType.allCases {
        let template = OuterHeaderTemplate(
            type: type, localAddress: localAddress, localMAC: localMAC,
            remoteAddress: IPv4Address(10, 0, 0, 2), vni: VNI(100)!, dontFragment: type != .nvgre)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        Benchmark("OuterHeaderTemplate.write \(type.rawValue)", configuration: configuration()) { benchmark in
            for i in benchmark.scaledIterations {
                template.addressed(to: MACAddress(rawValue: 0x0299_0000_0000 | UInt64(i))).write(
                    to: buffer, innerLength: 64 &+ (i & 1023),
                    sourcePort: UInt16(truncatingIfNeeded: 0xC000 | i), identification: UInt16(truncatingIfNeeded: i))
                blackHole(buffer)
            }
        }
    }

    // InnerFlow: parse the inner frame's flow and hash it; map a hash to a UDP port.
    Benchmark(
        "InnerFlow.hash 64B IPv4-UDP", configuration: configuration(),
        closure: { benchmark in
            for i in benchmark.scaledIterations {
                blackHole(InnerFlow.hash(frame: frames.frame(i), length: InnerFrames.length))
            }
        },
        setup: { _ = frames })
    Benchmark("InnerFlow.udpSourcePort", configuration: configuration()) { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(InnerFlow.udpSourcePort(hash: UInt32(truncatingIfNeeded: i &* 2_654_435_761)))
        }
    }

    for tunnels in [1, 10_000] {
        let plural = tunnels == 1 ? "" : "s"

        // ForwardingView.tunnel(segment:mac:): the inner-MAC lookup.
        Benchmark(
            "ForwardingView.tunnel \(tunnels) entr\(tunnels == 1 ? "y" : "ies")", configuration: configuration(),
            closure: { benchmark in
                let f = forwarding(tunnels)
                let view = f.snapshot.view
                var n = 0
                for _ in benchmark.scaledIterations {
                    blackHole(view.pointee.tunnel(segment: 0, mac: f.macs[n]))
                    n = n &+ 1 == f.count ? 0 : n &+ 1
                }
            },
            setup: { _ = forwarding(tunnels) })

        // NextHopTable.resolvedMAC: the per-packet neighbor read.
        Benchmark(
            "NextHopTable.resolvedMAC \(tunnels) next hop\(plural)", configuration: configuration(),
            closure: { benchmark in
                let table = forwarding(tunnels).nextHops
                var n: UInt32 = 0
                for _ in benchmark.scaledIterations {
                    blackHole(table.resolvedMAC(NextHopID(rawValue: n)))
                    n = n &+ 1 == UInt32(tunnels) ? 0 : n &+ 1
                }
            },
            setup: { _ = forwarding(tunnels) })

        // Everything the worker computes per packet on the hit path, without DPDK: look up
        // the inner destination MAC, read the next hop's MAC, hash the inner flow, write the
        // outer header in front of the frame.
        let packet = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        Benchmark(
            "Hit path per packet \(tunnels) tunnel\(plural)", configuration: configuration(),
            closure: { benchmark in
                let f = forwarding(tunnels)
                let view = f.snapshot.view
                var n = 0
                for i in benchmark.scaledIterations {
                    guard let index = view.pointee.tunnel(segment: 0, mac: f.macs[n]),
                          let mac = f.nextHops.resolvedMAC(view.pointee.entry(index).pointee.nextHop)
                    else { fatalError("the benchmark's lookups must hit") }
                    let tunnel = view.pointee.entry(index)
                    let hash = InnerFlow.hash(frame: frames.frame(i), length: InnerFrames.length)
                    tunnel.pointee.header.addressed(to: mac).write(
                        to: packet, innerLength: InnerFrames.length,
                        sourcePort: InnerFlow.udpSourcePort(hash: hash), identification: 0)
                    blackHole(packet)
                    n = n &+ 1 == f.count ? 0 : n &+ 1
                }
            },
            setup: { _ = forwarding(tunnels); _ = frames })
    }
}
