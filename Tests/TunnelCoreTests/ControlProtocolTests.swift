import XCTest
@testable import TunnelCore

/// Runtime commands are checked by the configuration file's rules, in its words: a value
/// the file refuses for `tunnels[0].ttl` with "256 is out of range (1..255)" is refused by
/// tunnelctl as "ttl: 256 is out of range (1..255)".
final class ControlProtocolTests: XCTestCase {
    let uplinkYAML = "uplink: { port: net_tap1, address: 192.168.50.1/24 }\n"

    /// The file's refusal of a tunnel with `field: value`, as "field: message".
    func fileRefusal(_ field: String, _ value: String, type: String = "vxlan") -> String? {
        var fields = [("name", "t1"), ("type", type), ("remote", "192.168.50.2"), ("vni", "42")]
        if let i = fields.firstIndex(where: { $0.0 == field }) { fields[i].1 = value } else { fields.append((field, value)) }
        let yaml = uplinkYAML + "tunnels: [ { \(fields.map { "\($0): \($1)" }.joined(separator: ", ")) } ]\n"
        do {
            _ = try Configuration(yaml: yaml)
            return nil
        } catch {
            XCTAssertTrue(error.path.hasPrefix("tunnels[0]."), error.description)
            return String(error.path.dropFirst("tunnels[0].".count)) + ": " + error.message
        }
    }

    /// tunnelctl's refusal of `tunnel add t1 --type TYPE --remote 192.168.50.2 --vni 42` with
    /// one option changed: while parsing its text, or when the overlay takes the tunnel.
    func runtimeRefusal(vni: String = "42", dstPort: String? = nil, ttl: String? = nil, df: String? = nil,
                        flowID: String? = nil, type: String = "vxlan") -> String? {
        do {
            let spec = try TunnelSpec.parsing(name: "t1", type: type, remote: "192.168.50.2", vni: vni,
                                              dstPort: dstPort, ttl: ttl, df: df, flowID: flowID)
            return overlayRefusal(spec)
        } catch {
            return error.description
        }
    }

    /// What the forwarder answers to a request carrying `spec`, without the tunnel's name.
    func overlayRefusal(_ spec: TunnelSpec) -> String? {
        do {
            let config = try Configuration(yaml: uplinkYAML)
            var overlay = try Overlay(configuration: config, localMAC: MACAddress(0x02, 0, 0, 0, 0, 1), accessPortIDs: [], nowMs: 0)
            _ = try overlay.addTunnel(try spec.tunnel(), nowMs: 0)
            return nil
        } catch let error as OverlayError {
            guard case .invalidTunnel(_, let why) = error else { return error.description }
            return why
        } catch {
            return "\(error)"
        }
    }

    func testTunnelOptionsAreRefusedAsTheFileRefusesThem() {
        let cases: [(field: String, value: String, type: String)] = [
            ("vni", "16777216", "vxlan"), ("vni", "-1", "vxlan"), ("vni", "abc", "vxlan"), ("vni", "042", "vxlan"),
            ("vni", "99999999999999999999", "vxlan"),
            ("dst_port", "0", "vxlan"), ("dst_port", "65536", "geneve"), ("dst_port", "-4789", "vxlan"),
            ("dst_port", "6081", "vxlan"), ("dst_port", "4789", "nvgre"),
            ("ttl", "0", "vxlan"), ("ttl", "256", "vxlan"), ("ttl", "1.5", "vxlan"),
            ("df", "maybe", "vxlan"), ("df", "1", "vxlan"),
            ("flow_id", "256", "nvgre"), ("flow_id", "7", "vxlan"), ("flow_id", "-1", "nvgre"),
        ]
        for (field, value, type) in cases {
            let file = fileRefusal(field, value, type: type)
            XCTAssertNotNil(file, "the file takes \(field): \(value)")
            let runtime: String?
            switch field {
            case "vni": runtime = runtimeRefusal(vni: value, type: type)
            case "dst_port": runtime = runtimeRefusal(dstPort: value, type: type)
            case "ttl": runtime = runtimeRefusal(ttl: value, type: type)
            case "df": runtime = runtimeRefusal(df: value, type: type)
            default: runtime = runtimeRefusal(flowID: value, type: type)
            }
            XCTAssertEqual(runtime, file, "\(type) tunnel with \(field) \(value)")
        }
        // And both take what the file takes.
        for (field, value, type) in [("dst_port", "1", "vxlan"), ("ttl", "255", "geneve"), ("df", "FALSE", "vxlan"),
                                     ("flow_id", "255", "nvgre"), ("vni", "16777215", "nvgre")] {
            XCTAssertNil(fileRefusal(field, value, type: type))
            XCTAssertNil(runtimeRefusal(vni: field == "vni" ? value : "42", dstPort: field == "dst_port" ? value : nil,
                                        ttl: field == "ttl" ? value : nil, df: field == "df" ? value : nil,
                                        flowID: field == "flow_id" ? value : nil, type: type), "\(field) \(value)")
        }
    }

