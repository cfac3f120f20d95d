import CDPDK

/// Packets gathered for one TX queue, sent in bursts. Whatever the queue does not take
/// is freed and counted, as l2fwd does: a full TX ring means the link is saturated, or,
/// when the control core last saw it down, that there is no link.
struct TxBuffer {
    let port: UInt16
    let queue: UInt16
    private let packets: UnsafeMutablePointer<OpaquePointer?>
    private let capacity: Int
    private var count = 0
    private let links: LinkStates

    init(port: PortID, queue: UInt16, capacity: Int, links: LinkStates) {
        self.port = port.rawValue
        self.queue = queue
        self.capacity = capacity
        self.links = links
        packets = .allocate(capacity: capacity)
    }

    @inline(__always)
    mutating func append(_ m: OpaquePointer, counters: CounterBlock) {
        packets[count] = m
        count &+= 1
        if count == capacity { send(counters: counters) }
    }

    @inline(__always)
    mutating func flush(counters: CounterBlock) {
        if count > 0 { send(counters: counters) }
    }

    /// Out of line: once a burst, and it keeps the callers' loops small.
    @inline(never)
    private mutating func send(counters: CounterBlock) {
        let sent = Int(rte_eth_tx_burst(port, queue, packets, UInt16(truncatingIfNeeded: count)))
        counters.add(.tx, sent)
        if sent < count {
            rte_pktmbuf_free_bulk(packets + sent, UInt32(count &- sent))
            counters.drop(links.dropReason(port: port), count &- sent)
        }
        count = 0
    }

    func deallocate() {
        precondition(count == 0, "flush before deallocating")
        packets.deallocate()
    }
}
