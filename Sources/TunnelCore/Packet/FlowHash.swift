/// The fields of an inner Ethernet frame that identify its flow, and a hash of them
/// that picks the outer UDP source port, so that the underlay's ECMP and the remote
/// NIC's RSS spread tunnels by inner flow while every flow keeps one path (in order).
///
/// As in Linux's flow dissector, an IPv4 flow is its addresses, protocol and ports, not
/// the MAC addresses of the hop it was seen on; a frame that is not IPv4 is its MACs.
/// Fields that the frame does not have, or that its length does not cover, are zero: an
/// IPv4 fragment, or a protocol other than TCP and UDP, has no ports.
@frozen
public struct InnerFlow: Equatable, Sendable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    /// Whether the frame carries an IPv4 header (one VLAN tag looked through); the
    /// fields below are zero otherwise.
    public var isIPv4: Bool
    public var sourceAddress: IPv4Address
    public var destinationAddress: IPv4Address
    public var ipProtocol: IPProtocol
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    /// The flow of a frame that is not IPv4.
    @inlinable
    public init(destinationMAC: MACAddress, sourceMAC: MACAddress) {
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        isIPv4 = false
        sourceAddress = IPv4Address(rawValue: 0)
        destinationAddress = IPv4Address(rawValue: 0)
        ipProtocol = IPProtocol(rawValue: 0)
        sourcePort = 0
        destinationPort = 0
    }

    /// The flow of an IPv4 frame.
    @inlinable
    public init(
        destinationMAC: MACAddress, sourceMAC: MACAddress,
        sourceAddress: IPv4Address, destinationAddress: IPv4Address,
        ipProtocol: IPProtocol, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
    ) {
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        isIPv4 = true
        self.sourceAddress = sourceAddress
        self.destinationAddress = destinationAddress
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// Parses the flow of the Ethernet frame of `length` bytes at `frame`.
    ///
    /// - Precondition: `length >= 14`; the caller drops shorter frames. Nothing past
    ///   `length` is read.
    @inlinable @inline(__always)
    public init(parsing frame: UnsafeRawPointer, length: Int) {
        self.init(destinationMAC: EthernetFrame.destination(of: frame), sourceMAC: EthernetFrame.source(of: frame))

        var ip = HeaderSize.ethernet
        var etherType = EthernetFrame.etherType(of: frame)
        if etherType == .vlan, length >= HeaderSize.ethernet &+ HeaderSize.vlanTag {
            ip = HeaderSize.ethernet &+ HeaderSize.vlanTag
            etherType = EtherType(rawValue: UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 16, as: UInt16.self)))
        }
        guard etherType == .ipv4, length &- ip >= HeaderSize.ipv4 else { return }

        let versionAndIHL = frame.load(fromByteOffset: ip, as: UInt8.self)
        let headerLength = Int(versionAndIHL & 0x0F) &* 4
        guard versionAndIHL >> 4 == 4, headerLength >= HeaderSize.ipv4, length &- ip >= headerLength else { return }

        isIPv4 = true
        // Source and destination are adjacent: one load yields both.
        let addresses = UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: ip &+ 12, as: UInt64.self))
        sourceAddress = IPv4Address(rawValue: UInt32(truncatingIfNeeded: addresses >> 32))
        destinationAddress = IPv4Address(rawValue: UInt32(truncatingIfNeeded: addresses))
        ipProtocol = IPProtocol(rawValue: frame.load(fromByteOffset: ip &+ 9, as: UInt8.self))

        // Only an unfragmented datagram carries its ports in every packet; hashing
        // ports of first fragments only would send a datagram's fragments apart.
        let flagsAndOffset = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: ip &+ 6, as: UInt16.self))
        let transport = ip &+ headerLength
        guard ipProtocol == .tcp || ipProtocol == .udp, flagsAndOffset & 0x3FFF == 0,
              length &- transport >= 4 else { return }
        let ports = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: transport, as: UInt32.self))
        sourcePort = UInt16(truncatingIfNeeded: ports >> 16)
        destinationPort = UInt16(truncatingIfNeeded: ports)
    }

    /// A 32-bit hash of the flow: deterministic (no per-run seed) and the same on every
    /// host, so a flow keeps its outer source port across restarts.
    ///
    /// It is defined on the fields as they lie in the frame, read as little-endian words
    /// (`mixNetwork`, `mixLink`), so that `hash(frame:length:)` can hash the common frame
    /// straight from its bytes and still agree with this for every frame.
    @inlinable @inline(__always)
    public var hash: UInt32 {
        guard isIPv4 else {
            return Self.mixLink(
                macs: (destinationMAC.rawValue << 16 | sourceMAC.rawValue >> 32).byteSwapped,
                macsTail: UInt32(truncatingIfNeeded: sourceMAC.rawValue).byteSwapped)
        }
        return Self.mixNetwork(
            addresses: (UInt64(sourceAddress.rawValue) << 32 | UInt64(destinationAddress.rawValue)).byteSwapped,
            ipProtocol: ipProtocol.rawValue,
            ports: (UInt32(sourcePort) << 16 | UInt32(destinationPort)).byteSwapped)
    }

    /// The hash of the flow of the frame at `frame`, equal to
    /// `InnerFlow(parsing: frame, length: length).hash`.
    ///
    /// The common frame, untagged IPv4 without options (EtherType 0x0800, version 4,
    /// IHL 5) long enough for ports, is hashed straight from its header words at fixed
    /// offsets, without a parse into fields or byte swaps; others are parsed.
    @inlinable @inline(__always)
    public static func hash(frame: UnsafeRawPointer, length: Int) -> UInt32 {
        let withPorts = HeaderSize.ethernet &+ HeaderSize.ipv4 &+ 4
        guard length >= withPorts,
              UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) & 0xFFFF_FF00 == 0x0800_4500
        else { return InnerFlow(parsing: frame, length: length).hash }
        // Bytes 20..<24: flags and fragment offset, TTL, protocol.
        let fragmentAndProtocol = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        let ipProtocol = UInt8(truncatingIfNeeded: fragmentAndProtocol)
        // Ports identify the flow only in unfragmented TCP and UDP (as in the parse).
        let hasPorts = (ipProtocol == IPProtocol.tcp.rawValue || ipProtocol == IPProtocol.udp.rawValue)
            && fragmentAndProtocol & 0x3FFF_0000 == 0
        return mixNetwork(
            addresses: frame.loadUnaligned(fromByteOffset: 26, as: UInt64.self),
            ipProtocol: ipProtocol,
            ports: hasPorts ? frame.loadUnaligned(fromByteOffset: 34, as: UInt32.self) : 0)
    }

    /// One folded multiply (the high and low halves of the 128-bit product xored, as in
    /// wyhash) of the addresses and of protocol and ports, folded to 32 bits.
    @inlinable @inline(__always)
    static func mixNetwork(addresses: UInt64, ipProtocol: UInt8, ports: UInt32) -> UInt32 {
        fold(foldedMultiply(addresses ^ 0x8EBC_6AF0_9C88_C6E3, (UInt64(ipProtocol) << 32 | UInt64(ports)) ^ 0x5899_65CC_7537_4CC3))
    }

    /// The same over the 12 bytes of MAC addresses, with other constants.
    @inlinable @inline(__always)
    static func mixLink(macs: UInt64, macsTail: UInt32) -> UInt32 {
        fold(foldedMultiply(macs ^ 0xA076_1D64_78BD_642F, UInt64(macsTail) ^ 0xE703_7ED1_A0B4_28DB))
    }

    @inlinable @inline(__always)
    static func fold(_ h: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: h ^ h >> 32)
    }

    /// Maps a flow hash onto the dynamic port range 49152…65535, as RFC 7348 §5
    /// recommends for the outer source port (RFC 6335 §6): its top 14 bits, which the
    /// multiply mixes best (the low bits pick the worker a frame is handed to).
    @inlinable @inline(__always)
    public static func udpSourcePort(hash: UInt32) -> UInt16 {
        0xC000 | UInt16(truncatingIfNeeded: hash >> 18)
    }

    /// The outer UDP source port for this flow.
    @inlinable @inline(__always)
    public var udpSourcePort: UInt16 { Self.udpSourcePort(hash: hash) }

    @inlinable @inline(__always)
    internal static func foldedMultiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }
}
