/// Mechanism 2: one worker's buffer of packets whose next hop had no MAC.
///
/// A FIFO ring bounded per core (`pending.per_core`) and per next hop
/// (`pending.per_neighbor`). Packets wait encapsulated but for the outer destination MAC.
/// When a next hop resolves, its packets leave in arrival order, and while any packet of
/// a next hop waits, later ones join the queue behind it (`isWaiting`), so none overtakes.
/// A packet still waiting at its deadline is freed and counted (`expired`).
///
/// When a bound is hit the *arriving* packet is dropped (tail drop, as grout does): the
/// waiting ones are older, nearer their flush, and dropping them would break the ring's
/// order. The mbuf pool is sized for a full buffer on every worker, so buffering can
/// never starve reception.
///
/// Owned by one worker; no synchronisation. Packets are opaque pointers (mbufs in the
/// forwarder, fakes in tests). Times are in any monotonic unit (TSC cycles in the worker).
public struct PendingBuffer {
    public struct Entry {
        public var packet: UnsafeMutableRawPointer
        public var nextHop: NextHopID
        public var deadline: UInt64
    }

    public enum Admission: Equatable {
        /// Buffered; `isFirst` when no packet of this next hop was waiting (the caller
        /// then asks the control core to resolve it).
        case buffered(isFirst: Bool)
        case perCoreFull
        case perNeighborFull
    }

    private let ring: UnsafeMutablePointer<Entry>
    private let mask: Int
    private var head = 0
    private var tail = 0
    /// Waiting packets per next hop, indexed by `NextHopID`.
    private let waiting: UnsafeMutablePointer<UInt32>
    /// Per next hop, the last drain pass that kept one of its packets: its later packets
    /// stay behind that one for the rest of the pass, even if its MAC arrives meanwhile.
    private let keptInPass: UnsafeMutablePointer<UInt32>
    /// Per next hop, the last drain pass that sent one of its packets: that pass sends all
    /// of them, past its limit, so that none is left behind for new ones to queue after.
    private let sentInPass: UnsafeMutablePointer<UInt32>
    private var pass: UInt32 = 0
    public let nextHopCapacity: Int
    public let perCore: Int
    public let perNeighbor: UInt32

    public init(perCore: Int, perNeighbor: Int, nextHopCapacity: Int) {
        precondition(perCore > 0 && perNeighbor > 0 && nextHopCapacity > 0)
        var size = 1
        while size < perCore { size <<= 1 }
        ring = .allocate(capacity: size)
        mask = size - 1
        waiting = .allocate(capacity: nextHopCapacity)
        waiting.initialize(repeating: 0, count: nextHopCapacity)
        keptInPass = .allocate(capacity: nextHopCapacity)
        keptInPass.initialize(repeating: 0, count: nextHopCapacity)
        sentInPass = .allocate(capacity: nextHopCapacity)
        sentInPass.initialize(repeating: 0, count: nextHopCapacity)
        self.nextHopCapacity = nextHopCapacity
        self.perCore = perCore
        self.perNeighbor = UInt32(perNeighbor)
    }

    /// Frees the buffer's own memory; the packets must have been drained first.
    public func deallocate() {
        precondition(isEmpty, "drain the pending buffer before deallocating it")
        ring.deallocate()
        waiting.deallocate()
        keptInPass.deallocate()
        sentInPass.deallocate()
    }

    public var count: Int { tail &- head }
    public var isEmpty: Bool { head == tail }

    /// Packets waiting for `nextHop`.
    @inlinable @inline(__always)
    public func waitingCount(_ nextHop: NextHopID) -> Int { Int(waitingPointer[Int(nextHop.rawValue)]) }

    /// Whether packets of `nextHop` wait: then a new one must queue behind them even if
    /// the next hop has resolved meanwhile.
    @inlinable @inline(__always)
    public func isWaiting(_ nextHop: NextHopID) -> Bool { waitingPointer[Int(nextHop.rawValue)] != 0 }

