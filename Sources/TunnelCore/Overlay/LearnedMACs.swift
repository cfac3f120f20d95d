/// Inner MACs learnt from decapsulated traffic: which tunnel each was last seen
/// behind, as Linux's vxlan driver and a learning bridge keep them; and the local MACs of
/// EVPN segments, seen behind an access port.
///
/// Each entry owns a slot in `LearnedAges`, where the workers note when they last saw
/// the MAC arrive through its tunnel; `expire` removes the entries not seen for the ageing
/// time. Time is in learning ticks (`LearningClock`), passed in.
public struct LearnedMACs: Sendable {
    public struct Entry: Equatable, Sendable {
        /// The tunnel it was seen through; `nil` for a local MAC (behind an access port).
        public var tunnel: String?
        public var slot: Int
    }

    public enum Outcome: Equatable, Sendable {
        /// A MAC not known before.
        case added(slot: Int)
        /// The MAC was learnt behind another tunnel (`nil`: an access port): it has moved.
        case moved(slot: Int, from: String?)
        /// Already known behind this tunnel.
        case unchanged(slot: Int)
        /// Every slot is taken: the MAC stays unknown (and flooded to).
        case full
    }

    public private(set) var entries: [Overlay.MACKey: Entry] = [:]
    private var freeSlots: [Int]

    public init(capacity: Int) {
        freeSlots = Array((0..<capacity).reversed())
    }

    public var count: Int { entries.count }

    /// Local MACs among them.
    public var localCount: Int { entries.values.reduce(0) { $0 + ($1.tunnel == nil ? 1 : 0) } }

    public mutating func learn(_ key: Overlay.MACKey, tunnel: String?) -> Outcome {
        if var entry = entries[key] {
            guard entry.tunnel != tunnel else { return .unchanged(slot: entry.slot) }
            let from = entry.tunnel
            entry.tunnel = tunnel
            entries[key] = entry
            return .moved(slot: entry.slot, from: from)
        }
        guard let slot = freeSlots.popLast() else { return .full }
        entries[key] = Entry(tunnel: tunnel, slot: slot)
        return .added(slot: slot)
    }

    @discardableResult
    public mutating func forget(_ key: Overlay.MACKey) -> Entry? {
        guard let entry = entries.removeValue(forKey: key) else { return nil }
        freeSlots.append(entry.slot)
        return entry
    }

    /// Forgets the MACs learnt behind a tunnel that is going away; returns them.
    public mutating func forget(tunnel: String) -> [Overlay.MACKey] {
        let gone = entries.filter { $0.value.tunnel == tunnel }.map(\.key)
        for key in gone { forget(key) }
        entries.releaseSpareCapacity()
        return gone
    }

    /// Forgets the entries last seen more than `agingTicks` before `now`; `lastSeen`
    /// reads a slot's tick. Returns what was forgotten. A slot seen "after" `now` is
    /// fresh: a worker's clock may run ahead (a tick begun since `now` was read, or TSCs
    /// a little apart between cores).
    public mutating func expire(now: UInt64, agingTicks: UInt64, lastSeen: (Int) -> UInt64) -> [(key: Overlay.MACKey, entry: Entry)] {
        let stale = entries.filter {
            let seen = lastSeen($0.value.slot)
            return now > seen && now - seen > agingTicks
        }.map { (key: $0.key, entry: $0.value) }
        for (key, _) in stale { forget(key) }
        if !stale.isEmpty { entries.releaseSpareCapacity() }
        return stale
    }
}

/// The learning clock: the TSC shifted right by 28 bits, a tick of about 0.1 s at 2.6 GHz.
/// Workers read it from the TSC value they already hold, for free; only ordering and
/// differences matter.
public enum LearningClock {
    public static let shift: UInt64 = 28

    @inlinable @inline(__always)
    public static func tick(tsc: UInt64) -> UInt64 { tsc >> shift }

    /// How many ticks make `seconds` at `tscHz`.
    public static func ticks(seconds: Int, tscHz: UInt64) -> UInt64 {
        (UInt64(seconds) * tscHz) >> shift
    }

    /// How long `ticks` last at `tscHz`, in milliseconds.
    public static func milliseconds(ticks: UInt64, tscHz: UInt64) -> UInt64 {
        UInt64((Double(ticks << shift) * 1000 / Double(tscHz)).rounded())
    }
}
