import XCTest
@testable import TunnelCore

/// Learning inner MACs from decapsulated traffic: the model's side. Time is in
/// learning ticks, passed in.
final class OverlayLearningTests: XCTestCase {
    let local = IPv4Interface("192.168.50.1/24")!
    let segment = VNI(100)!

    func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    func mac(_ i: Int) -> MACAddress { MACAddress(rawValue: 0x0250_5600_0000 + UInt64(i)) }

    func overlay(learning: LearningSettings = .init()) throws -> Overlay {
        let config = Configuration(
            uplink: Uplink(port: .name("net_tap1"), address: local),
            access: [AccessPort(port: .name("net_tap0"), segment: segment)],
            tunnels: [
                Tunnel(name: "a", type: .vxlan, remote: ip("192.168.50.10"), vni: segment),
                Tunnel(name: "b", type: .vxlan, remote: ip("192.168.50.11"), vni: segment),
                Tunnel(name: "g", type: .geneve, remote: ip("192.168.50.10"), vni: segment),
            ],
            learning: learning)
        return try Overlay(configuration: config, localMAC: MACAddress(0x02, 0, 0, 0, 0, 1), accessPortIDs: [0], nowMs: 0)
    }

    func report(_ m: Int, from remote: String, _ type: EncapsulationType = .vxlan, vni: UInt32 = 100) -> LearningReport {
        LearningReport(mac: mac(m), vni: VNI(vni)!, source: .tunnel(type, remote: ip(remote)))
    }

    /// What the overlay learnt from `r`; a tunnel's learning never asks anything of the
    /// control core but what the MAC table needs.
    func learn(_ o: inout Overlay, _ r: LearningReport, line: UInt = #line) -> LearnedMACs.Outcome? {
        guard let (outcome, effects) = o.learn(r, nowMs: 0) else { return nil }
        XCTAssertEqual(effects.advertise, [], line: line)
        XCTAssertEqual(effects.resolve, [], line: line)
        return outcome
    }

    func learnt(_ o: Overlay, _ m: Int) -> String? {
        o.learned.entries[Overlay.MACKey(segment: segment, mac: mac(m))]?.tunnel
    }

    func testAMACIsLearntBehindTheTunnelOfItsOriginAndMovesWithIt() throws {
        var o = try overlay()
        guard case .added(let slot)? = learn(&o, report(1, from: "192.168.50.10")) else { return XCTFail() }
        XCTAssertEqual(learnt(o, 1), "a")
        XCTAssertEqual(learn(&o, report(1, from: "192.168.50.10")), .unchanged(slot: slot))
        // Same remote, other format: another tunnel.
        XCTAssertEqual(learn(&o, report(1, from: "192.168.50.10", .geneve)), .moved(slot: slot, from: "a"))
        XCTAssertEqual(learnt(o, 1), "g")
        XCTAssertEqual(learn(&o, report(1, from: "192.168.50.11")), .moved(slot: slot, from: "g"))
        XCTAssertEqual(learnt(o, 1), "b")
        XCTAssertEqual(o.learned.count, 1)
    }

    func testNothingIsLearntWithoutATunnelOfThatOriginOrForAGroupMAC() throws {
        var o = try overlay()
        XCTAssertNil(learn(&o, report(1, from: "192.168.50.99")))             // no tunnel to that remote
        XCTAssertNil(learn(&o, report(1, from: "192.168.50.10", .nvgre)))     // none of that format
        XCTAssertNil(learn(&o, report(1, from: "192.168.50.10", vni: 101)))   // none with that VNI
        var group = report(1, from: "192.168.50.10")
        group.mac = MACAddress(0x01, 0, 0x5E, 0, 0, 1)
        XCTAssertNil(learn(&o, group))
        XCTAssertEqual(o.learned.count, 0)
    }

    func testAStaticEntryIsNeverLearntOverAndReplacesALearntOne() throws {
        var o = try overlay()
        _ = try o.addForwarding(segment: segment, mac: mac(1), tunnel: "b")
        XCTAssertNil(learn(&o, report(1, from: "192.168.50.10")))
        XCTAssertEqual(o.forwarding[Overlay.MACKey(segment: segment, mac: mac(1))], "b")

        _ = learn(&o, report(2, from: "192.168.50.10"))
        XCTAssertEqual(learnt(o, 2), "a")
        _ = try o.addForwarding(segment: segment, mac: mac(2), tunnel: "b")
        XCTAssertNil(learnt(o, 2))
        XCTAssertEqual(o.macTable.count, 2)
        for m in [1, 2] {
            XCTAssertEqual(o.publishedRoute(Overlay.MACKey(segment: segment, mac: mac(m))),
                           MACRoute(tunnel: o.records["b"]!.index), "mac \(m)")
        }
    }

    func testPlanCarriesLearntEntriesWithTheirSlots() throws {
        var o = try overlay()
        guard case .added(let slot)? = learn(&o, report(7, from: "192.168.50.11")) else { return XCTFail() }
        let snapshot = ForwardingSnapshot(o.plan())
        let view = snapshot.view.pointee
        let key = ForwardingView.key(segment: view.segment(vni: segment)!, mac: mac(7))
        guard let route = view.route(key: key) else { return XCTFail("learnt MAC not in the snapshot") }
        XCTAssertEqual(route.learnedSlot, slot)
        XCTAssertEqual(view.entry(route.tunnel).pointee.header.remoteAddress, ip("192.168.50.11"))
        XCTAssertEqual(view.tunnel(key: key), route.tunnel)
    }

