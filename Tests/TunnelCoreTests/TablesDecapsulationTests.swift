import XCTest
@testable import TunnelCore

/// The receive side of the forwarding snapshot: VNI -> segment, the access ports a
/// segment's decapsulated frames go to, and the UDP ports tunnel packets are accepted on,
/// as `Overlay.plan()` builds them.
final class TablesDecapsulationTests: XCTestCase {
    let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)

    func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    func vni(_ v: UInt32) -> VNI { VNI(v)! }

    /// Access ports (DPDK ids 5, 2, 9): net_tap0 in segment 100 untagged, port 2 in
    /// segment 200 with VLAN 7, net_tap3 in segment 100 with VLAN 30. Segment 300 has a
    /// tunnel and a flood list but no access port.
    func makeOverlay() throws -> Overlay {
        let config = Configuration(
            uplink: Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!, gateway: ip("192.168.50.254")),
            access: [AccessPort(port: .name("net_tap0"), segment: vni(100)),
                     AccessPort(port: .id(2), segment: vni(200), vlan: 7),
                     AccessPort(port: .name("net_tap3"), segment: vni(100), vlan: 30)],
            tunnels: [Tunnel(name: "v", type: .vxlan, remote: ip("192.168.50.10"), vni: vni(100), destinationPort: 8472),
                      Tunnel(name: "g", type: .geneve, remote: ip("192.168.50.11"), vni: vni(200), destinationPort: 7000),
                      Tunnel(name: "d", type: .vxlan, remote: ip("10.1.2.3"), vni: vni(200)),
                      Tunnel(name: "n", type: .nvgre, remote: ip("192.168.50.12"), vni: vni(300))],
            flood: [FloodList(segment: vni(100), tunnels: ["v"]), FloodList(segment: vni(300), tunnels: ["n"])])
        return try Overlay(configuration: config, localMAC: localMAC, accessPortIDs: [5, 2, 9], nowMs: 0)
    }

    func testSegmentsDeliveriesAndPortsFromThePlan() throws {
        let plan = try makeOverlay().plan()
        XCTAssertEqual(plan.segments.map { $0?.vni }, [vni(100), vni(200), vni(300)])
        let snapshot = ForwardingSnapshot(plan)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee

        XCTAssertEqual(view.segmentCount, 3)
        guard let s100 = view.segment(vni: vni(100)), let s200 = view.segment(vni: vni(200)),
              let s300 = view.segment(vni: vni(300)) else { return XCTFail("a segment is missing") }
        XCTAssertEqual([s100, s200, s300], [0, 1, 2])
        for s in [s100, s200, s300] { XCTAssertEqual(view.segments[Int(s)].vni, plan.segments[Int(s)]?.vni) }
        for unknown: UInt32 in [0, 1, 99, 101, 199, 201, 299, 301, 999, 100 + 0x1_0000, 0xFF_FFFF] {
            XCTAssertNil(view.segment(vni: vni(unknown)), "vni \(unknown)")
        }

        // Access indexes are positions in the configuration's access list, not port ids.
        XCTAssertEqual(Array(view.deliveries(segment: s100)),
                       [AccessDelivery(accessIndex: 0, vlan: 0), AccessDelivery(accessIndex: 2, vlan: 30)])
        XCTAssertEqual(Array(view.deliveries(segment: s200)), [AccessDelivery(accessIndex: 1, vlan: 7)])
        XCTAssertEqual(Array(view.deliveries(segment: s300)), [])

        let ports = view.decapsulationPorts
        XCTAssertEqual(ports.type(of: 4789), .vxlan)
        XCTAssertEqual(ports.type(of: 6081), .geneve)
        XCTAssertEqual(ports.type(of: 8472), .vxlan)
        XCTAssertEqual(ports.type(of: 7000), .geneve)
        XCTAssertEqual(ports.count, 4, "the default-port tunnel adds nothing new")
        XCTAssertNil(ports.type(of: 4790))

        // The access bindings agree with the deliveries.
        XCTAssertEqual(view.binding(ofPort: 5), AccessBinding(segment: s100, vlan: 0))
        XCTAssertEqual(view.binding(ofPort: 2), AccessBinding(segment: s200, vlan: 7))
        XCTAssertEqual(view.binding(ofPort: 9), AccessBinding(segment: s100, vlan: 30))
    }

    func testRegisteredPortsAreServedWithoutTunnels() throws {
        let config = Configuration(
            uplink: Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!),
            access: [AccessPort(port: .name("net_tap0"), segment: vni(100))])
        let o = try Overlay(configuration: config, localMAC: localMAC, accessPortIDs: [0], nowMs: 0)
        let ports = o.plan().decapsulationPorts
        XCTAssertEqual(ports.count, 2)
        XCTAssertEqual(ports.type(of: 4789), .vxlan)
        XCTAssertEqual(ports.type(of: 6081), .geneve)
    }

    /// Received frames end to end: classify, then find the segment and its access ports.
    func testClassifiedFramesFindTheirSegment() throws {
        let o = try makeOverlay()
        let snapshot = ForwardingSnapshot(o.plan())
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        let local = o.uplink.address.address

        func deliveries(_ frame: [UInt8]) -> [AccessDelivery]? {
            let verdict = withExactBuffer(frame) {
                Decapsulation.classify($0, length: $1, local: local, ports: view.decapsulationPorts)
            }
            guard case .inner(_, let vni, _, _) = verdict, let segment = view.segment(vni: vni) else { return nil }
            return Array(view.deliveries(segment: segment))
        }
        typealias V = DecapsulationVectors
        let to100 = [AccessDelivery(accessIndex: 0, vlan: 0), AccessDelivery(accessIndex: 2, vlan: 30)]
        let to200 = [AccessDelivery(accessIndex: 1, vlan: 7)]
        XCTAssertEqual(deliveries(V.vxlanDF), to100)
        XCTAssertEqual(deliveries(V.vxlanCustomPort), to200)
        XCTAssertEqual(deliveries(V.geneve), to200)
        XCTAssertEqual(deliveries(V.geneveCustomPort), to100)
        XCTAssertEqual(deliveries(V.nvgre), [])
        XCTAssertNil(deliveries(V.vxlanUnknownVNI), "VNI 999 is not served")
        XCTAssertNil(deliveries(V.unknownPort))
    }

    /// 1000 segments from the overlay (access ports' segments first, then those of the
    /// tunnels in order) and spread VNIs, including 0 and the largest one, built directly.
    func testAThousandSegments() throws {
        let vnis = (0..<1000).map { UInt32(5000 + $0 * 3) }
        let config = Configuration(
            uplink: Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!),
            access: [AccessPort(port: .name("net_tap0"), segment: vni(vnis[0])),
                     AccessPort(port: .name("net_tap2"), segment: vni(vnis[999]), vlan: 4094)],
            tunnels: vnis.map { Tunnel(name: "t\($0)", type: .vxlan, remote: ip("192.168.50.10"), vni: vni($0)) })
        let plan = try Overlay(configuration: config, localMAC: localMAC, accessPortIDs: [0, 1], nowMs: 0).plan()
        XCTAssertEqual(plan.segments.count, 1000)
        let snapshot = ForwardingSnapshot(plan)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        for (i, v) in vnis.enumerated() {
            let index: UInt16 = i == 0 ? 0 : i == 999 ? 1 : UInt16(i + 1)
            XCTAssertEqual(view.segment(vni: vni(v)), index, "vni \(v)")
            XCTAssertNil(view.segment(vni: vni(v + 1)), "vni \(v + 1)")
            XCTAssertNil(view.segment(vni: vni(v + 2)), "vni \(v + 2)")
        }
        for v: UInt32 in [0, 1, 4999, 8000, 0xFF_FFFF] { XCTAssertNil(view.segment(vni: vni(v)), "vni \(v)") }
        XCTAssertEqual(Array(view.deliveries(segment: 0)), [AccessDelivery(accessIndex: 0, vlan: 0)])
        XCTAssertEqual(Array(view.deliveries(segment: 1)), [AccessDelivery(accessIndex: 1, vlan: 4094)])
        for s in 2..<1000 { XCTAssertEqual(view.deliveries(segment: UInt16(s)).count, 0) }

        // Spread VNIs (a multiplicative pattern over the whole 24 bits), plus 0 and the max.
        var spread = Set((0..<998).map { UInt32(($0 &* 2_654_435) & 0xFF_FFFF) })
        spread.insert(0)
        spread.insert(0xFF_FFFF)
        var direct = ForwardingPlan(tunnels: TunnelTable(capacity: 1), macs: MACTable(capacity: 0))
        direct.segments = spread.sorted().enumerated().map { i, v in
            ForwardingPlan.Segment(vni: vni(v), deliveries: [AccessDelivery(accessIndex: UInt16(i % 3), vlan: UInt16(i))])
        }
        let directSnapshot = ForwardingSnapshot(direct)
        defer { withExtendedLifetime(directSnapshot) {} }
        let directView = directSnapshot.view.pointee
        for (i, v) in direct.segments.map({ $0!.vni }).enumerated() {
            XCTAssertEqual(directView.segment(vni: v), UInt16(i), "vni \(v)")
            XCTAssertEqual(Array(directView.deliveries(segment: UInt16(i))), [AccessDelivery(accessIndex: UInt16(i % 3), vlan: UInt16(i))])
        }
        var misses = 0
        for probe in stride(from: UInt32(1), to: 0xFF_FFFF, by: 997) where !spread.contains(probe) {
            XCTAssertNil(directView.segment(vni: vni(probe)), "vni \(probe)")
            misses += 1
        }
        XCTAssertGreaterThan(misses, 10_000)
    }
}