    @usableFromInline var waitingPointer: UnsafeMutablePointer<UInt32> { waiting }

    /// What another thread (the control core's reports) may read of this buffer.
    public var counts: PendingCounts { PendingCounts(waiting: waiting) }

    /// The earliest deadline: the head's, since all packets get the same lifetime.
    public var earliestDeadline: UInt64? { isEmpty ? nil : ring[head & mask].deadline }

    public mutating func enqueue(_ packet: UnsafeMutableRawPointer, nextHop: NextHopID, deadline: UInt64) -> Admission {
        let waitingNow = waiting[Int(nextHop.rawValue)]
        guard count < perCore else { return .perCoreFull }
        guard waitingNow < perNeighbor else { return .perNeighborFull }
        ring[tail & mask] = Entry(packet: packet, nextHop: nextHop, deadline: deadline)
        tail &+= 1
        waiting[Int(nextHop.rawValue)] = waitingNow + 1
        return .buffered(isFirst: waitingNow == 0)
    }

    /// Walks the buffer once in arrival order: packets whose next hop now has a MAC go to
    /// `send`, packets past their deadline to `expire`, the rest stay, in order.
    ///
    /// Once `limit` packets are sent, the walk starts no further next hop, so that a large
    /// buffer leaves over several loop iterations and the worker keeps receiving
    /// meanwhile; but a next hop it has started sending leaves whole. Otherwise new
    /// packets for it, which must queue behind the ones left, could arrive faster than
    /// walks drain it, and it would never leave the buffer. Returns false when the walk
    /// left resolved packets because of the limit (walk again).
    @discardableResult
    public mutating func drain(
        now: UInt64,
        limit: Int = .max,
        resolvedMAC: (NextHopID) -> MACAddress?,
        send: (Entry, MACAddress) -> Void,
        expire: (Entry) -> Void
    ) -> Bool {
        // `resolvedMAC` may read a table that changes during the walk.
        pass &+= 1
        if pass == 0 {
            keptInPass.update(repeating: 0, count: nextHopCapacity)
            sentInPass.update(repeating: 0, count: nextHopCapacity)
            pass = 1
        }
        var kept = head
        var i = head
        var sent = 0
        var complete = true
        while i != tail {
            let entry = ring[i & mask]
            let hop = Int(entry.nextHop.rawValue)
            if keptInPass[hop] != pass, let mac = resolvedMAC(entry.nextHop) {
                if sent < limit || sentInPass[hop] == pass {
                    sentInPass[hop] = pass
                    waiting[hop] -= 1
                    send(entry, mac)
                    sent += 1
                    i &+= 1
                    continue
                }
                complete = false
            }
            if entry.deadline <= now {
                waiting[hop] -= 1
                expire(entry)
            } else {
                keptInPass[hop] = pass
                ring[kept & mask] = entry
                kept &+= 1
            }
            i &+= 1
        }
        // Survivors were moved down to `head..<kept`; the ring now ends there.
        tail = kept
        return complete
    }

    /// Hands every waiting packet to `release` and empties the buffer (at shutdown).
    public mutating func removeAll(_ release: (Entry) -> Void) {
        while head != tail {
            let entry = ring[head & mask]
            waiting[Int(entry.nextHop.rawValue)] -= 1
            release(entry)
            head &+= 1
        }
    }

    /// Packets waiting per next hop.
    public func occupancy() -> [(NextHopID, Int)] {
        (0..<nextHopCapacity).compactMap { i in waiting[i] == 0 ? nil : (NextHopID(rawValue: UInt32(i)), Int(waiting[i])) }
    }
}

/// Packets waiting per next hop in one worker's pending buffer, read from another
/// thread: each count is one aligned word, read whole, but counts read one after the
/// other are not a snapshot of one instant.
public struct PendingCounts: @unchecked Sendable {
    let waiting: UnsafeMutablePointer<UInt32>

    public func waitingCount(_ nextHop: NextHopID) -> Int { Int(waiting[Int(nextHop.rawValue)]) }
}
