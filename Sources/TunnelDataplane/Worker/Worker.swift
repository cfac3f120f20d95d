import Atomics
import CDPDK
import TunnelCore

/// Everything a worker lcore is given at start: its queues, the shared tables it reads
/// and the counters it writes. All trivial values: nothing here is reference counted, so
/// the loop does no retain/release.
struct WorkerSetup: @unchecked Sendable {
    var lcore: UInt32
    /// The RX and TX queue this worker owns on every port.
    var queue: UInt16
    /// This worker's reader index in the quiescent-state tracker.
    var reader: Int
    var accessPorts: UnsafeBufferPointer<UInt16>
    var uplink: PortID
    /// The underlay's layer-3 MTU: the largest outer IPv4 packet.
    var uplinkMTU: Int
    /// The largest decapsulated frame the access ports can send: their MTU (the uplink's)
    /// with an Ethernet header and a VLAN tag.
    var largestDelivery: Int
    /// Which links are down: what a TX queue refused is counted by it.
    var links: LinkStates
    /// Our tunnel endpoint address and the uplink's MAC: uplink packets for them are
    /// decapsulated.
    var localAddress: IPv4Address
    var localMAC: MACAddress
    var forwarding: ForwardingReader
    var quiescentState: QuiescentState
    var nextHops: NextHopTable
    var counters: CounterBlock
    /// Single-producer ring that carries ARP frames to the control core.
    var toControl: OpaquePointer
    /// Uplink frames that the device gave to the control core's queue, handed back.
    var fromControl: OpaquePointer
    /// Single-producer ring of next hops this worker found unresolved.
    var misses: OpaquePointer
    /// Bumped by the control core whenever a next hop gains a MAC: time to flush.
    var resolutions: ResolutionSignal
    var pending: PendingBuffer
    /// `nil` when learning is off.
    var learning: WorkerLearning?
    /// Pending-packet lifetime in TSC cycles.
    var lifetimeCycles: UInt64
    var tscHz: UInt64
    var firstPacketDelay: DelayHistogram
    var pool: MbufPool
    var burst: Int
    var running: RunFlag
}

/// What a worker needs to learn inner MACs from decapsulated traffic: the ring its
/// reports go to (16-byte `LearningReport` elements, single producer) and the words
/// where it notes that a learnt MAC was seen.
struct WorkerLearning: @unchecked Sendable {
    var reports: OpaquePointer
    var ages: LearnedAges
}

/// A worker lcore's run-to-completion loop: receive a burst on each access port,
/// find each frame's tunnel and next hop, encapsulate, transmit on the uplink; receive a
/// burst on the uplink, decapsulate what is ours and deliver it to the segment's access
/// ports; hand ARP to the control core.
///
/// A packet whose next hop has no MAC waits in the worker's pending buffer, encapsulated
/// but for the outer destination MAC, and leaves in order once the control core has
/// resolved it (mechanism 2, buffer on miss).
///
/// This file is the hot path. Per packet it does no allocation, takes no lock and writes
/// only to the packet and to this lcore's own counters; the one shared word it writes, a
/// learnt MAC's last-seen tick, it writes at most once a tick per MAC.
struct Worker {
    private let setup: WorkerSetup
    private let counters: CounterBlock
    private let nextHops: NextHopTable
    private let rx: UnsafeMutablePointer<OpaquePointer?>
    /// Per frame of the burst being processed: its forwarding key, then its route.
    private let keys: UnsafeMutablePointer<UInt64>
    private let routes: UnsafeMutablePointer<UInt32>
    private var toUplink: Outbound
    /// One TX buffer per access port, in the order of `setup.accessPorts`; at least one
    /// (without access ports it is never used), so that the uplink path can always keep
    /// the first in a local.
    private let toAccess: UnsafeMutableBufferPointer<TxBuffer>
    private var pending: PendingBuffer
    /// The control core's resolution count when the pending buffer was last drained.
    private var drainedAt: UInt64 = 0
    /// TSC of the current loop iteration: deadlines and delays are measured against it.
    private var now: UInt64 = 0
    /// The last report per small hash of (forwarding key, remote): a MAC that keeps
    /// arriving before the control core has learnt it is reported once a tick, not once a
    /// packet.
    private let recentReports: UnsafeMutablePointer<RecentReport>
    private static let recentReportSlots = 64

