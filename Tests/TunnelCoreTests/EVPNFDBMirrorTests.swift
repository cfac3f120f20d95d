import XCTest
import TunnelCore

/// The mirror fed the kernel's own messages (`KernelFDBCapture`): segment 42 is `vx42`
/// with the stand-in port `evdum1`.
final class EVPNFDBMirrorTests: XCTestCase {
    private let vni42 = VNI(42)!
    private let mac1 = MACAddress(0x02, 0x42, 0, 0, 0, 0x01)
    private let mac3 = MACAddress(0x02, 0x42, 0, 0, 0, 0x03)
    private let mac5 = MACAddress(0x02, 0x42, 0, 0, 0, 0x05)
    private let macAA = MACAddress(0x02, 0x42, 0, 0, 0, 0xAA)

    private func vtep(_ last: UInt8, vni: UInt32 = 42, port: UInt16 = 4789) -> EVPNVTEP {
        EVPNVTEP(address: IPv4Address(192, 168, 88, last), vni: VNI(vni)!, udpPort: port)
    }

    private func mirror() -> EVPNFDBMirror {
        EVPNFDBMirror(segments: [EVPNFDBMirror.Segment(
            vni: vni42, vxlanInterface: KernelFDBCapture.vx42, udpPort: 4789, localPort: KernelFDBCapture.evdum1)])
    }

    /// Applies each buffer's messages.
    private func feed(_ buffers: [UInt8]..., to mirror: inout EVPNFDBMirror) throws {
        for bytes in buffers {
            for result in parseNetlink(bytes) {
                if case .neighbor(let neighbor) = try result.get().payload { mirror.apply(neighbor) }
            }
        }
    }

    /// Applies each buffer's messages and returns the changes they made.
    @discardableResult
    private func apply(_ buffers: [UInt8]..., to mirror: inout EVPNFDBMirror) throws -> [EVPNFDBChange] {
        for bytes in buffers { try feed(bytes, to: &mirror) }
        return mirror.takeChanges()
    }