    func testDeletingTunnelOrEntryForgetsLearntMACsAndFreesTheirSlots() throws {
        var o = try overlay(learning: { var l = LearningSettings(); l.maxEntries = 2; return l }())
        _ = learn(&o, report(1, from: "192.168.50.10"))
        _ = learn(&o, report(2, from: "192.168.50.10"))
        XCTAssertEqual(learn(&o, report(3, from: "192.168.50.11")), .full)
        let deleted = try o.deleteTunnel(named: "a", nowMs: 0)
        XCTAssertEqual(deleted.forwardingEntriesRemoved, 2)
        XCTAssertEqual(o.learned.count, 0)
        guard case .added? = learn(&o, report(3, from: "192.168.50.11")) else { return XCTFail("slot not freed") }
        _ = try o.deleteForwarding(segment: segment, mac: mac(3))
        XCTAssertEqual(o.learned.count, 0)
    }

    func testTheFirstTunnelOfAnOriginIsLearntBehindAndItsTwinTakesOver() throws {
        var o = try overlay()
        var twin = Tunnel(name: "a2", type: .vxlan, remote: ip("192.168.50.10"), vni: segment)
        twin.destinationPort = 4790
        _ = try o.addTunnel(twin, nowMs: 0)
        _ = learn(&o, report(1, from: "192.168.50.10"))
        XCTAssertEqual(learnt(o, 1), "a")
        _ = try o.deleteTunnel(named: "a", nowMs: 0)
        _ = learn(&o, report(1, from: "192.168.50.10"))
        XCTAssertEqual(learnt(o, 1), "a2")
    }

    func testEntriesNotSeenForTheAgeingTimeAreForgotten() {
        var table = LearnedMACs(capacity: 4)
        var seen: [Int: UInt64] = [:]
        let k1 = Overlay.MACKey(segment: segment, mac: mac(1))
        let k2 = Overlay.MACKey(segment: segment, mac: mac(2))
        guard case .added(let s1) = table.learn(k1, tunnel: "a"), case .added(let s2) = table.learn(k2, tunnel: "a") else {
            return XCTFail()
        }
        seen[s1] = 1000
        seen[s2] = 1000
        XCTAssertEqual(table.expire(now: 1010, agingTicks: 10, lastSeen: { seen[$0]! }).map(\.key), [])
        seen[s2] = 1005
        XCTAssertEqual(table.expire(now: 1011, agingTicks: 10, lastSeen: { seen[$0]! }).map(\.key), [k1])
        XCTAssertEqual(table.expire(now: 1016, agingTicks: 10, lastSeen: { seen[$0]! }).map(\.key), [k2])
        XCTAssertEqual(table.count, 0)
        guard case .added(let s3) = table.learn(k1, tunnel: "a") else { return XCTFail() }
        seen[s3] = 2001
        XCTAssertEqual(table.expire(now: 2000, agingTicks: 10, lastSeen: { seen[$0]! }).map(\.key), [], "seen by a clock ahead")
    }

    func testLearningOffLearnsNothing() throws {
        var o = try overlay(learning: { var l = LearningSettings(); l.enabled = false; return l }())
        XCTAssertNil(learn(&o, report(1, from: "192.168.50.10")))
        XCTAssertEqual(o.learned.count, 0)
        XCTAssertFalse(o.plan().segments.contains { $0?.learnsFromTunnels ?? false })
    }

    func testReportSurvivesItsTwoWords() {
        let sources = EncapsulationType.allCases.map { LearningReport.Source.tunnel($0, remote: ip("203.0.113.250")) }
            + [.tunnel(.vxlan, remote: ip("255.255.255.255")), .tunnel(.nvgre, remote: ip("0.0.0.1")), .accessPort]
        for source in sources {
            for (m, v) in [(MACAddress(0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54), VNI(0xFF_FFFF)!), (mac(1), VNI(0)!)] {
                let r = LearningReport(mac: m, vni: v, source: source)
                XCTAssertEqual(LearningReport(words: r.words), r)
            }
        }
        // The two sources are told apart whatever the MAC's top bits.
        let local = LearningReport(mac: .broadcast, vni: segment, source: .accessPort)
        XCTAssertEqual(LearningReport(words: local.words)?.source, .accessPort)
        XCTAssertEqual(local.words.1 & 0xFFFF_FFFF, 0, "no remote for an access port")
        XCTAssertNil(LearningReport(words: (7 << 48, 0)), "an unknown format index")
        XCTAssertNil(LearningReport(words: (0xFE << 48, 0)), "an unknown source code")
    }

    func testTemplateKnowsItsRemote() {
        for type in EncapsulationType.allCases {
            let t = Tunnel(name: "t", type: type, remote: ip("198.51.100.7"), vni: segment)
            let header = OuterHeaderTemplate(tunnel: t, localAddress: local.address, localMAC: MACAddress(0x02, 0, 0, 0, 0, 1))
            XCTAssertEqual(header.remoteAddress, ip("198.51.100.7"))
            XCTAssertEqual(header.addressed(to: MACAddress(0x02, 9, 9, 9, 9, 9)).remoteAddress, ip("198.51.100.7"))
        }
    }

    func testLearningClockTicksAboutTenTimesASecondAt2600MHz() {
        XCTAssertEqual(LearningClock.ticks(seconds: 300, tscHz: 2_600_000_000), 2905)
        XCTAssertEqual(LearningClock.tick(tsc: 3 << 28 | 12345), 3)
        // Back to milliseconds, within one tick (103 ms at 2.6 GHz).
        XCTAssertEqual(Double(LearningClock.milliseconds(ticks: 2905, tscHz: 2_600_000_000)), 300_000, accuracy: 104)
        XCTAssertEqual(LearningClock.milliseconds(ticks: 0, tscHz: 2_600_000_000), 0)
    }
}