    private struct RecentReport: Equatable {
        var key: UInt64
        var remote: UInt32
        var tick: UInt64
    }

    init(_ setup: WorkerSetup) {
        self.setup = setup
        counters = setup.counters
        nextHops = setup.nextHops
        rx = .allocate(capacity: setup.burst)
        keys = .allocate(capacity: setup.burst)
        routes = .allocate(capacity: setup.burst)
        toUplink = Outbound(tx: TxBuffer(port: setup.uplink, queue: setup.queue, capacity: setup.burst, links: setup.links))
        let ports = setup.accessPorts.isEmpty ? [setup.uplink.rawValue] : Array(setup.accessPorts)
        toAccess = .allocate(capacity: ports.count)
        _ = toAccess.initialize(from: ports.map {
            TxBuffer(port: PortID(rawValue: $0), queue: setup.queue, capacity: setup.burst, links: setup.links)
        })
        pending = setup.pending
        recentReports = .allocate(capacity: Self.recentReportSlots)
        recentReports.initialize(repeating: RecentReport(key: 0, remote: 0, tick: .max), count: Self.recentReportSlots)
    }

    mutating func run() {
        let qsbr = setup.quiescentState
        qsbr.goOnline(reader: setup.reader)
        // One TSC read per iteration (it costs tens of cycles): an iteration that moved
        // packets is charged from its start to the next one's.
        var busySince: UInt64 = 0
        var movedSince = 0
        while setup.running.isRunning {
            let start = rte_rdtsc()
            if movedSince > 0 {
                counters.add(.busyCycles, Int(truncatingIfNeeded: start &- busySince))
                counters.add(.busyPackets, movedSince)
            }
            now = start
            var moved = flushPendingIfDue()
            let view = setup.forwarding.load()
            for port in setup.accessPorts {
                moved &+= receiveFromAccess(port: port, view: view)
            }
            moved &+= receiveFromUplink(view: view)
            toUplink.tx.flush(counters: counters)
            for i in setup.accessPorts.indices { toAccess[i].flush(counters: counters) }
            counters.add(.encapsulated, toUplink.encapsulated)
            counters.set(.pendingNow, pending.count)
            toUplink.encapsulated = 0
            busySince = start
            movedSince = moved
            qsbr.reportQuiescent(reader: setup.reader)
        }
        qsbr.goOffline(reader: setup.reader)
        pending.removeAll { entry in
            rte_pktmbuf_free(OpaquePointer(entry.packet))
            counters.drop(.noNeighbor)
        }
        counters.set(.pendingNow, 0)
        toUplink.tx.deallocate()
        for i in toAccess.indices { toAccess[i].deallocate() }
        toAccess.deallocate()
        keys.deallocate()
        routes.deallocate()
        rx.deallocate()
        recentReports.deallocate()
    }

    // MARK: access ports -> tunnels

    /// Bursts' worth of buffered packets one iteration may flush: enough to empty the
    /// buffer quickly, few enough that receiving goes on and the TX queue keeps up.
    private static let flushPerIteration = 4

    /// The first passes over a burst leave each frame's fate in `routes`: a tunnel index,
    /// or one of these.
    private static let flooded = UInt32.max
    private static let consumed = UInt32.max &- 1
    private static let lookUp = UInt32.max &- 2
    private static let local = TunnelIndex.local.rawValue

