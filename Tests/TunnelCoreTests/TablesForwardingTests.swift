import XCTest
@testable import TunnelCore

final class TablesForwardingTests: XCTestCase {
    let localAddress = IPv4Address(192, 168, 50, 1)
    let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)

    func vni(_ v: UInt32) -> VNI { VNI(v)! }

    func tunnelEntry(_ i: Int, vni: VNI) -> TunnelEntry {
        let tunnel = Tunnel(name: "t\(i)", type: .vxlan, remote: IPv4Address(rawValue: 0xC0A8_3200 + UInt32(10 + i)), vni: vni)
        let header = OuterHeaderTemplate(tunnel: tunnel, localAddress: localAddress, localMAC: localMAC)
        return TunnelEntry(header: header, nextHop: NextHopID(rawValue: UInt32(100 + i)))
    }

    struct MACEntry {
        var segment: UInt16
        var mac: MACAddress
        var tunnel: TunnelIndex
    }

    /// A plan of `tunnels` tunnel entries (tunnel i in segment `segmentOf(i)`) and the
    /// given MAC entries, with empty segments of `vnis`.
    func plan(vnis: [VNI], tunnels: [TunnelEntry], macs: [MACEntry]) -> ForwardingPlan {
        let table = TunnelTable(capacity: max(tunnels.count, 1))
        for (i, entry) in tunnels.enumerated() { table[TunnelIndex(rawValue: UInt32(i))] = entry }
        let macTable = MACTable(capacity: macs.count)
        for e in macs { XCTAssertTrue(macTable.set(MACTableReader.key(segment: e.segment, mac: e.mac), MACRoute(tunnel: e.tunnel))) }
        var plan = ForwardingPlan(tunnels: table, macs: macTable)
        plan.segments = vnis.map { ForwardingPlan.Segment(vni: $0) }
        return plan
    }

    /// `count` MACs spread over `segments` segments and `tunnelsPerSegment` tunnels each.
    /// MACs share their low bits across segments on purpose (same MAC, different segment).
    func makePlan(macs count: Int, segments: Int = 3, tunnelsPerSegment: Int = 4) -> (ForwardingPlan, [MACEntry]) {
        let vnis = (0..<segments).map { vni(UInt32(1000 + $0 * 7)) }
        var tunnels: [TunnelEntry] = []
        for s in 0..<segments {
            for t in 0..<tunnelsPerSegment { tunnels.append(tunnelEntry(s * tunnelsPerSegment + t, vni: vnis[s])) }
        }
        var entries: [MACEntry] = []
        for i in 0..<count {
            let s = i % segments
            // Sequential MACs of one vendor: the clustering a hash must cope with.
            let mac = MACAddress(rawValue: 0x0250_5600_0000 + UInt64(i / segments))
            let t = TunnelIndex(rawValue: UInt32(s * tunnelsPerSegment + i % tunnelsPerSegment))
            entries.append(MACEntry(segment: UInt16(s), mac: mac, tunnel: t))
        }
        var plan = plan(vnis: vnis, tunnels: tunnels, macs: entries)
        for s in 0..<segments {
            plan.segments[s]!.flood = (0..<(s + 1)).map { TunnelIndex(rawValue: UInt32(s * tunnelsPerSegment + $0)) }
        }
        return (plan, entries)
    }

    func checkLookups(_ count: Int, line: UInt = #line) {
        let (plan, entries) = makePlan(macs: count)
        let snapshot = ForwardingSnapshot(plan)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        let first = UnsafeRawPointer(view.macs.words)
        let last = UnsafeRawPointer(view.macs.words + 2 * view.macs.mask)
        for e in entries {
            XCTAssertEqual(view.tunnel(segment: e.segment, mac: e.mac), e.tunnel, "\(e.mac) in \(e.segment)", line: line)
            let bucket = view.bucketAddress(key: ForwardingView.key(segment: e.segment, mac: e.mac))
            XCTAssertTrue(bucket >= first, line: line)
            XCTAssertTrue(bucket <= last, line: line)
        }
        // Unknown MACs, and known MACs in a segment that does not have them.
        for i in 0..<min(count, 1000) {
            XCTAssertNil(view.tunnel(segment: 0, mac: MACAddress(rawValue: 0x0250_5700_0000 + UInt64(i))), line: line)
            XCTAssertNil(view.tunnel(segment: 200, mac: entries[i].mac), line: line)
        }
        XCTAssertNil(view.tunnel(segment: 0, mac: .broadcast), line: line)
        XCTAssertNil(view.tunnel(segment: 1, mac: .zero), line: line)
        // Load factor at most 1/2.
        XCTAssertGreaterThanOrEqual(view.macs.mask + 1, 2 * count, line: line)
        XCTAssertEqual(plan.macs.count, count, line: line)
    }

    func testLookupsOfOneMAC() { checkLookups(1) }
    func testLookupsOfAHundredMACs() { checkLookups(100) }
    func testLookupsOfTenThousandMACs() { checkLookups(10_000) }

    func testEmptyPlan() {
        let snapshot = ForwardingSnapshot(plan(vnis: [], tunnels: [], macs: []))
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        XCTAssertNil(view.tunnel(segment: 0, mac: MACAddress(0x02, 0, 0, 0, 0, 1)))
        XCTAssertEqual(view.segmentCount, 0)
        XCTAssertNil(view.segment(vni: vni(0)))
        XCTAssertEqual(view.binding(ofPort: 0), .unbound)
    }

    func testSameMACInTwoSegmentsGoesToEachSegmentsTunnel() {
        let mac = MACAddress(0x02, 0xAB, 0, 0, 0, 1)
        let p = plan(vnis: [vni(1), vni(2)], tunnels: [tunnelEntry(0, vni: vni(1)), tunnelEntry(1, vni: vni(2))],
                     macs: [MACEntry(segment: 0, mac: mac, tunnel: TunnelIndex(rawValue: 0)),
                            MACEntry(segment: 1, mac: mac, tunnel: TunnelIndex(rawValue: 1))])
        let snapshot = ForwardingSnapshot(p)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        XCTAssertEqual(view.tunnel(segment: 0, mac: mac), TunnelIndex(rawValue: 0))
        XCTAssertEqual(view.tunnel(segment: 1, mac: mac), TunnelIndex(rawValue: 1))
        XCTAssertNil(view.tunnel(segment: 2, mac: mac))
    }

    func testTunnelsFloodListsAndAccessBindings() {
        var (plan, _) = makePlan(macs: 10)
        plan.access = [0: AccessBinding(segment: 0, vlan: 0), 3: AccessBinding(segment: 2, vlan: 100),
                       63: AccessBinding(segment: 1, vlan: 4094, learnsSources: true)]
        let snapshot = ForwardingSnapshot(plan)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        XCTAssertEqual(view.segmentCount, 3)
        for i in 0..<12 {
            let index = TunnelIndex(rawValue: UInt32(i))
            let entry = view.entry(index).pointee
            let expected = plan.tunnels[index]
            XCTAssertEqual(entry.nextHop, expected.nextHop)
            XCTAssertEqual(entry.nextHop, NextHopID(rawValue: UInt32(100 + i)))
            XCTAssertEqual(entry.header, expected.header)
            XCTAssertTrue(entry.header.dontFragment)
        }
        for s in 0..<3 {
            XCTAssertEqual(view.segments[s].vni, plan.segments[s]!.vni)
            XCTAssertEqual(Array(view.floodList(segment: UInt16(s))), plan.segments[s]!.flood, "segment \(s)")
        }
        XCTAssertEqual(view.binding(ofPort: 0), AccessBinding(segment: 0, vlan: 0))
        XCTAssertEqual(view.binding(ofPort: 3), AccessBinding(segment: 2, vlan: 100))
        XCTAssertEqual(view.binding(ofPort: 63), AccessBinding(segment: 1, vlan: 4094, learnsSources: true))
        for port in [1, 2, 4, 31, 62, 64, 65, 1000, Int(UInt16.max)] {
            XCTAssertEqual(view.binding(ofPort: UInt16(port)), .unbound, "port \(port)")
        }
    }

    func testEmptyFloodListsBetweenFullOnes() {
        var p = plan(vnis: [vni(1), vni(2), vni(3)], tunnels: (0..<3).map { tunnelEntry($0, vni: vni(UInt32($0 + 1))) }, macs: [])
        p.segments[0]!.flood = [TunnelIndex(rawValue: 0)]
        p.segments[2]!.flood = [TunnelIndex(rawValue: 2), TunnelIndex(rawValue: 0)]
        let snapshot = ForwardingSnapshot(p)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        XCTAssertEqual(Array(view.floodList(segment: 0)), [TunnelIndex(rawValue: 0)])
        XCTAssertTrue(view.floodList(segment: 1).isEmpty)
        XCTAssertEqual(Array(view.floodList(segment: 2)), [TunnelIndex(rawValue: 2), TunnelIndex(rawValue: 0)])
    }

    /// An index not in use (`nil` in the plan) finds no VNI, and the others keep theirs.
    func testSegmentIndexesNotInUseAreHoles() {
        var p = plan(vnis: [vni(1), vni(2), vni(3)], tunnels: [], macs: [])
        p.segments[1] = nil
        let snapshot = ForwardingSnapshot(p)
        defer { withExtendedLifetime(snapshot) {} }
        let view = snapshot.view.pointee
        XCTAssertEqual(view.segmentCount, 3)
        XCTAssertEqual(view.segment(vni: vni(1)), 0)
        XCTAssertNil(view.segment(vni: vni(2)))
        XCTAssertEqual(view.segment(vni: vni(3)), 2)
        XCTAssertTrue(view.floodList(segment: 1).isEmpty)
        XCTAssertTrue(view.deliveries(segment: 1).isEmpty)
    }

    // MARK: QSBR

    func testQuiescentStateWaitsForEveryOnlineReader() {
        let qs = QuiescentState.allocate(readers: 3)
        defer { qs.deallocate() }
        // Everyone starts offline: nothing blocks.
        XCTAssertTrue(qs.allReaders(havePassed: qs.advance()))
        qs.goOnline(reader: 0)
        qs.goOnline(reader: 1)
        let e = qs.advance()
        XCTAssertFalse(qs.allReaders(havePassed: e))
        qs.reportQuiescent(reader: 0)
        XCTAssertFalse(qs.allReaders(havePassed: e))
        qs.reportQuiescent(reader: 1)
        XCTAssertTrue(qs.allReaders(havePassed: e))
        // An older epoch stays passed; a newer one waits again.
        let e2 = qs.advance()
        XCTAssertGreaterThan(e2, e)
        XCTAssertTrue(qs.allReaders(havePassed: e))
        XCTAssertFalse(qs.allReaders(havePassed: e2))
        qs.goOffline(reader: 1)
        XCTAssertFalse(qs.allReaders(havePassed: e2))
        qs.goOffline(reader: 0)
        XCTAssertTrue(qs.allReaders(havePassed: e2))
    }

    func testPublisherReclaimsARetiredSnapshotOnlyAfterEveryOnlineReaderPassed() {
        var (plan, entries) = makePlan(macs: 5)
        let publisher = ForwardingPublisher(initial: ForwardingSnapshot(plan), readers: 3)
        let qs = publisher.quiescentState
        qs.goOnline(reader: 0)
        qs.goOnline(reader: 1)
        // Reader 2 stays offline throughout.

        let reader = publisher.reader
        let old = reader.load()
        XCTAssertEqual(old, publisher.view)
        XCTAssertEqual(old.pointee.tunnel(segment: entries[0].segment, mac: entries[0].mac), entries[0].tunnel)

        plan.macs = MACTable(capacity: 1)
        plan.macs.set(MACTableReader.key(segment: entries[1].segment, mac: entries[1].mac), MACRoute(tunnel: entries[1].tunnel))
        weak var firstRetired: ForwardingSnapshot?
        do {
            let next = ForwardingSnapshot(plan)
            publisher.publish(next)
        }
        let new = reader.load()
        XCTAssertNotEqual(new, old)
        XCTAssertEqual(new, publisher.view)
        XCTAssertNil(new.pointee.tunnel(segment: entries[0].segment, mac: entries[0].mac))

        XCTAssertEqual(publisher.reclaim(), 1, "no reader has passed a quiescent point yet")
        qs.reportQuiescent(reader: 0)
        XCTAssertEqual(publisher.reclaim(), 1, "reader 1 may still hold the old snapshot")
        // The old snapshot's memory is still readable.
        XCTAssertEqual(old.pointee.tunnel(segment: entries[0].segment, mac: entries[0].mac), entries[0].tunnel)
        qs.reportQuiescent(reader: 1)
        XCTAssertEqual(publisher.reclaim(), 0)

        // Two publishes in a row; a report between them releases only the first.
        do {
            let a = ForwardingSnapshot(plan)
            publisher.publish(a)
            let b = ForwardingSnapshot(plan)
            firstRetired = a
            qs.reportQuiescent(reader: 0)
            qs.reportQuiescent(reader: 1)
            publisher.publish(b)
        }
        XCTAssertNotNil(firstRetired)
        // Retired: the one replaced by `a` (passed) and `a` itself (not passed).
        XCTAssertEqual(publisher.reclaim(), 1)
        XCTAssertNotNil(firstRetired, "a is retired after the readers' last report")
        qs.reportQuiescent(reader: 0)
        XCTAssertEqual(publisher.reclaim(), 1)
        qs.reportQuiescent(reader: 1)
        XCTAssertEqual(publisher.reclaim(), 0)
        XCTAssertNil(firstRetired, "reclaimed snapshots are freed")
    }

    func testOfflineReadersDoNotBlockReclamation() {
        let (plan, _) = makePlan(macs: 3)
        let publisher = ForwardingPublisher(initial: ForwardingSnapshot(plan), readers: 4)
        publisher.publish(ForwardingSnapshot(plan))
        XCTAssertEqual(publisher.reclaim(), 0)
        publisher.quiescentState.goOnline(reader: 2)
        publisher.publish(ForwardingSnapshot(plan))
        XCTAssertEqual(publisher.reclaim(), 1)
        publisher.quiescentState.goOffline(reader: 2)
        XCTAssertEqual(publisher.reclaim(), 0)
    }

    // MARK: next hops

    func testNextHopTableSetAndClear() {
        let table = NextHopTable.allocate(capacity: 16)
        defer { table.deallocate() }
        let a = NextHopID(rawValue: 0), b = NextHopID(rawValue: 15)
        for i in 0..<16 { XCTAssertNil(table.resolvedMAC(NextHopID(rawValue: UInt32(i)))) }
        let mac = MACAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x55)
        table.setResolved(a, mac: mac)
        XCTAssertEqual(table.resolvedMAC(a), mac)
        XCTAssertNil(table.resolvedMAC(b))
        // The all-zero and all-ones MACs are still "resolved".
        table.setResolved(b, mac: .zero)
        XCTAssertEqual(table.resolvedMAC(b), .zero)
        table.setResolved(b, mac: .broadcast)
        XCTAssertEqual(table.resolvedMAC(b), .broadcast)
        table.setResolved(a, mac: MACAddress(0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54))
        XCTAssertEqual(table.resolvedMAC(a), MACAddress(0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54))
        table.setUnresolved(a)
        XCTAssertNil(table.resolvedMAC(a))
        XCTAssertEqual(table.resolvedMAC(b), .broadcast)
        table.setUnresolved(a)
        XCTAssertNil(table.resolvedMAC(a))
    }
}
