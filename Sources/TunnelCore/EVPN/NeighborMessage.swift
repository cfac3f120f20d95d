/// rtnetlink as the kernel sends it on a `NETLINK_ROUTE` socket: a buffer of one or more
/// messages, each a `struct nlmsghdr` followed by its body, in host byte order.
///
/// Every length is checked against the bytes actually there: the buffer comes from
/// another process (the kernel, or whatever a test or fuzzer feeds in), so a malformed
/// message becomes a `NetlinkParseError`, never a read out of bounds.
public enum Netlink {
    /// `sizeof(struct nlmsghdr)`.
    public static let headerLength = 16
    /// `sizeof(struct ndmsg)`.
    static let neighborHeaderLength = 12
    /// `NLMSG_DONE`: the end of a dump.
    public static let done: UInt16 = 3
    /// `NLMSG_ERROR`: an acknowledgement (error 0) or a refusal.
    public static let error: UInt16 = 2
    /// `RTM_NEWNEIGH`.
    public static let newNeighbor: UInt16 = 28
    /// `RTM_DELNEIGH`.
    public static let deleteNeighbor: UInt16 = 29
    /// `RTM_NEWLINK`.
    public static let newLink: UInt16 = 16
    /// `RTM_DELLINK`.
    public static let deleteLink: UInt16 = 17
    /// `AF_BRIDGE`: the family of bridge and vxlan forwarding-database entries.
    public static let familyBridge: UInt8 = 7

    /// Every message in `bytes`, in order. A message whose header frames it correctly
    /// but whose body is malformed is an error element, and the walk goes on to the next
    /// one; a header that is itself malformed ends the walk with an error element,
    /// since where the next message would start is then unknown.
    public static func messages(in bytes: UnsafeRawBufferPointer) -> [Result<NetlinkMessage, NetlinkParseError>] {
        var results: [Result<NetlinkMessage, NetlinkParseError>] = []
        var offset = 0
        while offset < bytes.count {
            let available = bytes.count - offset
            guard available >= headerLength else {
                results.append(.failure(.truncatedHeader(available: available)))
                break
            }
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerLength, length <= available else {
                results.append(.failure(.badMessageLength(length, available: available)))
                break
            }
            let message = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
            do throws(NetlinkParseError) {
                results.append(.success(try NetlinkMessage(message)))
            } catch {
                results.append(.failure(error))
            }
            // NLMSG_ALIGN; the last message of a buffer may end without its padding.
            offset += Swift.min((length + 3) & ~3, available)
        }
        return results
    }

    /// Walks the route attributes that fill `bytes`, giving each one's type and value to
    /// `visit`. An attribute shorter than its own header or running past `bytes` is an
    /// error, as are bytes after the last one too few for another header.
    static func attributes(
        in bytes: UnsafeRawBufferPointer, _ visit: (UInt16, UnsafeRawBufferPointer) throws(NetlinkParseError) -> Void
    ) throws(NetlinkParseError) {
        var offset = 0
        while offset < bytes.count {
            let available = bytes.count - offset
            guard available >= 4 else { throw .badAttribute(type: 0, length: available) }
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            // NLA_TYPE_MASK: the nested and byte-order bits are not part of the type.
            let kind = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3FFF
            guard length >= 4, length <= available else { throw .badAttribute(type: kind, length: length) }
            try visit(kind, UnsafeRawBufferPointer(rebasing: bytes[offset + 4..<offset + length]))
            offset += (length + 3) & ~3
        }
    }

    /// A four-byte attribute value in host order.
    static func u32(_ value: UnsafeRawBufferPointer, attribute kind: UInt16) throws(NetlinkParseError) -> UInt32 {
        guard value.count == 4 else { throw .badAttribute(type: kind, length: 4 + value.count) }
        return value.loadUnaligned(as: UInt32.self)
    }

    /// A two-byte attribute value in network order (a UDP port).
    static func bigEndianU16(_ value: UnsafeRawBufferPointer, attribute kind: UInt16) throws(NetlinkParseError) -> UInt16 {
        guard value.count == 2 else { throw .badAttribute(type: kind, length: 4 + value.count) }
        return UInt16(value[0]) << 8 | UInt16(value[1])
    }

    /// A four-byte IPv4 address.
    static func ipv4(_ value: UnsafeRawBufferPointer, attribute kind: UInt16) throws(NetlinkParseError) -> IPv4Address {
        guard value.count == 4 else { throw .badAttribute(type: kind, length: 4 + value.count) }
        return IPv4Address(value[0], value[1], value[2], value[3])
    }
}

public enum NetlinkParseError: Error, Equatable, Sendable {
    /// Fewer bytes are left than a `struct nlmsghdr` holds.
    case truncatedHeader(available: Int)
    /// `nlmsg_len` is shorter than its own header or longer than the bytes left.
    case badMessageLength(Int, available: Int)
    /// The body of a message of this type is too short for its fixed part.
    case truncatedBody(type: UInt16, length: Int)
    /// A route attribute whose `rta_len` is shorter than its header or runs past the
    /// message, or whose payload has the wrong size for its type.
    case badAttribute(type: UInt16, length: Int)
}