    /// Three passes over the burst, as l3fwd does it, so that memory latency overlaps:
    /// find each frame's forwarding bucket and prefetch it (unless the table is small
    /// enough to stay in L1); look the buckets up and prefetch the tunnel entries;
    /// encapsulate. (Measured: as fast as one pass when the tables fit the cache, and 1.5
    /// times faster with 10 000 tunnels.)
    ///
    /// Frames to one MAC, and then to one tunnel, tend to come in runs: a frame whose key
    /// is the previous frame's takes its route, and a run of frames to one tunnel reads
    /// the tunnel and its next hop once (as VPP's L2 nodes cache their last lookup).
    @inline(never)
    private mutating func receiveFromAccess(port: UInt16, view: UnsafePointer<ForwardingView>) -> Int {
        let n = Int(rte_eth_rx_burst(port, setup.queue, rx, UInt16(setup.burst)))
        guard n > 0 else { return 0 }
        counters.add(.rx, n)
        let binding = view.pointee.binding(ofPort: port)
        let prefetches = !view.pointee.bucketsFitInL1Cache
        for i in 0..<n {
            routes[i] = classify(rx[i].unsafelyUnwrapped, binding: binding, key: keys + i)
            if prefetches && routes[i] == Self.lookUp { rte_prefetch0(view.pointee.bucketAddress(key: keys[i])) }
        }
        if binding.learnsSources { learnLocalSources(count: n, segment: binding.segment, view: view) }
        var lastKey: UInt64? = nil
        var lastRoute = Self.flooded
        for i in 0..<n where routes[i] == Self.lookUp {
            if keys[i] != lastKey {
                lastKey = keys[i]
                if let tunnel = view.pointee.tunnel(key: keys[i]) {
                    lastRoute = tunnel.rawValue
                    if tunnel != .local { rte_prefetch0(view.pointee.entry(tunnel)) }
                } else {
                    lastRoute = Self.flooded
                }
            }
            routes[i] = lastRoute
        }
        dispatch(count: n, segment: binding.segment, view: view)
        return n
    }

    /// The third pass: encapsulates each frame whose route is a tunnel, floods the others.
    /// A run of frames to one tunnel reads the tunnel and its next hop once.
    @inline(never)
    private mutating func dispatch(count n: Int, segment: UInt16, view: UnsafePointer<ForwardingView>) {
        // A local copy, so that its counts stay in registers: stores into packets could
        // alias `self` as far as the compiler knows.
        var uplink = toUplink
        var i = 0
        while i < n {
            let route = routes[i]
            switch route {
            case Self.consumed:
                i &+= 1
            case Self.local:
                drop(rx[i].unsafelyUnwrapped, .localDestination)
                i &+= 1
            case Self.flooded:
                toUplink = uplink
                flood(rx[i].unsafelyUnwrapped, segment: segment, view: view)
                uplink = toUplink
                i &+= 1
            default:
                let tunnel = encapsulation(into: view.pointee.entry(TunnelIndex(rawValue: route)))
                // One copy of the run's loop per header format, the format a constant in
                // each: the other formats' branches drop out (3 cycles a packet).
                switch (tunnel.header.carriesUDP, tunnel.header.dontFragment) {
                case (true, true): i = encapsulateRun(from: i, count: n, tunnel, udp: true, df: true, sendingTo: &uplink)
                case (true, false): i = encapsulateRun(from: i, count: n, tunnel, udp: true, df: false, sendingTo: &uplink)
                case (false, true): i = encapsulateRun(from: i, count: n, tunnel, udp: false, df: true, sendingTo: &uplink)
                case (false, false): i = encapsulateRun(from: i, count: n, tunnel, udp: false, df: false, sendingTo: &uplink)
                }
            }
        }
        toUplink = uplink
    }

    /// Takes the frame's VLAN tag off if the port has one, and returns `lookUp` with the
    /// frame's forwarding key in `key`, `flooded` for a broadcast or multicast destination,
    /// or `consumed` when the frame was dropped.
    @inline(__always)
    private mutating func classify(_ m: OpaquePointer, binding: AccessBinding, key: UnsafeMutablePointer<UInt64>) -> UInt32 {
        var frame = tf_mbuf_data(m).unsafelyUnwrapped
        let length = Int(tf_mbuf_data_len(m))
        guard rte_pktmbuf_is_contiguous(m) != 0 else {
            drop(m, .chained)
            return Self.consumed
        }
        guard length >= HeaderSize.ethernet else {
            drop(m, .malformed)
            return Self.consumed
        }
        if binding.vlan != 0 {
            guard let tci = EthernetFrame.vlanTag(of: frame, length: length), tci & 0x0FFF == binding.vlan else {
                drop(m, .vlanMismatch)
                return Self.consumed
            }
            frame = EthernetFrame.removeVLANTag(from: frame)
            _ = rte_pktmbuf_adj(m, UInt16(HeaderSize.vlanTag))
        }
        let destination = EthernetFrame.destination(of: frame)
        if destination.isMulticast { return Self.flooded }
        key.pointee = ForwardingView.key(segment: binding.segment, mac: destination)
        return Self.lookUp
    }

