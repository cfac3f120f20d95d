import Foundation
import XCTest
@testable import TunnelCore

final class ConfigurationTests: XCTestCase {
    /// The smallest valid configuration; tests append sections to it.
    let base = "uplink: { port: net_tap1, address: 192.168.50.1/24 }\n"
    let baseWithGateway = "uplink: { port: net_tap1, address: 192.168.50.1/24, gateway: 192.168.50.254 }\n"

    /// Parses `yaml` expecting a failure at `path`; checks that the description is one line
    /// starting with the path and quoting every string in `values`.
    func assertError(
        _ yaml: String, path: String, message: String? = nil, values: [String] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let config = try Configuration(yaml: yaml)
            XCTFail("expected an error at \(path), parsed \(config)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.path, path, "\(error)", file: file, line: line)
            if let message { XCTAssertEqual(error.message, message, file: file, line: line) }
            let d = error.description
            XCTAssertFalse(d.contains(where: \.isNewline), "not one line: \(d)", file: file, line: line)
            if !path.isEmpty { XCTAssertTrue(d.hasPrefix(path + ": "), d, file: file, line: line) }
            for v in values { XCTAssertTrue(d.contains(v), "'\(v)' missing in: \(d)", file: file, line: line) }
        }
    }

    func mac(_ s: String) -> MACAddress { MACAddress(s)! }
    func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    func vni(_ v: UInt32) -> VNI { VNI(v)! }

    // MARK: Valid configurations

    func testFullConfigurationParsesEveryField() throws {
        let yaml = """
            uplink:
              port: net_tap1
              address: 192.168.50.1/24
              gateway: 192.168.50.254
              mtu: 9000
            access:
              - { port: net_tap0, segment: 42, vlan: 10 }
              - { port: 3, segment: 43 }
            tunnels:
              - { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42, dst_port: 4790, ttl: 32, df: false }
              - { name: g-2.x, type: geneve, remote: 10.9.9.9, vni: 43 }
              - { name: n_3, type: nvgre, remote: 192.168.50.3, vni: 42, flow_id: 7 }
            forwarding:
              - { segment: 42, mac: "02:00:00:00:00:02", tunnel: t1 }
              - { segment: 43, mac: 02-00-00-00-00-03, tunnel: g-2.x }
            flood:
              - { segment: 42, tunnels: [t1, n_3] }
            neighbors:
              - { address: 192.168.50.2, mac: "02:00:00:00:00:aa" }
            resolution: { retry_initial_ms: 50, retry_max_ms: 2000, min_interval_ms: 5, reachable_ms: 60000, probes: 4, max_requests_per_second: 100, max_neighbors: 77 }
            pending: { lifetime_ms: 1500, per_core: 65536, per_neighbor: 65536 }
            learning: { enabled: false, max_entries: 1000, aging_s: 30 }
            kernel_sync: { interface: tunnelfwd0 }
            decapsulation: { accept_from: any }
            dataplane: { burst: 64, rx_descriptors: 2048, tx_descriptors: 512, extra_mbufs: 0, max_tunnels: 3, max_next_hops: 3 }
            """
        let c = try Configuration(yaml: yaml)

        XCTAssertEqual(c.uplink, Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!,
                                        gateway: ip("192.168.50.254"), mtu: 9000))
        XCTAssertEqual(c.access, [
            AccessPort(port: .name("net_tap0"), segment: vni(42), vlan: 10),
            AccessPort(port: .id(3), segment: vni(43), vlan: nil),
        ])
        XCTAssertEqual(c.tunnels, [
            Tunnel(name: "t1", type: .vxlan, remote: ip("192.168.50.2"), vni: vni(42), destinationPort: 4790,
                   ttl: 32, dontFragment: false, flowID: 0),
            Tunnel(name: "g-2.x", type: .geneve, remote: ip("10.9.9.9"), vni: vni(43), destinationPort: 6081,
                   ttl: 64, dontFragment: true, flowID: 0),
            Tunnel(name: "n_3", type: .nvgre, remote: ip("192.168.50.3"), vni: vni(42), destinationPort: nil,
                   ttl: 64, dontFragment: true, flowID: 7),
        ])
        XCTAssertNil(c.tunnels[2].destinationPort)
        XCTAssertEqual(c.forwarding, [
            ForwardingEntry(segment: vni(42), mac: mac("02:00:00:00:00:02"), tunnel: "t1"),
            ForwardingEntry(segment: vni(43), mac: mac("02:00:00:00:00:03"), tunnel: "g-2.x"),
        ])
        XCTAssertEqual(c.flood, [FloodList(segment: vni(42), tunnels: ["t1", "n_3"])])
        XCTAssertEqual(c.neighbors, [StaticNeighbor(address: ip("192.168.50.2"), mac: mac("02:00:00:00:00:aa"))])

