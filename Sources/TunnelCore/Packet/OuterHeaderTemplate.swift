/// The outer headers of one tunnel, Ethernet through VXLAN, Geneve or GRE, prepared
/// once so that encapsulating a packet is four stores plus the handful of fields that
/// change per packet: the IPv4 total length, identification and checksum, and the UDP
/// length and source port. The next hop's MAC address changes per run of packets
/// (`addressed(to:)`).
///
/// It is a trivial type of fixed size with no references, so tunnel tables can keep
/// it in raw or shared memory and copy it freely.
///
/// Layouts (offsets in bytes):
///
///     VXLAN, Geneve (50):  Ethernet 0  IPv4 14  UDP 34  VXLAN/Geneve 42
///     NVGRE (42):          Ethernet 0  IPv4 14  GRE 34
@frozen
public struct OuterHeaderTemplate: Sendable {
    // The header as it lies in memory, with zeros where the per-packet fields go: three
    // 16-byte vectors (bytes 0..<16, 16..<32, and the last 16, from `length - 16`) and
    // the 8-byte word at 32..<40, which holds the UDP source port and length. Four
    // stores of these write exactly `length` bytes for either length, nothing after it
    // (the inner frame follows); the fields are ORed or stored over them.
    //
    // 60 bytes in all, so that a tunnel entry (template and next hop) is one cache line.
    @usableFromInline internal var front: SIMD2<UInt64>
    @usableFromInline internal var middle: SIMD2<UInt64>
    @usableFromInline internal var back: SIMD2<UInt64>
    /// Bytes 32..<40, the header's fifth 8-byte word.
    @usableFromInline internal var word4: UInt64
    /// The one's-complement sum of the IPv4 header's 16-bit words with total length,
    /// identification and checksum taken as 0, as the two bytes lie in memory.
    @usableFromInline internal let partialSum: UInt16

    /// The same sum in host order.
    public var partialIPv4Checksum: UInt16 { UInt16(bigEndian: partialSum) }
    public let type: EncapsulationType

    /// VXLAN and Geneve ride on UDP; NVGRE's GRE header sits where UDP's would.
    @inlinable
    public var carriesUDP: Bool { type != .nvgre }

    /// The number of bytes `write` fills: 50 for VXLAN and Geneve, 42 for NVGRE.
    @inlinable
    public var length: Int { Self.length(carriesUDP: carriesUDP) }

    /// The outer header length with UDP and an 8-byte VXLAN or Geneve header (no Geneve
    /// options), or with NVGRE's GRE header and key.
    @inlinable @inline(__always)
    public static func length(carriesUDP: Bool) -> Int {
        HeaderSize.ethernet + HeaderSize.ipv4 + (carriesUDP ? HeaderSize.udp + HeaderSize.vxlan : HeaderSize.greWithKey)
    }

    /// Whether the outer DF bit is set (then the IPv4 identification stays 0).
    @inlinable
    public var dontFragment: Bool { middle[0] & 0x40_0000_0000 != 0 }

    /// The outer IPv4 total length minus the inner frame length: an inner frame of
    /// `n` bytes fits an underlay MTU `mtu` when `n + mtuOverhead <= mtu`.
    @inlinable
    public var mtuOverhead: Int { length &- HeaderSize.ethernet }

    /// The remote endpoint (the IPv4 destination, bytes 30..<34): where the tunnel's
    /// packets come from, for learning.
    @inlinable
    public var remoteAddress: IPv4Address {
        let high = UInt32(truncatingIfNeeded: middle[1] >> 48)   // bytes 30, 31 as in memory
        let low = UInt32(truncatingIfNeeded: word4) & 0xFFFF       // bytes 32, 33
        return IPv4Address(rawValue: UInt32(bigEndian: high | low << 16))
    }

    /// The outer header length for a tunnel type.
    @inlinable
    public static func length(of type: EncapsulationType) -> Int { length(carriesUDP: type != .nvgre) }

    /// Prepares the headers of a tunnel from `localAddress`/`localMAC` (the uplink) to
    /// `remoteAddress`.
    ///
    /// - Parameters:
    ///   - vni: the VXLAN or Geneve VNI, or the NVGRE VSID.
    ///   - destinationPort: the UDP destination port; ignored for NVGRE.
    ///   - dontFragment: sets the outer DF bit.
    ///   - flowID: the NVGRE FlowID, the low 8 bits of the GRE key; ignored otherwise.
    public init(
        type: EncapsulationType,
        localAddress: IPv4Address, localMAC: MACAddress,
        remoteAddress: IPv4Address, vni: VNI,
        destinationPort: UInt16? = nil, ttl: UInt8 = 64, dontFragment: Bool = true, flowID: UInt8 = 0
    ) {
        let length = Self.length(of: type)
        var bytes = [UInt8](repeating: 0, count: 56)
        func put16(_ value: UInt16, at offset: Int) {
            bytes[offset] = UInt8(truncatingIfNeeded: value >> 8)
            bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
        }
        func put32(_ value: UInt32, at offset: Int) {
            put16(UInt16(truncatingIfNeeded: value >> 16), at: offset)
            put16(UInt16(truncatingIfNeeded: value), at: offset + 2)
        }

        // Ethernet; the destination is the next hop's, written per packet.
        for i in 0..<6 { bytes[6 + i] = localMAC.octet(i) }
        put16(EtherType.ipv4.rawValue, at: 12)

        // IPv4: total length (16), identification (18) and checksum (24) per packet.
        bytes[14] = 0x45
        put16(dontFragment ? 0x4000 : 0, at: 20)
        bytes[22] = ttl
        bytes[23] = (type == .nvgre ? IPProtocol.gre : IPProtocol.udp).rawValue
        put32(localAddress.rawValue, at: 26)
        put32(remoteAddress.rawValue, at: 30)

        switch type {
        case .vxlan, .geneve:
            // UDP: source port (34) and length (38) per packet, checksum 0 (RFC 7348 §5,
            // RFC 8926 §3.3 allow it over IPv4).
            put16(destinationPort ?? type.defaultDestinationPort ?? 0, at: 36)
            if type == .vxlan {
                bytes[42] = 0x08  // I flag: the VNI is valid.
            } else {
                // Version 0, no options, O and C clear.
                put16(EtherType.transparentEthernetBridging.rawValue, at: 44)
            }
            put32(vni.rawValue << 8, at: 46)
        case .nvgre:
            put16(0x2000, at: 34)  // K: key present; C, S and version 0.
            put16(EtherType.transparentEthernetBridging.rawValue, at: 36)
            put32(vni.rawValue << 8 | UInt32(flowID), at: 38)
        }

        // Total length, identification and checksum are still 0 here.
        let sum = bytes[14..<34].withUnsafeBytes { InternetChecksum.sum($0) }

        func word(at offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
            return UInt64(bigEndian: value)
        }
        front = SIMD2(word(at: 0), word(at: 8))
        middle = SIMD2(word(at: 16), word(at: 24))
        back = SIMD2(word(at: length - 16), word(at: length - 8))
        word4 = word(at: 32)
        partialSum = sum.bigEndian
        self.type = type
        precondition(self.length == length)
    }