    /// Head-end replication: one copy per tunnel of the segment's flood list, the original
    /// going to the last.
    @inline(never)
    private mutating func flood(_ m: OpaquePointer, segment: UInt16, view: UnsafePointer<ForwardingView>) {
        let tunnels = view.pointee.floodList(segment: segment)
        guard !tunnels.isEmpty else { return drop(m, .noTunnel) }
        Self.replicate(m, to: tunnels, pool: setup.pool, counters: counters) { frame, tunnel in
            encapsulateCopy(frame, encapsulation(into: view.pointee.entry(tunnel)))
        }
    }

    /// A flooded copy: out of line, so that the run loop keeps its own inlined copy.
    @inline(never)
    private mutating func encapsulateCopy(_ m: OpaquePointer, _ tunnel: Encapsulation) {
        var uplink = toUplink
        encapsulate(m, tunnel, udp: tunnel.header.carriesUDP, df: tunnel.header.dontFragment, sendingTo: &uplink)
        toUplink = uplink
    }

    /// Hands `body` one copy of `m` per target but the last, which gets `m` itself. A copy
    /// that finds no mbuf is counted and skipped. Static, so that `body` may use `self`;
    /// inlined, so that a single target (the common case) costs no closure call.
    @inline(__always)
    private static func replicate<Target>(
        _ m: OpaquePointer, to targets: UnsafeBufferPointer<Target>, pool: MbufPool, counters: CounterBlock,
        _ body: (OpaquePointer, Target) -> Void
    ) {
        for target in targets.dropLast() {
            guard let copy = rte_pktmbuf_copy(m, pool.pointer, 0, UInt32.max) else {
                counters.drop(.noMbuf)
                continue
            }
            counters.add(.floodCopies)
            body(copy, target)
        }
        body(m, targets[targets.count - 1])
    }

    /// What encapsulation writes besides the packet, kept together so that a run of
    /// frames works on a local copy and stores it back once.
    private struct Outbound {
        var tx: TxBuffer
        /// IPv4 identification for tunnels without DF, counted over the packets this
        /// worker sends without DF; per worker, so no two cores share it.
        var identification: UInt16 = 0
        /// Packets encapsulated in this loop iteration, added to the counter once per
        /// iteration.
        var encapsulated = 0
    }

    /// What encapsulating into one tunnel needs, read once for a run of frames.
    private struct Encapsulation {
        /// The tunnel's template addressed to its next hop: a copy the run keeps in
        /// registers.
        let header: OuterHeaderTemplate
        /// The largest inner frame that fits the underlay MTU in this tunnel.
        let maxInnerLength: Int
        let nextHop: NextHopID
        /// False while the next hop is unresolved, or while packets wait for it: behind
        /// those, a packet waits too, even if the MAC has just arrived (per-flow order).
        let sendsNow: Bool
    }

    @inline(__always)
    private func encapsulation(into tunnel: UnsafeMutablePointer<TunnelEntry>) -> Encapsulation {
        let nextHop = tunnel.pointee.nextHop
        let destination = nextHops.destination(nextHop)
        return Encapsulation(
            header: tunnel.pointee.header.addressed(to: destination.mac),
            maxInnerLength: setup.uplinkMTU &- tunnel.pointee.header.mtuOverhead,
            nextHop: nextHop,
            sendsNow: destination.isResolved && (pending.isEmpty || !pending.isWaiting(nextHop)))
    }

