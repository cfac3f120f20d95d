/// Hands out slots of a data-plane table: next hops (`NextHopTable`) and tunnels
/// (`TunnelTable`).
///
/// A released slot is quarantined before reuse: a worker may still hold it (a tunnel
/// index for the rest of a burst, buffered packets addressed to a next hop), and those
/// must never reach another tunnel or leave with another next hop's MAC. The quarantine
/// outlasts that.
public struct SlotAllocator: Sendable {
    public let capacity: Int
    private let quarantineMs: UInt64
    private var neverUsed: UInt32 = 0
    private var free: [UInt32] = []
    private var quarantined: [(slot: UInt32, releasedAt: UInt64)] = []

    public init(capacity: Int, quarantineMs: UInt64) {
        self.capacity = capacity
        self.quarantineMs = quarantineMs
    }

    /// A slot, or `nil` when every slot is in use or quarantined.
    public mutating func allocate(nowMs: UInt64) -> UInt32? {
        while let first = quarantined.first, nowMs &- first.releasedAt >= quarantineMs {
            free.append(first.slot)
            quarantined.removeFirst()
        }
        if let slot = free.popLast() { return slot }
        guard Int(neverUsed) < capacity else { return nil }
        defer { neverUsed += 1 }
        return neverUsed
    }

    public mutating func release(_ slot: UInt32, nowMs: UInt64) {
        quarantined.append((slot, nowMs))
    }
}
