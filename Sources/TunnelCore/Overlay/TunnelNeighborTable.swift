/// The next hops that configured tunnels need (mechanism 1, proactive resolution): for each, the
/// data-plane slot that holds its MAC and the tunnels that use it. Several tunnels share
/// an entry; the last one to go removes it.
public struct TunnelNeighborTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public let address: IPv4Address
        public let id: NextHopID
        /// Names of the tunnels whose outer next hop this is.
        public fileprivate(set) var tunnels: Set<String>
    }

    public enum AttachResult: Sendable, Equatable {
        /// The next hop was already in the table.
        case shared(NextHopID)
        /// A new entry: resolve it at once.
        case added(NextHopID)
        /// No slot free.
        case full
    }

    public private(set) var entries: [IPv4Address: Entry] = [:]
    private var addressByID: [NextHopID: IPv4Address] = [:]
    private var allocator: SlotAllocator

    public init(allocator: SlotAllocator) {
        self.allocator = allocator
    }

    public var count: Int { entries.count }

    public subscript(address: IPv4Address) -> Entry? { entries[address] }

    public func address(of id: NextHopID) -> IPv4Address? { addressByID[id] }

    public mutating func attach(tunnel: String, nextHop: IPv4Address, nowMs: UInt64) -> AttachResult {
        if let entry = entries[nextHop] {
            entries[nextHop]!.tunnels.insert(tunnel)
            return .shared(entry.id)
        }
        guard let slot = allocator.allocate(nowMs: nowMs) else { return .full }
        let id = NextHopID(rawValue: slot)
        entries[nextHop] = Entry(address: nextHop, id: id, tunnels: [tunnel])
        addressByID[id] = nextHop
        return .added(id)
    }

    /// Removes `tunnel` from its next hop's users; returns the entry when that was the
    /// last user and the entry is gone.
    @discardableResult
    public mutating func detach(tunnel: String, nextHop: IPv4Address, nowMs: UInt64) -> Entry? {
        guard var entry = entries[nextHop] else { return nil }
        entry.tunnels.remove(tunnel)
        guard entry.tunnels.isEmpty else {
            entries[nextHop] = entry
            return nil
        }
        entries[nextHop] = nil
        addressByID[entry.id] = nil
        entries.releaseSpareCapacity()
        addressByID.releaseSpareCapacity()
        allocator.release(entry.id.rawValue, nowMs: nowMs)
        return entry
    }
}