    /// Encapsulates the run of frames from `start` that go to the tunnel of `routes[start]`;
    /// returns where the run ends. `udp` and `df` are the tunnel's format, as constants.
    @inline(__always)
    private mutating func encapsulateRun(
        from start: Int, count n: Int, _ tunnel: Encapsulation, udp: Bool, df: Bool, sendingTo uplink: inout Outbound
    ) -> Int {
        let route = routes[start]
        var i = start
        repeat {
            encapsulate(rx[i].unsafelyUnwrapped, tunnel, udp: udp, df: df, sendingTo: &uplink)
            i &+= 1
        } while i < n && routes[i] == route
        return i
    }

    /// Encapsulates `m`, then sends it through `uplink` (the caller's copy of `toUplink`)
    /// or holds it. `udp` and `df` are the tunnel's format (`carriesUDP`, `dontFragment`).
    @inline(__always)
    private mutating func encapsulate(_ m: OpaquePointer, _ tunnel: Encapsulation, udp: Bool, df: Bool, sendingTo uplink: inout Outbound) {
        let innerLength = Int(tf_mbuf_pkt_len(m))
        guard innerLength <= tunnel.maxInnerLength else { return drop(m, .mtu) }
        // NVGRE has no source port to fill.
        let hash = udp ? InnerFlow.hash(frame: tf_mbuf_data(m).unsafelyUnwrapped, length: Int(tf_mbuf_data_len(m))) : 0
        let length = OuterHeaderTemplate.length(carriesUDP: udp)
        guard let outer = rte_pktmbuf_prepend(m, UInt16(truncatingIfNeeded: length)) else {
            return drop(m, .noHeadroom)
        }
        if !df { uplink.identification &+= 1 }
        tunnel.header.write(
            to: outer, innerLength: innerLength,
            sourcePort: InnerFlow.udpSourcePort(hash: hash), identification: uplink.identification,
            carriesUDP: udp, dontFragment: df)
        uplink.encapsulated &+= 1
        if tunnel.sendsNow {
            uplink.tx.append(m, counters: counters)
        } else {
            hold(m, for: tunnel.nextHop)
        }
    }

    // MARK: pending buffer

    /// Buffers an encapsulated packet until its next hop resolves; the first one of a next
    /// hop asks the control core to resolve it now.
    @inline(never)
    private mutating func hold(_ m: OpaquePointer, for nextHop: NextHopID) {
        counters.add(.misses)
        switch pending.enqueue(UnsafeMutableRawPointer(m), nextHop: nextHop, deadline: now &+ setup.lifetimeCycles) {
        case .buffered(let isFirst):
            counters.add(.buffered)
            if isFirst {
                // A full ring only delays the request: the control core retries on its own.
                _ = rte_ring_sp_enqueue(setup.misses, UnsafeMutableRawPointer(bitPattern: UInt(nextHop.rawValue) &+ 1))
            }
        case .perCoreFull, .perNeighborFull:
            drop(m, .pendingFull)
        }
    }

    /// Sends what has resolved and frees what has expired, when there is either: a new
    /// resolution since the last look, or a deadline reached.
    private mutating func flushPendingIfDue() -> Int {
        let resolutions = setup.resolutions.count
        guard let earliest = pending.earliestDeadline else {
            drainedAt = resolutions
            return 0
        }
        guard resolutions != drainedAt || earliest <= now else { return 0 }
        let before = pending.count
        var buffer = pending
        let complete = buffer.drain(
            now: now,
            limit: Self.flushPerIteration * setup.burst,
            resolvedMAC: { nextHops.resolvedMAC($0) },
            send: { entry, mac in
                let m = OpaquePointer(entry.packet)
                EthernetFrame.setDestination(mac, of: tf_mbuf_data(m).unsafelyUnwrapped)
                counters.add(.flushed)
                // Measured to this iteration's start: the drain runs there, and what it
                // sends leaves within the iteration (a large flush goes on in the next ones,
                // each with its own start).
                let waited = now &- (entry.deadline &- setup.lifetimeCycles)
                setup.firstPacketDelay.record(waited &* 1_000_000 / setup.tscHz)
                toUplink.tx.append(m, counters: counters)
            },
            expire: { entry in
                rte_pktmbuf_free(OpaquePointer(entry.packet))
                counters.add(.expired)
            })
        pending = buffer
        // Until a drain completes, the next iteration walks again.
        if complete { drainedAt = resolutions }
        return before &- pending.count
    }

