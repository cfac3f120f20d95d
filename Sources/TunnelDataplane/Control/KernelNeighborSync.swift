import Glibc
import TunnelCore

/// Writes resolved tunnel neighbors into the kernel's neighbor table on one interface
/// (SPEC §1): `RTM_NEWNEIGH` marked externally learnt, so the kernel neither resolves them
/// itself nor garbage-collects them, and `RTM_DELNEIGH` when they go. Only tunnel
/// neighbors are ever written.
final class KernelNeighborSync {
    // <linux/rtnetlink.h>, <linux/neighbour.h>, <linux/netlink.h>
    private static let RTM_NEWNEIGH: UInt16 = 28
    private static let RTM_DELNEIGH: UInt16 = 29
    private static let NLM_F_REQUEST: UInt16 = 0x1
    private static let NLM_F_ACK: UInt16 = 0x4
    private static let NLM_F_REPLACE: UInt16 = 0x100
    private static let NLM_F_CREATE: UInt16 = 0x400
    private static let NLMSG_ERROR: UInt16 = 2
    private static let NDA_DST: UInt16 = 1
    private static let NDA_LLADDR: UInt16 = 2
    private static let NUD_REACHABLE: UInt16 = 0x02
    private static let NTF_EXT_LEARNED: UInt8 = 0x10
    private static let RTN_UNICAST: UInt8 = 1

    let interface: String
    private let ifindex: Int32
    private let fd: Int32
    private var sequence: UInt32 = 0
    /// What we wrote and have not removed: removed again at shutdown.
    private(set) var written: [IPv4Address: MACAddress] = [:]

    init(interface: String) throws(DataplaneError) {
        self.interface = interface
        let index = if_nametoindex(interface)
        guard index != 0 else {
            throw DataplaneError("kernel_sync.interface: there is no kernel interface named '\(interface)' (ip link show)")
        }
        ifindex = Int32(index)
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw DataplaneError("kernel_sync: cannot open a netlink socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func set(_ address: IPv4Address, mac: MACAddress) {
        guard written[address] != mac else { return }
        if send(Self.RTM_NEWNEIGH, flags: Self.NLM_F_CREATE | Self.NLM_F_REPLACE, address: address, mac: mac) {
            written[address] = mac
        }
    }

    func remove(_ address: IPv4Address) {
        guard written.removeValue(forKey: address) != nil else { return }
        _ = send(Self.RTM_DELNEIGH, flags: 0, address: address, mac: nil)
    }

    /// Takes out everything this process wrote (clean shutdown).
    func removeAll() {
        for address in Array(written.keys) { remove(address) }
    }

    private func send(_ type: UInt16, flags: UInt16, address: IPv4Address, mac: MACAddress?) -> Bool {
        sequence &+= 1
        var message: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value) { message += $0 } }
        func attribute(_ kind: UInt16, _ payload: [UInt8]) {
            put(UInt16(4 + payload.count))
            put(kind)
            message += payload
            while message.count % 4 != 0 { message.append(0) }
        }
        // struct nlmsghdr; the length is patched in at the end.
        put(UInt32(0)); put(type); put(Self.NLM_F_REQUEST | Self.NLM_F_ACK | flags); put(sequence); put(UInt32(0))
        // struct ndmsg
        put(UInt8(AF_INET)); put(UInt8(0)); put(UInt16(0)); put(ifindex)
        put(Self.NUD_REACHABLE); put(Self.NTF_EXT_LEARNED); put(Self.RTN_UNICAST)
        attribute(Self.NDA_DST, withUnsafeBytes(of: address.rawValue.bigEndian) { Array($0) })
        if let mac { attribute(Self.NDA_LLADDR, (0..<6).map { mac.octet($0) }) }
        let length = UInt32(message.count)
        withUnsafeBytes(of: length) { message.replaceSubrange(0..<4, with: $0) }

        var kernel = NetlinkAddress(family: UInt16(AF_NETLINK))
        let sent = withUnsafePointer(to: &kernel) { k in
            k.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, 0, $0, socklen_t(MemoryLayout<NetlinkAddress>.size))
            }
        }
        guard sent == message.count else { return false }
        return awaitAck()
    }

    /// Reads the kernel's acknowledgement (an NLMSG_ERROR carrying 0 on success).
    private func awaitAck() -> Bool {
        var reply = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &reply, reply.count, 0)
            guard n >= 20 else { return false }
            let (type, seq, error) = reply.withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: Int32.self))
            }
            guard seq == sequence else { continue }
            guard type == Self.NLMSG_ERROR, error == 0 else {
                Log.error("kernel_sync: the kernel refused a neighbor update on \(interface): \(String(cString: strerror(-error)))")
                return false
            }
            return true
        }
    }
}

/// `struct sockaddr_nl` (<linux/netlink.h>, which Glibc's module does not bring in); pid 0
/// addresses the kernel.
private struct NetlinkAddress {
    var family: UInt16
    var padding: UInt16 = 0
    var pid: UInt32 = 0
    var groups: UInt32 = 0
}
