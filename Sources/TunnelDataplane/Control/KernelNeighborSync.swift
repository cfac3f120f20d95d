// Glibc's socket constants are found through CDPDK once a file that imports both looks
// them up (ControlServer): a Swift importer quirk.
import CDPDK
import Glibc
import TunnelCore

/// Writes resolved tunnel neighbors into the kernel's neighbor table on one interface:
/// `RTM_NEWNEIGH` marked externally learnt, so the kernel neither resolves them itself nor
/// garbage-collects them, and `RTM_DELNEIGH` when they go. Only tunnel neighbors are ever
/// written.
///
/// It runs on the control core, so it never waits for the kernel: `set` and `remove` note
/// the wanted state of an address, and `exchange`, once per loop iteration, sends what
/// changed and reads the acknowledgements that have arrived. A refusal is logged and
/// counted (`kernel_sync_errors`); a send the socket cannot take now is tried again on the
/// next iteration with the address's latest wanted state.
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

    /// Requests sent and not yet acknowledged, at most: their acknowledgements then always
    /// fit in the socket's receive buffer (one that does not is lost, with ENOBUFS).
    private static let maxInFlight = 64
    /// Acknowledgements read per `exchange`, at most.
    private static let readsPerExchange = 64
    /// How long a clean shutdown waits for the kernel to confirm the removals.
    private static let shutdownWaitMs: UInt64 = 1000

    private enum Change: Equatable {
        case set(MACAddress)
        case remove
    }

    let interface: String
    private let ifindex: Int32
    private let fd: Int32
    private var sequence: UInt32 = 0
    /// What we asked the kernel to hold, sent or acknowledged, and not removed: taken out
    /// again at shutdown.
    private var written: [IPv4Address: MACAddress] = [:]
    /// The latest wanted state of each address whose change is not sent yet.
    private var unsent: [IPv4Address: Change] = [:]
    /// Sent requests by sequence number, until their acknowledgement.
    private var inFlight: [UInt32: (address: IPv4Address, change: Change)] = [:]
    private var reply = [UInt8](repeating: 0, count: 8192)

    init(interface: String) throws(DataplaneError) {
        self.interface = interface
        let index = if_nametoindex(interface)
        guard index != 0 else {
            throw DataplaneError("kernel_sync.interface: there is no kernel interface named '\(interface)' (ip link show)")
        }
        ifindex = Int32(index)
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw DataplaneError("kernel_sync: cannot open a netlink socket: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func set(_ address: IPv4Address, mac: MACAddress) {
        guard wanted(address) != mac else { return }
        unsent[address] = .set(mac)
    }

    func remove(_ address: IPv4Address) {
        guard wanted(address) != nil else { return }
        // Never sent, never written: nothing to take out.
        unsent[address] = written[address] == nil ? nil : .remove
    }

    private func wanted(_ address: IPv4Address) -> MACAddress? {
        switch unsent[address] {
        case .set(let mac): mac
        case .remove: nil
        case nil: written[address]
        }
    }

    /// Reads the acknowledgements that have arrived and sends the changes not sent yet;
    /// returns how many messages went either way.
    func exchange(counters: CounterBlock) -> Int {
        receiveAcknowledgements(counters: counters) + sendChanges(counters: counters)
    }

    /// Takes out everything this process wrote (clean shutdown), waiting a bounded time
    /// for the kernel to confirm.
    func removeAll(counters: CounterBlock) {
        unsent = written.mapValues { _ in .remove }
        let deadline = Clock.milliseconds + Self.shutdownWaitMs
        while !(unsent.isEmpty && inFlight.isEmpty) && Clock.milliseconds < deadline {
            if exchange(counters: counters) == 0 {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                poll(&ready, 1, 10)
            }
        }
        let unconfirmed = unsent.count + inFlight.count
        if unconfirmed > 0 {
            counters.add(.kernelSyncErrors, unconfirmed)
            Log.error("kernel_sync: \(unconfirmed) neighbor removal(s) on \(interface) unconfirmed at shutdown")
        }
    }

    private func sendChanges(counters: CounterBlock) -> Int {
        guard !unsent.isEmpty, inFlight.count < Self.maxInFlight else { return 0 }
        var sent = 0
        for (address, change) in Array(unsent.prefix(Self.maxInFlight - inFlight.count)) {
            let (type, flags, mac): (UInt16, UInt16, MACAddress?) = switch change {
            case .set(let mac): (Self.RTM_NEWNEIGH, Self.NLM_F_CREATE | Self.NLM_F_REPLACE, mac)
            case .remove: (Self.RTM_DELNEIGH, 0, nil)
            }
            let result = send(type, flags: flags, address: address, mac: mac)
            let error = errno
            if result < 0 && (error == EAGAIN || error == ENOBUFS || error == EINTR) { break }
            unsent[address] = nil
            if result < 0 {
                refused(address, change, reason: error, counters: counters)
                continue
            }
            inFlight[sequence] = (address, change)
            written[address] = mac
            sent += 1
        }
        return sent
    }

    private func receiveAcknowledgements(counters: CounterBlock) -> Int {
        guard !inFlight.isEmpty else { return 0 }
        var received = 0
        for _ in 0..<Self.readsPerExchange {
            let n = recv(fd, &reply, reply.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == ENOBUFS {
                    // Acknowledgements were dropped: which requests they answered is lost.
                    counters.add(.kernelSyncErrors)
                    Log.error("kernel_sync: acknowledgements of \(inFlight.count) neighbor update(s) on \(interface) were lost (netlink receive buffer full)")
                    inFlight.removeAll()
                }
                break
            }
            received += 1
            var offset = 0
            // Every message of the datagram: a netlink header, then for NLMSG_ERROR the
            // error number (0 acknowledges success).
            while offset + 20 <= n {
                let (length, type, seq, error) = reply.withUnsafeBytes { raw in
                    (Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
                     raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self))
                }
                guard length >= 16 else { break }
                if type == Self.NLMSG_ERROR, let request = inFlight.removeValue(forKey: seq), error != 0 {
                    refused(request.address, request.change, reason: -error, counters: counters)
                }
                offset += (length + 3) & ~3
            }
            if inFlight.isEmpty { break }
        }
        return received
    }

    private func refused(_ address: IPv4Address, _ change: Change, reason: Int32, counters: CounterBlock) {
        counters.add(.kernelSyncErrors)
        let what: String
        switch change {
        case .set(let mac):
            what = "set \(address) to \(mac)"
            // The kernel does not hold it: a later update of the same MAC is sent again.
            if written[address] == mac { written[address] = nil }
        case .remove:
            what = "remove \(address)"
        }
        Log.error("kernel_sync: the kernel refused to \(what) on \(interface): \(String(cString: strerror(reason)))")
    }

    /// Sends one request; returns what `sendto` returned (errno tells a failure).
    private func send(_ type: UInt16, flags: UInt16, address: IPv4Address, mac: MACAddress?) -> Int {
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
        return withUnsafePointer(to: &kernel) { k in
            k.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<NetlinkAddress>.size))
            }
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