/// One netlink message.
public struct NetlinkMessage: Equatable, Sendable {
    public enum Payload: Equatable, Sendable {
        /// `RTM_NEWNEIGH` or `RTM_DELNEIGH`.
        case neighbor(NeighborMessage)
        /// `RTM_NEWLINK` or `RTM_DELLINK`.
        case link(LinkMessage)
        /// `NLMSG_DONE`.
        case done
        /// `NLMSG_ERROR`: the errno of a refused request (e.g. 2, `ENOENT`), 0 for an
        /// acknowledgement.
        case error(Int32)
        /// A message type this parser does not read (its header fields are still given).
        case other
    }

    /// `nlmsg_type`.
    public var type: UInt16
    /// `nlmsg_flags`.
    public var flags: UInt16
    /// `nlmsg_seq`: matches a reply to its request.
    public var sequence: UInt32
    /// `nlmsg_pid`.
    public var portID: UInt32
    public var payload: Payload

    /// Parses one message; `bytes` spans exactly `nlmsg_len` bytes.
    init(_ bytes: UnsafeRawBufferPointer) throws(NetlinkParseError) {
        type = bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        flags = bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        sequence = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        portID = bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        let body = UnsafeRawBufferPointer(rebasing: bytes[Netlink.headerLength...])
        switch type {
        case Netlink.newNeighbor, Netlink.deleteNeighbor:
            payload = .neighbor(try NeighborMessage(body, isDeletion: type == Netlink.deleteNeighbor))
        case Netlink.newLink, Netlink.deleteLink:
            payload = .link(try LinkMessage(body, isDeletion: type == Netlink.deleteLink))
        case Netlink.error:
            guard body.count >= 4 else { throw .truncatedBody(type: type, length: body.count) }
            // The kernel sends the negated errno.
            let error = body.loadUnaligned(as: Int32.self)
            payload = .error(error == .min ? .max : -error)
        case Netlink.done:
            payload = .done
        default:
            payload = .other
        }
    }
}

/// A neighbour or forwarding-database entry: `struct ndmsg` and the attributes the EVPN
/// read path uses. Attributes not read here are skipped (after their framing is checked).
public struct NeighborMessage: Equatable, Sendable {
    /// `NDA_DST`. A vxlan entry's VTEP is IPv4 for tunnelfwd's underlay; an IPv6 one is
    /// only noted as such.
    public enum Destination: Hashable, Sendable {
        case ipv4(IPv4Address)
        case ipv6
    }

