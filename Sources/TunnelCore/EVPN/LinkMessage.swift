/// A network device as rtnetlink describes it (`RTM_NEWLINK`, `RTM_DELLINK`): `struct
/// ifinfomsg` and the attributes tunnelfwd checks an EVPN segment's devices by. Other
/// attributes are skipped (after their framing is checked).
public struct LinkMessage: Equatable, Sendable {
    /// `IFF_*`: the device's flags (`ifi_flags`).
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `IFF_UP` 0x1: administratively up (`ip link set … up`).
        public static let up = Flags(rawValue: 0x1)
        /// `IFF_RUNNING` 0x40
        public static let running = Flags(rawValue: 0x40)
        /// `IFF_LOWER_UP` 0x10000: the carrier is there.
        public static let lowerUp = Flags(rawValue: 0x10000)
    }

    /// What `IFLA_INFO_DATA` says of a vxlan device.
    public struct VXLAN: Equatable, Sendable {
        /// `IFLA_VXLAN_ID`
        public var vni: UInt32?
        /// `IFLA_VXLAN_LOCAL`: the source address of what it sends (an IPv6 one,
        /// `IFLA_VXLAN_LOCAL6`, is not read).
        public var local: IPv4Address?
        /// `IFLA_VXLAN_PORT` (big-endian on the wire): the UDP destination port.
        public var port: UInt16?

        public init(vni: UInt32? = nil, local: IPv4Address? = nil, port: UInt16? = nil) {
            self.vni = vni
            self.local = local
            self.port = port
        }
    }

    /// `RTM_DELLINK` rather than `RTM_NEWLINK`.
    public var isDeletion: Bool
    /// `ifi_family`: `AF_UNSPEC` for the device itself, `Netlink.familyBridge` for what a
    /// bridge says about one of its ports.
    public var family: UInt8
    /// `ifi_index`
    public var ifindex: UInt32
    /// `ifi_flags`
    public var flags: Flags
    /// `IFLA_IFNAME`
    public var name: String?
    /// `IFLA_MASTER`: the ifindex of the bridge (or other master) the device is a port of.
    public var master: UInt32?
    /// `IFLA_INFO_KIND` inside `IFLA_LINKINFO`: `bridge`, `vxlan`, `veth`…; absent for
    /// devices without a driver kind (loopback, most NICs).
    public var kind: String?
    /// `IFLA_INFO_DATA` of a device of kind `vxlan`.
    public var vxlan: VXLAN?

    /// `sizeof(struct ifinfomsg)`.
    static let headerLength = 16

    // <linux/if_link.h>
    static let attributeName: UInt16 = 3  // IFLA_IFNAME
    static let attributeMaster: UInt16 = 10  // IFLA_MASTER
    static let attributeLinkInfo: UInt16 = 18  // IFLA_LINKINFO
    static let infoKind: UInt16 = 1  // IFLA_INFO_KIND
    static let infoData: UInt16 = 2  // IFLA_INFO_DATA
    static let vxlanID: UInt16 = 1  // IFLA_VXLAN_ID
    static let vxlanLocal: UInt16 = 4  // IFLA_VXLAN_LOCAL
    static let vxlanPort: UInt16 = 15  // IFLA_VXLAN_PORT

    public init(
        isDeletion: Bool = false, family: UInt8 = 0, ifindex: UInt32, flags: Flags, name: String?,
        master: UInt32? = nil, kind: String? = nil, vxlan: VXLAN? = nil
    ) {
        self.isDeletion = isDeletion
        self.family = family
        self.ifindex = ifindex
        self.flags = flags
        self.name = name
        self.master = master
        self.kind = kind
        self.vxlan = vxlan
    }

    /// Parses the body of an `RTM_NEWLINK`/`RTM_DELLINK`: `struct ifinfomsg`, then route
    /// attributes up to the end of `body`.
    init(_ body: UnsafeRawBufferPointer, isDeletion: Bool) throws(NetlinkParseError) {
        guard body.count >= Self.headerLength else {
            throw .truncatedBody(type: isDeletion ? Netlink.deleteLink : Netlink.newLink, length: body.count)
        }
        self.init(
            isDeletion: isDeletion, family: body[0],
            ifindex: body.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
            flags: Flags(rawValue: body.loadUnaligned(fromByteOffset: 8, as: UInt32.self)), name: nil)
        var data: UnsafeRawBufferPointer?
        try Netlink.attributes(in: UnsafeRawBufferPointer(rebasing: body[Self.headerLength...])) {
            (kind, value) throws(NetlinkParseError) in
            switch kind {
            case Self.attributeName: name = Self.string(value)
            case Self.attributeMaster: master = try Netlink.u32(value, attribute: kind)
            case Self.attributeLinkInfo:
                try Netlink.attributes(in: value) { (kind, value) throws(NetlinkParseError) in
                    switch kind {
                    case Self.infoKind: self.kind = Self.string(value)
                    case Self.infoData: data = value
                    default: break
                    }
                }
            default: break
            }
        }
        // The kind says how to read the data, wherever it stands.
        if kind == "vxlan", let data {
            var vxlan = VXLAN()
            try Netlink.attributes(in: data) { (kind, value) throws(NetlinkParseError) in
                switch kind {
                case Self.vxlanID: vxlan.vni = try Netlink.u32(value, attribute: kind)
                case Self.vxlanLocal: vxlan.local = try Netlink.ipv4(value, attribute: kind)
                case Self.vxlanPort: vxlan.port = try Netlink.bigEndianU16(value, attribute: kind)
                default: break
                }
            }
            self.vxlan = vxlan
        }
    }

    /// A NUL-terminated string attribute (the terminator may be missing).
    private static func string(_ value: UnsafeRawBufferPointer) -> String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }
}
