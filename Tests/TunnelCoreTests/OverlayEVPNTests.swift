import XCTest
@testable import TunnelCore

/// EVPN in the overlay model: what FRR installs (VTEPs, flood-list memberships, remote
/// MACs) becoming tunnels and routes, the holds that ride out an FRR restart, and the
/// local MACs seen on EVPN access ports. Time is passed in.
final class OverlayEVPNTests: XCTestCase {
    let evpnSegment = VNI(42)!
    let plainSegment = VNI(100)!
    let holdMs: UInt64 = 8000

    func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    func mac(_ i: Int) -> MACAddress { MACAddress(rawValue: 0x0250_5600_0000 + UInt64(i)) }
    func key(_ i: Int, _ vni: VNI? = nil) -> Overlay.MACKey { Overlay.MACKey(segment: vni ?? evpnSegment, mac: mac(i)) }
    func vtep(_ address: String) -> EVPNVTEP { EVPNVTEP(address: ip(address), vni: evpnSegment, udpPort: 4789) }
    func name(_ address: String) -> String { "evpn-42-\(address)" }

    /// Access port 0 in EVPN segment 42, port 1 in segment 100 (data-plane learning on);
    /// configured tunnel "core" to 192.168.50.5 in 42 (a VTEP may be it), "plain" in 100.
    func overlay(gateway: IPv4Address? = IPv4Address(192, 168, 50, 254), tunnels: [Tunnel]? = nil) throws -> Overlay {
        let config = Configuration(
            uplink: Uplink(port: .name("up"), address: IPv4Interface("192.168.50.1/24")!, gateway: gateway),
            access: [AccessPort(port: .id(0), segment: evpnSegment), AccessPort(port: .id(1), segment: plainSegment)],
            tunnels: tunnels ?? [Tunnel(name: "core", type: .vxlan, remote: ip("192.168.50.5"), vni: evpnSegment),
                                 Tunnel(name: "plain", type: .vxlan, remote: ip("192.168.50.6"), vni: plainSegment)],
            evpn: EVPNSettings(holdMs: Int(holdMs), segments: [
                EVPNSettings.Segment(vni: evpnSegment, vxlanInterface: "vx42", localPort: "tfevpn42"),
            ]))
        return try Overlay(configuration: config, localMAC: MACAddress(0x02, 0, 0, 0, 0, 1), accessPortIDs: [0, 1], nowMs: 0)
    }

    func index(_ o: Overlay, _ tunnel: String) -> TunnelIndex? { o.records[tunnel]?.index }

    func planSegment(_ o: Overlay, _ vni: VNI) -> ForwardingPlan.Segment? {
        o.plan().segments.first { $0?.vni == vni } ?? nil
    }

    func remoteMAC(_ i: Int, behind address: String, sticky: Bool = false) -> EVPNFDBChange {
        .remoteMAC(evpnSegment, mac(i), EVPNRemoteMAC(vtep: vtep(address), sticky: sticky))
    }

    func local(_ i: Int, _ vni: VNI? = nil) -> LearningReport {
        LearningReport(mac: mac(i), vni: vni ?? evpnSegment, source: .accessPort)
    }

    // MARK: VTEPs and remote MACs