    func testRemoteMACNeedsItsBridgeEntryOnTheVXLANPort() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.remoteSelf, to: &m), [])
        XCTAssertEqual(try apply(KernelFDBCapture.remoteMaster, to: &m), [
            .vtepAdded(vni42, vtep(2)),
            .remoteMAC(vni42, mac1, EVPNRemoteMAC(vtep: vtep(2), sticky: false)),
        ])
        XCTAssertEqual(m.remoteMACs(vni42), [mac1: EVPNRemoteMAC(vtep: vtep(2), sticky: false)])
        XCTAssertEqual(m.remoteVTEPs(vni42), [vtep(2)])
        XCTAssertEqual(m.floodList(vni42), [])
    }

    func testBridgeEntryAloneIsNotRemote() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.moveToRemoteMaster, to: &m), [])
        XCTAssertEqual(try apply(KernelFDBCapture.moveToRemoteSelf, to: &m), [
            .vtepAdded(vni42, vtep(2)),
            .remoteMAC(vni42, macAA, EVPNRemoteMAC(vtep: vtep(2), sticky: false)),
        ])
    }

    /// zebra ignores permanent bridge entries; one written over a remote MAC's ends it.
    func testPermanentBridgeEntryIsNotRemote() throws {
        var permanent = KernelFDBCapture.remoteMaster
        permanent[24] = 0x80  // ndm_state NUD_PERMANENT
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.remoteSelf, permanent, to: &m), [])
        try apply(KernelFDBCapture.remoteMaster, to: &m)
        XCTAssertEqual(try apply(permanent, to: &m), [
            .remoteMACGone(vni42, mac1),
            .vtepRemoved(vni42, vtep(2)),
        ])
    }

    /// A vxlan entry rewritten without `extern_learn` or `sticky` is no longer one a
    /// control plane installed.
    func testVXLANEntryNotFromAControlPlaneEndsTheRemoteMAC() throws {
        var byHand = KernelFDBCapture.remoteSelf
        byHand[26] = 0x02  // ndm_flags NTF_SELF only
        var m = mirror()
        try apply(KernelFDBCapture.remoteSelf, KernelFDBCapture.remoteMaster, to: &m)
        XCTAssertEqual(try apply(byHand, to: &m), [
            .remoteMACGone(vni42, mac1),
            .vtepRemoved(vni42, vtep(2)),
        ])
    }

    /// FRR moves the bridge entry to the local port and leaves the vxlan entry behind:
    /// the MAC is no longer remote, and the stale entry, even re-reported, changes nothing.
    func testStaleVXLANEntryAfterTheMACMovedToTheLocalPort() throws {
        var m = mirror()
        try apply(KernelFDBCapture.remoteSelf, KernelFDBCapture.remoteMaster, to: &m)
        XCTAssertEqual(try apply(KernelFDBCapture.moveToLocal, to: &m), [
            .remoteMACGone(vni42, mac1),
            .vtepRemoved(vni42, vtep(2)),
        ])
        XCTAssertEqual(try apply(KernelFDBCapture.remoteSelf, to: &m), [])
        XCTAssertEqual(m.remoteMACs(vni42), [:])
        XCTAssertEqual(m.remoteVTEPs(vni42), [])
    }

    func testLocalMACMovesAwayToARemoteVTEP() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.localStatic, to: &m), [])
        XCTAssertEqual(try apply(KernelFDBCapture.moveToRemoteMaster, KernelFDBCapture.moveToRemoteSelf, to: &m), [
            .vtepAdded(vni42, vtep(2)),
            .remoteMAC(vni42, macAA, EVPNRemoteMAC(vtep: vtep(2), sticky: false)),
        ])
    }

    func testStickyMAC() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.stickySelf, KernelFDBCapture.stickyMaster, to: &m), [
            .vtepAdded(vni42, vtep(3)),
            .remoteMAC(vni42, mac3, EVPNRemoteMAC(vtep: vtep(3), sticky: true)),
        ])
        XCTAssertEqual(try apply(KernelFDBCapture.delStickyMaster, to: &m), [
            .remoteMACGone(vni42, mac3),
            .vtepRemoved(vni42, vtep(3)),
        ])
        XCTAssertEqual(try apply(KernelFDBCapture.delStickySelf, to: &m), [])
    }

    /// A deletion counts only for the port the MAC is known behind: here the local
    /// port's DEL arrives after the MAC moved to the vxlan port.
    func testDeletionNamingAnotherPortIsIgnored() throws {
        var m = mirror()
        try apply(KernelFDBCapture.stickySelf, KernelFDBCapture.localOther, to: &m)
        XCTAssertEqual(m.remoteMACs(vni42), [:])
        try apply(KernelFDBCapture.stickyMaster, to: &m)
        XCTAssertEqual(try apply(KernelFDBCapture.delLocal, to: &m), [])
        XCTAssertEqual(m.remoteMACs(vni42), [mac3: EVPNRemoteMAC(vtep: vtep(3), sticky: true)])
        // And the vxlan entry's DEL only for the destination it holds.
        var otherDestination = KernelFDBCapture.delStickySelf
        otherDestination[47] = 9  // NDA_DST 192.168.88.9
        XCTAssertEqual(try apply(otherDestination, to: &m), [])
        XCTAssertEqual(try apply(KernelFDBCapture.delStickySelf, to: &m), [
            .remoteMACGone(vni42, mac3),
            .vtepRemoved(vni42, vtep(3)),
        ])
    }

    func testRemoteMACChangesVTEP() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.zebraStyleBridge, KernelFDBCapture.zebraStyleVXLAN, to: &m), [
            .vtepAdded(vni42, vtep(2)),
            .remoteMAC(vni42, mac5, EVPNRemoteMAC(vtep: vtep(2), sticky: false)),
        ])
        XCTAssertEqual(try apply(KernelFDBCapture.remoteDstChange, to: &m), [
            .vtepAdded(vni42, vtep(4)),
            .remoteMAC(vni42, mac5, EVPNRemoteMAC(vtep: vtep(4), sticky: false)),
            .vtepRemoved(vni42, vtep(2)),
        ])
    }

    func testFloodList() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.floodAdd2, KernelFDBCapture.floodAdd3, to: &m), [
            .vtepAdded(vni42, vtep(2)), .vtepAdded(vni42, vtep(3)),
            .floodJoined(vni42, vtep(2)), .floodJoined(vni42, vtep(3)),
        ])
        // A VTEP that leaves the flood list stays while a MAC is behind it.
        try apply(KernelFDBCapture.stickySelf, KernelFDBCapture.stickyMaster, to: &m)
        XCTAssertEqual(try apply(KernelFDBCapture.delFlood3, to: &m), [.floodLeft(vni42, vtep(3))])
        XCTAssertEqual(m.floodList(vni42), [vtep(2)])
        XCTAssertEqual(m.remoteVTEPs(vni42), [vtep(2), vtep(3)])
        XCTAssertEqual(try apply(KernelFDBCapture.delStickyMaster, to: &m), [
            .remoteMACGone(vni42, mac3),
            .vtepRemoved(vni42, vtep(3)),
        ])
    }

    func testEntryNamingItsOwnVNIAndPort() throws {
        var m = mirror()
        XCTAssertEqual(try apply(KernelFDBCapture.handMade, to: &m), [
            .vtepAdded(vni42, vtep(4, vni: 43, port: 4790)),
            .floodJoined(vni42, vtep(4, vni: 43, port: 4790)),
        ])
    }

    /// Replaying every notification ends where the dump taken afterwards says: the
    /// stale vxlan entry of 02:42:00:00:00:01, the devices' own MACs and the ports'
    /// multicast entries count for nothing.
    func testNotificationsAgreeWithTheDump() throws {
        var fromDump = mirror()
        let dumpChanges = try apply(KernelFDBCapture.dump, to: &fromDump)
        XCTAssertEqual(fromDump.remoteMACs(vni42), [
            mac5: EVPNRemoteMAC(vtep: vtep(4), sticky: false),
            macAA: EVPNRemoteMAC(vtep: vtep(2), sticky: false),
        ])
        XCTAssertEqual(fromDump.floodList(vni42), [vtep(2), vtep(4, vni: 43, port: 4790)])
        XCTAssertEqual(fromDump.remoteVTEPs(vni42), [vtep(2), vtep(4), vtep(4, vni: 43, port: 4790)])

        var fromNotifications = mirror()
        for bytes in KernelFDBCapture.notifications { try apply(bytes, to: &fromNotifications) }
        XCTAssertEqual(fromNotifications.remoteMACs(vni42), fromDump.remoteMACs(vni42))
        XCTAssertEqual(fromNotifications.floodList(vni42), fromDump.floodList(vni42))

        var all = mirror()
        XCTAssertEqual(Set(try apply(KernelFDBCapture.notifications.reduce([], +), to: &all)), Set(dumpChanges))
    }

    func testApplyingTwiceChangesNothing() throws {
        var once = mirror()
        var twice = mirror()
        for bytes in KernelFDBCapture.notifications {
            let changes = try apply(bytes, to: &once)
            XCTAssertEqual(try apply(bytes, bytes, to: &twice), changes)
            XCTAssertEqual(try apply(bytes, to: &twice), [])
        }
        XCTAssertEqual(try apply(KernelFDBCapture.dump, to: &twice), [])
    }

    /// Notifications were lost (ENOBUFS) after the first six; a dump reconciles.
    func testResyncRemovesWhatTheDumpNoLongerHolds() throws {
        var m = mirror()
        try apply(KernelFDBCapture.floodAdd2, KernelFDBCapture.floodAdd3, KernelFDBCapture.remoteSelf,
                  KernelFDBCapture.remoteMaster, KernelFDBCapture.stickySelf, KernelFDBCapture.stickyMaster, to: &m)
        m.beginResync()
        try feed(KernelFDBCapture.dump, to: &m)
        m.endResync()
        XCTAssertEqual(m.takeChanges(), [
            .vtepAdded(vni42, vtep(4)),
            .vtepAdded(vni42, vtep(4, vni: 43, port: 4790)),
            .floodJoined(vni42, vtep(4, vni: 43, port: 4790)),
            .remoteMAC(vni42, mac5, EVPNRemoteMAC(vtep: vtep(4), sticky: false)),
            .remoteMAC(vni42, macAA, EVPNRemoteMAC(vtep: vtep(2), sticky: false)),
            .remoteMACGone(vni42, mac1),
            .remoteMACGone(vni42, mac3),
            .floodLeft(vni42, vtep(3)),
            .vtepRemoved(vni42, vtep(3)),
        ])
        var fromDump = mirror()
        try apply(KernelFDBCapture.dump, to: &fromDump)
        XCTAssertEqual(m.remoteMACs(vni42), fromDump.remoteMACs(vni42))
        XCTAssertEqual(m.floodList(vni42), fromDump.floodList(vni42))
        // A second resync over the same dump finds nothing to do.
        m.beginResync()
        try feed(KernelFDBCapture.dump, to: &m)
        m.endResync()
        XCTAssertEqual(m.takeChanges(), [])
    }

    /// A notification that arrives during the dump counts as confirmed.
    func testNotificationDuringResyncIsKept() throws {
        var m = mirror()
        try apply(KernelFDBCapture.floodAdd3, to: &m)
        m.beginResync()
        try feed(KernelFDBCapture.dump, KernelFDBCapture.floodAdd3, to: &m)
        m.endResync()
        XCTAssertTrue(m.floodList(vni42).contains(vtep(3)))
    }

    func testOtherDevicesAreIgnored() throws {
        var m = EVPNFDBMirror(segments: [EVPNFDBMirror.Segment(
            vni: VNI(7)!, vxlanInterface: 50, udpPort: 4789, localPort: 51)])
        let changes = try apply(KernelFDBCapture.notifications.reduce([], +) + KernelFDBCapture.dump, to: &m)
        XCTAssertEqual(changes, [])
        XCTAssertEqual(m.remoteMACs(vni42), [:])
    }
}
