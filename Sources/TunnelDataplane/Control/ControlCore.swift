import CDPDK
import Glibc
import TunnelCore

/// The main lcore's loop: everything that is not the per-packet hot path. It answers ARP
/// for the local endpoint, publishes forwarding snapshots and reclaims old ones, and keeps
/// telemetry's view of the control state current.
///
/// It is the only writer of the overlay model, the forwarding snapshots and the next-hop
/// table; the workers only read them.
struct ControlCore {
    let uplink: PortID
    /// The uplink queue pair reserved for the control core (the workers own the others).
    /// Devices such as net_tap need as many RX as TX queues, and may steer frames to any
    /// of them, so the control core polls its RX queue too.
    let queue: UInt16
    let fromWorkers: [OpaquePointer]
    let pool: MbufPool
    let counters: CounterBlock
    let nextHops: NextHopTable
    let publisher: ForwardingPublisher
    let telemetry: TelemetrySource
    let running: RunFlag
    var overlay: Overlay

    private static let ringBurst = 32
    /// Idle sleep between polls: ARP and commands are answered within this, and the
    /// control core leaves its CPU to others when there is nothing to do.
    private static let idleMicroseconds: UInt32 = 200

    mutating func run() {
        publishTelemetry()
        let frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Self.ringBurst)
        defer { frames.deallocate() }
        while running.isRunning {
            var work = 0
            for ring in fromWorkers {
                let n = Int(rte_ring_sc_dequeue_burst(ring, frames, UInt32(Self.ringBurst), nil))
                for i in 0..<n { receiveARP(OpaquePointer(frames[i].unsafelyUnwrapped)) }
                work += n
            }
            work += receiveFromUplink()
            publisher.reclaim()
            if work == 0 { usleep(Self.idleMicroseconds) }
        }
    }

    /// Frees every frame still queued for the control core (at shutdown, workers stopped).
    func drainRings() {
        var frame: UnsafeMutableRawPointer?
        for ring in fromWorkers {
            while rte_ring_sc_dequeue(ring, &frame) == 0 { rte_pktmbuf_free(OpaquePointer(frame)) }
        }
    }

    /// Frames that the device steered to the control core's own RX queue.
    private func receiveFromUplink() -> Int {
        var burst = [OpaquePointer?](repeating: nil, count: Self.ringBurst)
        let n = Int(rte_eth_rx_burst(uplink.rawValue, queue, &burst, UInt16(Self.ringBurst)))
        if n > 0 { counters.add(.rx, n) }
        for case let m? in burst.prefix(n) {
            if tf_mbuf_data_len(m) >= UInt16(HeaderSize.ethernet),
               EthernetFrame.etherType(of: tf_mbuf_data(m)!) == .arp {
                receiveARP(m)
            } else {
                rte_pktmbuf_free(m)
                counters.drop(.notForUs)
            }
        }
        return n
    }

    private func receiveARP(_ m: OpaquePointer) {
        defer { rte_pktmbuf_free(m) }
        guard let message = ARPMessage(parsingFrame: tf_mbuf_data(m)!, length: Int(tf_mbuf_data_len(m))) else {
            counters.drop(.malformed)
            return
        }
        let local = overlay.uplink.address.address
        switch message.operation {
        case .request where message.targetAddress == local:
            send(message.reply(with: overlay.localMAC), to: message.senderMAC)
        case .reply:
            counters.add(.arpReplies)
        default:
            break
        }
    }

    /// Transmits one ARP frame on the control core's own uplink queue.
    private func send(_ message: ARPMessage, to destination: MACAddress) {
        guard let m = rte_pktmbuf_alloc(pool.pointer) else { return counters.drop(.noMbuf) }
        let length = message.write(to: tf_mbuf_data(m)!, destination: destination)
        tf_mbuf_set_len(m, UInt16(length))
        var frame: OpaquePointer? = m
        if rte_eth_tx_burst(uplink.rawValue, queue, &frame, 1) == 1 {
            counters.add(.tx)
        } else {
            rte_pktmbuf_free(m)
            counters.drop(.txFull)
        }
    }

    private func publishTelemetry() {
        telemetry.publish(tunnels: overlay.tunnels.map { tunnel in
            let hop = overlay.nextHop(of: tunnel)!
            let id = overlay.neighbors[hop]!.id
            return TelemetrySource.TunnelStatus(tunnel: tunnel, nextHop: hop, nextHopMAC: nextHops.resolvedMAC(id))
        })
    }
}
