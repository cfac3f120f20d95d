import Glibc
import TunnelCore

/// The kernel side of EVPN: what FRR installs in the forwarding database of each
/// segment's vxlan device and local port, read into an `EVPNFDBMirror`, and the local
/// MACs written on the local ports for FRR to advertise.
///
/// It runs on the control core and never waits for the kernel after start-up. One socket
/// takes the notifications and the dumps, another the writes and their acknowledgements,
/// so that a burst of writes cannot crowd notifications out of a receive buffer.
final class EVPNKernel {
    // <linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>
    private static let RTM_GETLINK: UInt16 = 18
    private static let RTM_GETNEIGH: UInt16 = 30
    private static let RTNLGRP_LINK: Int32 = 1
    private static let RTNLGRP_NEIGH: Int32 = 3
    private static let IFLA_EXT_MASK: UInt16 = 29
    private static let RTEXT_FILTER_SKIP_STATS: UInt32 = 1 << 3

    /// Notifications of a busy FDB (FRR installing thousands of MACs at once) must not be
    /// lost between two loop iterations; when they are, a dump makes up for them.
    private static let receiveBuffer: Int32 = 8 << 20
    /// Datagrams read per `receive`, at most, so that other control work goes on.
    private static let readsPerReceive = 64
    /// How long start-up waits for each of its dumps.
    private static let startupDumpTimeoutMs: UInt64 = 3000

    let settings: EVPNSettings
    /// The segments as the kernel holds them, in the order of `settings.segments`.
    let segments: [EVPNFDBMirror.Segment]
    private let events: NetlinkSocket
    private let writes: NetlinkRequests<LocalMACs>
    /// The forwarding-table dump under way: its sequence number, whether it resyncs the
    /// mirror, and whether the kernel's tables changed during it.
    private var dump: (sequence: UInt32, resync: Bool, interrupted: Bool)?
    /// Notifications were lost: dump again once no dump is under way.
    private var redumpWanted = false
    private var dumpRefusalLogged = false
    /// Whether each segment's vxlan device is up, by ifindex, as last reported.
    private var vxlanUp: [UInt32: Bool] = [:]
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    /// Checks the segments' devices (one line naming the field when one is not as it must
    /// be), deletes what an earlier run left on the local ports, and starts reading the
    /// forwarding database: notifications first, then a dump, so that nothing is missed.
    init(settings: EVPNSettings, uplinkAddress: IPv4Address) throws(DataplaneError) {
        self.settings = settings
        events = try NetlinkSocket(purpose: "evpn")
        events.setReceiveBuffer(Self.receiveBuffer)

        var linkRequest = NetlinkRequest(type: Self.RTM_GETLINK, flags: NetlinkSocket.NLM_F_DUMP, sequence: events.nextSequence())
        // struct ifinfomsg (any family, any device), and no statistics.
        linkRequest.put(UInt64(0)); linkRequest.put(UInt64(0))
        linkRequest.attribute(Self.IFLA_EXT_MASK, withUnsafeBytes(of: Self.RTEXT_FILTER_SKIP_STATS) { Array($0) })
        let links = try events.dump(linkRequest, what: "link dump", purpose: "evpn", timeoutMs: Self.startupDumpTimeoutMs)
            .compactMap { message -> LinkMessage? in
                guard case .link(let link) = message.payload else { return nil }
                return link
            }
        do {
            segments = try EVPNSegmentCheck.segments(of: settings, links: links, uplinkAddress: uplinkAddress)
        } catch {
            throw DataplaneError(error.description)
        }
        for segment in segments { vxlanUp[segment.vxlanInterface] = true }

        let kind = LocalMACs(segments: segments, names: settings.segments)
        writes = NetlinkRequests(kind: kind, socket: try NetlinkSocket(purpose: "evpn"))
        // Every entry on a local port that is not permanent was written by tunnelfwd: an
        // earlier run's, which FRR still advertises.
        var leftovers = 0
        for message in try events.dump(
            Self.neighborDumpRequest(sequence: events.nextSequence()), what: "forwarding-table dump", purpose: "evpn",
            timeoutMs: Self.startupDumpTimeoutMs
        ) {
            guard case .neighbor(let entry) = message.payload, entry.master != nil, !entry.state.contains(.permanent),
                  let mac = entry.linkLayerAddress, let vni = kind.segment(ofLocalPort: entry.ifindex) else { continue }
            let key = LocalMAC(vni: vni, mac: mac)
            writes.adopt(key, entry.ifindex)
            writes.remove(key)
            leftovers += 1
        }
        if leftovers > 0 { Log.info("evpn: removing \(leftovers) local MAC(s) left on the local ports by an earlier run") }

        for group in [Self.RTNLGRP_LINK, Self.RTNLGRP_NEIGH] {
            if let error = events.join(group: group) {
                throw DataplaneError("evpn: cannot subscribe to the kernel's notifications: \(String(cString: strerror(error)))")
            }
        }
        guard startDump(resync: false) else {
            throw DataplaneError("evpn: cannot ask the kernel for its forwarding table: \(String(cString: strerror(errno)))")
        }
    }

