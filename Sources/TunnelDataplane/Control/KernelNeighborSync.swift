import Glibc
import TunnelCore

/// Writes resolved tunnel neighbors into the kernel's neighbor table on one interface:
/// `RTM_NEWNEIGH` marked externally learnt, so the kernel neither resolves them itself nor
/// garbage-collects them, and `RTM_DELNEIGH` when they go. Only tunnel neighbors are ever
/// written.
///
/// It runs on the control core, so it never waits for the kernel (`NetlinkRequests`). A
/// refusal is logged and counted (`kernel_sync_errors`).
final class KernelNeighborSync {
    let interface: String
    private let requests: NetlinkRequests<Neighbors>

    init(interface: String) throws(DataplaneError) {
        self.interface = interface
        let index = if_nametoindex(interface)
        guard index != 0 else {
            throw DataplaneError("kernel_sync.interface: there is no kernel interface named '\(interface)' (ip link show)")
        }
        requests = NetlinkRequests(
            kind: Neighbors(interface: interface, ifindex: Int32(index)), socket: try NetlinkSocket(purpose: "kernel_sync"))
    }

    func set(_ address: IPv4Address, mac: MACAddress) { requests.set(address, mac) }

    func remove(_ address: IPv4Address) { requests.remove(address) }

    /// Reads the acknowledgements that have arrived and sends the changes not sent yet;
    /// returns how many messages went either way.
    func exchange(counters: CounterBlock) -> Int { requests.exchange(counters: counters) }

    /// Takes out everything this process wrote (clean shutdown), waiting a bounded time
    /// for the kernel to confirm.
    func removeAll(counters: CounterBlock) { requests.removeAll(counters: counters) }

    /// IPv4 neighbors of one interface, by address.
    private struct Neighbors: NetlinkRequestKind {
        // <linux/neighbour.h>, <linux/rtnetlink.h>
        static let NDA_DST: UInt16 = 1
        static let NDA_LLADDR: UInt16 = 2
        static let NUD_REACHABLE: UInt16 = 0x02
        static let NTF_EXT_LEARNED: UInt8 = 0x10
        static let RTN_UNICAST: UInt8 = 1

        let interface: String
        let ifindex: Int32
        let logPrefix = "kernel_sync"
        let errorCounter = Counter.kernelSyncErrors
        var requestsNoun: String { "neighbor update(s) on \(interface)" }
        var removalsNoun: String { "neighbor removal(s) on \(interface)" }

        func request(_ address: IPv4Address, _ change: NetlinkChange<MACAddress>, sequence: UInt32) -> NetlinkRequest {
            var request = switch change {
            case .set: NetlinkRequest(
                type: Netlink.newNeighbor, flags: NetlinkSocket.NLM_F_ACK | NetlinkSocket.NLM_F_CREATE | NetlinkSocket.NLM_F_REPLACE,
                sequence: sequence)
            case .remove: NetlinkRequest(type: Netlink.deleteNeighbor, flags: NetlinkSocket.NLM_F_ACK, sequence: sequence)
            }
            // struct ndmsg
            request.put(UInt8(AF_INET)); request.put(UInt8(0)); request.put(UInt16(0)); request.put(ifindex)
            request.put(Self.NUD_REACHABLE); request.put(Self.NTF_EXT_LEARNED); request.put(Self.RTN_UNICAST)
            request.attribute(Self.NDA_DST, withUnsafeBytes(of: address.rawValue.bigEndian) { Array($0) })
            if case .set(let mac) = change { request.attribute(Self.NDA_LLADDR, (0..<6).map { mac.octet($0) }) }
            return request
        }

        func refusal(_ address: IPv4Address, _ change: NetlinkChange<MACAddress>, reason: Int32) -> String? {
            switch change {
            case .set(let mac): "set \(address) to \(mac) on \(interface)"
            case .remove: "remove \(address) on \(interface)"
            }
        }
    }
}
