import TunnelCore
import XCTest

final class PacketFlowHashTests: XCTestCase {
    private func flow(_ frame: [UInt8]) -> InnerFlow {
        withExactBuffer(frame) { InnerFlow(parsing: $0, length: $1) }
    }

    private func hash(_ frame: [UInt8]) -> UInt32 {
        withExactBuffer(frame) { InnerFlow.hash(frame: $0, length: $1) }
    }

    private let macs = (destination: MACAddress(0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x01),
                        source: MACAddress(0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x02))

    func testParsesUDPAndTCPFiveTuples() {
        let udp = flow(ipv4Frame())
        XCTAssertEqual(udp, InnerFlow(
            destinationMAC: macs.destination, sourceMAC: macs.source,
            sourceAddress: IPv4Address(10, 0, 0, 1), destinationAddress: IPv4Address(10, 0, 0, 2),
            ipProtocol: .udp, sourcePort: 1234, destinationPort: 80))
        let tcp = flow(ipv4Frame(protocol: .tcp, payload: [0xC3, 0x50, 0x01, 0xBB] + Array(repeating: 0, count: 16)))
        XCTAssertEqual(tcp.ipProtocol, .tcp)
        XCTAssertEqual(tcp.sourcePort, 50000)
        XCTAssertEqual(tcp.destinationPort, 443)
    }

    func testParsesBehindOneVLANTagAndHonoursIHL() {
        let tagged = flow(ipv4Frame(vlan: 100))
        XCTAssertEqual(tagged, flow(ipv4Frame()))
        // Options move the ports: 8 bytes of options, then the UDP header.
        let withOptions = flow(ipv4Frame(options: [1, 1, 1, 1, 1, 1, 1, 0], payload: [0x00, 0x35, 0x13, 0x88]))
        XCTAssertEqual(withOptions.sourcePort, 53)
        XCTAssertEqual(withOptions.destinationPort, 5000)
    }

    func testTwoVLANTagsAreNotLookedThrough() {
        var frame = ipv4Frame(vlan: 100)
        frame.insert(contentsOf: [0x81, 0x00, 0x00, 0xC8], at: 12)
        XCTAssertEqual(flow(frame), InnerFlow(destinationMAC: macs.destination, sourceMAC: macs.source))
    }

    func testFragmentsAndOtherProtocolsHashWithoutPorts() {
        for flagsAndOffset: UInt16 in [0x2000, 0x0001, 0x00B9, 0x20B9] {
            let f = flow(ipv4Frame(flagsAndOffset: flagsAndOffset))
            XCTAssertEqual(f.sourceAddress, IPv4Address(10, 0, 0, 1))
            XCTAssertEqual(f.ipProtocol, .udp)
            XCTAssertEqual(f.sourcePort, 0, "flags/offset \(flagsAndOffset)")
            XCTAssertEqual(f.destinationPort, 0)
        }
        // DF alone is not fragmentation.
        XCTAssertEqual(flow(ipv4Frame(flagsAndOffset: 0x4000)).sourcePort, 1234)
        // Every fragment of one datagram hashes alike.
        XCTAssertEqual(hash(ipv4Frame(flagsAndOffset: 0x2000)), hash(ipv4Frame(flagsAndOffset: 0x00B9)))
        let gre = flow(ipv4Frame(protocol: .gre))
        XCTAssertEqual(gre.ipProtocol, .gre)
        XCTAssertEqual(gre.sourcePort, 0)
    }

    func testNonIPv4FramesHashByMACs() {
        // raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")/ARP(...)), 42 bytes.
        let arp = [UInt8](hex: "ffffffffffff02000000000108060001080006040001020000000001c0a83201000000000000c0a832fe")
        XCTAssertEqual(flow(arp), InnerFlow(destinationMAC: .broadcast, sourceMAC: MACAddress(2, 0, 0, 0, 0, 1)))
        // Version 6 behind EtherType 0x0800, and IHL below 5, are not parsed.
        var badVersion = ipv4Frame()
        badVersion[14] = 0x65
        XCTAssertEqual(flow(badVersion), InnerFlow(destinationMAC: macs.destination, sourceMAC: macs.source))
        var badIHL = ipv4Frame()
        badIHL[14] = 0x44
        XCTAssertEqual(flow(badIHL), InnerFlow(destinationMAC: macs.destination, sourceMAC: macs.source))
    }

    func testTruncatedFramesReadOnlyWhatTheLengthCovers() {
        // Each prefix sits in a buffer of exactly its size (run with --sanitize=address
        // to catch a read past it).
        let macsOnly = InnerFlow(destinationMAC: macs.destination, sourceMAC: macs.source)
        for vlan: UInt16? in [nil, 7] {
            let full = ipv4Frame(vlan: vlan, options: [1, 1, 1, 0])
            let ip = vlan == nil ? 14 : 18
            for length in 14...full.count {
                let f = flow(Array(full[..<length]))
                switch length - ip {
                case ..<24:  // Shorter than the IHL says.
                    XCTAssertEqual(f, macsOnly, "length \(length)")
                case 24..<28:  // Header complete, ports cut.
                    XCTAssertEqual(f.destinationAddress, IPv4Address(10, 0, 0, 2), "length \(length)")
                    XCTAssertEqual(f.ipProtocol, .udp)
                    XCTAssertEqual(f.sourcePort, 0, "length \(length)")
                default:
                    XCTAssertEqual(f.sourcePort, 1234, "length \(length)")
                    XCTAssertEqual(f.destinationPort, 80)
                }
            }
        }
        // A tag with nothing after it.
        XCTAssertEqual(flow(Array(ipv4Frame(vlan: 7)[..<17])), macsOnly)
    }

