/// Hands out next-hop slots of the data plane's `NextHopTable`.
///
/// A released slot is quarantined before reuse: a worker may still hold buffered packets
/// addressed to it, and those must never leave with a different next hop's MAC. The
/// quarantine outlasts the pending-packet lifetime.
public struct NextHopAllocator: Sendable {
    public let capacity: Int
    private let quarantineMs: UInt64
    private var neverUsed: UInt32 = 0
    private var free: [NextHopID] = []
    private var quarantined: [(id: NextHopID, releasedAt: UInt64)] = []

    public init(capacity: Int, quarantineMs: UInt64) {
        self.capacity = capacity
        self.quarantineMs = quarantineMs
    }

    /// A slot, or `nil` when every slot is in use or quarantined.
    public mutating func allocate(nowMs: UInt64) -> NextHopID? {
        while let first = quarantined.first, nowMs &- first.releasedAt >= quarantineMs {
            free.append(first.id)
            quarantined.removeFirst()
        }
        if let id = free.popLast() { return id }
        guard Int(neverUsed) < capacity else { return nil }
        defer { neverUsed += 1 }
        return NextHopID(rawValue: neverUsed)
    }

    public mutating func release(_ id: NextHopID, nowMs: UInt64) {
        quarantined.append((id, nowMs))
    }
}