    // MARK: uplink -> access ports

    /// Tunnel packets for us are decapsulated, ARP goes to the control core, the rest is
    /// not ours. Frames the device gave the control core's queue come back here too.
    @inline(never)
    private mutating func receiveFromUplink(view: UnsafePointer<ForwardingView>) -> Int {
        // Handed-back frames first, so that a busy RX queue cannot starve them.
        let raw = UnsafeMutableRawPointer(rx).assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        var n = Int(rte_ring_sc_dequeue_burst(setup.fromControl, raw, UInt32(max(1, setup.burst / 2)), nil))
        let received = Int(rte_eth_rx_burst(setup.uplink.rawValue, setup.queue, rx + n, UInt16(setup.burst &- n)))
        if received > 0 { counters.add(.rx, received) }
        n &+= received
        var decapsulated = 0
        // A local copy of the first access port's TX buffer (usually the only one), so
        // that its count stays in a register: through `toAccess` every append waits for
        // the previous one's store (2 to 4 cycles a packet, measured).
        var firstAccess = toAccess[0]
        defer { toAccess[0] = firstAccess }
        let learns = setup.learning != nil
        var lastSource = LastSource()
        var lastOrigin = LastOrigin()
        // Tunnel packets come in runs of one VNI: the segment is looked up once a run.
        var lastVNI: VNI? = nil
        var segment: UInt16? = nil
        var segmentLearns = false
        for i in 0..<n {
            let m = rx[i].unsafelyUnwrapped
            let frame = tf_mbuf_data(m).unsafelyUnwrapped
            let length = Int(tf_mbuf_data_len(m))
            guard rte_pktmbuf_is_contiguous(m) != 0 else {
                drop(m, .chained)
                continue
            }
            guard length >= HeaderSize.ethernet else {
                drop(m, .malformed)
                continue
            }
            if EthernetFrame.etherType(of: frame) == .arp {
                if rte_ring_sp_enqueue(setup.toControl, UnsafeMutableRawPointer(m)) != 0 {
                    drop(m, .controlRingFull)
                }
                continue
            }
            switch Decapsulation.classify(frame, length: length, local: setup.localAddress, ports: view.pointee.decapsulationPorts) {
            case .inner(let type, let vni, let innerOffset, let innerLength):
                if vni != lastVNI {
                    lastVNI = vni
                    segment = view.pointee.segment(vni: vni)
                    segmentLearns = learns && segment.map { view.pointee.segments[Int($0)].learnsFromTunnels } ?? false
                }
                guard let segment, case let targets = view.pointee.deliveries(segment: segment), !targets.isEmpty else {
                    drop(m, .unknownVNI)
                    continue
                }
                let remote = Decapsulation.outerSource(of: frame)
                if remote != lastOrigin.remote || segment != lastOrigin.segment || EthernetFrame.destination(of: frame) != setup.localMAC {
                    if let reason = refusal(from: remote, segment: segment, frame: frame, view: view) {
                        drop(m, reason)
                        continue
                    }
                    lastOrigin = LastOrigin(remote: remote, segment: segment)
                }
                if segmentLearns {
                    learnSource(of: frame + innerOffset, segment: segment, vni: vni, type: type,
                                remote: remote, view: view, last: &lastSource)
                }
                if deliver(m, to: targets, innerOffset: innerOffset, innerLength: innerLength, firstAccess: &firstAccess) {
                    decapsulated &+= 1
                }
            case .notForUs: drop(m, .notForUs)
            case .malformed: drop(m, .malformed)
            case .badChecksum: drop(m, .badChecksum)
            case .fragment: drop(m, .fragment)
            }
        }
        counters.add(.decapsulated, decapsulated)
        return n
    }

