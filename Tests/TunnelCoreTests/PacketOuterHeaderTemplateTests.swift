import TunnelCore
import XCTest

final class PacketOuterHeaderTemplateTests: XCTestCase {
    private let localAddress = IPv4Address(192, 168, 50, 1)
    private let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)
    private let remoteAddress = IPv4Address(192, 168, 50, 2)
    private let nextHopMAC = MACAddress(0x02, 0, 0, 0, 0, 0x02)

    // raw(Ether(dst="aa:bb:cc:dd:ee:01", src="aa:bb:cc:dd:ee:02")
    //     /IP(src="10.0.0.1", dst="10.0.0.2", id=1)/UDP(sport=1234, dport=80)/b"hello, tunnel")
    private let innerHex = """
        aabbccddee01aabbccddee0208004500002900010000401166c10a0000010a00000204d200500015\
        325968656c6c6f2c2074756e6e656c
        """
    private var inner: [UInt8] { [UInt8](hex: innerHex) }

    private func template(
        _ type: EncapsulationType, vni: UInt32, destinationPort: UInt16? = nil,
        ttl: UInt8, dontFragment: Bool, flowID: UInt8 = 0
    ) -> OuterHeaderTemplate {
        OuterHeaderTemplate(
            type: type, localAddress: localAddress, localMAC: localMAC, remoteAddress: remoteAddress,
            vni: VNI(vni)!, destinationPort: destinationPort, ttl: ttl, dontFragment: dontFragment, flowID: flowID)
    }

    /// The encapsulated frame as the data path builds it: `length` bytes prepended to
    /// the inner frame, then written.
    private func encapsulate(
        _ template: OuterHeaderTemplate, sourcePort: UInt16, identification: UInt16
    ) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: template.length) + inner
        frame.withUnsafeMutableBytes {
            template.addressed(to: nextHopMAC).write(
                to: $0.baseAddress!, innerLength: inner.count, sourcePort: sourcePort, identification: identification)
        }
        return frame
    }

    private func assertEncapsulation(
        _ template: OuterHeaderTemplate, sourcePort: UInt16 = 0, identification: UInt16 = 0,
        equalsScapy outerHex: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        let frame = encapsulate(template, sourcePort: sourcePort, identification: identification)
        XCTAssertEqual(frame.hex, outerHex + innerHex, file: file, line: line)
        XCTAssertTrue(frame.withUnsafeBytes { InternetChecksum.ipv4HeaderChecksumIsValid($0.baseAddress! + 14) },
                      file: file, line: line)
    }

    // Outer headers from scapy 2.5:
    //   o = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
    //       /IP(src="192.168.50.1", dst="192.168.50.2", ttl=T, flags=F, id=I)
    //   raw(o/UDP(sport=S, dport=D, chksum=0)/VXLAN(vni=V)/Raw(inner))
    //   raw(o/UDP(sport=S, dport=D, chksum=0)/GENEVE(vni=V, proto=0x6558)/Raw(inner))
    //   raw(o/GRE(key_present=1, key=VSID<<8|FLOWID, proto=0x6558)/Raw(inner))

    func testVXLANWithDontFragment() {
        // T=64 F='DF' I=0 S=50000 D=4789 V=42
        let t = template(.vxlan, vni: 42, ttl: 64, dontFragment: true)
        XCTAssertEqual(t.length, 50)
        assertEncapsulation(t, sourcePort: 50000, equalsScapy: """
            02000000000202000000000108004500005b000040004011553ec0a83201c0a83202\
            c35012b5004700000800000000002a00
            """)
    }

    func testVXLANWithoutDontFragmentOtherPortAndTTL() {
        // T=32 F=0 I=0x1234 S=65535 D=8472 V=0xABCDEF
        let t = template(.vxlan, vni: 0xAB_CDEF, destinationPort: 8472, ttl: 32, dontFragment: false)
        assertEncapsulation(t, sourcePort: 65535, identification: 0x1234, equalsScapy: """
            02000000000202000000000108004500005b123400002011a30ac0a83201c0a83202\
            ffff21180047000008000000abcdef00
            """)
    }

    func testGeneveWithDontFragment() {
        // T=64 F='DF' I=0 S=49152 D=6081 V=5000
        let t = template(.geneve, vni: 5000, ttl: 64, dontFragment: true)
        XCTAssertEqual(t.length, 50)
        assertEncapsulation(t, sourcePort: 49152, equalsScapy: """
            02000000000202000000000108004500005b000040004011553ec0a83201c0a83202\
            c00017c1004700000000655800138800
            """)
    }

    func testGeneveWithoutDontFragmentMaximumTTLAndVNI() {
        // T=255 F=0 I=0xBEEF S=60000 D=6081 V=0xFFFFFF
        let t = template(.geneve, vni: 0xFF_FFFF, ttl: 255, dontFragment: false)
        assertEncapsulation(t, sourcePort: 60000, identification: 0xBEEF, equalsScapy: """
            02000000000202000000000108004500005bbeef0000ff11174ec0a83201c0a83202\
            ea6017c10047000000006558ffffff00
            """)
    }

    func testNVGREWithDontFragment() {
        // T=64 F='DF' I=0 VSID=0x123456 FLOWID=0x7F
        let t = template(.nvgre, vni: 0x12_3456, ttl: 64, dontFragment: true, flowID: 0x7F)
        XCTAssertEqual(t.length, 42)
        assertEncapsulation(t, sourcePort: 0xDEAD, equalsScapy: """
            02000000000202000000000108004500005300004000402f5528c0a83201c0a83202\
            200065581234567f
            """)
    }

    func testNVGREWithoutDontFragment() {
        // T=1 F=0 I=77 VSID=7 FLOWID=0
        let t = template(.nvgre, vni: 7, ttl: 1, dontFragment: false)
        assertEncapsulation(t, identification: 77, equalsScapy: """
            020000000002020000000001080045000053004d0000012fd3dbc0a83201c0a83202\
            2000655800000700
            """)
    }

    func testAddressingAgainReplacesTheDestinationOnly() {
        let t = template(.vxlan, vni: 9, ttl: 64, dontFragment: true)
        var once = [UInt8](repeating: 0, count: t.length), twice = once
        once.withUnsafeMutableBytes {
            t.addressed(to: nextHopMAC).write(to: $0.baseAddress!, innerLength: 100, sourcePort: 50000, identification: 0)
        }
        twice.withUnsafeMutableBytes {
            t.addressed(to: .broadcast).addressed(to: nextHopMAC).write(
                to: $0.baseAddress!, innerLength: 100, sourcePort: 50000, identification: 0)
        }
        XCTAssertEqual(once, twice)
        XCTAssertEqual(Array(once[0..<6]), (0..<6).map { nextHopMAC.octet($0) })
    }

    func testWritesExactlyLengthBytes() {
        for type in EncapsulationType.allCases {
            let t = template(type, vni: 1, ttl: 64, dontFragment: true)
            var bytes = [UInt8](repeating: 0xA5, count: t.length + 32)
            bytes.withUnsafeMutableBytes {
                t.addressed(to: .broadcast).write(
                    to: $0.baseAddress! + 16, innerLength: 1400, sourcePort: 0xFFFF, identification: 0xFFFF)
            }
            XCTAssertEqual(bytes[..<16], ArraySlice(repeating: 0xA5, count: 16), "\(type)")
            XCTAssertEqual(bytes[(16 + t.length)...], ArraySlice(repeating: 0xA5, count: 16), "\(type)")
        }
    }

    func testChecksumAndLengthsForAllInnerLengthsAndIdentifications() {
        for type in EncapsulationType.allCases {
            for dontFragment in [true, false] {
                let t = template(type, vni: 0x00_1001, ttl: 64, dontFragment: dontFragment).addressed(to: nextHopMAC)
                var header = [UInt8](repeating: 0, count: t.length)
                var innerLength = 0
                while innerLength <= 65535 - t.mtuOverhead {
                    let identification = UInt16(truncatingIfNeeded: innerLength &* 7919)
                    header.withUnsafeMutableBytes {
                        t.write(to: $0.baseAddress!, innerLength: innerLength, sourcePort: 50000, identification: identification)
                    }
                    let ip = Array(header[14..<34])
                    XCTAssertEqual(ip.withUnsafeBytes { InternetChecksum.checksum($0) }, 0,
                                   "\(type) DF=\(dontFragment) inner=\(innerLength)")
                    XCTAssertEqual(Int(ip[2]) << 8 | Int(ip[3]), innerLength + t.mtuOverhead)
                    // With DF, the identification is 0 whatever the caller passed.
                    XCTAssertEqual(UInt16(ip[4]) << 8 | UInt16(ip[5]), dontFragment ? 0 : identification)
                    if type != .nvgre {
                        XCTAssertEqual(Int(header[38]) << 8 | Int(header[39]), innerLength + 16)
                    }
                    innerLength += innerLength < 2048 ? 1 : 97
                }
            }
        }
    }

    func testLengthsAndOverhead() {
        XCTAssertEqual(OuterHeaderTemplate.length(of: .vxlan), 50)
        XCTAssertEqual(OuterHeaderTemplate.length(of: .geneve), 50)
        XCTAssertEqual(OuterHeaderTemplate.length(of: .nvgre), 42)
        XCTAssertEqual(template(.vxlan, vni: 1, ttl: 64, dontFragment: true).mtuOverhead, 36)
        XCTAssertEqual(template(.nvgre, vni: 1, ttl: 64, dontFragment: true).mtuOverhead, 28)
    }

    func testPartialChecksumCoversOnlyConstantWords() {
        let t = template(.vxlan, vni: 42, ttl: 64, dontFragment: true)
        // 4500 + 4000 + 4011 + c0a8 + 3201 + c0a8 + 3202, folded.
        var sum: UInt32 = 0x4500 + 0x4000 + 0x4011 + 0xC0A8 + 0x3201 + 0xC0A8 + 0x3202
        sum = (sum >> 16) + (sum & 0xFFFF)
        XCTAssertEqual(t.partialIPv4Checksum, UInt16(sum))
    }

    func testInitFromTunnelMatchesExplicitInit() {
        let tunnel = Tunnel(name: "t", type: .geneve, remote: remoteAddress, vni: VNI(5000)!, ttl: 64)
        let fromTunnel = OuterHeaderTemplate(tunnel: tunnel, localAddress: localAddress, localMAC: localMAC)
        XCTAssertEqual(fromTunnel, template(.geneve, vni: 5000, destinationPort: 6081, ttl: 64, dontFragment: true))
        XCTAssertEqual(fromTunnel.type, .geneve)
        XCTAssertNotEqual(fromTunnel, template(.geneve, vni: 5001, ttl: 64, dontFragment: true))
        let nvgre = Tunnel(name: "n", type: .nvgre, remote: remoteAddress, vni: VNI(7)!, ttl: 1, dontFragment: false)
        XCTAssertEqual(OuterHeaderTemplate(tunnel: nvgre, localAddress: localAddress, localMAC: localMAC),
                       template(.nvgre, vni: 7, ttl: 1, dontFragment: false))
    }

    func testIsATrivialTypeOfBoundedSize() {
        XCTAssertTrue(_isPOD(OuterHeaderTemplate.self))
        XCTAssertLessThanOrEqual(MemoryLayout<OuterHeaderTemplate>.size, 60)
        // A tunnel entry, template and next hop, fills one cache line and no more.
        XCTAssertEqual(MemoryLayout<TunnelEntry>.stride, 64)
        XCTAssertEqual(MemoryLayout<OuterHeaderTemplate>.alignment, 16)
    }

    func testWorksFromRawMemory() {
        let t = template(.vxlan, vni: 42, ttl: 64, dontFragment: true)
        let slot = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<OuterHeaderTemplate>.stride, alignment: MemoryLayout<OuterHeaderTemplate>.alignment)
        defer { slot.deallocate() }
        slot.storeBytes(of: t, as: OuterHeaderTemplate.self)
        let copy = slot.load(as: OuterHeaderTemplate.self)
        XCTAssertEqual(encapsulate(copy, sourcePort: 1, identification: 0),
                       encapsulate(t, sourcePort: 1, identification: 0))
    }
}