    /// A request that did not come from tunnelctl's parsing (any JSON client) carries
    /// numbers of the protocol's types: the forwarder refuses the out-of-range ones with
    /// the file's words, the port 0 and the TTL 0 that the file refuses included.
    func testRequestNumbersAreCheckedByTheForwarder() {
        func spec(_ change: (inout TunnelSpec) -> Void) -> TunnelSpec {
            var s = TunnelSpec(name: "t1", type: "vxlan", remote: "192.168.50.2", vni: 42)
            change(&s)
            return s
        }
        XCTAssertEqual(overlayRefusal(spec { $0.dstPort = 0 }), "dst_port: 0 is out of range (1..65535)")
        XCTAssertEqual(overlayRefusal(spec { $0.ttl = 0 }), "ttl: 0 is out of range (1..255)")
        XCTAssertEqual(overlayRefusal(spec { $0.vni = 1 << 24 }), "vni: 16777216 is over the 24-bit maximum 16777215")
        XCTAssertEqual(overlayRefusal(spec { $0.flowID = 1 }), fileRefusal("flow_id", "1"))
        XCTAssertEqual(overlayRefusal(spec { $0.remote = "192.168.50.300" }), fileRefusal("remote", "192.168.50.300"))
        XCTAssertEqual(overlayRefusal(spec { $0.remote = "a\nb" }), "remote: 'a\\nb' is not a valid IPv4 address")
        XCTAssertEqual(overlayRefusal(spec { $0.name = "bad/name" }), fileRefusal("name", "bad/name"))
        XCTAssertEqual(overlayRefusal(spec { $0.type = "gre" }), fileRefusal("type", "gre"))
    }

    func testForwardingKeysAreCheckedAsTheFileChecksThem() throws {
        func fileRefusal(_ segment: String, _ mac: String) -> String? {
            let yaml = uplinkYAML + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42 } ]\n"
                + "forwarding: [ { segment: \(segment), mac: \(mac), tunnel: t1 } ]\n"
            do {
                _ = try Configuration(yaml: yaml)
                return nil
            } catch {
                return String(error.path.dropFirst("forwarding[0].".count)) + ": " + error.message
            }
        }
        func runtimeRefusal(_ segment: String, _ mac: String) -> String? {
            do {
                let (vni, address) = try ControlRequest.forwardingKey(segment: try ControlRequest.segment(segment), mac: mac)
                var overlay = try Overlay(configuration: try Configuration(yaml: uplinkYAML), localMAC: MACAddress(0x02, 0, 0, 0, 0, 1),
                                          accessPortIDs: [], nowMs: 0)
                _ = try overlay.addTunnel(Tunnel(name: "t1", type: .vxlan, remote: IPv4Address(192, 168, 50, 2), vni: VNI(42)!), nowMs: 0)
                try overlay.addForwarding(segment: vni, mac: address, tunnel: "t1")
                return nil
            } catch {
                return "\(error)"
            }
        }
        for (segment, mac) in [("16777216", "02:00:00:00:00:01"), ("-1", "02:00:00:00:00:01"), ("0x2a", "02:00:00:00:00:01"),
                               ("42", "zz"), ("42", "01:00:5e:00:00:01"), ("42", "00:00:00:00:00:00")] {
            XCTAssertNotNil(fileRefusal(segment, mac), "\(segment) \(mac)")
            XCTAssertEqual(runtimeRefusal(segment, mac), fileRefusal(segment, mac), "\(segment) \(mac)")
        }
        XCTAssertNil(runtimeRefusal("42", "02:00:00:00:00:01"))
        XCTAssertEqual(try ControlRequest.segment("16777215"), 16_777_215)
        XCTAssertThrowsError(try ControlRequest.forwardingKey(segment: 1 << 24, mac: "02:00:00:00:00:01")) {
            XCTAssertEqual("\($0)", "segment: 16777216 is over the 24-bit maximum 16777215")
        }
        XCTAssertThrowsError(try ControlRequest.forwardingKey(segment: 42, mac: "02:00\n:00")) {
            XCTAssertFalse("\($0)".contains(where: \.isNewline), "\($0)")
        }
    }

    /// Names come from the command line or a client: refusals quote them on one line.
    func testRefusalsNamingATunnelStayOnOneLine() throws {
        var overlay = try Overlay(configuration: try Configuration(yaml: uplinkYAML), localMAC: MACAddress(0x02, 0, 0, 0, 0, 1),
                                  accessPortIDs: [], nowMs: 0)
        XCTAssertThrowsError(try overlay.deleteTunnel(named: "a\nb", nowMs: 0)) {
            XCTAssertEqual("\($0)", "no tunnel named 'a\\nb'")
        }
        XCTAssertThrowsError(try overlay.addTunnel(Tunnel(name: "x\r\ny", type: .vxlan, remote: IPv4Address(192, 168, 50, 2),
                                                          vni: VNI(1)!), nowMs: 0)) {
            XCTAssertFalse("\($0)".contains(where: \.isNewline), "\($0)")
        }
    }
}
