import XCTest
import TunnelCore

final class ConfigurationEVPNTests: XCTestCase {
    let base = """
        uplink: { port: net_tap1, address: 192.168.50.1/24 }
        access:
          - { port: net_tap0, segment: 42 }
          - { port: net_tap2, segment: 43 }

        """

    func parse(_ evpn: String) throws(ConfigurationError) -> EVPNSettings? {
        try Configuration(yaml: base + evpn).evpn
    }

    func assertError(_ evpn: String, path: String, message: String, file: StaticString = #filePath, line: UInt = #line) {
        do throws(ConfigurationError) {
            let settings = try parse(evpn)
            XCTFail("expected an error at \(path), parsed \(String(describing: settings))", file: file, line: line)
        } catch {
            XCTAssertEqual(error.description, "\(path): \(message)", file: file, line: line)
        }
    }

    func testEverySegmentField() throws {
        let settings = try parse("""
            evpn:
              hold_ms: 2500
              segments:
                - { vni: 42, vxlan_interface: vx42, local_port: tfevpn42 }
                - { vni: 43, vxlan_interface: vx43, local_port: tfevpn43 }
            """)
        XCTAssertEqual(settings, EVPNSettings(holdMs: 2500, segments: [
            .init(vni: VNI(42)!, vxlanInterface: "vx42", localPort: "tfevpn42"),
            .init(vni: VNI(43)!, vxlanInterface: "vx43", localPort: "tfevpn43"),
        ]))
    }

    /// The file refuses what the overlay would refuse at start-up, in its words.
    func testTunnelNamesOfEVPNAreRefused() {
        assertError("""
            tunnels:
              - { name: ok, type: vxlan, remote: 192.168.50.2, vni: 42 }
              - { name: evpn-42-192.168.50.3, type: vxlan, remote: 192.168.50.3, vni: 42 }
            """, path: "tunnels[1].name", message: "names beginning with 'evpn-' are kept for the tunnels EVPN makes")
        XCTAssertNoThrow(try parse("tunnels: [{ name: my-evpn-1, type: vxlan, remote: 192.168.50.2, vni: 42 }]\n"))
    }

    func testAbsentSectionAndDefaultHold() throws {
        XCTAssertNil(try parse(""))
        let settings = try XCTUnwrap(try parse("evpn: { segments: [{ vni: 42, vxlan_interface: vx42, local_port: p42 }] }\n"))
        XCTAssertEqual(settings.holdMs, 8000)
        XCTAssertEqual(try parse("evpn: { hold_ms: 0, segments: [{ vni: 42, vxlan_interface: a, local_port: b }] }\n")?.holdMs, 0)
        XCTAssertEqual(try parse("evpn: { hold_ms: 600000, segments: [{ vni: 42, vxlan_interface: a, local_port: b }] }\n")?.holdMs,
                       600_000)
    }

    func testSectionShape() {
        assertError("evpn: {}\n", path: "evpn.segments", message: "missing required key")
        assertError("evpn: { segments: [] }\n", path: "evpn.segments", message: "expected at least one segment")
        assertError("evpn: { segments: [{ vni: 42, vxlan_interface: a, local_port: b }], holdms: 1 }\n",
                    path: "evpn.holdms", message: "unknown key (expected one of: hold_ms, segments)")
        assertError("evpn: { segments: [{ vni: 42, vxlan_interface: a, local_port: b, bridge: br42 }] }\n",
                    path: "evpn.segments[0].bridge",
                    message: "unknown key (expected one of: vni, vxlan_interface, local_port)")
        assertError("evpn: { segments: [{ vni: 42, local_port: b }] }\n",
                    path: "evpn.segments[0].vxlan_interface", message: "missing required key")
        assertError("evpn: { segments: [{ vni: 42, vxlan_interface: a }] }\n",
                    path: "evpn.segments[0].local_port", message: "missing required key")
    }

    func testHoldRange() {
        for bad in ["-1", "600001"] {
            assertError("evpn: { hold_ms: \(bad), segments: [{ vni: 42, vxlan_interface: a, local_port: b }] }\n",
                        path: "evpn.hold_ms", message: "\(bad) is out of range (0..600000)")
        }
    }

    func testSegmentMustBeAnAccessSegmentOnce() {
        assertError("evpn: { segments: [{ vni: 44, vxlan_interface: a, local_port: b }] }\n",
                    path: "evpn.segments[0].vni", message: "44 is not the segment of any access port (access[].segment)")
        assertError("evpn: { segments: [{ vni: 16777216, vxlan_interface: a, local_port: b }] }\n",
                    path: "evpn.segments[0].vni", message: "16777216 is over the 24-bit maximum 16777215")
        assertError("""
            evpn:
              segments:
                - { vni: 42, vxlan_interface: a, local_port: b }
                - { vni: 43, vxlan_interface: c, local_port: d }
                - { vni: 42, vxlan_interface: e, local_port: f }
            """, path: "evpn.segments[2].vni", message: "duplicate segment 42 (also evpn.segments[0])")
    }

    func testNoInterfaceNamedTwice() {
        assertError("evpn: { segments: [{ vni: 42, vxlan_interface: a, local_port: a }] }\n",
                    path: "evpn.segments[0].local_port", message: "duplicate interface 'a' (also evpn.segments[0].vxlan_interface)")
        assertError("""
            evpn:
              segments:
                - { vni: 42, vxlan_interface: vx42, local_port: p42 }
                - { vni: 43, vxlan_interface: p42, local_port: p43 }
            """, path: "evpn.segments[1].vxlan_interface", message: "duplicate interface 'p42' (also evpn.segments[0].local_port)")
        assertError("""
            evpn:
              segments:
                - { vni: 42, vxlan_interface: vx42, local_port: p42 }
                - { vni: 43, vxlan_interface: vx43, local_port: vx42 }
            """, path: "evpn.segments[1].local_port",
            message: "duplicate interface 'vx42' (also evpn.segments[0].vxlan_interface)")
    }

    func testInterfaceNames() throws {
        let rule = "is not a valid interface name (1 to 15 bytes, no '/', ':' or whitespace)"
        for (bad, quoted) in [("\"\"", "''"), ("a/b", "'a/b'"), ("\"a b\"", "'a b'"), ("\"a\\tb\"", "'a\\tb'"),
                              ("abcdefghijklmnop", "'abcdefghijklmnop'"), ("..", "'..'")] {
            assertError("evpn: { segments: [{ vni: 42, vxlan_interface: \(bad), local_port: b }] }\n",
                        path: "evpn.segments[0].vxlan_interface", message: "\(quoted) \(rule)")
            assertError("evpn: { segments: [{ vni: 42, vxlan_interface: a, local_port: \(bad) }] }\n",
                        path: "evpn.segments[0].local_port", message: "\(quoted) \(rule)")
        }
        XCTAssertEqual(try parse("evpn: { segments: [{ vni: 42, vxlan_interface: abcdefghijklmno, local_port: b }] }\n")?
            .segments.first?.vxlanInterface, "abcdefghijklmno")
    }
}