    /// Prepares the headers of `tunnel` sent from the uplink's address and MAC.
    public init(tunnel: Tunnel, localAddress: IPv4Address, localMAC: MACAddress) {
        self.init(
            type: tunnel.type, localAddress: localAddress, localMAC: localMAC,
            remoteAddress: tunnel.remote, vni: tunnel.vni, destinationPort: tunnel.destinationPort,
            ttl: tunnel.ttl, dontFragment: tunnel.dontFragment, flowID: tunnel.flowID)
    }

    /// This template with `nextHopMAC` as the outer destination: what every packet of a
    /// run to one next hop gets, prepared once. Templates start with a zero destination.
    @inlinable @inline(__always)
    public func addressed(to nextHopMAC: MACAddress) -> OuterHeaderTemplate {
        var copy = self
        copy.front[0] = front[0] & ~0xFFFF_FFFF_FFFF | (nextHopMAC.rawValue << 16).byteSwapped
        return copy
    }

    /// Writes the complete outer header at `header`, the `length` bytes the caller has
    /// prepended to an inner frame of `innerLength` bytes, to the destination the
    /// template is `addressed(to:)`.
    ///
    /// - Parameters:
    ///   - sourcePort: the UDP source port (see `InnerFlow.udpSourcePort`); ignored
    ///     for NVGRE.
    ///   - identification: the IPv4 identification, used only without DF: with DF set
    ///     it is 0 (RFC 6864 §4.1).
    /// - Precondition: `innerLength + mtuOverhead <= 65535`, which any MTU check
    ///   ensures.
    @inlinable @inline(__always)
    public func write(to header: UnsafeMutableRawPointer, innerLength: Int, sourcePort: UInt16, identification: UInt16) {
        write(to: header, innerLength: innerLength, sourcePort: sourcePort, identification: identification,
              carriesUDP: carriesUDP, dontFragment: dontFragment)
    }

    /// The same, for a caller that knows the template's format (`carriesUDP`,
    /// `dontFragment`) for a whole run of packets and passes it as constants: the
    /// branches for the other formats then drop out of its loop.
    @inlinable @inline(__always)
    public func write(
        to header: UnsafeMutableRawPointer, innerLength: Int, sourcePort: UInt16, identification: UInt16,
        carriesUDP: Bool, dontFragment: Bool
    ) {
        assert(carriesUDP == self.carriesUDP && dontFragment == self.dontFragment, "the template's own format")
        let length = Self.length(carriesUDP: carriesUDP)
        let mtuOverhead = length &- HeaderSize.ethernet
        // Fields in memory order. The one's-complement sum does not depend on byte order
        // (RFC 1071 §2 (B)), so summed in memory order the checksum comes out in it too.
        let totalLength = UInt16(truncatingIfNeeded: innerLength &+ mtuOverhead).bigEndian
        let identification = dontFragment ? 0 : identification.bigEndian
        let checksum = ~InternetChecksum.add(InternetChecksum.add(partialSum, totalLength), identification)
        let udpLength = UInt16(truncatingIfNeeded: innerLength &+ length &- HeaderSize.ethernet &- HeaderSize.ipv4).bigEndian

        let udpFields = UInt64(sourcePort.bigEndian) << 16 | UInt64(udpLength) << 48

        // The back first: what follows overwrites its first bytes with the same or
        // patched values. The IPv4 fields are stored over the vectors, not ORed in.
        header.storeBytes(of: back, toByteOffset: length &- 16, as: SIMD2<UInt64>.self)
        header.storeBytes(of: front, as: SIMD2<UInt64>.self)
        header.storeBytes(of: middle, toByteOffset: 16, as: SIMD2<UInt64>.self)
        header.storeBytes(of: word4 | (carriesUDP ? udpFields : 0), toByteOffset: 32, as: UInt64.self)
        header.storeBytes(of: UInt32(totalLength) | UInt32(identification) << 16, toByteOffset: 16, as: UInt32.self)
        header.storeBytes(of: checksum, toByteOffset: 24, as: UInt16.self)
    }
}

extension OuterHeaderTemplate: Equatable {}