    /// `RTM_GETNEIGH` of every bridge and vxlan forwarding entry of the namespace; the
    /// kernel filters no better than by family.
    private static func neighborDumpRequest(sequence: UInt32) -> NetlinkRequest {
        var request = NetlinkRequest(type: Self.RTM_GETNEIGH, flags: NetlinkSocket.NLM_F_DUMP, sequence: sequence)
        // struct ndmsg
        request.put(Netlink.familyBridge); request.put(UInt8(0)); request.put(UInt16(0))
        request.put(UInt32(0)); request.put(UInt32(0))
        return request
    }

    private func startDump(resync: Bool) -> Bool {
        let request = Self.neighborDumpRequest(sequence: events.nextSequence())
        guard events.send(request.bytes) >= 0 else { return false }
        dump = (request.sequence, resync, false)
        return true
    }

    // MARK: Read path

    /// Reads what has arrived (a bounded amount) into `mirror`; returns how many datagrams
    /// were read. When the kernel dropped notifications, the mirror is brought back in
    /// step by a new dump (`beginResync` before it, `endResync` at its end).
    func receive(into mirror: inout EVPNFDBMirror, counters: CounterBlock) -> Int {
        var received = 0
        for _ in 0..<Self.readsPerReceive {
            let n = events.receive(into: &buffer)
            if n < 0 {
                guard errno == ENOBUFS else { break }
                redumpWanted = true
                continue
            }
            received += 1
            if n > buffer.count {
                // Cut short: what it held is lost like dropped notifications.
                redumpWanted = true
                continue
            }
            let messages = buffer.withUnsafeBytes { Netlink.messages(in: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            for result in messages {
                switch result {
                case .success(let message): take(message, into: &mirror, counters: counters)
                case .failure(let error): Log.error("evpn: a malformed netlink message from the kernel was skipped (\(error))")
                }
            }
        }
        if dump == nil && redumpWanted && startDump(resync: true) {
            redumpWanted = false
            mirror.beginResync()
            counters.add(.evpnRedumps)
        }
        return received
    }

    private func take(_ message: NetlinkMessage, into mirror: inout EVPNFDBMirror, counters: CounterBlock) {
        let ofDump = dump?.sequence == message.sequence
        if ofDump && message.flags & NetlinkSocket.NLM_F_DUMP_INTR != 0 { dump?.interrupted = true }
        switch message.payload {
        case .neighbor(let entry):
            counters.add(.evpnNetlinkMessages)
            mirror.apply(entry)
        case .link(let link):
            counters.add(.evpnNetlinkMessages)
            watch(link)
        case .done where ofDump:
            dumpRefusalLogged = false
            finishDump(&mirror, complete: true)
        case .error(let code) where ofDump && code != 0:
            if !dumpRefusalLogged {
                Log.error("evpn: the kernel refused a forwarding-table dump: \(String(cString: strerror(code))); asking again")
                dumpRefusalLogged = true
            }
            finishDump(&mirror, complete: false)
        default:
            break
        }
    }

    /// A dump ended. An incomplete or interrupted one leaves the mirror as it was (what it
    /// did not confirm is not swept) and another is asked for.
    private func finishDump(_ mirror: inout EVPNFDBMirror, complete: Bool) {
        guard let finished = dump else { return }
        dump = nil
        if !complete || finished.interrupted {
            redumpWanted = true
        } else if finished.resync {
            mirror.endResync()
        }
    }

    /// FRR withdraws a segment whose vxlan device is down, or gone: worth one line each time.
    private func watch(_ link: LinkMessage) {
        // A bridge's messages about its ports repeat what the device's own say.
        guard link.family != Netlink.familyBridge,
              let i = segments.firstIndex(where: { $0.vxlanInterface == link.ifindex || $0.localPort == link.ifindex })
        else { return }
        let segment = settings.segments[i]
        if link.isDeletion {
            let name = segments[i].vxlanInterface == link.ifindex ? segment.vxlanInterface : segment.localPort
            Log.error("evpn: \(name) of segment \(segment.vni) was deleted: FRR no longer sees what tunnelfwd writes or reads there until tunnelfwd restarts with it back")
            vxlanUp[link.ifindex] = nil
            return
        }
        guard segments[i].vxlanInterface == link.ifindex, let wasUp = vxlanUp[link.ifindex] else { return }
        let up = link.flags.contains(.up)
        guard up != wasUp else { return }
        vxlanUp[link.ifindex] = up
        if up {
            Log.info("evpn: \(segment.vxlanInterface) of segment \(segment.vni) is up again")
        } else {
            Log.error("evpn: \(segment.vxlanInterface) of segment \(segment.vni) is down: FRR withdraws the segment until it is up (ip link set \(segment.vxlanInterface) up)")
        }
    }

    // MARK: Write path

    /// Wants `mac` written as a static entry on the local port of `segment`, for FRR to
    /// advertise.
    func advertise(_ mac: MACAddress, segment: VNI) {
        writes.set(LocalMAC(vni: segment, mac: mac), writes.kind.localPort(of: segment))
    }

    /// Wants `mac` no longer written on the local port of `segment`.
    func withdraw(_ mac: MACAddress, segment: VNI) {
        writes.remove(LocalMAC(vni: segment, mac: mac))
    }

    /// Sends the local-MAC changes not sent yet and reads the kernel's acknowledgements;
    /// returns how many messages went either way.
    func exchange(counters: CounterBlock) -> Int { writes.exchange(counters: counters) }

    /// Deletes every local MAC written (clean shutdown), waiting a bounded time for the
    /// kernel to confirm; FRR then withdraws them.
    func removeAll(counters: CounterBlock) { writes.removeAll(counters: counters) }
}

/// A local MAC of an EVPN segment.
struct LocalMAC: Hashable {
    var vni: VNI
    var mac: MACAddress
}

/// Local MACs as static bridge entries on their segment's local port (the value: its
/// ifindex): `bridge fdb replace MAC dev PORT master static`. FRR advertises `NUD_NOARP`
/// entries (it ignores permanent ones, and dynamic ones age out); `replace` also takes
/// over a MAC FRR holds as remote, where `add` fails.
private struct LocalMACs: NetlinkRequestKind {
    // <linux/neighbour.h>
    static let NDA_LLADDR: UInt16 = 2
    static let NTF_MASTER: UInt8 = 0x04
    static let NUD_NOARP: UInt16 = 0x40

    let logPrefix = "evpn"
    let errorCounter = Counter.evpnWriteErrors
    let requestsNoun = "local MAC write(s)"
    let removalsNoun = "local MAC deletion(s)"

    private let portOfSegment: [VNI: UInt32]
    private let segmentOfPort: [UInt32: VNI]
    private let portNames: [VNI: String]

    init(segments: [EVPNFDBMirror.Segment], names: [EVPNSettings.Segment]) {
        portOfSegment = Dictionary(uniqueKeysWithValues: segments.map { ($0.vni, $0.localPort) })
        segmentOfPort = Dictionary(uniqueKeysWithValues: segments.map { ($0.localPort, $0.vni) })
        portNames = Dictionary(uniqueKeysWithValues: names.map { ($0.vni, $0.localPort) })
    }

    func localPort(of segment: VNI) -> UInt32 {
        guard let port = portOfSegment[segment] else { preconditionFailure("segment \(segment) is not an EVPN segment") }
        return port
    }

    func segment(ofLocalPort ifindex: UInt32) -> VNI? { segmentOfPort[ifindex] }

    func request(_ key: LocalMAC, _ change: NetlinkChange<UInt32>, sequence: UInt32) -> NetlinkRequest {
        var request: NetlinkRequest
        let port: UInt32
        let state: UInt16
        switch change {
        case .set(let p):
            request = NetlinkRequest(
                type: Netlink.newNeighbor, flags: NetlinkSocket.NLM_F_ACK | NetlinkSocket.NLM_F_CREATE | NetlinkSocket.NLM_F_REPLACE,
                sequence: sequence)
            (port, state) = (p, Self.NUD_NOARP)
        case .remove(let p):
            request = NetlinkRequest(type: Netlink.deleteNeighbor, flags: NetlinkSocket.NLM_F_ACK, sequence: sequence)
            (port, state) = (p, 0)
        }
        // struct ndmsg
        request.put(Netlink.familyBridge); request.put(UInt8(0)); request.put(UInt16(0)); request.put(port)
        request.put(state); request.put(Self.NTF_MASTER); request.put(UInt8(0))
        request.attribute(Self.NDA_LLADDR, (0..<6).map { key.mac.octet($0) })
        return request
    }

    func refusal(_ key: LocalMAC, _ change: NetlinkChange<UInt32>, reason: Int32) -> String? {
        let what: String
        switch change {
        case .set: what = "write"
        case .remove:
            // FRR replaced the entry when the MAC moved behind another VTEP: nothing to delete.
            if reason == ENOENT { return nil }
            what = "delete"
        }
        return "\(what) local MAC \(key.mac) of segment \(key.vni) on \(portNames[key.vni] ?? String(key.vni.rawValue))"
    }
}