    /// Strips the outer headers and sends the inner frame to the access ports of its
    /// segment (tagged with the port's VLAN, if it has one). A frame larger than they can
    /// send (from a peer whose packets exceed our MTU) is dropped here, not by the TX queue,
    /// and false returned.
    @inline(__always)
    private mutating func deliver(
        _ m: OpaquePointer, to targets: UnsafeBufferPointer<AccessDelivery>, innerOffset: Int, innerLength: Int,
        firstAccess: inout TxBuffer
    ) -> Bool {
        guard innerLength <= setup.largestDelivery else {
            drop(m, .mtu)
            return false
        }
        _ = rte_pktmbuf_adj(m, UInt16(truncatingIfNeeded: innerOffset))
        // Ethernet padding after a short outer packet is not part of the inner frame.
        let padding = Int(tf_mbuf_pkt_len(m)) &- innerLength
        if padding > 0 { _ = rte_pktmbuf_trim(m, UInt16(truncatingIfNeeded: padding)) }
        Self.replicate(m, to: targets, pool: setup.pool, counters: counters) { frame, target in
            send(frame, to: target, firstAccess: &firstAccess)
        }
        return true
    }

    /// The remote and segment of the burst's last accepted tunnel packet: packets come in
    /// runs from one remote, and a run is checked once (but its destination MAC always).
    private struct LastOrigin {
        var remote = IPv4Address.any
        var segment = UInt16.max
    }

    /// Why a tunnel packet of `segment` from `remote` is not decapsulated, or `nil`: sent to
    /// another MAC, from a martian source or ourselves, or from a remote that no tunnel of
    /// the segment has (unless `decapsulation.accept_from` is `any`).
    @inline(never)
    private mutating func refusal(from remote: IPv4Address, segment: UInt16, frame: UnsafeRawPointer,
                         view: UnsafePointer<ForwardingView>) -> DropReason? {
        if EthernetFrame.destination(of: frame) != setup.localMAC { return .notOurMAC }
        if !remote.isPossibleSource || remote == setup.localAddress { return .martianSource }
        if !view.pointee.accepts(segment: segment, from: remote) { return .unknownSource }
        return nil
    }

    /// The source a burst's previous decapsulated frame was learnt from: frames from one
    /// MAC through one tunnel come in runs, and a run is looked at once.
    private struct LastSource {
        var key = UInt64.max
        var remote = IPv4Address(rawValue: 0)
        var type = EncapsulationType.vxlan
    }

    /// Learning with the table left to the control core (as Open vSwitch leaves it to its
    /// slow path): the worker only reads. A source MAC that the forwarding table already
    /// sends back through the tunnel it came from costs one lookup per run (and, for a
    /// learnt entry, a store once a tick so that it does not age out); anything else is
    /// reported to the control core. A static entry is never learnt over.
    @inline(__always)
    private mutating func learnSource(
        of inner: UnsafeRawPointer, segment: UInt16, vni: VNI, type: EncapsulationType, remote: IPv4Address,
        view: UnsafePointer<ForwardingView>, last: inout LastSource
    ) {
        let mac = EthernetFrame.source(of: inner)
        let key = ForwardingView.key(segment: segment, mac: mac)
        guard key != last.key || remote != last.remote || type != last.type else { return }
        last = LastSource(key: key, remote: remote, type: type)
        guard mac.isUnicast else { return }
        let tick = LearningClock.tick(tsc: now)
        if let route = view.pointee.route(key: key) {
            guard let slot = route.learnedSlot, route.tunnel != .local else { return }
            let header = view.pointee.entry(route.tunnel).pointee.header
            if header.type == type && header.remoteAddress == remote {
                setup.learning.unsafelyUnwrapped.ages.touch(slot, tick: tick)
                return
            }
        }
        report(LearningReport(mac: mac, vni: vni, source: .tunnel(type, remote: remote)), key: key, remote: remote, tick: tick)
    }

