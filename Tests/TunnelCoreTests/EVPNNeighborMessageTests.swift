import XCTest
import TunnelCore

/// rtnetlink messages recorded from the kernel (6.18) in a network namespace holding
/// `br42` (ifindex 4) with the ports `vx42` (5: `vxlan id 42 local 192.168.88.1 dstport
/// 4789 nolearning`, `learning off`) and the veth `evdum1` (7), and an underlay veth
/// `evul0` (3), by a `NETLINK_ROUTE` socket bound to `RTNLGRP_NEIGH` while these ran:
///
/// ```
/// floodAdd2            bridge fdb append 00:00:00:00:00:00 dev vx42 dst 192.168.88.2 self permanent
/// floodAdd3            bridge fdb append 00:00:00:00:00:00 dev vx42 dst 192.168.88.3 self permanent
/// remoteSelf           bridge fdb add 02:42:00:00:00:01 dev vx42 dst 192.168.88.2 self extern_learn
/// remoteMaster         bridge fdb add 02:42:00:00:00:01 dev vx42 master extern_learn
/// stickySelf           bridge fdb add 02:42:00:00:00:03 dev vx42 dst 192.168.88.3 self sticky static
/// stickyMaster         bridge fdb add 02:42:00:00:00:03 dev vx42 master sticky static
/// localStatic          bridge fdb add 02:42:00:00:00:aa dev evdum1 master static
/// moveToLocal          bridge fdb replace 02:42:00:00:00:01 dev evdum1 master static
/// handMade             bridge fdb append 00:00:00:00:00:00 dev vx42 dst 192.168.88.4 port 4790 vni 43 via evul0 self
/// delStickyMaster      bridge fdb del 02:42:00:00:00:03 dev vx42 master
/// delStickySelf        bridge fdb del 02:42:00:00:00:03 dev vx42 self
/// delFlood3            bridge fdb del 00:00:00:00:00:00 dev vx42 dst 192.168.88.3 self
/// localOther           bridge fdb add 02:42:00:00:00:03 dev evdum1 master static
/// zebraStyle…          bridge fdb add 02:42:00:00:00:05 dev vx42 dst 192.168.88.2 self master extern_learn
/// remoteDstChange      bridge fdb replace 02:42:00:00:00:05 dev vx42 dst 192.168.88.4 self extern_learn
/// moveToRemoteMaster   bridge fdb replace 02:42:00:00:00:aa dev vx42 master extern_learn
/// moveToRemoteSelf     bridge fdb add 02:42:00:00:00:aa dev vx42 dst 192.168.88.2 self extern_learn
/// delLocal             bridge fdb del 02:42:00:00:00:03 dev evdum1 master
/// ```
///
/// then the reply to an `RTM_DELNEIGH` of an absent entry (sequence 77, `NLM_F_ACK`), and
/// the two datagrams answering an `RTM_GETNEIGH` `AF_BRIDGE` dump (sequence 78) taken
/// last. `Tests/fixtures/capture_evpn_fdb.py` records them again.
enum KernelFDBCapture {
    static let floodAdd2 = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00002010a000200000000000000000008000100c0a858021400030000000000000000000000000000000000")
    static let floodAdd3 = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00002010a000200000000000000000008000100c0a858031400030000000000100000000000000000000000")
    static let remoteSelf = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00012010a000200024200000001000008000100c0a858021400030000000000000000000000000000000000")
    static let remoteMaster = [UInt8](hex: "4c0000001c00000000000000000000000700000005000000020010000a0002000242000000010000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let stickySelf = [UInt8](hex: "440000001c00000000000000000000000700000005000000420042010a000200024200000003000008000100c0a858031400030000000000000000000000000000000000")
    static let stickyMaster = [UInt8](hex: "4c0000001c00000000000000000000000700000005000000400040000a0002000242000000030000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let localStatic = [UInt8](hex: "4c0000001c00000000000000000000000700000007000000400000000a0002000242000000aa0000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let moveToLocal = [UInt8](hex: "4c0000001c00000000000000000000000700000007000000400010000a0002000242000000010000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let handMade = [UInt8](hex: "5c0000001c00000000000000000000000700000005000000c00002010a000200000000000000000008000100c0a858040600060012b60000080007002b00000008000800030000001400030000000000810000000000000000000000")
    static let delStickyMaster = [UInt8](hex: "4c0000001d00000000000000000000000700000005000000400040000a0002000242000000030000080009000400000008000f00000000001400030000000000410000004100000000000000")
    static let delStickySelf = [UInt8](hex: "440000001d00000000000000000000000700000005000000420042010a000200024200000003000008000100c0a858031400030000000000610000006100000000000000")
    static let delFlood3 = [UInt8](hex: "440000001d00000000000000000000000700000005000000c00002010a000200000000000000000008000100c0a858031400030000000000b20000003000000000000000")
    static let localOther = [UInt8](hex: "4c0000001c00000000000000000000000700000007000000400000000a0002000242000000030000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let zebraStyleBridge = [UInt8](hex: "4c0000001c00000000000000000000000700000005000000020010000a0002000242000000050000080009000400000008000f00000000001400030000000000000000000000000000000000")
    static let zebraStyleVXLAN = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00012010a000200024200000005000008000100c0a858021400030000000000000000000000000000000000")
    static let remoteDstChange = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00012010a000200024200000005000008000100c0a858041400030000000000100000000000000000000000")
    static let moveToRemoteMaster = [UInt8](hex: "4c0000001c00000000000000000000000700000005000000400010000a0002000242000000aa0000080009000400000008000f00000000001400030000000000930000000000000000000000")
    static let moveToRemoteSelf = [UInt8](hex: "440000001c00000000000000000000000700000005000000c00012010a0002000242000000aa000008000100c0a858021400030000000000000000000000000000000000")
    static let delLocal = [UInt8](hex: "4c0000001d00000000000000000000000700000007000000400000000a0002000242000000030000080009000400000008000f00000000001400030000000000510000005100000000000000")
    static let error = [UInt8](hex: "3c000000020000004d000000fc08baf8feffffff280000001d0005004d000000000000000700000007000000000004000a0002000242000000ee0000")
    /// Both datagrams of the dump, one after the other.
    static let dump = [UInt8](hex: """
        280000001c0002004e000000fc08baf80700000002000000800002000a0002003333000000010000280000001c0002004e00
        0000fc08baf80700000002000000800002000a00020001005e0000010000280000001c0002004e000000fc08baf807000000
        03000000800002000a0002003333000000010000280000001c0002004e000000fc08baf80700000003000000800002000a00
        020001005e0000010000280000001c0002004e000000fc08baf80700000004000000800002000a0002003333000000010000
        280000001c0002004e000000fc08baf80700000004000000800002000a00020001005e00006a0000280000001c0002004e00
        0000fc08baf80700000004000000800002000a00020033330000006a0000280000001c0002004e000000fc08baf807000000
        04000000800002000a00020001005e00000100004c0000001c0002004e000000fc08baf80700000004000000800000000a00
        02000200000042000000080009000400000008000f000000000014000300000000007a0100007a010000000000004c000000
        1c0002004e000000fc08baf80700000005000000020010000a0002000242000000050000080009000400000008000f000000
        000014000300000000005000000050000000000000004c0000001c0002004e000000fc08baf8070000000500000040001000
        0a0002000242000000aa0000080009000400000008000f00000000001400030000000000c20000002f000000000000004c00
        00001c0002004e000000fc08baf80700000005000000800000000a0002000200000042420000080009000400000008000f00
        000000001400030000000000790100007901000000000000440000001c0002004e000000fc08baf80700000005000000c000
        12010a0002000242000000aa000008000100c0a8580214000300000000001f0000001f00000000000000440000001c000200
        4e000000fc08baf80700000005000000c00012010a000200024200000005000008000100c0a8580414000300000000005000
        00004000000000000000440000001c0002004e000000fc08baf80700000005000000c00012010a0002000242000000010000
        08000100c0a858021400030000000000030100000301000000000000440000001c0002004e000000fc08baf8070000000500
        0000c00002010a000200000000000000000008000100c0a85802140003000000000023010000a1000000000000005c000000
        1c0002004e000000fc08baf80700000005000000c00002010a000200000000000000000008000100c0a858040600060012b6
        0000080007002b0000000800080003000000140003000000000023010000a100000000000000280000001c0002004e000000
        fc08baf80700000006000000800002000a0002003333000000010000280000001c0002004e000000fc08baf8070000000600
        0000800002000a00020001005e00000100004c0000001c0002004e000000fc08baf80700000007000000400010000a000200
        0242000000010000080009000400000008000f00000000001400030000000000b2000000b2000000000000004c0000001c00
        02004e000000fc08baf80700000007000000800000000a0002000200000042d10000080009000400000008000f0000000000
        1400030000000000770100007701000000000000280000001c0002004e000000fc08baf80700000007000000800002000a00
        02003333000000010000280000001c0002004e000000fc08baf80700000007000000800002000a00020001005e0000010000
        14000000030002004e000000fc08baf800000000
        """)

    /// The notifications in the order the kernel sent them.
    static let notifications: [[UInt8]] = [
        floodAdd2, floodAdd3, remoteSelf, remoteMaster, stickySelf, stickyMaster, localStatic, moveToLocal,
        handMade, delStickyMaster, delStickySelf, delFlood3, localOther, zebraStyleBridge, zebraStyleVXLAN,
        remoteDstChange, moveToRemoteMaster, moveToRemoteSelf, delLocal,
    ]

    static let vx42: UInt32 = 5
    static let evdum1: UInt32 = 7
    static let br42: UInt32 = 4
    static let evul0: UInt32 = 3
}

/// Parses `bytes` from a buffer of exactly their size.
func parseNetlink(_ bytes: [UInt8]) -> [Result<NetlinkMessage, NetlinkParseError>] {
    withExactBuffer(bytes) { Netlink.messages(in: UnsafeRawBufferPointer(start: $0, count: $1)) }
}

/// The payload of the one message `bytes` holds.
func onlyPayload(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> NetlinkMessage.Payload {
    let results = parseNetlink(bytes)
    XCTAssertEqual(results.count, 1, file: file, line: line)
    return try XCTUnwrap(results.first, file: file, line: line).get().payload
}

/// The neighbour message `bytes` holds, which must be exactly one.
func neighborMessage(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> NeighborMessage {
    guard case .neighbor(let neighbor) = try onlyPayload(bytes, file: file, line: line) else { throw UnexpectedMessage() }
    return neighbor
}

struct UnexpectedMessage: Error {}

final class EVPNNeighborMessageTests: XCTestCase {
    private let vtep2 = IPv4Address(192, 168, 88, 2)
    private let mac1 = MACAddress(0x02, 0x42, 0, 0, 0, 0x01)

    func testFloodEntryEveryField() throws {
        let results = parseNetlink(KernelFDBCapture.floodAdd2)
        XCTAssertEqual(results.count, 1)
        let message = try results[0].get()
        XCTAssertEqual(message.type, Netlink.newNeighbor)
        XCTAssertEqual(message.flags, 0)
        XCTAssertEqual(message.sequence, 0)
        XCTAssertEqual(message.portID, 0)
        XCTAssertEqual(message.payload, .neighbor(NeighborMessage(
            family: Netlink.familyBridge, ifindex: KernelFDBCapture.vx42, state: [.noARP, .permanent],
            flags: .selfEntry, type: 1, destination: .ipv4(vtep2), linkLayerAddress: .zero)))
    }

    func testRemoteMACBothEntries() throws {
        let vxlan = try neighborMessage(KernelFDBCapture.remoteSelf)
        XCTAssertEqual(vxlan, NeighborMessage(
            ifindex: KernelFDBCapture.vx42, state: [.noARP, .permanent], flags: [.selfEntry, .externLearned],
            type: 1, destination: .ipv4(vtep2), linkLayerAddress: mac1))
        let bridge = try neighborMessage(KernelFDBCapture.remoteMaster)
        // A bridge notification has no NTF_MASTER: NDA_MASTER marks it.
        XCTAssertEqual(bridge, NeighborMessage(
            ifindex: KernelFDBCapture.vx42, state: .reachable, flags: .externLearned, type: 0,
            linkLayerAddress: mac1, master: KernelFDBCapture.br42, extendedFlags: 0))
        XCTAssertEqual(bridge.flags.rawValue, 0x10)
        XCTAssertEqual(bridge.state.rawValue, 0x02)
    }

    func testStickyEntries() throws {
        let mac3 = MACAddress(0x02, 0x42, 0, 0, 0, 0x03)
        XCTAssertEqual(try neighborMessage(KernelFDBCapture.stickySelf), NeighborMessage(
            ifindex: KernelFDBCapture.vx42, state: [.reachable, .noARP], flags: [.selfEntry, .sticky], type: 1,
            destination: .ipv4(IPv4Address(192, 168, 88, 3)), linkLayerAddress: mac3))
        XCTAssertEqual(try neighborMessage(KernelFDBCapture.stickyMaster), NeighborMessage(
            ifindex: KernelFDBCapture.vx42, state: .noARP, flags: .sticky,
            linkLayerAddress: mac3, master: KernelFDBCapture.br42, extendedFlags: 0))
    }

    func testEntryReplacingARemoteOneKeepsExternLearned() throws {
        XCTAssertEqual(try neighborMessage(KernelFDBCapture.moveToLocal), NeighborMessage(
            ifindex: KernelFDBCapture.evdum1, state: .noARP, flags: .externLearned,
            linkLayerAddress: mac1, master: KernelFDBCapture.br42, extendedFlags: 0))
        XCTAssertEqual(try neighborMessage(KernelFDBCapture.localStatic).flags, [])
    }

    func testPortVNIAndOutgoingInterface() throws {
        let message = try neighborMessage(KernelFDBCapture.handMade)
        XCTAssertEqual(message.destination, .ipv4(IPv4Address(192, 168, 88, 4)))
        XCTAssertEqual(message.port, 4790)
        XCTAssertEqual(message.vni, 43)
        XCTAssertEqual(message.outgoingInterface, KernelFDBCapture.evul0)
        XCTAssertEqual(message.linkLayerAddress, .zero)
        XCTAssertNil(message.master)
    }

    func testDeletionCarriesTheEntry() throws {
        let message = try neighborMessage(KernelFDBCapture.delFlood3)
        XCTAssertTrue(message.isDeletion)
        XCTAssertEqual(message.destination, .ipv4(IPv4Address(192, 168, 88, 3)))
        XCTAssertEqual(message.flags, .selfEntry)
        XCTAssertEqual(try parseNetlink(KernelFDBCapture.delFlood3)[0].get().type, Netlink.deleteNeighbor)
        XCTAssertFalse(try neighborMessage(KernelFDBCapture.floodAdd3).isDeletion)
    }

    func testErrorReply() throws {
        let results = parseNetlink(KernelFDBCapture.error)
        XCTAssertEqual(results.count, 1)
        let message = try results[0].get()
        XCTAssertEqual(message.type, Netlink.error)
        XCTAssertEqual(message.sequence, 77)
        XCTAssertEqual(message.payload, .error(2))  // ENOENT
    }

    func testDumpWalksEveryMessage() throws {
        let results = parseNetlink(KernelFDBCapture.dump)
        XCTAssertEqual(results.count, 24)
        let messages = try results.map { try $0.get() }
        XCTAssertEqual(messages.last?.payload, .done)
        XCTAssertTrue(messages.allSatisfy { $0.sequence == 78 && $0.flags == 0x2 })  // NLM_F_MULTI
        let entries = messages.compactMap { message -> NeighborMessage? in
            guard case .neighbor(let neighbor) = message.payload else { return nil }
            return neighbor
        }
        XCTAssertEqual(entries.count, 23)
        XCTAssertTrue(entries.allSatisfy { $0.family == Netlink.familyBridge && !$0.isDeletion })
        let onVXLAN = entries.filter { $0.ifindex == KernelFDBCapture.vx42 }
        XCTAssertEqual(onVXLAN.filter { $0.master != nil }.map { $0.linkLayerAddress!.description }.sorted(),
                       ["02:00:00:00:42:42", "02:42:00:00:00:05", "02:42:00:00:00:aa"])
        XCTAssertEqual(onVXLAN.filter { $0.flags.contains(.selfEntry) }.compactMap { $0.destination }.count, 5)
    }

    /// Every prefix of every captured buffer: a header cut short, then a message longer
    /// than what is left.
    func testTruncationIsAnError() {
        for bytes in KernelFDBCapture.notifications + [KernelFDBCapture.error] {
            XCTAssertEqual(parseNetlink([]).count, 0)
            for cut in 1..<bytes.count {
                let expected: NetlinkParseError = cut < Netlink.headerLength
                    ? .truncatedHeader(available: cut) : .badMessageLength(bytes.count, available: cut)
                XCTAssertEqual(netlinkErrors(parseNetlink(Array(bytes[..<cut]))), [expected], "cut at \(cut)")
            }
        }
    }

    func testCorruptedLengthsAreErrors() {
        var bytes = KernelFDBCapture.remoteMaster  // 76 bytes; attributes at 28, 40, 48, 56
        func corrupt(_ offset: Int, _ value: UInt16) -> [UInt8] {
            var copy = bytes
            copy[offset] = UInt8(value & 0xFF)
            copy[offset + 1] = UInt8(value >> 8)
            return copy
        }
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(0, 15))), [.badMessageLength(15, available: 76)])
        // An attribute shorter than its own header, or running past the message.
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(28, 3))), [.badAttribute(type: 2, length: 3)])
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(56, 21))), [.badAttribute(type: 3, length: 21)])
        // NDA_MASTER must hold four bytes.
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(40, 6))), [.badAttribute(type: 9, length: 6)])
        // NDA_DST four or sixteen.
        let vxlan = KernelFDBCapture.remoteSelf  // NDA_DST at 40
        bytes = vxlan
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(40, 7))), [.badAttribute(type: 1, length: 7)])
        // NDA_PORT two (the hand-made entry's is at 48).
        bytes = KernelFDBCapture.handMade
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(48, 8))), [.badAttribute(type: 6, length: 8)])
        // A body shorter than struct ndmsg, and an error without its errno.
        bytes = Array(KernelFDBCapture.floodAdd2[..<27])
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(0, 27))), [.truncatedBody(type: Netlink.newNeighbor, length: 11)])
        bytes = Array(KernelFDBCapture.error[..<19])
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(0, 19))), [.truncatedBody(type: Netlink.error, length: 3)])
        // Bytes after the last attribute too few for another attribute header.
        bytes = KernelFDBCapture.floodAdd2 + [0, 0]
        XCTAssertEqual(netlinkErrors(parseNetlink(corrupt(0, 70))), [.badAttribute(type: 0, length: 2)])
    }

    func testWalkGoesOnAfterAMalformedBody() throws {
        var broken = KernelFDBCapture.remoteMaster
        broken[40] = 6  // NDA_MASTER of two bytes
        let results = parseNetlink(broken + KernelFDBCapture.remoteSelf)
        XCTAssertEqual(results.count, 2)
        XCTAssertEqual(netlinkErrors([results[0]]), [.badAttribute(type: 9, length: 6)])
        XCTAssertEqual(try results[1].get().payload, .neighbor(try neighborMessage(KernelFDBCapture.remoteSelf)))
    }

    /// Random corruption of the captured buffers never reads outside them (run with
    /// `--sanitize=address` to see a stray read) and never loses the walk's framing.
    func testRandomCorruptionNeverCrashes() {
        let inputs = KernelFDBCapture.notifications + [KernelFDBCapture.error, KernelFDBCapture.dump]
        XCTAssertGreaterThan(randomCorruptionFailures(of: inputs, rounds: 4000, seed: 0x9E37_79B9_7F4A_7C15), 1000)
    }
}

/// The errors among parse results.
func netlinkErrors(_ results: [Result<NetlinkMessage, NetlinkParseError>]) -> [NetlinkParseError] {
    results.compactMap { result in
        if case .failure(let error) = result { return error }
        return nil
    }
}

/// Parses `rounds` copies of `inputs` with one to four random bytes changed and up to two
/// cut off the end, checking that the walk never finds more messages than the bytes can
/// frame; returns how many errors the parses gave.
func randomCorruptionFailures(
    of inputs: [[UInt8]], rounds: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
) -> Int {
    var seed = seed
    func next() -> Int {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: seed >> 33)
    }
    var failures = 0
    for round in 0..<rounds {
        var bytes = inputs[round % inputs.count]
        for _ in 0..<1 + next() % 4 {
            bytes[next() % bytes.count] = UInt8(truncatingIfNeeded: next())
        }
        bytes = Array(bytes[..<(bytes.count - next() % 3)])
        let results = parseNetlink(bytes)
        XCTAssertLessThanOrEqual(results.count, bytes.count / Netlink.headerLength + 1, file: file, line: line)
        failures += netlinkErrors(results).count
    }
    return failures
}
