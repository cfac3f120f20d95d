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
    var forwarding: ForwardingReader
    var quiescentState: QuiescentState
    var nextHops: NextHopTable
    var counters: CounterBlock
    /// Single-producer ring that carries ARP frames to the control core.
    var toControl: OpaquePointer
    var pool: MbufPool
    var burst: Int
    var running: RunFlag
}

/// A worker lcore's run-to-completion loop: receive a burst on each access port,
/// find each frame's tunnel and next hop, encapsulate, transmit on the uplink; hand ARP
/// arriving on the uplink to the control core.
///
/// This file is the hot path. Per packet it does no allocation, takes no lock and writes
/// only to the packet and to this lcore's own counters.
struct Worker {
    private let setup: WorkerSetup
    private let counters: CounterBlock
    private let nextHops: NextHopTable
    private let rx: UnsafeMutablePointer<OpaquePointer?>
    private var toUplink: TxBuffer
    /// IPv4 identification for tunnels without DF; per worker, so no two cores share it.
    private var identification: UInt16 = 0

    /// How far ahead of the packet being processed its successors' headers are
    /// prefetched (l3fwd's PREFETCH_OFFSET).
    private static let prefetchDistance = 3

    init(_ setup: WorkerSetup) {
        self.setup = setup
        counters = setup.counters
        nextHops = setup.nextHops
        rx = .allocate(capacity: setup.burst)
        toUplink = TxBuffer(port: setup.uplink, queue: setup.queue, capacity: setup.burst)
    }

    mutating func run() {
        let qsbr = setup.quiescentState
        qsbr.goOnline(reader: setup.reader)
        while setup.running.isRunning {
            let start = rte_rdtsc()
            let view = setup.forwarding.load()
            var moved = 0
            for port in setup.accessPorts {
                moved &+= receiveFromAccess(port: port, view: view)
            }
            moved &+= receiveFromUplink()
            toUplink.flush(counters: counters)
            if moved > 0 {
                counters.add(.busyCycles, Int(truncatingIfNeeded: rte_rdtsc() &- start))
                counters.add(.busyPackets, moved)
            }
            qsbr.reportQuiescent(reader: setup.reader)
        }
        qsbr.goOffline(reader: setup.reader)
        toUplink.deallocate()
        rx.deallocate()
    }

    // MARK: access ports -> tunnels

    @inline(__always)
    private mutating func receiveFromAccess(port: UInt16, view: UnsafePointer<ForwardingView>) -> Int {
        let n = Int(rte_eth_rx_burst(port, setup.queue, rx, UInt16(setup.burst)))
        guard n > 0 else { return 0 }
        counters.add(.rx, n)
        let binding = view.pointee.binding(ofPort: port)
        for i in 0..<min(n, Self.prefetchDistance) { tf_mbuf_prefetch_data(rx[i].unsafelyUnwrapped) }
        for i in 0..<n {
            if i &+ Self.prefetchDistance < n { tf_mbuf_prefetch_data(rx[i &+ Self.prefetchDistance].unsafelyUnwrapped) }
            forward(rx[i].unsafelyUnwrapped, binding: binding, view: view)
        }
        return n
    }

    @inline(__always)
    private mutating func forward(_ m: OpaquePointer, binding: AccessBinding, view: UnsafePointer<ForwardingView>) {
        guard binding.segment != AccessBinding.unbound.segment else { return drop(m, .noTunnel) }
        var frame = tf_mbuf_data(m).unsafelyUnwrapped
        let length = Int(tf_mbuf_data_len(m))
        guard length >= HeaderSize.ethernet else { return drop(m, .malformed) }
        if binding.vlan != 0 {
            guard let tci = EthernetFrame.vlanTag(of: frame, length: length), tci & 0x0FFF == binding.vlan else {
                return drop(m, .vlanMismatch)
            }
            frame = EthernetFrame.removeVLANTag(from: frame)
            _ = rte_pktmbuf_adj(m, UInt16(HeaderSize.vlanTag))
        }
        let destination = EthernetFrame.destination(of: frame)
        if !destination.isMulticast, let tunnel = view.pointee.tunnel(segment: binding.segment, mac: destination) {
            encapsulate(m, into: view.pointee.entry(tunnel))
        } else {
            flood(m, segment: binding.segment, view: view)
        }
    }

    /// Head-end replication: one copy per tunnel of the segment's flood list, the original
    /// going to the last.
    private mutating func flood(_ m: OpaquePointer, segment: UInt16, view: UnsafePointer<ForwardingView>) {
        let tunnels = view.pointee.floodList(segment: segment)
        guard let last = tunnels.last else { return drop(m, .noTunnel) }
        for tunnel in tunnels.dropLast() {
            guard let copy = rte_pktmbuf_copy(m, setup.pool.pointer, 0, UInt32.max) else {
                counters.drop(.noMbuf)
                continue
            }
            counters.add(.floodCopies)
            encapsulate(copy, into: view.pointee.entry(tunnel))
        }
        encapsulate(m, into: view.pointee.entry(last))
    }

    @inline(__always)
    private mutating func encapsulate(_ m: OpaquePointer, into tunnel: UnsafeMutablePointer<TunnelEntry>) {
        let innerLength = tf_mbuf_pkt_len(m)
        guard innerLength <= tunnel.pointee.maxInnerLength else { return drop(m, .mtu) }
        guard let nextHopMAC = nextHops.resolvedMAC(tunnel.pointee.nextHop) else { return drop(m, .noNeighbor) }
        let frame = tf_mbuf_data(m).unsafelyUnwrapped
        let hash = InnerFlow.hash(frame: frame, length: Int(tf_mbuf_data_len(m)))
        let headerLength = UInt16(truncatingIfNeeded: tunnel.pointee.header.length)
        guard let header = rte_pktmbuf_prepend(m, headerLength) else { return drop(m, .noHeadroom) }
        if !tunnel.pointee.dontFragment { identification &+= 1 }
        tunnel.pointee.header.write(
            to: header, innerLength: Int(innerLength), nextHopMAC: nextHopMAC,
            sourcePort: InnerFlow.udpSourcePort(hash: hash),
            identification: tunnel.pointee.dontFragment ? 0 : identification)
        counters.add(.encapsulated)
        toUplink.append(m, counters: counters)
    }

    // MARK: uplink

    /// ARP goes to the control core; the rest is not for us until decapsulation exists.
    @inline(__always)
    private mutating func receiveFromUplink() -> Int {
        let n = Int(rte_eth_rx_burst(setup.uplink.rawValue, setup.queue, rx, UInt16(setup.burst)))
        guard n > 0 else { return 0 }
        counters.add(.rx, n)
        for i in 0..<n {
            let m = rx[i].unsafelyUnwrapped
            guard tf_mbuf_data_len(m) >= UInt16(HeaderSize.ethernet) else {
                drop(m, .malformed)
                continue
            }
            if EthernetFrame.etherType(of: tf_mbuf_data(m).unsafelyUnwrapped) == .arp {
                if rte_ring_sp_enqueue(setup.toControl, UnsafeMutableRawPointer(m)) != 0 {
                    drop(m, .controlRingFull)
                }
            } else {
                drop(m, .notForUs)
            }
        }
        return n
    }

    @inline(__always)
    private func drop(_ m: OpaquePointer, _ reason: DropReason) {
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