    /// The source MACs of a burst from an access port of an EVPN segment are local MACs,
    /// for FRR to advertise: a MAC the table already has as local costs one lookup per run
    /// (and a store once a tick, so that it does not age out); anything else is reported to
    /// the control core. Frames whose source is multicast or zero are not learnt.
    @inline(never)
    private mutating func learnLocalSources(count n: Int, segment: UInt16, view: UnsafePointer<ForwardingView>) {
        guard let learning = setup.learning else { return }
        let tick = LearningClock.tick(tsc: now)
        var lastKey = UInt64.max
        for i in 0..<n where routes[i] != Self.consumed {
            let mac = EthernetFrame.source(of: tf_mbuf_data(rx[i].unsafelyUnwrapped).unsafelyUnwrapped)
            let key = ForwardingView.key(segment: segment, mac: mac)
            guard key != lastKey else { continue }
            lastKey = key
            guard mac.isUnicast else { continue }
            if let route = view.pointee.route(key: key), route.tunnel == .local, let slot = route.learnedSlot {
                learning.ages.touch(slot, tick: tick)
                continue
            }
            report(LearningReport(mac: mac, vni: view.pointee.segments[Int(segment)].vni, source: .accessPort),
                   key: key, remote: .any, tick: tick)
        }
    }

    @inline(never)
    private mutating func report(_ news: LearningReport, key: UInt64, remote: IPv4Address, tick: UInt64) {
        let recent = RecentReport(key: key, remote: remote.rawValue, tick: tick)
        let slot = Int(truncatingIfNeeded: ((key ^ UInt64(recent.remote)) &* 0x9E37_79B9_7F4A_7C15) >> 58)
        guard recentReports[slot] != recent else { return }
        recentReports[slot] = recent
        var words = news.words
        // A full ring loses nothing for good: the MAC is reported again next tick.
        if rte_ring_sp_enqueue_elem(setup.learning.unsafelyUnwrapped.reports, &words, 16) == 0 {
            counters.add(.learningReports)
        }
    }

    @inline(__always)
    private mutating func send(_ m: OpaquePointer, to target: AccessDelivery, firstAccess: inout TxBuffer) {
        if target.vlan != 0 {
            guard let start = rte_pktmbuf_prepend(m, UInt16(HeaderSize.vlanTag)) else { return drop(m, .noHeadroom) }
            EthernetFrame.insertVLANTag(target.vlan, at: start)
        }
        if target.accessIndex == 0 {
            firstAccess.append(m, counters: counters)
        } else {
            toAccess[Int(target.accessIndex)].append(m, counters: counters)
        }
    }

    /// Out of line: drops are the exception, and keeping them out of the loop's code keeps
    /// the hot path small enough to inline. Mutating only so that `self` is passed by
    /// reference: called from mutating code, a non-mutating method gets a copy of this
    /// 480-byte struct (seen in the disassembly as a memcpy per packet).
    @inline(never)
    private mutating func drop(_ m: OpaquePointer, _ reason: DropReason) {
        rte_pktmbuf_free(m)
        counters.drop(reason)
    }
}

/// Tells the lcores to keep running; cleared once, by the signal handler.
struct RunFlag: @unchecked Sendable {
    private let flag: UnsafeMutablePointer<AtomicFlag>

    static func allocate() -> RunFlag {
        let p = UnsafeMutablePointer<AtomicFlag>.allocate(capacity: 1)
        p.initialize(to: .init(true))
        return RunFlag(flag: p)
    }

    @inline(__always)
    var isRunning: Bool { AtomicFlag.atomicLoad(at: flag, ordering: .relaxed) }

    func stop() { AtomicFlag.atomicStore(false, at: flag, ordering: .relaxed) }
}

/// How many times the control core has given a next hop a MAC. Workers compare it with
/// the value at their last drain: one shared load per loop, written only by the control
/// core and only on resolution.
struct ResolutionSignal: @unchecked Sendable {
    private let word: UnsafeMutablePointer<AtomicWord>

    static func allocate() -> ResolutionSignal {
        let p = UnsafeMutablePointer<AtomicWord>.allocate(capacity: 1)
        p.initialize(to: AtomicWord(0))
        return ResolutionSignal(word: p)
    }

    @inline(__always)
    var count: UInt64 { AtomicWord.atomicLoad(at: word, ordering: .acquiring) }

    /// After publishing MACs: the release orders them before the new count.
    func signal() { _ = AtomicWord.atomicLoadThenWrappingIncrement(at: word, ordering: .releasing) }
}