        var r = ResolutionSettings()
        (r.retryInitialMs, r.retryMaxMs, r.minIntervalMs, r.reachableMs, r.probes, r.maxRequestsPerSecond, r.maxNeighbors) =
            (50, 2000, 5, 60000, 4, 100, 77)
        XCTAssertEqual(c.resolution, r)
        var p = PendingSettings()
        (p.lifetimeMs, p.perCore, p.perNeighbor) = (1500, 65536, 65536)
        XCTAssertEqual(c.pending, p)
        var l = LearningSettings()
        (l.enabled, l.maxEntries, l.agingSeconds) = (false, 1000, 30)
        XCTAssertEqual(c.learning, l)
        XCTAssertEqual(c.kernelSync, KernelSync(interface: "tunnelfwd0"))
        XCTAssertEqual(c.decapsulation.acceptFrom, .any)
        var d = DataplaneSettings()
        (d.burst, d.rxDescriptors, d.txDescriptors, d.extraMbufs, d.maxTunnels, d.maxNextHops) =
            (64, 2048, 512, 0, 3, 3)
        XCTAssertEqual(c.dataplane, d)

        // Helpers: the off-link geneve remote goes via the gateway.
        XCTAssertEqual(c.tunnel(named: "g-2.x")?.remote, ip("10.9.9.9"))
        XCTAssertNil(c.tunnel(named: "nope"))
        XCTAssertEqual(c.tunnelNextHops, [ip("192.168.50.2"), ip("192.168.50.254"), ip("192.168.50.3")])
    }

    func testDefaults() throws {
        let c = try Configuration(yaml: base)
        XCTAssertEqual(c, Configuration(uplink: Uplink(port: .name("net_tap1"), address: IPv4Interface("192.168.50.1/24")!)))
        XCTAssertNil(c.uplink.gateway)
        XCTAssertEqual(c.uplink.mtu, 1500)
        XCTAssertEqual(c.resolution, ResolutionSettings())
        XCTAssertEqual(c.pending, PendingSettings())
        XCTAssertEqual(c.learning, LearningSettings())
        XCTAssertTrue(c.learning.enabled)
        XCTAssertEqual(c.learning.agingSeconds, 300)
        XCTAssertEqual(c.dataplane, DataplaneSettings())
        XCTAssertNil(c.kernelSync)

        let t = try Configuration(yaml: base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 0 } ]\n").tunnels[0]
        XCTAssertEqual(t.destinationPort, 4789)
        XCTAssertEqual(t.ttl, 64)
        XCTAssertTrue(t.dontFragment)
        XCTAssertEqual(t.flowID, 0)
        XCTAssertEqual(t.vni, vni(0))
    }

    func testPortByIdAndLimitsAccepted() throws {
        let c = try Configuration(yaml: """
            uplink: { port: 0, address: 10.0.0.1/31, mtu: 576 }
            access: [ { port: 65535, segment: 16777215, vlan: 4094 } ]
            pending: { lifetime_ms: 600000, per_core: 1048576, per_neighbor: 1 }
            dataplane: { burst: 256, rx_descriptors: 64, tx_descriptors: 16384, max_tunnels: 1048576 }
            """)
        XCTAssertEqual(c.uplink.port, .id(0))
        XCTAssertEqual(c.access[0].port, .id(65535))
        XCTAssertEqual(c.access[0].segment.rawValue, VNI.max)
        XCTAssertEqual(c.pending.perCore, 1_048_576)
    }

    func testFloodSegmentWithoutAccessPortIsAllowed() throws {
        let c = try Configuration(yaml: base + """
            access: [ { port: net_tap0, segment: 1 } ]
            tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 99 } ]
            forwarding: [ { segment: 99, mac: "02:00:00:00:00:01", tunnel: t1 } ]
            flood: [ { segment: 99, tunnels: [t1] } ]
            """)
        XCTAssertEqual(c.flood.first?.segment, vni(99))
    }

    // MARK: Structure and YAML types

    func testMissingUplink() {
        assertError("access: []\n", path: "uplink", message: "missing required key")
        assertError("", path: "uplink")
        assertError("uplink: { port: net_tap1 }\n", path: "uplink.address", message: "missing required key")
    }

    func testUnknownKeysAreRejectedAtEveryLevel() {
        assertError(base + "uplinks: {}\n", path: "uplinks", values: ["unknown key", "expected one of: uplink, access"])
        assertError("uplink: { port: net_tap1, address: 192.168.50.1/24, mtuu: 1500 }\n", path: "uplink.mtuu")
        assertError(base + """
            tunnels:
              - { name: t0, type: vxlan, remote: 192.168.50.2, vni: 1 }
              - { name: t1, type: vxlan, remote: 192.168.50.2, vnii: 42 }
            """,
            path: "tunnels[1].vnii",
            message: "unknown key (expected one of: name, type, remote, vni, dst_port, ttl, df, flow_id)")
        assertError(base + "dataplane: { bursts: 3 }\n", path: "dataplane.bursts")
    }

    func testDuplicateKey() {
        assertError("uplink: { port: net_tap1, address: 192.168.50.1/24, port: net_tap2 }\n",
                    path: "uplink.port", message: "duplicate key")
    }

    func testMalformedYAML() {
        assertError("uplink: { port: net_tap1, address: [\n", path: "(yaml)", values: ["line"])
        assertError("uplink:\n  port: a\n bad: b\n", path: "(yaml)", values: ["line 3"])
    }

    /// Yams composes the tree recursively: 5 000 levels overflowed the stack. Deep nesting
    /// is refused before that, in flow and block style, and through aliases.
    func testNestingDeeperThan64LevelsIsRefusedBeforeParsing() {
        let message = "nesting deeper than 64 levels"
        assertError(base + "access: " + String(repeating: "[", count: 5000) + "\n", path: "(yaml)",
                    message: message + " (line 2, column 72)")
        assertError(base + "access: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n",
                    path: "(yaml)", values: [message])
        let block = (0..<5000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        assertError(base + "access:\n" + block + " x\n", path: "(yaml)", values: [message])
        assertError(base + "access:\n" + String(repeating: "- ", count: 5000) + "x\n", path: "(yaml)", values: [message])
        assertError(base + "access: " + String(repeating: "{a: ", count: 65) + String(repeating: "}", count: 65) + "\n",
                    path: "(yaml)", values: [message])
        // 63 levels under the top-level mapping are 64: allowed (and refused for what they are).
        assertError(base + "access: " + String(repeating: "[", count: 63) + String(repeating: "]", count: 63) + "\n",
                    path: "access[0]", values: ["expected a mapping, got a list"])
        // An alias is as deep as its anchor's node: 40 + 40 levels.
        let forty = String(repeating: "[", count: 40) + "x" + String(repeating: "]", count: 40)
        assertError(base + "tunnels: [ &deep \(forty) ]\nflood: [ \(String(repeating: "[", count: 39)) *deep \(String(repeating: "]", count: 39)) ]\n",
                    path: "(yaml)", values: [message])
        // A syntax error within the bound is still Yams's to describe.
        assertError(base + "access: [[[ a, b\n", path: "(yaml)", values: ["line"])
    }

    /// Aliases are shared, not copied, so a "billion laughs" document is small once composed,
    /// and refused for the field it is in.
    func testBillionLaughsIsRefusedForItsField() {
        var laughs = "[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"
        var previous = "a"
        for anchor in "bcdefghi" {
            laughs += ", &\(anchor) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]"
            previous = String(anchor)
        }
        laughs += "]"
        let start = Date()
        assertError(base + "kernel_sync: { interface: \(laughs) }\n", path: "kernel_sync.interface",
                    message: "expected a string, got a list")
        assertError(base + "tunnels: [ { name: *i } ]\n", path: "(yaml)", values: ["undefined alias"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testTopLevelMustBeAMapping() {
        assertError("- a\n- b\n", path: "", values: ["expected a mapping", "a list"])
        assertError("hello\n", path: "", values: ["'hello'"])
    }

    func testWrongNodeKind() {
        assertError("uplink: { port: { a: 1 }, address: 192.168.50.1/24 }\n",
                    path: "uplink.port", values: ["got a mapping"])
        assertError(base + "tunnels: { name: t1 }\n", path: "tunnels", message: "expected a list, got a mapping")
        assertError(base + "flood: [ { segment: 1, tunnels: t1 } ]\n",
                    path: "flood[0].tunnels", values: ["expected a list", "'t1'"])
        assertError(base + "access: [ net_tap0 ]\n", path: "access[0]", values: ["expected a mapping", "'net_tap0'"])
    }

    func testIntegerMustBeAPlainDecimal() {
        assertError(base.replacingOccurrences(of: " }", with: ", mtu: abc }"),
                    path: "uplink.mtu", message: "expected an integer, got 'abc'")
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1, ttl: 1.5 } ]\n",
                    path: "tunnels[0].ttl", values: ["'1.5'"])
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: \"42\" } ]\n",
                    path: "tunnels[0].vni", values: ["expected an integer", "\"42\""])
        assertError(base + "dataplane: { burst: 0x10 }\n", path: "dataplane.burst", values: ["'0x10'"])
        assertError(base + "dataplane: { burst: 99999999999999999999999 }\n",
                    path: "dataplane.burst", values: ["99999999999999999999999", "out of range"])
    }

    func testBoolMustBeTrueOrFalse() {
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1, df: maybe } ]\n",
                    path: "tunnels[0].df", message: "expected true or false, got 'maybe'")
    }

    func testNullValueIsMissingValue() {
        assertError("uplink:\n  port: net_tap1\n  address: 192.168.50.1/24\n  gateway:\n",
                    path: "uplink.gateway", message: "missing value")
        assertError(base + "kernel_sync:\n", path: "kernel_sync", message: "missing value")
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1 } ]\nflood: [ { segment: 1, tunnels: [t1, ~] } ]\n",
                    path: "flood[0].tunnels[1]", message: "missing value")
    }

    // MARK: Addresses

    func testUplinkAddressNeedsPrefix() {
        assertError("uplink: { port: net_tap1, address: 192.168.50.1 }\n",
                    path: "uplink.address", values: ["'192.168.50.1'", "no prefix length"])
        assertError("uplink: { port: net_tap1, address: 192.168.50.1/33 }\n",
                    path: "uplink.address", values: ["'192.168.50.1/33'"])
        assertError("uplink: { port: net_tap1, address: 192.168.50.255/24 }\n",
                    path: "uplink.address", values: ["192.168.50.255", "broadcast"])
    }

    func testBadIPv4Address() {
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.300, vni: 1 } ]\n",
                    path: "tunnels[0].remote", message: "'192.168.50.300' is not a valid IPv4 address")
        assertError(base + "neighbors: [ { address: 192.168.050.2, mac: \"02:00:00:00:00:01\" } ]\n",
                    path: "neighbors[0].address", values: ["'192.168.050.2'"])
    }

    func testBadMAC() {
        assertError(base + "neighbors: [ { address: 192.168.50.2, mac: \"02:00:00:00:00\" } ]\n",
                    path: "neighbors[0].mac", values: ["'02:00:00:00:00'", "not a valid MAC"])
        assertError(base + "neighbors: [ { address: 192.168.50.2, mac: \"01:00:5e:00:00:01\" } ]\n",
                    path: "neighbors[0].mac", message: "01:00:5e:00:00:01 is a multicast MAC address")
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1 } ]\nforwarding: [ { segment: 1, mac: \"00:00:00:00:00:00\", tunnel: t1 } ]\n",
                    path: "forwarding[0].mac", message: "00:00:00:00:00:00 is the all-zero MAC address")
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1 } ]\nforwarding: [ { segment: 1, mac: \"ff:ff:ff:ff:ff:ff\", tunnel: t1 } ]\n",
                    path: "forwarding[0].mac", values: ["ff:ff:ff:ff:ff:ff", "multicast"])
    }

    func testRemoteMayNotBeOwnOrSpecialAddress() {
        func tunnel(_ remote: String) -> String {
            baseWithGateway + "tunnels: [ { name: t1, type: vxlan, remote: \(remote), vni: 1 } ]\n"
        }
        assertError(tunnel("192.168.50.1"), path: "tunnels[0].remote", values: ["192.168.50.1", "own address"])
        for (remote, word) in [("0.0.0.0", "unspecified"), ("224.0.0.5", "multicast"),
                               ("255.255.255.255", "broadcast"), ("192.168.50.255", "broadcast")] {
            assertError(tunnel(remote), path: "tunnels[0].remote", values: [remote, word])
        }
    }

    func testRemoteNotOnLinkNeedsGateway() throws {
        let tunnels = "tunnels: [ { name: t1, type: vxlan, remote: 10.1.2.3, vni: 1 } ]\n"
        assertError(base + tunnels, path: "tunnels[0].remote",
                    message: "10.1.2.3 is not on-link (outside uplink.address 192.168.50.1/24) and uplink.gateway is not set")
        let c = try Configuration(yaml: baseWithGateway + tunnels)
        XCTAssertEqual(c.uplink.nextHop(for: c.tunnels[0].remote), ip("192.168.50.254"))
    }

    func testGatewayMustBeInsidePrefixAndNotOwnAddress() {
        assertError("uplink: { port: net_tap1, address: 192.168.50.1/24, gateway: 192.168.51.1 }\n",
                    path: "uplink.gateway", message: "192.168.51.1 is not inside uplink.address 192.168.50.1/24")
        assertError("uplink: { port: net_tap1, address: 192.168.50.1/24, gateway: 192.168.50.1 }\n",
                    path: "uplink.gateway", values: ["192.168.50.1", "own address"])
    }

    func testNeighborChecks() {
        let n = "neighbors: [ { address: 192.168.50.2, mac: \"02:00:00:00:00:01\" }, { address: 192.168.50.2, mac: \"02:00:00:00:00:02\" } ]\n"
        assertError(base + n, path: "neighbors[1].address",
                    message: "duplicate neighbor 192.168.50.2 (also neighbors[0])")
        assertError(base + "neighbors: [ { address: 10.0.0.2, mac: \"02:00:00:00:00:01\" } ]\n",
                    path: "neighbors[0].address", values: ["10.0.0.2", "not on-link"])
    }

    // MARK: Tunnels

    func testVNIOver24Bits() {
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 16777216 } ]\n",
                    path: "tunnels[0].vni", message: "16777216 is over the 24-bit maximum 16777215")
        assertError(base + "access: [ { port: net_tap0, segment: 20000000 } ]\n",
                    path: "access[0].segment", values: ["20000000", "24-bit"])
        assertError(base + "access: [ { port: net_tap0, segment: -1 } ]\n",
                    path: "access[0].segment", values: ["-1"])
    }

    func testDuplicateTunnelName() {
        assertError(base + """
            tunnels:
              - { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1 }
              - { name: t1, type: vxlan, remote: 192.168.50.3, vni: 1 }
            """, path: "tunnels[1].name", message: "duplicate tunnel name 't1' (also tunnels[0])")
    }

    func testTunnelNameCharactersAndLength() {
        for bad in ["\"a b\"", "\"\"", "t/1", String(repeating: "x", count: 33)] {
            assertError(base + "tunnels: [ { name: \(bad), type: vxlan, remote: 192.168.50.2, vni: 1 } ]\n",
                        path: "tunnels[0].name", values: ["not a valid tunnel name"])
        }
        XCTAssertNoThrow(try Configuration(
            yaml: base + "tunnels: [ { name: \(String(repeating: "x", count: 32)), type: vxlan, remote: 192.168.50.2, vni: 1 } ]\n"))
    }

    func testUnknownTunnelType() {
        assertError(base + "tunnels: [ { name: t1, type: vxlam, remote: 192.168.50.2, vni: 1 } ]\n",
                    path: "tunnels[0].type", values: ["'vxlam'", "vxlan, geneve, nvgre"])
    }

    func testSameTypeRemoteVNIAndPortIsDuplicate() throws {
        assertError(base + """
            tunnels:
              - { name: a, type: vxlan, remote: 192.168.50.2, vni: 7 }
              - { name: b, type: vxlan, remote: 192.168.50.2, vni: 7, dst_port: 4789 }
            """, path: "tunnels[1]", values: ["192.168.50.2", "vni 7", "'a'"])
        // A different UDP port or type makes it a different tunnel.
        let c = try Configuration(yaml: base + """
            tunnels:
              - { name: a, type: vxlan, remote: 192.168.50.2, vni: 7 }
              - { name: b, type: vxlan, remote: 192.168.50.2, vni: 7, dst_port: 8472 }
              - { name: c, type: geneve, remote: 192.168.50.2, vni: 7 }
            """)
        XCTAssertEqual(c.tunnels.count, 3)
    }

    func testAUDPPortCarriesOneFormat() {
        assertError(base + "tunnels: [ { name: g, type: geneve, remote: 192.168.50.2, vni: 1, dst_port: 4789 } ]\n",
                    path: "tunnels[0].dst_port", values: ["4789", "registered vxlan port"])
        assertError(base + """
            tunnels:
              - { name: a, type: vxlan, remote: 192.168.50.2, vni: 1, dst_port: 8472 }
              - { name: b, type: geneve, remote: 192.168.50.3, vni: 1, dst_port: 8472 }
            """, path: "tunnels[1].dst_port", values: ["8472", "'a'"])
        let ports = (0..<7).map { "  - { name: t\($0), type: vxlan, remote: 192.168.50.2, vni: 1, dst_port: \(10000 + $0) }" }
        assertError(base + "tunnels:\n" + ports.joined(separator: "\n") + "\n",
                    path: "tunnels[6].dst_port", values: ["at most 6"])
        XCTAssertNoThrow(try Configuration(yaml: base + "tunnels:\n" + ports.prefix(6).joined(separator: "\n") + "\n"))
    }

    func testDstPortAndFlowIDDependOnType() {
        assertError(base + "tunnels: [ { name: t1, type: nvgre, remote: 192.168.50.2, vni: 1, dst_port: 4789 } ]\n",
                    path: "tunnels[0].dst_port", values: ["4789", "nvgre"])
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1, flow_id: 3 } ]\n",
                    path: "tunnels[0].flow_id", values: ["flow_id 3", "only allowed for nvgre"])
        assertError(base + "tunnels: [ { name: t1, type: nvgre, remote: 192.168.50.2, vni: 1, flow_id: 256 } ]\n",
                    path: "tunnels[0].flow_id", message: "256 is out of range (0..255)")
    }

    // MARK: Forwarding and flood references

    let twoTunnels = """
        tunnels:
          - { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42 }
          - { name: t2, type: vxlan, remote: 192.168.50.3, vni: 42 }

        """

    func testForwardingUnknownTunnel() {
        assertError(base + twoTunnels + "forwarding: [ { segment: 42, mac: \"02:00:00:00:00:01\", tunnel: t9 } ]\n",
                    path: "forwarding[0].tunnel", message: "unknown tunnel 't9'")
    }

    func testFloodUnknownTunnel() {
        assertError(base + twoTunnels + "flood: [ { segment: 42, tunnels: [t1, t9] } ]\n",
                    path: "flood[0].tunnels[1]", message: "unknown tunnel 't9'")
    }

    func testReferencedTunnelMustCarryTheSegment() {
        assertError(base + twoTunnels + "forwarding: [ { segment: 43, mac: \"02:00:00:00:00:01\", tunnel: t1 } ]\n",
                    path: "forwarding[0].tunnel", message: "tunnel 't1' has vni 42, not segment 43")
        assertError(base + twoTunnels + "flood: [ { segment: 43, tunnels: [t2] } ]\n",
                    path: "flood[0].tunnels[0]", values: ["'t2'", "42", "43"])
    }

    func testDuplicateForwardingEntry() {
        assertError(base + twoTunnels + """
            forwarding:
              - { segment: 42, mac: "02:00:00:00:00:01", tunnel: t1 }
              - { segment: 42, mac: "02:00:00:00:00:01", tunnel: t2 }
            """, path: "forwarding[1].mac", values: ["02:00:00:00:00:01", "42", "forwarding[0]"])
    }

    func testDuplicateFloodSegmentAndTunnel() {
        assertError(base + twoTunnels + "flood: [ { segment: 42, tunnels: [t1] }, { segment: 42, tunnels: [t2] } ]\n",
                    path: "flood[1].segment", message: "duplicate flood list for segment 42 (also flood[0])")
        assertError(base + twoTunnels + "flood: [ { segment: 42, tunnels: [t1, t2, t1] } ]\n",
                    path: "flood[0].tunnels[2]", values: ["'t1'", "flood[0].tunnels[0]"])
    }

    // MARK: Access ports

    func testAccessPortChecks() {
        assertError(base + "access: [ { port: net_tap0, segment: 1 }, { port: net_tap0, segment: 2 } ]\n",
                    path: "access[1].port", message: "duplicate access port 'net_tap0' (also access[0])")
        assertError(base + "access: [ { port: net_tap1, segment: 1 } ]\n",
                    path: "access[0].port", values: ["'net_tap1'", "uplink"])
        assertError(base + "access: [ { port: net_tap0, segment: 1, vlan: 4095 } ]\n",
                    path: "access[0].vlan", message: "4095 is out of range (1..4094)")
        assertError(base + "access: [ { port: 70000, segment: 1 } ]\n",
                    path: "access[0].port", values: ["70000", "0..65535"])
    }

    // MARK: Settings

    func testSettingRanges() {
        let up = "uplink: { port: net_tap1, address: 192.168.50.1/24, mtu: 575 }\n"
        assertError(up, path: "uplink.mtu", message: "575 is out of range (576..9000)")
        assertError(base + "dataplane: { burst: 257 }\n", path: "dataplane.burst", values: ["257", "1..256"])
        assertError(base + "dataplane: { rx_descriptors: 1000 }\n",
                    path: "dataplane.rx_descriptors", values: ["1000", "power of two"])
        assertError(base + "dataplane: { tx_descriptors: 32 }\n", path: "dataplane.tx_descriptors", values: ["32"])
        assertError(base + "pending: { lifetime_ms: 600001 }\n", path: "pending.lifetime_ms", values: ["600001"])
        assertError(base + "pending: { per_core: 0 }\n", path: "pending.per_core", values: ["0"])
        assertError(base + "learning: { aging_s: 0 }\n", path: "learning.aging_s", values: ["0"])
        assertError(base + "learning: { max_entries: 1048577 }\n", path: "learning.max_entries", values: ["1048577"])
        assertError(base + "learning: { enabled: sometimes }\n", path: "learning.enabled", values: ["sometimes"])
        assertError(base + "learning: { ageing: 5 }\n", path: "learning.ageing")
        assertError(base + "tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 1, ttl: 0 } ]\n",
                    path: "tunnels[0].ttl", values: ["0", "1..255"])
        assertError(base + "resolution: { retry_initial_ms: 500, retry_max_ms: 100 }\n",
                    path: "resolution.retry_max_ms", values: ["100", "500"])
        assertError(base + twoTunnels + "dataplane: { max_tunnels: 1 }\n",
                    path: "dataplane.max_tunnels", values: ["1", "2 configured tunnels"])
    }

    /// The data-plane tables are 16 384 tunnels and next hops large unless the file says
    /// otherwise, and a file that does not fit them is refused before DPDK starts.
    func testTunnelsAndNextHopsBeyondTheDefaultTableSizes() throws {
        func tunnels(_ n: Int) -> String {
            "tunnels:\n" + (0..<n).map { "  - { name: t\($0), type: vxlan, remote: 10.0.\(1 + $0 / 250).\(1 + $0 % 250), vni: 1 }\n" }.joined()
        }
        let up = "uplink: { port: net_tap1, address: 10.0.0.1/16 }\n"
        let many = tunnels(16385)
        assertError(up + many, path: "tunnels", message: "16385 tunnels are more than dataplane.max_tunnels (default 16384)")
        assertError(up + many + "dataplane: { max_tunnels: 16385 }\n", path: "tunnels",
                    message: "the tunnels need 16385 next hops, more than dataplane.max_next_hops (default 16384)")
        assertError(up + tunnels(3) + "dataplane: { burst: 8, max_next_hops: 2 }\n", path: "dataplane.max_next_hops",
                    message: "2 is less than the 3 next hops the configured tunnels need")
    }

    func testKernelSyncInterfaceName() throws {
        for bad in ["\"\"", "a/b", "\"a b\"", "abcdefghijklmnop"] {
            assertError(base + "kernel_sync: { interface: \(bad) }\n",
                        path: "kernel_sync.interface", values: ["not a valid interface name"])
        }
        assertError(base + "kernel_sync: {}\n", path: "kernel_sync.interface", message: "missing required key")
        XCTAssertEqual(try Configuration(yaml: base + "kernel_sync: { interface: abcdefghijklmno }\n").kernelSync?.interface,
                       "abcdefghijklmno")
    }

    func testValuesInMessagesStayOnOneLine() {
        assertError(base + "tunnels: [ { name: \"a\\nb\", type: vxlan, remote: 192.168.50.2, vni: 1 } ]\n",
                    path: "tunnels[0].name", values: ["a\\nb"])
        assertError(base + "\"bad\\nkey\": 1\n", path: "bad\\nkey", values: ["unknown key"])
    }

    func testDecapsulationSourcesAreNamed() throws {
        XCTAssertEqual(try Configuration(yaml: base).decapsulation.acceptFrom, .tunnels)
        XCTAssertEqual(try Configuration(yaml: base + "decapsulation: { accept_from: tunnels }\n").decapsulation.acceptFrom, .tunnels)
        assertError(base + "decapsulation: { accept_from: all }\n", path: "decapsulation.accept_from",
                    values: ["'all'", "tunnels, any"])
        assertError(base + "decapsulation: { from: any }\n", path: "decapsulation.from", values: ["unknown key"])
        assertError(base + "resolution: { max_neighbors: -1 }\n", path: "resolution.max_neighbors")
    }

    // MARK: Files

    func testContentsOfFile() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tunnelfwd-config-\(UUID().uuidString).yaml")
        try base.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertEqual(try Configuration(contentsOfFile: url.path).uplink.port, .name("net_tap1"))

        let missing = url.path + ".missing"
        do {
            _ = try Configuration(contentsOfFile: missing)
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.path, "")
            XCTAssertFalse(error.description.contains(where: \.isNewline))
            XCTAssertTrue(error.description.contains(missing), error.description)
            XCTAssertTrue(error.description.contains("No such file"), error.description)
        }
        try Data([0x75, 0x70, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]).write(to: url)
        do {
            _ = try Configuration(contentsOfFile: url.path)
            XCTFail("expected an error for text that is not UTF-8")
        } catch {
            XCTAssertEqual(error.description, "cannot read configuration file '\(url.path)': not valid UTF-8 text")
        }
        do {
            _ = try Configuration(contentsOfFile: FileManager.default.temporaryDirectory.path)
            XCTFail("expected an error for a directory")
        } catch {
            XCTAssertTrue(error.description.contains("cannot read configuration file"), error.description)
        }
    }
}
