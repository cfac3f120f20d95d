/// The fields of an inner Ethernet frame that identify its flow, and a hash of them
/// that picks the outer UDP source port, so that the underlay's ECMP and the remote
/// NIC's RSS spread tunnels by inner flow while every flow keeps one path (in order).
///
/// Fields that the frame does not have, or that its length does not cover, are zero:
/// a non-IPv4 frame is hashed by its MAC addresses, an IPv4 fragment (or a protocol
/// other than TCP and UDP) by MAC and IP addresses and protocol.
@frozen
public struct InnerFlow: Equatable, Sendable {
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var sourceAddress: IPv4Address
    public var destinationAddress: IPv4Address
    public var ipProtocol: IPProtocol
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    @inlinable
    public init(
        destinationMAC: MACAddress, sourceMAC: MACAddress,
        sourceAddress: IPv4Address = IPv4Address(rawValue: 0),
        destinationAddress: IPv4Address = IPv4Address(rawValue: 0),
        ipProtocol: IPProtocol = IPProtocol(rawValue: 0), sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
    ) {
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
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

        // The common case first, with fixed offsets and few branches: untagged IPv4
        // without options (EtherType 0x0800, version 4, IHL 5), long enough for ports.
        // It finds exactly what the general parse below would.
        let minimumWithPorts = HeaderSize.ethernet &+ HeaderSize.ipv4 &+ 4
        if length >= minimumWithPorts,
           UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) & 0xFFFF_FF00 == 0x0800_4500 {
            let addresses = UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: 26, as: UInt64.self))
            sourceAddress = IPv4Address(rawValue: UInt32(truncatingIfNeeded: addresses >> 32))
            destinationAddress = IPv4Address(rawValue: UInt32(truncatingIfNeeded: addresses))
            ipProtocol = IPProtocol(rawValue: frame.load(fromByteOffset: 23, as: UInt8.self))
            let flagsAndOffset = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 20, as: UInt16.self))
            if (ipProtocol.rawValue == IPProtocol.tcp.rawValue || ipProtocol.rawValue == IPProtocol.udp.rawValue),
               flagsAndOffset & 0x3FFF == 0 {
                let ports = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: 34, as: UInt32.self))
                sourcePort = UInt16(truncatingIfNeeded: ports >> 16)
                destinationPort = UInt16(truncatingIfNeeded: ports)
            }
            return
        }

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

    /// A 32-bit hash of all the fields: deterministic (no per-run seed) and the same on
    /// every host, so a flow keeps its outer source port across restarts.
    ///
    /// Four 64-bit words are mixed with folded multiplies (the high and low halves of
    /// the 128-bit product xored, as in wyhash): two independent multiplies and a third
    /// to combine them, with no table lookups.
    @inlinable @inline(__always)
    public var hash: UInt32 {
        // The constants are odd, with bits set above bit 48, so no 48-bit address can
        // cancel one and zero a multiplicand.
        let macs = Self.foldedMultiply(
            destinationMAC.rawValue ^ 0xA076_1D64_78BD_642F,
            sourceMAC.rawValue ^ 0xE703_7ED1_A0B4_28DB)
        let addresses = UInt64(sourceAddress.rawValue) << 32 | UInt64(destinationAddress.rawValue)
        let transport = UInt64(ipProtocol.rawValue) << 32 | UInt64(sourcePort) << 16 | UInt64(destinationPort)
        let ipAndPorts = Self.foldedMultiply(addresses ^ 0x8EBC_6AF0_9C88_C6E3, transport ^ 0x5899_65CC_7537_4CC3)
        let h = Self.foldedMultiply(macs ^ 0x1D8E_4E27_C47D_124F, ipAndPorts ^ 0xEB44_ACCA_B455_D165)
        return UInt32(truncatingIfNeeded: h ^ h >> 32)
    }

    /// The hash of the flow of the frame at `frame`; see `init(parsing:length:)`.
    @inlinable @inline(__always)
    public static func hash(frame: UnsafeRawPointer, length: Int) -> UInt32 {
        InnerFlow(parsing: frame, length: length).hash
    }

    /// Maps a flow hash onto the dynamic port range 49152…65535, as RFC 7348 §5
    /// recommends for the outer source port (RFC 6335 §6).
    @inlinable @inline(__always)
    public static func udpSourcePort(hash: UInt32) -> UInt16 {
        // Fold the high half in so that all 32 bits count.
        0xC000 | UInt16(truncatingIfNeeded: hash ^ hash >> 16) & 0x3FFF
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
