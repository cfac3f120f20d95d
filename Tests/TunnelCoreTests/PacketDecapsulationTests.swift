import XCTest
@testable import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

/// Uplink frames generated once with scapy 2.5 (Debian's `/usr/bin/python3`) and pasted
/// as `raw(p).hex()`. Unless noted: Ethernet 02:00:00:00:00:0a -> 02:00:00:00:00:01,
/// `IP(src="192.168.50.10", dst="192.168.50.1", id=0x1234, ttl=64, flags="DF")` (our
/// endpoint is 192.168.50.1), UDP source port 49152. The inner frame (46 bytes) is
/// `Ether(dst="02:50:56:00:00:01", src="02:50:56:00:00:02")/IP(src="10.0.0.1", dst="10.0.0.2")/ICMP(id=1, seq=1)/b"ping"`.
/// VXLAN and Geneve headers are `Raw` bytes (scapy's layers cannot express every odd flag):
/// VXLAN `flags, reserved[3], vni << 8 | reserved`; Geneve `ver << 6 | optlen,
/// O << 7 | C << 6, protocol, vni << 8`.
enum DecapsulationVectors {
    /// VXLAN to 4789, VNI 100, DF set.
    static let vxlanDF = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b5003e22bc08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN to 4789, VNI 0xFFFFFF, DF clear, flags 0xFF and every reserved bit set.
    static let vxlanNoDFReserved = [UInt8](hex: """
        02000000000102000000000a080045000052123400004011830bc0a8320ac0a8
        3201c00012b5003ec1a8ffabcdefffffff770250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve to 6081, VNI 200, no options.
    static let geneve = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00017c1003e5c57000065580000c8000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve, VNI 200, optlen 2: one non-critical option (class 0x0102, type 0x03, 4 data bytes).
    static let geneveOptions = [UInt8](hex: """
        02000000000102000000000a08004500005a1234400040114303c0a8320ac0a8
        3201c00017c10046b8a6020065580000c80001020301deadbeef025056000001
        02505600000208004500002000010000400166da0a0000010a0000020800192d
        0001000170696e67
        """)
    /// Geneve with the C (critical options) bit.
    static let geneveCritical = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00017c1003e5c17004065580000c8000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve with the O (OAM) bit.
    static let geneveOAM = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00017c1003e5bd7008065580000c8000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve version 1.
    static let geneveVersion1 = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00017c1003e1c57400065580000c8000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve with protocol 0x0800 carrying the inner IPv4 packet.
    static let geneveIPv4Proto = [UInt8](hex: """
        02000000000102000000000a0800450000441234400040114319c0a8320ac0a8
        3201c00017c10030726f000008000000c8004500002000010000400166da0a00
        00010a0000020800192d0001000170696e67
        """)
    /// NVGRE, VSID 300, FlowID 0x2a: `GRE(key_present=1, proto=0x6558, key=300 << 8 | 0x2a)`.
    static let nvgre = [UInt8](hex: """
        02000000000102000000000a08004500004a12344000402f42f5c0a8320ac0a8
        32012000655800012c2a02505600000102505600000208004500002000010000
        400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// NVGRE with the GRE checksum bit (`chksum_present=1`).
    static let nvgreChecksum = [UInt8](hex: """
        02000000000102000000000a08004500004e12344000402f42f1c0a8320ac0a8
        3201a000655815d8000000012c2a025056000001025056000002080045000020
        00010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// NVGRE with the GRE sequence bit (`seqnum_present=1, sequence_number=7`).
    static let nvgreSequence = [UInt8](hex: """
        02000000000102000000000a08004500004e12344000402f42f1c0a8320ac0a8
        32013000655800012c2a00000007025056000001025056000002080045000020
        00010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// `ip(options=[IPOption(b"\x01\x01\x01\x00")])`: IHL 6, then VXLAN VNI 100.
    static let ipOptions = [UInt8](hex: """
        02000000000102000000000a0800460000561234400040114006c0a8320ac0a8
        320101010100c00012b5003e22bc080000000000640002505600000102505600
        000208004500002000010000400166da0a0000010a0000020800192d00010001
        70696e67
        """)
    /// VXLAN to 192.168.50.2.
    static let wrongDestination = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430ac0a8320ac0a8
        3202c00012b5003e22bb08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// An ARP request for 192.168.50.1.
    static let arp = [UInt8](hex: """
        02000000000102000000000a0806000108000604000102000000000ac0a8320a
        000000000000c0a83201
        """)
    /// IPv6 (ethertype 0x86dd) carrying UDP 4789 / VXLAN.
    static let ipv6 = [UInt8](hex: """
        02000000000102000000000a86dd60000000003e1140fe800000000000000000
        000000000001fe800000000000000000000000000002c00012b5003e0b140800
        00000000640002505600000102505600000208004500002000010000400166da
        0a0000010a0000020800192d0001000170696e67
        """)
    /// `ip(len=83)` over 82 bytes of IP (checksum valid).
    static let totalLengthTooLarge = [UInt8](hex: """
        02000000000102000000000a080045000053123440004011430ac0a8320ac0a8
        3201c00012b5003e22bb08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// NVGRE carrying a bare 14-byte inner Ethernet header (IP total length 42), padded to 60 bytes.
    static let nvgreMinimalPadded = [UInt8](hex: """
        02000000000102000000000a08004500002a12344000402f4315c0a8320ac0a8
        32012000655800012c2a02505600000102505600000288b500000000
        """)
    /// VXLAN, `flags="MF"`.
    static let moreFragments = [UInt8](hex: """
        02000000000102000000000a080045000052123420004011630bc0a8320ac0a8
        3201c00012b5003e22bc08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN bytes as a fragment at offset 100 (800 bytes), no flags.
    static let fragmentOffset = [UInt8](hex: """
        02000000000102000000000a08004500005212340064401182a7c0a8320ac0a8
        3201c00012b5003e000008000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN to UDP 4790.
    static let unknownPort = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b6003e22bb08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN, UDP length one less than the IP payload.
    static let udpLengthShort = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b5003d22bd08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN, UDP length one more than the IP payload.
    static let udpLengthLong = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b5003f22bb08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN with flags 0 (no I flag).
    static let vxlanNoIFlag = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b5003e2abc00000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN carrying only 13 bytes of the inner frame.
    static let innerShort = [UInt8](hex: """
        02000000000102000000000a080045000031123440004011432cc0a8320ac0a8
        3201c00012b5001d22fe080000000000640002505600000102505600000208
        """)
    /// VXLAN carrying exactly 14 bytes of the inner frame.
    static let innerMinimal = [UInt8](hex: """
        02000000000102000000000a080045000032123440004011432bc0a8320ac0a8
        3201c00012b5001e22fc08000000000064000250560000010250560000020800
        """)
    /// TCP SYN to port 4789.
    static let tcp = [UInt8](hex: """
        02000000000102000000000a0800450000281234400040064340c0a8320ac0a8
        3201c00012b5000000000000000050022000d7d00000
        """)
    /// ICMP echo request.
    static let icmp = [UInt8](hex: """
        02000000000102000000000a0800450000241234400040014349c0a8320ac0a8
        32010800666a000000006162636465666768
        """)
    /// VXLAN to UDP 8472, VNI 200.
    static let vxlanCustomPort = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c0002118003eb058080000000000c8000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// Geneve to UDP 7000, VNI 100.
    static let geneveCustomPort = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c0001b58003ebcc000006558000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// VXLAN to 4789, VNI 999.
    static let vxlanUnknownVNI = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011430bc0a8320ac0a8
        3201c00012b5003e9fb8080000000003e7000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// `ip(ihl=4)` over the VXLAN frame.
    static let ihl4 = [UInt8](hex: """
        02000000000102000000000a080044000052123440004011440bc0a8320ac0a8
        3201c00012b5003e22bc08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// `ip(version=6)` (ethertype still IPv4) over the VXLAN frame.
    static let version6 = [UInt8](hex: """
        02000000000102000000000a080065000052123440004011230bc0a8320ac0a8
        3201c00012b5003e22bc08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
    /// `ip(chksum=0xdead)` over the VXLAN frame.
    static let badChecksum = [UInt8](hex: """
        02000000000102000000000a080045000052123440004011deadc0a8320ac0a8
        3201c00012b5003e22bc08000000000064000250560000010250560000020800
        4500002000010000400166da0a0000010a0000020800192d0001000170696e67
        """)
}

/// Runs `body` on a copy of `bytes` that ends exactly at an inaccessible page, so that
/// reading even one byte past the end faults (without needing a sanitizer build).
private func withGuardedBuffer<R>(_ bytes: [UInt8], _ body: (UnsafeRawPointer, Int) throws -> R) rethrows -> R {
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    let dataPages = (bytes.count + pageSize - 1) / pageSize
    let total = (dataPages + 1) * pageSize
    guard let map = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
          map != UnsafeMutableRawPointer(bitPattern: -1) else { fatalError("mmap failed") }
    defer { munmap(map, total) }
    let guardPage = map + dataPages * pageSize
    precondition(mprotect(guardPage, pageSize, PROT_NONE) == 0, "mprotect failed")
    let start = guardPage - bytes.count
    bytes.withUnsafeBytes { if let base = $0.baseAddress { start.copyMemory(from: base, byteCount: bytes.count) } }
    return try body(UnsafeRawPointer(start), bytes.count)
}

final class PacketDecapsulationTests: XCTestCase {
    typealias V = DecapsulationVectors
    let local = IPv4Address(192, 168, 50, 1)

    static var standardPorts: DecapsulationPorts {
        var ports = DecapsulationPorts()
        ports.add(4789, .vxlan)
        ports.add(6081, .geneve)
        return ports
    }

    func classify(_ bytes: [UInt8], ports: DecapsulationPorts = standardPorts) -> DecapsulationVerdict {
        withExactBuffer(bytes) { Decapsulation.classify($0, length: $1, local: local, ports: ports) }
    }

    func inner(_ type: EncapsulationType, _ vni: UInt32, _ offset: Int, _ length: Int) -> DecapsulationVerdict {
        .inner(type: type, vni: VNI(vni)!, innerOffset: offset, innerLength: length)
    }

    /// The inner frame of every valid vector, as scapy built it.
    let innerFrame = [UInt8](hex: """
        02505600000102505600000208004500002000010000400166da0a0000010a00
        00020800192d0001000170696e67
        """)

    func assertInner(_ bytes: [UInt8], _ expected: DecapsulationVerdict, ports: DecapsulationPorts = standardPorts,
                     innerBytes: [UInt8]? = nil, line: UInt = #line) {
        let verdict = classify(bytes, ports: ports)
        XCTAssertEqual(verdict, expected, line: line)
        guard case .inner(_, _, let offset, let length) = verdict else { return }
        XCTAssertEqual(Array(bytes[offset..<offset + length]), innerBytes ?? innerFrame, line: line)
    }

    // MARK: valid tunnel packets

    func testVXLAN() {
        assertInner(V.vxlanDF, inner(.vxlan, 100, 50, 46))
        // DF clear, every flag and reserved bit set: ignored on receipt; VNI 0xFFFFFF.
        assertInner(V.vxlanNoDFReserved, inner(.vxlan, 0xFF_FFFF, 50, 46))
    }

    func testGeneve() {
        assertInner(V.geneve, inner(.geneve, 200, 50, 46))
        // Non-critical options are skipped: the inner frame starts 8 bytes later.
        assertInner(V.geneveOptions, inner(.geneve, 200, 58, 46))
    }

    func testGeneveFlagsVersionAndProtocol() {
        XCTAssertEqual(classify(V.geneveCritical), .malformed)
        XCTAssertEqual(classify(V.geneveOAM), .notForUs)
        XCTAssertEqual(classify(V.geneveVersion1), .malformed)
        XCTAssertEqual(classify(V.geneveIPv4Proto), .malformed)
    }

    func testGeneveOptionsBeyondThePacketAreMalformed() {
        // optlen 63 (252 bytes) in a packet that has 54 bytes after the Geneve header.
        var bytes = V.geneveOptions
        bytes[42] = 0x3F
        XCTAssertEqual(classify(bytes), .malformed)
    }

    func testNVGRE() {
        assertInner(V.nvgre, inner(.nvgre, 300, 42, 46))
        XCTAssertEqual(classify(V.nvgreChecksum), .malformed)
        XCTAssertEqual(classify(V.nvgreSequence), .malformed)
    }

    func testNVGREDoesNotDependOnTheUDPPorts() {
        assertInner(V.nvgre, inner(.nvgre, 300, 42, 46), ports: DecapsulationPorts())
    }

    func testCustomPorts() {
        var ports = Self.standardPorts
        ports.add(8472, .vxlan)
        ports.add(7000, .geneve)
        assertInner(V.vxlanCustomPort, inner(.vxlan, 200, 50, 46), ports: ports)
        assertInner(V.geneveCustomPort, inner(.geneve, 100, 50, 46), ports: ports)
        XCTAssertEqual(classify(V.vxlanCustomPort), .notForUs)
        XCTAssertEqual(classify(V.geneveCustomPort), .notForUs)
        // The format is the port's, not guessed from the bytes: Geneve bytes on a VXLAN
        // port have no I flag.
        var swapped = DecapsulationPorts()
        swapped.add(6081, .vxlan)
        XCTAssertEqual(classify(V.geneve, ports: swapped), .malformed)
    }

    func testUnknownVNIIsStillATunnelPacket() {
        // Whether a VNI is served is the segment table's business, not the classifier's.
        assertInner(V.vxlanUnknownVNI, inner(.vxlan, 999, 50, 46))
    }

    // MARK: bad input

    func testWrongDestinationAndNonIPv4() {
        XCTAssertEqual(classify(V.wrongDestination), .notForUs)
        XCTAssertEqual(classify(V.arp), .notForUs)
        XCTAssertEqual(classify(V.ipv6), .notForUs)
        // Every valid vector is for nobody else.
        for bytes in [V.vxlanDF, V.geneve, V.nvgre] {
            let other = withExactBuffer(bytes) {
                Decapsulation.classify($0, length: $1, local: IPv4Address(192, 168, 50, 2), ports: Self.standardPorts)
            }
            XCTAssertEqual(other, .notForUs)
        }
    }

    func testIPv4Options() {
        assertInner(V.ipOptions, inner(.vxlan, 100, 54, 46))
        // The header checksum covers the options.
        var bytes = V.ipOptions
        bytes[36] ^= 0x01
        XCTAssertEqual(classify(bytes), .badChecksum)
    }

    func testBadIPv4Headers() {
        XCTAssertEqual(classify(V.ihl4), .malformed)
        XCTAssertEqual(classify(V.version6), .malformed)
        XCTAssertEqual(classify(V.badChecksum), .badChecksum)
        XCTAssertEqual(classify(V.totalLengthTooLarge), .malformed)
        // IHL 15 (60 bytes) with a total length of 40: shorter than its own header.
        var bytes = V.vxlanDF
        bytes[14] = 0x4F
        bytes[16] = 0
        bytes[17] = 40
        XCTAssertEqual(classify(Self.checksummed(bytes)), .malformed)
        // IHL 0 in a frame too short for even the header it claims.
        bytes = Array(V.vxlanDF[0..<34])
        bytes[14] = 0x40
        XCTAssertEqual(classify(bytes), .malformed)
    }

    func testEthernetPaddingIsNotPartOfTheInnerFrame() {
        assertInner(V.nvgreMinimalPadded, inner(.nvgre, 300, 42, 14), innerBytes: Array(innerFrame[0..<12]) + [0x88, 0xB5])
        assertInner(V.vxlanDF + [UInt8](repeating: 0xEE, count: 10), inner(.vxlan, 100, 50, 46))
    }

    func testFragments() {
        XCTAssertEqual(classify(V.moreFragments), .fragment)
        XCTAssertEqual(classify(V.fragmentOffset), .fragment)
    }

    func testUDP() {
        XCTAssertEqual(classify(V.unknownPort), .notForUs)
        XCTAssertEqual(classify(V.udpLengthShort), .malformed)
        XCTAssertEqual(classify(V.udpLengthLong), .malformed)
        XCTAssertEqual(classify(V.vxlanDF, ports: DecapsulationPorts()), .notForUs)
    }

    func testVXLANWithoutIFlag() {
        XCTAssertEqual(classify(V.vxlanNoIFlag), .malformed)
    }

    func testInnerFrameShorterThanAnEthernetHeader() {
        XCTAssertEqual(classify(V.innerShort), .malformed)
        assertInner(V.innerMinimal, inner(.vxlan, 100, 50, 14), innerBytes: Array(innerFrame[0..<14]))
    }

    func testOtherIPProtocols() {
        XCTAssertEqual(classify(V.tcp), .notForUs)
        XCTAssertEqual(classify(V.icmp), .notForUs)
    }

    /// Every prefix of every valid frame, each in a buffer that ends at a guard page: no
    /// read past `length`, and nothing short of the IP total length is accepted.
    func testTruncatedAtEveryLength() {
        let valid: [(String, [UInt8])] = [
            ("vxlanDF", V.vxlanDF), ("vxlanNoDFReserved", V.vxlanNoDFReserved), ("geneve", V.geneve),
            ("geneveOptions", V.geneveOptions), ("nvgre", V.nvgre), ("ipOptions", V.ipOptions),
            ("nvgreMinimalPadded", V.nvgreMinimalPadded), ("innerMinimal", V.innerMinimal),
            ("vxlanDF+padding", V.vxlanDF + [0, 0, 0, 0]),
        ]
        for (name, frame) in valid {
            let ipEnd = 14 + Int(frame[16]) << 8 + Int(frame[17])
            let full = classify(frame)
            guard case .inner = full else { XCTFail("\(name): \(full)"); continue }
            for n in 0...frame.count {
                let verdict = withGuardedBuffer(Array(frame[0..<n])) {
                    Decapsulation.classify($0, length: $1, local: local, ports: Self.standardPorts)
                }
                if n < ipEnd {
                    XCTAssertTrue(verdict == .malformed || verdict == .notForUs, "\(name) cut to \(n): \(verdict)")
                    // Long enough to see that it is IPv4 for us: a drop counted as malformed.
                    if n >= 34 { XCTAssertEqual(verdict, .malformed, "\(name) cut to \(n)") }
                } else {
                    XCTAssertEqual(verdict, full, "\(name) cut to \(n) (only padding lost)")
                }
            }
        }
    }

    /// Truncated tunnel headers with consistent lengths: the IP total length (with a
    /// fresh header checksum) and the UDP length are cut down with the packet, so only
    /// the tunnel header or inner-frame checks can catch it.
    func testShortTunnelPayloadsWithConsistentLengths() {
        let cases: [(String, [UInt8], Int)] = [
            // name, frame, offset of the inner frame
            ("vxlan", V.vxlanDF, 50), ("geneve", V.geneve, 50), ("geneveOptions", V.geneveOptions, 58),
            ("nvgre", V.nvgre, 42), ("ipOptions", V.ipOptions, 54),
        ]
        for (name, frame, innerOffset) in cases {
            let headerLength = Int(frame[14] & 0x0F) * 4
            let l4Offset = 14 + headerLength
            for end in l4Offset...frame.count {
                let bytes = Self.reframed(frame, end: end)
                let verdict = withGuardedBuffer(bytes) {
                    Decapsulation.classify($0, length: $1, local: local, ports: Self.standardPorts)
                }
                if end - innerOffset >= 14 {
                    guard case .inner(_, _, innerOffset, end - innerOffset) = verdict else {
                        XCTFail("\(name) ending at \(end): \(verdict)")
                        continue
                    }
                } else {
                    XCTAssertEqual(verdict, .malformed, "\(name) ending at \(end)")
                }
            }
        }
    }

    /// `frame` cut at `end`, with the IPv4 total length, header checksum and UDP length
    /// made to agree.
    static func reframed(_ frame: [UInt8], end: Int) -> [UInt8] {
        var bytes = Array(frame[0..<end])
        let headerLength = Int(bytes[14] & 0x0F) * 4
        let totalLength = end - 14
        bytes[16] = UInt8(totalLength >> 8)
        bytes[17] = UInt8(totalLength & 0xFF)
        bytes = checksummed(bytes)
        if bytes[23] == 17 && end - 14 - headerLength >= 8 {
            let udpLength = end - 14 - headerLength
            bytes[14 + headerLength + 4] = UInt8(udpLength >> 8)
            bytes[14 + headerLength + 5] = UInt8(udpLength & 0xFF)
        }
        return bytes
    }

    /// `bytes` with the IPv4 header checksum recomputed (over IHL × 4 bytes).
    static func checksummed(_ frame: [UInt8]) -> [UInt8] {
        var bytes = frame
        bytes[24] = 0
        bytes[25] = 0
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 14 + Int(bytes[14] & 0x0F) * 4, by: 2) { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        bytes[24] = UInt8(checksum >> 8)
        bytes[25] = UInt8(checksum & 0xFF)
        return bytes
    }

    func testTestHelpersReproduceScapysBytes() {
        for frame in [V.vxlanDF, V.ipOptions, V.nvgre, V.geneveOptions] {
            XCTAssertEqual(Self.checksummed(frame), frame)
            XCTAssertEqual(Self.reframed(frame, end: frame.count), frame)
        }
        XCTAssertEqual(Self.checksummed(V.badChecksum), V.vxlanDF)
    }

    // MARK: DecapsulationPorts

    func testPortsAddAndLookUp() {
        var ports = DecapsulationPorts()
        XCTAssertEqual(ports.count, 0)
        XCTAssertNil(ports.type(of: 0), "unused slots are not port 0")
        XCTAssertNil(ports.type(of: 4789))
        XCTAssertTrue(ports.add(4789, .vxlan))
        XCTAssertTrue(ports.add(6081, .geneve))
        XCTAssertTrue(ports.add(0, .geneve))
        XCTAssertEqual(ports.type(of: 4789), .vxlan)
        XCTAssertEqual(ports.type(of: 6081), .geneve)
        XCTAssertEqual(ports.type(of: 0), .geneve)
        XCTAssertNil(ports.type(of: 4790))
        // Byte order: 4789 is 0x12B5; 0xB512 is another port.
        XCTAssertNil(ports.type(of: 0xB512))
        XCTAssertEqual(ports.count, 3)
    }

    func testPortsDuplicatesKeepTheFirstType() {
        var ports = DecapsulationPorts()
        XCTAssertTrue(ports.add(4789, .vxlan))
        XCTAssertTrue(ports.add(4789, .geneve))
        XCTAssertTrue(ports.add(4789, .vxlan))
        XCTAssertEqual(ports.count, 1)
        XCTAssertEqual(ports.type(of: 4789), .vxlan)
    }

    func testPortsCapacity() {
        var ports = DecapsulationPorts()
        XCTAssertEqual(DecapsulationPorts.capacity, 8)
        for i in 0..<8 { XCTAssertTrue(ports.add(UInt16(10_000 + i), i.isMultiple(of: 2) ? .vxlan : .geneve)) }
        XCTAssertEqual(ports.count, 8)
        XCTAssertFalse(ports.add(20_000, .vxlan), "full")
        XCTAssertNil(ports.type(of: 20_000))
        XCTAssertTrue(ports.add(10_007, .vxlan), "already there")
        XCTAssertEqual(ports.count, 8)
        for i in 0..<8 { XCTAssertEqual(ports.type(of: UInt16(10_000 + i)), i.isMultiple(of: 2) ? .vxlan : .geneve) }
        // The last slot works in the classifier too.
        var full = DecapsulationPorts()
        for i in 0..<7 { full.add(UInt16(10_000 + i), .geneve) }
        full.add(4789, .vxlan)
        XCTAssertEqual(classify(V.vxlanDF, ports: full), inner(.vxlan, 100, 50, 46))
    }
}
