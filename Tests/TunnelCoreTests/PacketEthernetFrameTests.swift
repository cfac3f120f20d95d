import TunnelCore
import XCTest

final class PacketEthernetFrameTests: XCTestCase {
    func testReadsHeaderFields() {
        let frame = [UInt8](hex: "0200000000fe0200000000010806")
        withExactBuffer(frame) { p, _ in
            XCTAssertEqual(EthernetFrame.destination(of: p), MACAddress(0x02, 0, 0, 0, 0, 0xFE))
            XCTAssertEqual(EthernetFrame.source(of: p), MACAddress(0x02, 0, 0, 0, 0, 0x01))
            XCTAssertEqual(EthernetFrame.etherType(of: p), .arp)
            XCTAssertNil(EthernetFrame.vlanTag(of: p, length: 14))
        }
    }

    func testWriteHeader() {
        var bytes = [UInt8](repeating: 0xEE, count: 16)
        bytes.withUnsafeMutableBytes {
            EthernetFrame.writeHeader(
                to: $0.baseAddress!, destination: .broadcast,
                source: MACAddress(0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC), etherType: .ipv4)
        }
        XCTAssertEqual(bytes.hex, "ffffffffffff123456789abc0800eeee")
    }

    func testVLANTagRemovalAndInsertion() {
        // raw(Ether(dst="aa:bb:cc:dd:ee:01", src="aa:bb:cc:dd:ee:02")/Dot1Q(prio=5, vlan=100)/IP(...)) prefix
        let tagged = [UInt8](hex: "aabbccddee01aabbccddee028100a0640800450000")
        let untagged = [UInt8](hex: "aabbccddee01aabbccddee020800450000")
        var bytes = tagged
        bytes.withUnsafeMutableBytes { buffer in
            let p = buffer.baseAddress!
            XCTAssertEqual(EthernetFrame.vlanTag(of: p, length: 18), 0xA064)
            XCTAssertNil(EthernetFrame.vlanTag(of: p, length: 17))
            let start = EthernetFrame.removeVLANTag(from: p)
            XCTAssertEqual(start, p + 4)
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: start, count: untagged.count)), untagged)
            EthernetFrame.insertVLANTag(0xA064, at: p)
        }
        XCTAssertEqual(bytes, tagged)
    }
}