    func testAVTEPBecomesAnEVPNTunnelInTheFloodListWithRoutesToIt() throws {
        var o = try overlay()
        let v = vtep("192.168.50.2")
        let added = o.applyEVPN([.vtepAdded(evpnSegment, v)], nowMs: 0)
        let tunnel = try XCTUnwrap(o.tunnel(named: name("192.168.50.2")))
        XCTAssertEqual(tunnel.type, .vxlan)
        XCTAssertEqual(tunnel.remote, ip("192.168.50.2"))
        XCTAssertEqual(tunnel.vni, evpnSegment)
        XCTAssertEqual(o.origin(ofTunnel: tunnel.name), .evpn)
        XCTAssertEqual(o.origin(ofTunnel: "core"), .configured)
        XCTAssertTrue(added.publish)
        XCTAssertEqual(added.resolve, [.init(address: ip("192.168.50.2"), id: o.neighbors[ip("192.168.50.2")]!.id)])
        XCTAssertEqual(o.evpn.vteps[v], EVPNState.VTEP(tunnel: tunnel.name, owned: true))
        XCTAssertEqual(o.floodList(evpnSegment), [], "not flooded to before FRR says so")

        let joined = o.applyEVPN([.floodJoined(evpnSegment, v)], nowMs: 1)
        XCTAssertTrue(joined.publish)
        XCTAssertEqual(o.floodList(evpnSegment), [tunnel.name])
        XCTAssertEqual(planSegment(o, evpnSegment)?.flood, [index(o, tunnel.name)!])
        XCTAssertFalse(o.applyEVPN([.floodJoined(evpnSegment, v)], nowMs: 2).publish, "already in")

        let macs = o.applyEVPN([remoteMAC(1, behind: "192.168.50.2"), remoteMAC(2, behind: "192.168.50.2", sticky: true)], nowMs: 3)
        XCTAssertFalse(macs.publish)
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: index(o, tunnel.name)!))
        XCTAssertEqual(o.publishedRoute(key(2)), MACRoute(tunnel: index(o, tunnel.name)!))
        XCTAssertEqual(o.evpn.remoteMACs[key(2)], EVPNState.RemoteMAC(tunnel: tunnel.name, sticky: true))
        XCTAssertEqual(o.forwardingEntries(segment: evpnSegment).map(\.origin), [.evpn, .evpn])
        XCTAssertThrowsError(try o.deleteForwarding(segment: evpnSegment, mac: mac(1))) {
            XCTAssertEqual($0 as? OverlayError, .notStatic(segment: evpnSegment, mac: mac(1), origin: "EVPN"))
        }
        // A MAC of a VTEP FRR never installed is ignored.
        _ = o.applyEVPN([remoteMAC(3, behind: "192.168.50.9")], nowMs: 4)
        XCTAssertNil(o.publishedRoute(key(3)))
        XCTAssertNil(o.evpn.remoteMACs[key(3)])

        XCTAssertTrue(o.applyEVPN([.remoteMACGone(evpnSegment, mac(1))], nowMs: 5).isEmpty)
        XCTAssertNil(o.publishedRoute(key(1)), "withdrawn MACs go at once")
        XCTAssertNotNil(o.publishedRoute(key(2)))

        // The snapshot agrees.
        let snapshot = ForwardingSnapshot(o.plan())
        let view = snapshot.view.pointee
        let s = try XCTUnwrap(view.segment(vni: evpnSegment))
        XCTAssertEqual(view.tunnel(segment: s, mac: mac(2)), index(o, tunnel.name))
        XCTAssertEqual(Array(view.floodList(segment: s)), [index(o, tunnel.name)!])
        XCTAssertEqual(view.entry(index(o, tunnel.name)!).pointee.header.remoteAddress, ip("192.168.50.2"))
        XCTAssertTrue(view.accepts(segment: s, from: ip("192.168.50.2")))
    }

    func testAStaticEntryWinsOverEVPNWhichTakesOverWhenItGoes() throws {
        var o = try overlay()
        _ = o.applyEVPN([.vtepAdded(evpnSegment, vtep("192.168.50.2"))], nowMs: 0)
        let evpnTunnel = index(o, name("192.168.50.2"))!
        let core = index(o, "core")!

        // Static first, then EVPN.
        _ = try o.addForwarding(segment: evpnSegment, mac: mac(1), tunnel: "core")
        _ = o.applyEVPN([remoteMAC(1, behind: "192.168.50.2")], nowMs: 1)
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: core))
        XCTAssertEqual(o.evpn.statistics.conflicts, 1)
        XCTAssertEqual(o.forwardingEntries(segment: evpnSegment).map(\.origin), [.configured])
        // FRR repeating itself is not another conflict.
        _ = o.applyEVPN([remoteMAC(1, behind: "192.168.50.2", sticky: true)], nowMs: 2)
        XCTAssertEqual(o.evpn.statistics.conflicts, 1)
        _ = try o.deleteForwarding(segment: evpnSegment, mac: mac(1))
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: evpnTunnel), "the EVPN entry takes over")
        XCTAssertEqual(o.forwardingEntries(segment: evpnSegment).map(\.origin), [.evpn])

        // EVPN first, then static.
        _ = o.applyEVPN([remoteMAC(2, behind: "192.168.50.2")], nowMs: 3)
        XCTAssertEqual(o.publishedRoute(key(2)), MACRoute(tunnel: evpnTunnel))
        _ = try o.addForwarding(segment: evpnSegment, mac: mac(2), tunnel: "core")
        XCTAssertEqual(o.publishedRoute(key(2)), MACRoute(tunnel: core))
        XCTAssertEqual(o.evpn.statistics.conflicts, 2)
        // FRR withdrawing it leaves the static entry.
        _ = o.applyEVPN([.remoteMACGone(evpnSegment, mac(2))], nowMs: 4)
        XCTAssertEqual(o.publishedRoute(key(2)), MACRoute(tunnel: core))
    }

    func testAWithdrawnVTEPIsHeldThenGoes() throws {
        var o = try overlay()
        let v = vtep("192.168.50.2")
        let tunnel = name("192.168.50.2")
        _ = o.applyEVPN([.vtepAdded(evpnSegment, v), .floodJoined(evpnSegment, v), remoteMAC(1, behind: "192.168.50.2")], nowMs: 0)
        let slot = index(o, tunnel)!

        let withdrawn = o.applyEVPN([.remoteMACGone(evpnSegment, mac(1)), .floodLeft(evpnSegment, v), .vtepRemoved(evpnSegment, v)],
                                    nowMs: 1000)
        XCTAssertFalse(withdrawn.publish, "nothing the workers see changes yet")
        XCTAssertEqual(o.evpn.heldCount, 1)
        XCTAssertTrue(o.expireEVPNHolds(nowMs: 1000 + holdMs - 1).isEmpty)
        XCTAssertEqual(index(o, tunnel), slot)
        XCTAssertEqual(o.floodList(evpnSegment), [tunnel])

        let expired = o.expireEVPNHolds(nowMs: 1000 + holdMs)
        XCTAssertTrue(expired.publish)
        XCTAssertEqual(expired.forget, [ip("192.168.50.2")])
        XCTAssertNil(o.tunnel(named: tunnel))
        XCTAssertEqual(o.floodList(evpnSegment), [])
        XCTAssertNil(o.evpn.vteps[v])
        XCTAssertEqual(o.evpn.heldCount, 0)
        XCTAssertNil(o.neighbors[ip("192.168.50.2")])
        XCTAssertTrue(o.expireEVPNHolds(nowMs: 2000 + holdMs).isEmpty)
    }

    func testAVTEPInstalledAgainWithinTheHoldKeepsItsTunnel() throws {
        var o = try overlay()
        let v = vtep("192.168.50.2")
        let tunnel = name("192.168.50.2")
        _ = o.applyEVPN([.vtepAdded(evpnSegment, v), .floodJoined(evpnSegment, v)], nowMs: 0)
        let slot = index(o, tunnel)!
        let entry = o.tunnelTable[slot]
        _ = o.applyEVPN([.floodLeft(evpnSegment, v), .vtepRemoved(evpnSegment, v)], nowMs: 1000)

        let back = o.applyEVPN([.vtepAdded(evpnSegment, v), .floodJoined(evpnSegment, v)], nowMs: 5000)
        XCTAssertEqual(back.resolve, [], "no churn: the next hop is still tracked")
        XCTAssertFalse(back.publish, "it never left the flood list")
        XCTAssertEqual(index(o, tunnel), slot)
        XCTAssertEqual(o.tunnelTable[slot].header, entry.header)
        XCTAssertEqual(o.evpn.heldCount, 0)
        XCTAssertTrue(o.expireEVPNHolds(nowMs: 1000 + holdMs + 1).isEmpty)
        XCTAssertEqual(index(o, tunnel), slot)
        XCTAssertEqual(o.floodList(evpnSegment), [tunnel])
    }

    func testAnUnreachableVTEPIsRefusedWithANoticeAndItsMACsIgnored() throws {
        var o = try overlay(gateway: nil)
        let far = vtep("10.0.0.9")
        let effects = o.applyEVPN([.vtepAdded(evpnSegment, far), .floodJoined(evpnSegment, far), remoteMAC(1, behind: "10.0.0.9")],
                                  nowMs: 0)
        XCTAssertEqual(effects.notices.count, 1)
        XCTAssertTrue(effects.notices[0].contains("10.0.0.9"), effects.notices[0])
        XCTAssertTrue(effects.notices[0].contains("uplink.gateway"), effects.notices[0])
        XCTAssertFalse(effects.notices[0].contains(where: \.isNewline))
        XCTAssertEqual(effects.resolve, [])
        XCTAssertEqual(o.evpn.statistics.refused, 1)
        XCTAssertNil(o.tunnel(named: name("10.0.0.9")))
        XCTAssertNil(o.publishedRoute(key(1)))
        XCTAssertNil(o.evpn.remoteMACs[key(1)])
        XCTAssertEqual(o.floodList(evpnSegment), [])
        // Its withdrawal is quiet; installed again, it is refused (and counted) again.
        XCTAssertTrue(o.applyEVPN([.vtepRemoved(evpnSegment, far)], nowMs: 1).isEmpty)
        XCTAssertEqual(o.applyEVPN([.vtepAdded(evpnSegment, far)], nowMs: 2).notices.count, 1)
        XCTAssertEqual(o.evpn.statistics.refused, 2)
    }

    func testAVTEPThatIsAConfiguredTunnelUsesItAndNeverDeletesIt() throws {
        var o = try overlay()
        let v = vtep("192.168.50.5")
        let tunnels = o.tunnelCount
        let effects = o.applyEVPN([.vtepAdded(evpnSegment, v), .floodJoined(evpnSegment, v), remoteMAC(1, behind: "192.168.50.5")],
                                  nowMs: 0)
        XCTAssertEqual(effects.resolve, [])
        XCTAssertEqual(o.tunnelCount, tunnels)
        XCTAssertNil(o.tunnel(named: name("192.168.50.5")))
        XCTAssertEqual(o.evpn.vteps[v], EVPNState.VTEP(tunnel: "core", owned: false, floods: true))
        XCTAssertEqual(o.floodList(evpnSegment), ["core"])
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: index(o, "core")!))
        XCTAssertThrowsError(try o.deleteTunnel(named: "core", nowMs: 1)) {
            guard case .invalidTunnel("core", let why)? = $0 as? OverlayError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("192.168.50.5"), why)
        }
        // A static flood list naming it as well does not list it twice.
        _ = try o.addFlood(segment: evpnSegment, tunnel: "core")
        XCTAssertEqual(o.floodList(evpnSegment), ["core"])

        _ = o.applyEVPN([.remoteMACGone(evpnSegment, mac(1)), .floodLeft(evpnSegment, v), .vtepRemoved(evpnSegment, v)], nowMs: 10)
        let expired = o.expireEVPNHolds(nowMs: 10 + holdMs)
        XCTAssertEqual(expired.forget, [])
        XCTAssertNotNil(o.tunnel(named: "core"))
        XCTAssertNil(o.evpn.vteps[v])
        XCTAssertEqual(o.floodList(evpnSegment), ["core"], "still in its static list")
        XCTAssertNoThrow(try o.deleteTunnel(named: "core", nowMs: 20), "EVPN no longer uses it")
    }

    func testEVPNTunnelsAndNamesAreEVPNsOwn() throws {
        var o = try overlay()
        _ = o.applyEVPN([.vtepAdded(evpnSegment, vtep("192.168.50.2"))], nowMs: 0)
        let tunnel = name("192.168.50.2")
        XCTAssertThrowsError(try o.deleteTunnel(named: tunnel, nowMs: 0)) {
            XCTAssertEqual($0 as? OverlayError, .managedByEVPN(tunnel))
        }
        XCTAssertNotNil(o.tunnel(named: tunnel))
        XCTAssertThrowsError(try o.addTunnel(Tunnel(name: "evpn-x", type: .vxlan, remote: ip("192.168.50.30"), vni: evpnSegment), nowMs: 0)) {
            guard case .invalidTunnel("evpn-x", let why)? = $0 as? OverlayError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("evpn-"), why)
        }
        XCTAssertThrowsError(try overlay(tunnels: [Tunnel(name: "evpn-42-192.168.50.2", type: .vxlan, remote: ip("192.168.50.2"),
                                                          vni: evpnSegment)]))
        // A VTEP on another UDP port has the port in its tunnel's name.
        XCTAssertEqual(EVPNState.tunnelName(EVPNVTEP(address: ip("192.168.50.2"), vni: evpnSegment, udpPort: 8472)),
                       "evpn-42-192.168.50.2-8472")
    }

    // MARK: local MACs

    func testAnAccessPortMACOfAnEVPNSegmentIsLocalAndAdvertised() throws {
        var o = try overlay()
        guard let (outcome, effects) = o.learn(local(1), nowMs: 0), case .added(let slot) = outcome else {
            return XCTFail("not learnt")
        }
        XCTAssertEqual(effects.advertise, [key(1)])
        XCTAssertFalse(effects.publish)
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: .local, learnedSlot: slot))
        XCTAssertEqual(o.forwardingEntries(segment: evpnSegment),
                       [Overlay.ForwardingEntryInfo(key: key(1), tunnel: nil, origin: .local, learnedSlot: slot)])
        XCTAssertEqual(o.learned.localCount, 1)
        // Seen again: nothing to advertise.
        guard let (again, quiet) = o.learn(local(1), nowMs: 1) else { return XCTFail() }
        XCTAssertEqual(again, .unchanged(slot: slot))
        XCTAssertTrue(quiet.isEmpty)

        // Not in a segment without EVPN.
        XCTAssertNil(o.learn(local(2, plainSegment), nowMs: 2))
        XCTAssertNil(o.publishedRoute(key(2, plainSegment)))

        // A static entry replaces it, withdrawn.
        XCTAssertEqual(try o.addForwarding(segment: evpnSegment, mac: mac(1), tunnel: "core").withdraw, [key(1)])
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: index(o, "core")!))
        XCTAssertNil(o.learn(local(1), nowMs: 3), "a static entry owns it")
    }

    func testALocalMACMovedAwayByFRRIsNotReadvertisedTooSoon() throws {
        var o = try overlay()
        _ = o.applyEVPN([.vtepAdded(evpnSegment, vtep("192.168.50.2"))], nowMs: 0)
        let remote = index(o, name("192.168.50.2"))!
        _ = o.learn(local(1), nowMs: 100)

        let moved = o.applyEVPN([remoteMAC(1, behind: "192.168.50.2")], nowMs: 200)
        XCTAssertEqual(moved.withdraw, [], "zebra has taken the kernel entry over")
        XCTAssertNil(o.learned.entries[key(1)])
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: remote))
        XCTAssertEqual(o.evpn.statistics.movedAway, 1)

        XCTAssertNil(o.learn(local(1), nowMs: 200 + EVPNState.readvertiseIntervalMs - 1))
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: remote))
        guard let (outcome, effects) = o.learn(local(1), nowMs: 200 + EVPNState.readvertiseIntervalMs),
              case .added(let slot) = outcome else { return XCTFail("not learnt after the interval") }
        XCTAssertEqual(effects.advertise, [key(1)])
        XCTAssertNil(o.evpn.remoteMACs[key(1)], "seen here: the remote entry is gone")
        XCTAssertEqual(o.evpn.statistics.movedHere, 1)
        XCTAssertEqual(o.publishedRoute(key(1)), MACRoute(tunnel: .local, learnedSlot: slot))
        // expireEVPNHolds forgets old moves.
        _ = o.applyEVPN([remoteMAC(1, behind: "192.168.50.2")], nowMs: 5000)
        _ = o.expireEVPNHolds(nowMs: 5000 + EVPNState.readvertiseIntervalMs)
        XCTAssertNotNil(o.learn(local(1), nowMs: 5000 + EVPNState.readvertiseIntervalMs))
    }

    func testAnAgedLocalMACIsWithdrawn() throws {
        var o = try overlay()
        guard case .added(let localSlot)? = o.learn(local(1), nowMs: 0)?.0 else { return XCTFail() }
        // A learnt MAC of the plain segment ages without a withdrawal.
        let learnt = LearningReport(mac: mac(2), vni: plainSegment, source: .tunnel(.vxlan, remote: ip("192.168.50.6")))
        guard case .added(let learntSlot)? = o.learn(learnt, nowMs: 0)?.0 else { return XCTFail() }
        var seen = [localSlot: UInt64(100), learntSlot: 100]
        XCTAssertEqual(o.expireLearned(now: 110, agingTicks: 10, lastSeen: { seen[$0]! }).aged, 0)
        seen[learntSlot] = 105
        let (aged, effects) = o.expireLearned(now: 111, agingTicks: 10, lastSeen: { seen[$0]! })
        XCTAssertEqual(aged, 1)
        XCTAssertEqual(effects.withdraw, [key(1)])
        XCTAssertNil(o.publishedRoute(key(1)))
        XCTAssertNotNil(o.publishedRoute(key(2, plainSegment)))
        let later = o.expireLearned(now: 116, agingTicks: 10, lastSeen: { seen[$0]! })
        XCTAssertEqual(later.aged, 1)
        XCTAssertEqual(later.effects.withdraw, [])
        XCTAssertNil(o.publishedRoute(key(2, plainSegment)))
    }

    func testEVPNSegmentsDoNotLearnFromTunnels() throws {
        var o = try overlay()
        _ = o.applyEVPN([.vtepAdded(evpnSegment, vtep("192.168.50.2"))], nowMs: 0)
        for remote in ["192.168.50.2", "192.168.50.5"] {
            XCTAssertNil(o.learn(LearningReport(mac: mac(1), vni: evpnSegment, source: .tunnel(.vxlan, remote: ip(remote))), nowMs: 0))
        }
        XCTAssertNil(o.publishedRoute(key(1)))
        XCTAssertNotNil(o.learn(LearningReport(mac: mac(1), vni: plainSegment, source: .tunnel(.vxlan, remote: ip("192.168.50.6"))),
                                nowMs: 0))
        XCTAssertEqual(o.publishedRoute(key(1, plainSegment))?.tunnel, index(o, "plain"))

        let plan = o.plan()
        XCTAssertEqual(planSegment(o, evpnSegment)?.learnsFromTunnels, false)
        XCTAssertEqual(planSegment(o, plainSegment)?.learnsFromTunnels, true)
        XCTAssertEqual(plan.access[0]?.learnsSources, true)
        XCTAssertEqual(plan.access[1]?.learnsSources, false)
        let snapshot = ForwardingSnapshot(plan)
        let view = snapshot.view.pointee
        XCTAssertFalse(view.segments[Int(view.segment(vni: evpnSegment)!)].learnsFromTunnels)
        XCTAssertTrue(view.segments[Int(view.segment(vni: plainSegment)!)].learnsFromTunnels)
        XCTAssertTrue(view.binding(ofPort: 0).learnsSources)
        XCTAssertFalse(view.binding(ofPort: 1).learnsSources)
    }
}
