import XCTest
import TunnelCore

final class EVPNSegmentCheckTests: XCTestCase {
    private func settings(_ segments: [(UInt32, String, String)]) -> EVPNSettings {
        EVPNSettings(segments: segments.map { .init(vni: VNI($0.0)!, vxlanInterface: $0.1, localPort: $0.2) })
    }

    private func check(
        _ segments: [(UInt32, String, String)], links: [LinkMessage]? = nil,
        uplink: IPv4Address = KernelLinkCapture.uplinkAddress
    ) throws -> [EVPNFDBMirror.Segment] {
        try EVPNSegmentCheck.segments(
            of: settings(segments), links: try links ?? KernelLinkCapture.links(), uplinkAddress: uplink)
    }

    private func assertRefused(
        _ segments: [(UInt32, String, String)], links: [LinkMessage]? = nil,
        uplink: IPv4Address = KernelLinkCapture.uplinkAddress, _ line: String,
        file: StaticString = #filePath, lineNumber: UInt = #line
    ) {
        do {
            let result = try check(segments, links: links, uplink: uplink)
            XCTFail("expected \(line), got \(result)", file: file, line: lineNumber)
        } catch {
            XCTAssertEqual("\(error)", line, file: file, line: lineNumber)
        }
    }

    func testTheCapturedSetUpPasses() throws {
        XCTAssertEqual(try check([(42, "vx42", "evdum1")]),
                       [EVPNFDBMirror.Segment(vni: VNI(42)!, vxlanInterface: 3, udpPort: 4789, localPort: 5)])
    }

    func testEachDeviceProblemNamesItsField() throws {
        let field = "evpn.segments[0].vxlan_interface"
        assertRefused([(42, "vx44", "evdum1")], "\(field): no interface named 'vx44' in this network namespace")
        assertRefused([(42, "br42", "evdum1")], "\(field): 'br42' is a bridge, not a vxlan device")
        assertRefused([(42, "lo", "evdum1")], "\(field): 'lo' is not a vxlan device")
        assertRefused([(43, "vx42", "evdum1")], "\(field): 'vx42' carries VNI 42, not 43")
        assertRefused([(42, "vx42", "evdum1")], uplink: IPv4Address(192, 168, 50, 1),
                      "\(field): 'vx42' has local address 192.168.88.1, not uplink.address 192.168.50.1")
        // vx43 is down and in no bridge: down is said first.
        assertRefused([(43, "vx43", "evdum1")], uplink: IPv4Address(192, 168, 88, 9),
                      "\(field): 'vx43' is down (ip link set vx43 up)")
        var links = try KernelLinkCapture.links()
        links[5].flags.insert(.up)
        assertRefused([(43, "vx43", "evdum1")], links: links, uplink: IPv4Address(192, 168, 88, 9),
                      "\(field): 'vx43' is not a port of any bridge")
        // A master that is not a bridge (a veth stands in for a bond or vrf).
        links[5].master = 4
        assertRefused([(43, "vx43", "evdum1")], links: links, uplink: IPv4Address(192, 168, 88, 9),
                      "\(field): 'vx43' is not a port of any bridge")
    }

    func testLocalPortMustBeInTheSameBridge() {
        let field = "evpn.segments[0].local_port"
        assertRefused([(42, "vx42", "tfevpn42")], "\(field): no interface named 'tfevpn42' in this network namespace")
        assertRefused([(42, "vx42", "evdum1p")], "\(field): 'evdum1p' is not a port of bridge 'br42', where vx42 is")
        assertRefused([(42, "vx42", "br42")], "\(field): 'br42' is not a port of bridge 'br42', where vx42 is")
    }

    func testEverySegmentIsChecked() throws {
        var links = try KernelLinkCapture.links()
        // vx43 made usable: up, a port of br42, with the uplink's address.
        links[5].flags.insert(.up)
        links[5].master = 2
        links[5].vxlan?.local = KernelLinkCapture.uplinkAddress
        assertRefused([(42, "vx42", "evdum1"), (43, "vx43", "evdum1p")], links: links,
                      "evpn.segments[1].local_port: 'evdum1p' is not a port of bridge 'br42', where vx43 is")
        links[3].master = 2
        XCTAssertEqual(try check([(42, "vx42", "evdum1"), (43, "vx43", "evdum1p")], links: links), [
            EVPNFDBMirror.Segment(vni: VNI(42)!, vxlanInterface: 3, udpPort: 4789, localPort: 5),
            EVPNFDBMirror.Segment(vni: VNI(43)!, vxlanInterface: 6, udpPort: 4790, localPort: 4),
        ])
        // A device that reports no port has the IANA one.
        links[5].vxlan?.port = nil
        XCTAssertEqual(try check([(43, "vx43", "evdum1p")], links: links).first?.udpPort, 4789)
    }

    func testBridgePortMessagesAndDeletionsAreNotDevices() throws {
        let port = try linkMessage(KernelLinkCapture.vx42DownBridgePort)
        var links = try KernelLinkCapture.links()
        links.append(port)
        // The bridge's message about vx42 (down, no link info) does not hide the device's.
        XCTAssertEqual(try check([(42, "vx42", "evdum1")], links: links).count, 1)
        assertRefused([(42, "vx42", "evdum1")], links: links + [try linkMessage(KernelLinkCapture.vx42Down)],
                      "evpn.segments[0].vxlan_interface: 'vx42' is down (ip link set vx42 up)")
        let deleted = try linkMessage(KernelLinkCapture.vx43Deleted)
        assertRefused([(43, "vx43", "evdum1")], links: [deleted],
                      "evpn.segments[0].vxlan_interface: no interface named 'vx43' in this network namespace")
    }

    func testNamesAreQuotedSafely() {
        let link = LinkMessage(ifindex: 9, flags: .up, name: "a\u{1b}b", kind: "x\ny")
        assertRefused([(42, "a\u{1b}b", "p")], links: [link],
                      "evpn.segments[0].vxlan_interface: 'a\\u{1b}b' is a x\\ny, not a vxlan device")
    }
}
