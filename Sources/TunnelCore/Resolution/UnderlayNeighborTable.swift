/// The state of an underlay neighbor, after Linux's NUD states.
public enum NeighborState: String, Sendable {
    /// A request went out; no answer yet.
    case incomplete
    /// Confirmed by a reply to our request within `reachable_ms`.
    case reachable
    /// Learnt from the neighbor's own request, or not confirmed lately: usable.
    case stale
    /// Being re-probed with unicast requests; still used for forwarding meanwhile.
    case probe
    /// Requests or probes went unanswered. Not usable; still retried if a tunnel needs it.
    case failed
    /// A static entry from the configuration.
    case permanent

    /// Whether its MAC may be put in outer headers.
    public var isUsable: Bool {
        switch self {
        case .reachable, .stale, .probe, .permanent: true
        case .incomplete, .failed: false
        }
    }
}

/// One IPv4 neighbor on the uplink's link.
public struct UnderlayNeighbor: Sendable, Equatable {
    public var mac: MACAddress?
    public var state: NeighborState
    /// When the entry last changed state or was confirmed (control clock, ms).
    public var updatedMs: UInt64

    public var usableMAC: MACAddress? { state.isUsable ? mac : nil }
}

/// IPv4 address → MAC of the neighbors seen on the uplink (the underlay neighbor
/// table), with the rule that keeps it trustworthy: an ARP reply only ever updates an
/// entry we asked for or already hold (Linux's `arp_accept=0`).
public struct UnderlayNeighborTable: Sendable {
    public private(set) var entries: [IPv4Address: UnderlayNeighbor] = [:]
    /// Static entries among `entries`: they never age and are not learnt.
    public private(set) var staticCount = 0

    public init() {}

    public subscript(address: IPv4Address) -> UnderlayNeighbor? { entries[address] }

    public var count: Int { entries.count }

    public mutating func setStatic(_ address: IPv4Address, mac: MACAddress, nowMs: UInt64) {
        if entries[address]?.state != .permanent { staticCount += 1 }
        entries[address] = UnderlayNeighbor(mac: mac, state: .permanent, updatedMs: nowMs)
    }

    /// Starts resolving `address` unless an entry exists already.
    public mutating func markIncomplete(_ address: IPv4Address, nowMs: UInt64) {
        if entries[address] == nil {
            entries[address] = UnderlayNeighbor(mac: nil, state: .incomplete, updatedMs: nowMs)
        }
    }

    /// Sets the state of an existing, non-static entry; returns whether anything changed.
    @discardableResult
    public mutating func setState(_ address: IPv4Address, _ state: NeighborState, nowMs: UInt64) -> Bool {
        guard var entry = entries[address], entry.state != .permanent, entry.state != state else { return false }
        entry.state = state
        entry.updatedMs = nowMs
        entries[address] = entry
        return true
    }

    /// A reply from `address`: confirms or updates an existing entry; an unsolicited one
    /// (no entry) is ignored. Returns whether the entry was taken.
    public mutating func confirm(_ address: IPv4Address, mac: MACAddress, nowMs: UInt64) -> Bool {
        guard var entry = entries[address], entry.state != .permanent else { return false }
        entry.mac = mac
        entry.state = .reachable
        entry.updatedMs = nowMs
        entries[address] = entry
        return true
    }

    /// The neighbor asked for our address: its own binding is then known (RFC 826's merge
    /// step). A new or changed binding is stale until confirmed; a known one is kept.
    public mutating func learn(_ address: IPv4Address, mac: MACAddress, nowMs: UInt64) -> Bool {
        if let entry = entries[address] {
            if entry.state == .permanent || (entry.mac == mac && entry.state.isUsable) { return false }
        }
        entries[address] = UnderlayNeighbor(mac: mac, state: .stale, updatedMs: nowMs)
        return true
    }

    /// Drops every learnt entry (static ones stay); returns the addresses removed.
    public mutating func flush() -> [IPv4Address] {
        let removed = entries.compactMap { $0.value.state == .permanent ? nil : $0.key }
        for address in removed { entries[address] = nil }
        entries.releaseSpareCapacity()
        return removed
    }

    /// Removes entries no tunnel needs that have not been confirmed for `maxAgeMs`, in
    /// place (no copy of the table).
    public mutating func expire(olderThan maxAgeMs: UInt64, nowMs: UInt64, keeping needed: (IPv4Address) -> Bool) {
        let old = entries.compactMap { address, entry in
            entry.state == .permanent || needed(address) || nowMs &- entry.updatedMs < maxAgeMs ? nil : address
        }
        for address in old { entries[address] = nil }
        entries.releaseSpareCapacity()
    }
}