    func testHashIsDeterministicAcrossRunsAndHosts() {
        // Pinned values, cross-checked with a Python model of the mixer: a change here
        // moves every flow to another path on upgrade.
        XCTAssertEqual(hash(ipv4Frame()), 1_429_952_502)
        XCTAssertEqual(InnerFlow(destinationMAC: .zero, sourceMAC: .zero).hash, 630_017_982)
        XCTAssertEqual(hash(ipv4Frame()), hash(ipv4Frame()))
        XCTAssertEqual(hash(ipv4Frame(vlan: 5)), hash(ipv4Frame()))
    }

    func testEveryIPv4FieldContributes() {
        let base = flow(ipv4Frame())
        var variants: [InnerFlow] = []
        for i in 0..<32 {
            var f = base; f.sourceAddress = IPv4Address(rawValue: base.sourceAddress.rawValue ^ 1 << UInt32(i)); variants.append(f)
            f = base; f.destinationAddress = IPv4Address(rawValue: base.destinationAddress.rawValue ^ 1 << UInt32(i)); variants.append(f)
        }
        for i in 0..<16 {
            var f = base; f.sourcePort ^= 1 << UInt16(i); variants.append(f)
            f = base; f.destinationPort ^= 1 << UInt16(i); variants.append(f)
        }
        for i in 0..<8 {
            var f = base; f.ipProtocol = IPProtocol(rawValue: base.ipProtocol.rawValue ^ 1 << UInt8(i)); variants.append(f)
        }
        // Swapping directions is a different flow too.
        var reversed = base
        swap(&reversed.sourceAddress, &reversed.destinationAddress)
        swap(&reversed.sourcePort, &reversed.destinationPort)
        variants.append(reversed)
        for v in variants {
            XCTAssertNotEqual(v.hash, base.hash, "\(v)")
        }
        XCTAssertEqual(Set(variants.map(\.hash)).count, variants.count)
    }

    func testAnIPv4FlowKeepsItsHashWhateverHopItComesFrom() {
        var other = ipv4Frame()
        other.replaceSubrange(0..<12, with: [0x02, 0, 0, 0, 0, 0x0A, 0x02, 0, 0, 0, 0, 0x0B])
        XCTAssertEqual(hash(other), hash(ipv4Frame()))
        XCTAssertEqual(hash(other), flow(ipv4Frame()).hash)
    }

    func testEveryMACBitContributesWhenTheFrameIsNotIPv4() {
        let base = InnerFlow(destinationMAC: macs.destination, sourceMAC: macs.source)
        var variants: [InnerFlow] = []
        for i in 0..<48 {
            var f = base; f.destinationMAC = MACAddress(rawValue: base.destinationMAC.rawValue ^ 1 << UInt64(i)); variants.append(f)
            f = base; f.sourceMAC = MACAddress(rawValue: base.sourceMAC.rawValue ^ 1 << UInt64(i)); variants.append(f)
        }
        for v in variants {
            XCTAssertNotEqual(v.hash, base.hash, "\(v)")
        }
        XCTAssertEqual(Set(variants.map(\.hash)).count, variants.count)
    }

    func testDifferentFlowsSpreadOverTheSourcePortRange() {
        var hashes = Set<UInt32>()
        var ports = Set<UInt16>()
        var portCounts = [Int](repeating: 0, count: 16)
        let flows = 20_000
        for i in 0..<flows {
            let f = InnerFlow(
                destinationMAC: macs.destination, sourceMAC: macs.source,
                sourceAddress: IPv4Address(10, 0, UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)),
                destinationAddress: IPv4Address(10, 1, 0, 1),
                ipProtocol: .tcp, sourcePort: UInt16(32768 + i % 7), destinationPort: 443)
            hashes.insert(f.hash)
            let port = f.udpSourcePort
            XCTAssertTrue((49152...65535).contains(port))
            ports.insert(port)
            portCounts[Int(port - 49152) >> 10] += 1
        }
        XCTAssertGreaterThanOrEqual(hashes.count, flows - 2)
        // 20000 flows into 16384 ports: about 16384 * (1 - e^-1.22) = 11,400 distinct.
        XCTAssertGreaterThan(ports.count, 11_000)
        // Each sixteenth of the range gets its share, within 10 %.
        for count in portCounts { XCTAssertEqual(Double(count), Double(flows) / 16, accuracy: Double(flows) / 160) }
    }

    func testSourcePortRange() {
        for hash: UInt32 in [0, 1, 0x3FFF, 0x4000, 0xFFFF, 0x1_0000, 0xC000_0000, 0xFFFF_FFFF, 0x1234_5678] {
            XCTAssertTrue((49152...65535).contains(InnerFlow.udpSourcePort(hash: hash)), "\(hash)")
        }
        XCTAssertEqual(InnerFlow.udpSourcePort(hash: 0), 49152)
        XCTAssertEqual(InnerFlow.udpSourcePort(hash: 0xFFFF_FFFF), 65535)
        // The top 14 bits, each of them.
        for bit in 18..<32 {
            XCTAssertEqual(InnerFlow.udpSourcePort(hash: 1 << UInt32(bit)), 49152 + 1 << UInt16(bit - 18))
        }
        XCTAssertEqual(InnerFlow.udpSourcePort(hash: 0x0003_FFFF), 49152)
        let f = flow(ipv4Frame())
        XCTAssertEqual(f.udpSourcePort, InnerFlow.udpSourcePort(hash: f.hash))
    }
}