    /// `NUD_*`: the state of a neighbour or forwarding entry (`ndm_state`).
    public struct State: OptionSet, Hashable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// `NUD_INCOMPLETE` 0x01
        public static let incomplete = State(rawValue: 0x01)
        /// `NUD_REACHABLE` 0x02: what zebra writes for a remote MAC.
        public static let reachable = State(rawValue: 0x02)
        /// `NUD_STALE` 0x04
        public static let stale = State(rawValue: 0x04)
        /// `NUD_DELAY` 0x08
        public static let delay = State(rawValue: 0x08)
        /// `NUD_PROBE` 0x10
        public static let probe = State(rawValue: 0x10)
        /// `NUD_FAILED` 0x20
        public static let failed = State(rawValue: 0x20)
        /// `NUD_NOARP` 0x40: `bridge fdb … static`.
        public static let noARP = State(rawValue: 0x40)
        /// `NUD_PERMANENT` 0x80: a device's own MAC, multicast entries, iproute2's default.
        public static let permanent = State(rawValue: 0x80)
    }

    /// `NTF_*`: the flags of a neighbour or forwarding entry (`ndm_flags`).
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// `NTF_USE` 0x01
        public static let use = Flags(rawValue: 0x01)
        /// `NTF_SELF` 0x02: the entry is in the device's own table (for a vxlan device, the
        /// one that carries the remote VTEP), not in its master bridge's.
        public static let selfEntry = Flags(rawValue: 0x02)
        /// `NTF_MASTER` 0x04: the entry is in the master bridge's table. The kernel never
        /// sets it in notifications; `NDA_MASTER` marks a bridge entry there.
        public static let master = Flags(rawValue: 0x04)
        /// `NTF_PROXY` 0x08
        public static let proxy = Flags(rawValue: 0x08)
        /// `NTF_EXT_LEARNED` 0x10: written by a control plane (zebra), never aged.
        public static let externLearned = Flags(rawValue: 0x10)
        /// `NTF_OFFLOADED` 0x20
        public static let offloaded = Flags(rawValue: 0x20)
        /// `NTF_STICKY` 0x40: the MAC must not move (EVPN's sticky/static MAC).
        public static let sticky = Flags(rawValue: 0x40)
        /// `NTF_ROUTER` 0x80
        public static let router = Flags(rawValue: 0x80)
    }

    /// `RTM_DELNEIGH` rather than `RTM_NEWNEIGH`. A deletion carries the same
    /// attributes as the entry had.
    public var isDeletion: Bool
    /// `ndm_family`: `Netlink.familyBridge` for forwarding-database entries.
    public var family: UInt8
    /// `ndm_ifindex`: the port (bridge entry) or device (`NTF_SELF` entry) that holds it.
    public var ifindex: UInt32
    /// `ndm_state`
    public var state: State
    /// `ndm_flags`
    public var flags: Flags
    /// `ndm_type`
    public var type: UInt8
    /// `NDA_DST`
    public var destination: Destination?
    /// `NDA_LLADDR` when it is six bytes long (link-layer addresses of other sizes, such
    /// as an ipip tunnel's neighbours, are left out).
    public var linkLayerAddress: MACAddress?
    /// `NDA_MASTER`: the bridge's ifindex, present on bridge entries.
    public var master: UInt32?
    /// `NDA_VNI`: present on a vxlan entry only when it differs from the device's.
    public var vni: UInt32?
    /// `NDA_PORT` (big-endian on the wire): present only when it differs from the device's.
    public var port: UInt16?
    /// `NDA_IFINDEX`: the underlay device a vxlan entry sends through (`via`).
    public var outgoingInterface: UInt32?
    /// `NDA_FLAGS_EXT`
    public var extendedFlags: UInt32?

    // <linux/neighbour.h> enum NDA_*
    static let attributeDestination: UInt16 = 1  // NDA_DST
    static let attributeLinkLayerAddress: UInt16 = 2  // NDA_LLADDR
    static let attributePort: UInt16 = 6  // NDA_PORT
    static let attributeVNI: UInt16 = 7  // NDA_VNI
    static let attributeIfindex: UInt16 = 8  // NDA_IFINDEX
    static let attributeMaster: UInt16 = 9  // NDA_MASTER
    static let attributeFlagsExtended: UInt16 = 15  // NDA_FLAGS_EXT

    public init(
        isDeletion: Bool = false, family: UInt8 = Netlink.familyBridge, ifindex: UInt32,
        state: State, flags: Flags, type: UInt8 = 0,
        destination: Destination? = nil, linkLayerAddress: MACAddress?, master: UInt32? = nil,
        vni: UInt32? = nil, port: UInt16? = nil, outgoingInterface: UInt32? = nil, extendedFlags: UInt32? = nil
    ) {
        self.isDeletion = isDeletion
        self.family = family
        self.ifindex = ifindex
        self.state = state
        self.flags = flags
        self.type = type
        self.destination = destination
        self.linkLayerAddress = linkLayerAddress
        self.master = master
        self.vni = vni
        self.port = port
        self.outgoingInterface = outgoingInterface
        self.extendedFlags = extendedFlags
    }

    /// Parses the body of an `RTM_NEWNEIGH`/`RTM_DELNEIGH`: `struct ndmsg`, then route
    /// attributes up to the end of `body`.
    init(_ body: UnsafeRawBufferPointer, isDeletion: Bool) throws(NetlinkParseError) {
        guard body.count >= Netlink.neighborHeaderLength else {
            throw .truncatedBody(type: isDeletion ? Netlink.deleteNeighbor : Netlink.newNeighbor, length: body.count)
        }
        self.init(
            isDeletion: isDeletion,
            family: body[0],
            ifindex: body.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
            state: State(rawValue: body.loadUnaligned(fromByteOffset: 8, as: UInt16.self)),
            flags: Flags(rawValue: body[10]),
            type: body[11],
            linkLayerAddress: nil)
        try Netlink.attributes(in: UnsafeRawBufferPointer(rebasing: body[Netlink.neighborHeaderLength...])) {
            (kind, value) throws(NetlinkParseError) in try read(attribute: kind, value)
        }
    }

    private mutating func read(attribute kind: UInt16, _ value: UnsafeRawBufferPointer) throws(NetlinkParseError) {
        func u32() throws(NetlinkParseError) -> UInt32 { try Netlink.u32(value, attribute: kind) }
        switch kind {
        case Self.attributeDestination:
            destination = value.count == 16 ? .ipv6 : .ipv4(try Netlink.ipv4(value, attribute: kind))
        case Self.attributeLinkLayerAddress:
            linkLayerAddress = value.count == 6
                ? MACAddress(value[0], value[1], value[2], value[3], value[4], value[5]) : nil
        case Self.attributePort: port = try Netlink.bigEndianU16(value, attribute: kind)
        case Self.attributeVNI: vni = try u32()
        case Self.attributeIfindex: outgoingInterface = try u32()
        case Self.attributeMaster: master = try u32()
        case Self.attributeFlagsExtended: extendedFlags = try u32()
        default: break
        }
    }
}
