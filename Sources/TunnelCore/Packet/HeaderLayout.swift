// Sizes and numbers of the headers the forwarder reads and writes. They are computed
// `@inlinable` properties rather than stored `static let`s so that they fold into
// constants in other modules instead of going through a lazy global's accessor.

/// Sizes in bytes of the fixed headers on the path.
public enum HeaderSize {
    /// Destination MAC, source MAC, EtherType.
    @inlinable public static var ethernet: Int { 14 }
    /// An 802.1Q tag: TPID and TCI.
    @inlinable public static var vlanTag: Int { 4 }
    /// An IPv4 header without options (IHL 5).
    @inlinable public static var ipv4: Int { 20 }
    @inlinable public static var udp: Int { 8 }
    @inlinable public static var vxlan: Int { 8 }
    /// The Geneve base header; options, when present, follow it.
    @inlinable public static var geneve: Int { 8 }
    /// A GRE header with only the key present, as NVGRE uses it.
    @inlinable public static var greWithKey: Int { 8 }
    /// The ARP payload for Ethernet and IPv4.
    @inlinable public static var arp: Int { 28 }
}

/// The EtherType field of an Ethernet header, in host byte order.
@frozen
public struct EtherType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable public static var ipv4: EtherType { EtherType(rawValue: 0x0800) }
    @inlinable public static var arp: EtherType { EtherType(rawValue: 0x0806) }
    /// 802.1Q: the TPID of a VLAN tag.
    @inlinable public static var vlan: EtherType { EtherType(rawValue: 0x8100) }
    /// Transparent Ethernet Bridging: an Ethernet frame follows (Geneve, NVGRE).
    @inlinable public static var transparentEthernetBridging: EtherType { EtherType(rawValue: 0x6558) }
}

/// The protocol field of an IPv4 header.
@frozen
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8

    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    @inlinable public static var tcp: IPProtocol { IPProtocol(rawValue: 6) }
    @inlinable public static var udp: IPProtocol { IPProtocol(rawValue: 17) }
    @inlinable public static var gre: IPProtocol { IPProtocol(rawValue: 47) }
}
