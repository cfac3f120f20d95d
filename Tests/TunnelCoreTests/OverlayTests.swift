import XCTest
@testable import TunnelCore

final class OverlayTests: XCTestCase {
    let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)
    let gateway = IPv4Address(192, 168, 50, 254)

    func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    func mac(_ i: Int) -> MACAddress { MACAddress(rawValue: 0x0250_5600_0000 + UInt64(i)) }
    func vni(_ v: UInt32) -> VNI { VNI(v)! }

    func uplink(gateway: IPv4Address? = IPv4Address(192, 168, 50, 254)) -> Uplink {
        Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!, gateway: gateway)
    }

    func overlay(_ config: Configuration? = nil, nowMs: UInt64 = 0) throws -> Overlay {
        let config = config ?? Configuration(
            uplink: uplink(), access: [AccessPort(port: .name("net_tap0"), segment: vni(100))])
        return try Overlay(configuration: config, localMAC: localMAC,
                           accessPortIDs: config.access.indices.map { UInt16($0) }, nowMs: nowMs)
    }

    func vxlan(_ name: String, _ remote: String, _ v: UInt32) -> Tunnel {
        Tunnel(name: name, type: .vxlan, remote: ip(remote), vni: vni(v))
    }

    /// The next hop a new tunnel brought, to be resolved at once; `nil` when it shares one.
    func newNextHop(_ effects: OverlayEffects, line: UInt = #line) -> NextHopID? {
        XCTAssertLessThanOrEqual(effects.resolve.count, 1, line: line)
        XCTAssertTrue(effects.publish, "a new tunnel changes the snapshot", line: line)
        return effects.resolve.first?.id
    }

    func assertError(_ expected: OverlayError, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected \(expected)", line: line)
        } catch {
            guard let error = error as? OverlayError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(error, expected, line: line)
            let d = error.description
            XCTAssertFalse(d.isEmpty, line: line)
            XCTAssertFalse(d.contains(where: \.isNewline), "not one line: \(d)", line: line)
        }
    }

    func assertInvalidTunnel(_ o: inout Overlay, _ t: Tunnel, containing words: String, line: UInt = #line) {
        let before = (o.tunnels.count, o.neighbors.count)
        do {
            _ = try o.addTunnel(t, nowMs: 0)
            XCTFail("accepted \(t.name) to \(t.remote)", line: line)
        } catch {
            guard case .invalidTunnel(let name, let why) = error else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(name, t.name, line: line)
            XCTAssertTrue(why.contains(words), "'\(words)' missing in: \(why)", line: line)
            XCTAssertFalse(error.description.contains(where: \.isNewline), line: line)
            XCTAssertTrue(error.description.hasPrefix("tunnel '\(t.name)': "), error.description, line: line)
        }
        XCTAssertTrue(before == (o.tunnels.count, o.neighbors.count), "a refused tunnel changed the overlay", line: line)
    }

    // MARK: decapsulation sources

    /// A segment takes tunnel packets from the remotes of its own tunnels only, unless
    /// `decapsulation.accept_from` is `any`; a tunnel's segment without an access port is
    /// a segment too, delivering nowhere.
    func testEachSegmentAcceptsTheRemotesOfItsTunnels() throws {
        var config = Configuration(uplink: uplink(), access: [
            AccessPort(port: .name("net_tap0"), segment: vni(100)), AccessPort(port: .name("net_tap2"), segment: vni(200)),
        ])
        config.tunnels = [vxlan("a", "192.168.50.10", 100), vxlan("b", "10.1.1.1", 200), vxlan("c", "192.168.50.11", 300)]
        for acceptFrom in DecapsulationSettings.Sources.allCases {
            config.decapsulation.acceptFrom = acceptFrom
            let snapshot = ForwardingSnapshot(try overlay(config).plan())
            let view = snapshot.view.pointee
            let s100 = view.segment(vni: vni(100))!, s200 = view.segment(vni: vni(200))!
            let any = acceptFrom == .any
            XCTAssertTrue(view.accepts(segment: s100, from: ip("192.168.50.10")))
            XCTAssertTrue(view.accepts(segment: s200, from: ip("10.1.1.1")))
            XCTAssertEqual(view.accepts(segment: s100, from: ip("10.1.1.1")), any)
            XCTAssertEqual(view.accepts(segment: s200, from: ip("192.168.50.10")), any)
            XCTAssertEqual(view.accepts(segment: s100, from: ip("192.168.50.11")), any)
            guard let s300 = view.segment(vni: vni(300)) else { return XCTFail("no segment for c") }
            XCTAssertTrue(view.accepts(segment: s300, from: ip("192.168.50.11")))
            XCTAssertEqual(view.accepts(segment: s300, from: ip("192.168.50.10")), any)
            XCTAssertTrue(view.deliveries(segment: s300).isEmpty)
            XCTAssertNil(view.segment(vni: vni(400)))
        }
    }

    // MARK: next-hop sharing

    func testTunnelsShareTheirNextHop() throws {
        var o = try overlay()
        let first = try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)
        guard let onLink = newNextHop(first) else { return XCTFail() }
        XCTAssertEqual(first.resolve, [.init(address: ip("192.168.50.10"), id: onLink)])
        XCTAssertNil(newNextHop(try o.addTunnel(vxlan("t2", "192.168.50.10", 200), nowMs: 0)))
        // Off-link remotes all go through the gateway: one next hop.
        let third = try o.addTunnel(vxlan("t3", "10.0.0.5", 100), nowMs: 0)
        guard let viaGateway = newNextHop(third) else { return XCTFail() }
        XCTAssertEqual(third.resolve, [.init(address: gateway, id: viaGateway)])
        XCTAssertNotEqual(onLink, viaGateway)
        XCTAssertNil(newNextHop(try o.addTunnel(vxlan("t4", "10.9.9.9", 100), nowMs: 0)))
        XCTAssertNil(newNextHop(try o.addTunnel(Tunnel(name: "t5", type: .nvgre, remote: ip("192.168.50.10"), vni: vni(100)), nowMs: 0)))
        XCTAssertEqual(o.neighbors[ip("192.168.50.10")]?.id, onLink)
        XCTAssertEqual(o.neighbors.count, 2)
        XCTAssertEqual(o.neighbors[ip("192.168.50.10")]?.tunnels, ["t1", "t2", "t5"])
        XCTAssertEqual(o.neighbors[gateway]?.tunnels, ["t3", "t4"])
        XCTAssertEqual(o.neighbors[gateway]?.id, viaGateway)
        XCTAssertEqual(o.neighbors.address(of: viaGateway), gateway)
        XCTAssertEqual(o.nextHop(of: o.tunnel(named: "t4")!), gateway)
        XCTAssertEqual(o.tunnels.map(\.name), ["t1", "t2", "t3", "t4", "t5"])
    }

    func testDeleteRemovesForwardingEntriesAndFloodMembershipsAndTheLastUserTheNeighbor() throws {
        let config = Configuration(
            uplink: uplink(),
            access: [AccessPort(port: .name("net_tap0"), segment: vni(100)), AccessPort(port: .id(2), segment: vni(200), vlan: 7)],
            tunnels: [vxlan("a", "192.168.50.10", 100), vxlan("b", "192.168.50.10", 200), vxlan("c", "192.168.50.11", 100)],
            forwarding: [ForwardingEntry(segment: vni(100), mac: mac(1), tunnel: "a"),
                         ForwardingEntry(segment: vni(100), mac: mac(2), tunnel: "a"),
                         ForwardingEntry(segment: vni(100), mac: mac(3), tunnel: "c"),
                         ForwardingEntry(segment: vni(200), mac: mac(1), tunnel: "b")],
            flood: [FloodList(segment: vni(100), tunnels: ["a", "c"]), FloodList(segment: vni(200), tunnels: ["b"])])
        var o = try overlay(config)
        let shared = o.neighbors[ip("192.168.50.10")]!.id
        _ = try o.addForwarding(segment: vni(100), mac: mac(4), tunnel: "a")

        let deletedA = try o.deleteTunnel(named: "a", nowMs: 10)
        XCTAssertEqual(deletedA.forwardingEntriesRemoved, 3)
        XCTAssertEqual(deletedA.floodListsLeft, 1)
        XCTAssertEqual(deletedA.effects.forget, [], "b still uses 192.168.50.10")
        XCTAssertTrue(deletedA.effects.publish)
        for m in [1, 2, 4] { XCTAssertNil(o.publishedRoute(Overlay.MACKey(segment: vni(100), mac: mac(m))), "mac \(m)") }
        XCTAssertEqual(o.neighbors[ip("192.168.50.10")]?.tunnels, ["b"])
        XCTAssertEqual(o.flood[vni(100)], ["c"])
        XCTAssertEqual(o.forwarding.count, 2)
        XCTAssertNil(o.tunnel(named: "a"))

        let deletedB = try o.deleteTunnel(named: "b", nowMs: 20)
        XCTAssertEqual(deletedB.forwardingEntriesRemoved, 1)
        XCTAssertEqual(deletedB.floodListsLeft, 1)
        XCTAssertEqual(deletedB.effects.forget, [ip("192.168.50.10")])
        XCTAssertNil(o.publishedRoute(Overlay.MACKey(segment: vni(200), mac: mac(1))))
        XCTAssertNil(o.neighbors[ip("192.168.50.10")])
        XCTAssertNil(o.neighbors.address(of: shared))
        XCTAssertEqual(o.flood[vni(200)], [])
        XCTAssertEqual(o.forwarding.map(\.value), ["c"])
        XCTAssertNotNil(shared)
        checkPlan(o)

        assertError(.unknownTunnel("b")) { _ = try o.deleteTunnel(named: "b", nowMs: 30) }
    }

    // MARK: errors

    func testErrorsAreOneLineAndLeaveTheOverlayUnchanged() throws {
        var o = try overlay()
        _ = try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)
        assertError(.duplicateTunnel("t1")) { _ = try o.addTunnel(vxlan("t1", "192.168.50.11", 100), nowMs: 0) }
        assertError(.unknownTunnel("nope")) { _ = try o.deleteTunnel(named: "nope", nowMs: 0) }
        assertError(.unknownTunnel("nope")) { _ = try o.addForwarding(segment: vni(100), mac: mac(1), tunnel: "nope") }
        assertError(.segmentMismatch(tunnel: "t1", vni: vni(100), segment: vni(200))) {
            try o.addForwarding(segment: vni(200), mac: mac(1), tunnel: "t1")
        }
        assertError(.invalidMAC(.broadcast)) { _ = try o.addForwarding(segment: vni(100), mac: .broadcast, tunnel: "t1") }
        assertError(.invalidMAC(MACAddress(0x01, 0, 0x5E, 0, 0, 1))) {
            try o.addForwarding(segment: vni(100), mac: MACAddress(0x01, 0, 0x5E, 0, 0, 1), tunnel: "t1")
        }
        assertError(.invalidMAC(.zero)) { _ = try o.addForwarding(segment: vni(100), mac: .zero, tunnel: "t1") }
        _ = try o.addForwarding(segment: vni(100), mac: mac(1), tunnel: "t1")
        assertError(.duplicateForwarding(segment: vni(100), mac: mac(1), tunnel: "t1")) {
            try o.addForwarding(segment: vni(100), mac: mac(1), tunnel: "t1")
        }
        assertError(.unknownForwarding(segment: vni(100), mac: mac(2))) { _ = try o.deleteForwarding(segment: vni(100), mac: mac(2)) }
        _ = try o.deleteForwarding(segment: vni(100), mac: mac(1))
        assertError(.unknownForwarding(segment: vni(100), mac: mac(1))) { _ = try o.deleteForwarding(segment: vni(100), mac: mac(1)) }
        XCTAssertEqual(o.tunnels.count, 1)
        XCTAssertEqual(o.neighbors.count, 1)
    }

    func testInvalidTunnelsAreRefused() throws {
        var o = try overlay()
        _ = try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)
        assertInvalidTunnel(&o, vxlan("twin", "192.168.50.10", 100), containing: "'t1'")
        assertInvalidTunnel(&o, vxlan("", "192.168.50.12", 100), containing: "name")
        assertInvalidTunnel(&o, vxlan(String(repeating: "x", count: 33), "192.168.50.12", 100), containing: "name")
        assertInvalidTunnel(&o, vxlan("a b", "192.168.50.12", 100), containing: "name")
        assertInvalidTunnel(&o, vxlan("é", "192.168.50.12", 100), containing: "name")
        assertInvalidTunnel(&o, Tunnel(name: "n", type: .nvgre, remote: ip("192.168.50.12"), vni: vni(1), destinationPort: 4789),
                            containing: "nvgre")
        assertInvalidTunnel(&o, Tunnel(name: "ttl", type: .vxlan, remote: ip("192.168.50.12"), vni: vni(1), ttl: 0),
                            containing: "ttl")
        assertInvalidTunnel(&o, vxlan("self", "192.168.50.1", 100), containing: "own address")
        for remote in ["0.0.0.0", "224.0.0.1", "239.255.255.255", "255.255.255.255", "127.0.0.1", "240.0.0.1",
                       "192.168.50.255", "192.168.50.0"] {
            assertInvalidTunnel(&o, vxlan("r", remote, 100), containing: remote)
        }
        // Accepted names and types.
        XCTAssertNoThrow(try o.addTunnel(vxlan("A-z_0.9", "192.168.50.12", 100), nowMs: 0))
        XCTAssertNoThrow(try o.addTunnel(vxlan(String(repeating: "x", count: 32), "192.168.50.12", 101), nowMs: 0))
        XCTAssertNoThrow(try o.addTunnel(Tunnel(name: "g", type: .geneve, remote: ip("192.168.50.10"), vni: vni(100)), nowMs: 0))
        // Same remote and vni but another UDP port is another tunnel.
        XCTAssertNoThrow(try o.addTunnel(Tunnel(name: "p", type: .vxlan, remote: ip("192.168.50.10"), vni: vni(100), destinationPort: 8472), nowMs: 0))
    }

    func testOffLinkRemoteNeedsAGateway() throws {
        let config = Configuration(uplink: uplink(gateway: nil))
        var o = try overlay(config)
        assertInvalidTunnel(&o, vxlan("far", "10.0.0.5", 100), containing: "uplink.gateway is not set")
        XCTAssertEqual(try o.addTunnel(vxlan("near", "192.168.50.10", 100), nowMs: 0).resolve,
                       [.init(address: ip("192.168.50.10"), id: NextHopID(rawValue: 0))])
    }

    func testFullNextHopTableIsAnError() throws {
        var config = Configuration(uplink: uplink())
        config.dataplane.maxNextHops = 1
        var o = try overlay(config)
        _ = try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)
        // A shared next hop needs no slot.
        _ = try o.addTunnel(vxlan("t2", "192.168.50.10", 200), nowMs: 0)
        assertError(.nextHopTableFull(ip("192.168.50.11"))) { _ = try o.addTunnel(vxlan("t3", "192.168.50.11", 100), nowMs: 0) }
        XCTAssertNil(o.tunnel(named: "t3"))
        XCTAssertEqual(o.neighbors.count, 1)
    }

    func testFullTunnelTableIsAnError() throws {
        var config = Configuration(uplink: uplink())
        config.dataplane.maxTunnels = 2
        var o = try overlay(config)
        _ = try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)
        _ = try o.addTunnel(vxlan("t2", "192.168.50.11", 100), nowMs: 0)
        assertError(.tunnelTableFull(2)) { _ = try o.addTunnel(vxlan("t3", "192.168.50.12", 100), nowMs: 0) }
        _ = try o.deleteTunnel(named: "t1", nowMs: 0)
        // t1's slot is quarantined: a worker may still hold its index.
        assertError(.tunnelTableFull(2)) { _ = try o.addTunnel(vxlan("t3", "192.168.50.12", 100), nowMs: 999) }
        XCTAssertNoThrow(try o.addTunnel(vxlan("t3", "192.168.50.12", 100), nowMs: 1000))
    }

    // MARK: next-hop slots

    func testAllocatorQuarantinesReleasedSlots() {
        var a = SlotAllocator(capacity: 3, quarantineMs: 1000)
        let ids = (0..<3).compactMap { _ in a.allocate(nowMs: 0) }
        XCTAssertEqual(ids, [0, 1, 2])
        XCTAssertNil(a.allocate(nowMs: 0))
        a.release(ids[1], nowMs: 100)
        a.release(ids[0], nowMs: 200)
        XCTAssertNil(a.allocate(nowMs: 100))
        XCTAssertNil(a.allocate(nowMs: 1099))
        XCTAssertEqual(a.allocate(nowMs: 1100), ids[1])
        XCTAssertNil(a.allocate(nowMs: 1199))
        XCTAssertEqual(a.allocate(nowMs: 1200), ids[0])
        XCTAssertNil(a.allocate(nowMs: 100_000))
    }

    func testADeletedNextHopSlotIsNotReusedWithinThePendingLifetime() throws {
        var o = try overlay()
        guard let first = newNextHop(try o.addTunnel(vxlan("t1", "192.168.50.10", 100), nowMs: 0)) else { return XCTFail() }
        _ = try o.deleteTunnel(named: "t1", nowMs: 10)
        let lifetime = UInt64(PendingSettings().lifetimeMs)
        var seen: Set<NextHopID> = []
        let quarantine = lifetime + 1000
        for (i, t) in stride(from: UInt64(20), to: 10 + quarantine, by: 500).enumerated() {
            guard let id = newNextHop(try o.addTunnel(vxlan("n\(i)", "192.168.50.\(20 + i)", 100), nowMs: t)) else {
                return XCTFail()
            }
            XCTAssertNotEqual(id, first, "reused at \(t)")
            XCTAssertTrue(seen.insert(id).inserted)
        }
        XCTAssertEqual(newNextHop(try o.addTunnel(vxlan("after", "192.168.50.99", 100), nowMs: 10 + quarantine)), first)
    }

    func testTunnelNeighborTableRefcounts() {
        var table = TunnelNeighborTable(allocator: SlotAllocator(capacity: 4, quarantineMs: 100))
        let h = ip("192.168.50.10")
        XCTAssertEqual(table.attach(tunnel: "x", nextHop: h, nowMs: 0), .added(NextHopID(rawValue: 0)))
        XCTAssertEqual(table.attach(tunnel: "y", nextHop: h, nowMs: 0), .shared(NextHopID(rawValue: 0)))
        XCTAssertEqual(table.attach(tunnel: "y", nextHop: h, nowMs: 0), .shared(NextHopID(rawValue: 0)))
        XCTAssertNil(table.detach(tunnel: "x", nextHop: h, nowMs: 1))
        XCTAssertNil(table.detach(tunnel: "unknown", nextHop: ip("192.168.50.99"), nowMs: 1))
        XCTAssertEqual(table.detach(tunnel: "y", nextHop: h, nowMs: 2)?.id, NextHopID(rawValue: 0))
        XCTAssertEqual(table.count, 0)
        XCTAssertNil(table.detach(tunnel: "y", nextHop: h, nowMs: 3))
        XCTAssertEqual(table.attach(tunnel: "z", nextHop: h, nowMs: 3), .added(NextHopID(rawValue: 1)))
    }

    // MARK: plan

    /// Every index in the plan points where it should.
    func checkPlan(_ o: Overlay, line: UInt = #line) {
        let plan = o.plan()
        let vnis = plan.segments.compactMap { $0?.vni }
        XCTAssertEqual(Set(vnis).count, vnis.count, "a VNI with two indexes", line: line)
        var names: [TunnelIndex: String] = [:]
        for tunnel in o.tunnels {
            guard let index = o.records[tunnel.name]?.index else { return XCTFail(tunnel.name, line: line) }
            XCTAssertNil(names.updateValue(tunnel.name, forKey: index), "two tunnels in slot \(index.rawValue)", line: line)
            let entry = plan.tunnels[index]
            let hop = o.nextHop(of: tunnel)!
            XCTAssertEqual(entry.nextHop, o.neighbors[hop]?.id, "\(tunnel.name)", line: line)
            XCTAssertEqual(o.neighbors.address(of: entry.nextHop), hop, line: line)
            XCTAssertTrue(o.neighbors[hop]?.tunnels.contains(tunnel.name) ?? false, line: line)
            let header = OuterHeaderTemplate(tunnel: tunnel, localAddress: o.uplink.address.address, localMAC: localMAC)
            XCTAssertEqual(entry.header, header, line: line)
            XCTAssertEqual(entry.header.dontFragment, tunnel.dontFragment, line: line)
            XCTAssertTrue(vnis.contains(tunnel.vni), "no segment for \(tunnel.name)", line: line)
        }
        XCTAssertEqual(plan.macs.count, o.forwarding.count + o.learned.count + o.evpn.remoteMACs.count, line: line)
        // And the snapshot built from it finds every entry.
        let snapshot = ForwardingSnapshot(plan)
        let view = snapshot.view.pointee
        for (key, name) in o.forwarding {
            guard let segment = view.segment(vni: key.segment) else { return XCTFail("no segment \(key.segment)", line: line) }
            XCTAssertEqual(view.tunnel(segment: segment, mac: key.mac), o.records[name]!.index, "\(key.mac) in \(key.segment)", line: line)
            XCTAssertEqual(o.publishedRoute(key), MACRoute(tunnel: o.records[name]!.index), line: line)
        }
        for (s, segment) in plan.segments.enumerated() {
            guard let segment else { continue }
            XCTAssertEqual(view.segment(vni: segment.vni), UInt16(s), line: line)
            XCTAssertEqual(segment.flood.map { names[$0] }, o.floodList(segment.vni), line: line)
            XCTAssertEqual(Array(view.floodList(segment: UInt16(s))), segment.flood, line: line)
            for index in segment.flood { XCTAssertEqual(o.tunnel(named: names[index]!)?.vni, segment.vni, line: line) }
        }
        for port in o.access {
            let binding = plan.access[port.portID]
            XCTAssertEqual(binding.flatMap { plan.segments[Int($0.segment)]?.vni }, port.config.segment, line: line)
            XCTAssertEqual(binding?.vlan, port.config.vlan ?? 0, line: line)
        }
    }

    func testPlanIndicesStayConsistentThroughChanges() throws {
        let segments: [UInt32] = [300, 100, 200, 5000]
        var tunnels: [Tunnel] = []
        for (i, s) in segments.enumerated() {
            for j in 0..<3 {
                let remote = j == 2 ? "10.\(i).0.\(j + 1)" : "192.168.50.\(10 + j)"
                tunnels.append(Tunnel(name: "s\(s)-\(j)", type: j == 1 ? .geneve : .vxlan, remote: ip(remote), vni: vni(s)))
            }
        }
        var forwarding: [ForwardingEntry] = []
        for k in 0..<200 {
            let t = tunnels[k % tunnels.count]
            forwarding.append(ForwardingEntry(segment: t.vni, mac: mac(k), tunnel: t.name))
        }
        let config = Configuration(
            uplink: uplink(),
            access: [AccessPort(port: .name("p0"), segment: vni(100)), AccessPort(port: .name("p1"), segment: vni(7), vlan: 12)],
            tunnels: tunnels, forwarding: forwarding,
            flood: segments.map { s in FloodList(segment: vni(s), tunnels: tunnels.filter { $0.vni.rawValue == s }.map(\.name).reversed()) })
        var o = try overlay(config)
        XCTAssertEqual(o.neighbors.count, 3)  // two on-link, the gateway
        checkPlan(o)
        // Access segments first (sorted), then the tunnels' in the order they came.
        let order: [UInt32] = [7, 100, 300, 200, 5000]
        XCTAssertEqual(o.plan().segments.map { $0?.vni.rawValue }, order)

        _ = try o.deleteTunnel(named: "s100-0", nowMs: 1)
        checkPlan(o)
        _ = try o.deleteTunnel(named: "s300-1", nowMs: 2)
        checkPlan(o)
        _ = try o.addTunnel(vxlan("late", "192.168.50.77", 200), nowMs: 3)
        _ = try o.addForwarding(segment: vni(200), mac: mac(999), tunnel: "late")
        checkPlan(o)
        XCTAssertEqual(o.plan().segments.map { $0?.vni.rawValue }, order, "segment indexes are stable")
        for t in o.tunnels.filter({ $0.vni == vni(5000) }) { _ = try o.deleteTunnel(named: t.name, nowMs: 4) }
        checkPlan(o)
        // The last tunnel of 5000 freed its index; other indexes stay, a new VNI takes it.
        XCTAssertEqual(o.plan().segments.map { $0?.vni.rawValue }, [7, 100, 300, 200, nil])
        _ = try o.addTunnel(vxlan("new", "192.168.50.78", 6000), nowMs: 5)
        XCTAssertEqual(o.plan().segments.map { $0?.vni.rawValue }, [7, 100, 300, 200, 6000])
        checkPlan(o)
        // An access segment keeps its index without tunnels.
        for t in o.tunnels.filter({ $0.vni == vni(100) }) { _ = try o.deleteTunnel(named: t.name, nowMs: 6) }
        XCTAssertEqual(o.plan().segments.map { $0?.vni.rawValue }, [7, 100, 300, 200, 6000])
        checkPlan(o)
    }
}
