import Atomics

/// Identifies a next hop (a tunnel neighbor) in the data plane's next-hop table. Slots are
/// stable for as long as any tunnel or buffered packet may refer to them.
public struct NextHopID: Hashable, Sendable, Comparable {
    public let rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static func < (a: NextHopID, b: NextHopID) -> Bool { a.rawValue < b.rawValue }
}

/// The next hops' MAC addresses as the workers see them: one 64-bit word per next hop,
/// the MAC in the low 48 bits and a "resolved" flag in bit 63.
///
/// Only the control core writes; workers read with one plain (relaxed) load per run of packets to a next hop,
/// so an entry changes atomically and no lock or fence is on the hot path. A next hop
/// that is being refreshed keeps its resolved word until a failed probe series clears it.
public struct NextHopTable: @unchecked Sendable {
    @usableFromInline
    static let resolvedBit: UInt64 = 1 << 63

    @usableFromInline
    let words: UnsafeMutablePointer<AtomicWord>
    public let capacity: Int

    /// Allocates a table of `capacity` unresolved entries. The caller owns the memory
    /// and calls `deallocate()` once no worker can read it any more.
    public static func allocate(capacity: Int) -> NextHopTable {
        let words = UnsafeMutablePointer<AtomicWord>.allocate(capacity: capacity)
        words.initialize(repeating: .init(0), count: capacity)
        return NextHopTable(words: words, capacity: capacity)
    }

    public func deallocate() {
        words.deallocate()
    }

    /// The next hop's MAC and whether it is resolved, from one load; the MAC is zero
    /// until it is. The hot path writes the MAC first and decides later.
    @inlinable @inline(__always)
    public func destination(_ id: NextHopID) -> (mac: MACAddress, isResolved: Bool) {
        let word = AtomicWord.atomicLoad(at: words + Int(id.rawValue), ordering: .relaxed)
        return (MACAddress(rawValue: word), word & Self.resolvedBit != 0)
    }

    /// The MAC to put in the outer header, or `nil` while the next hop is unresolved.
    @inlinable @inline(__always)
    public func resolvedMAC(_ id: NextHopID) -> MACAddress? {
        let destination = destination(id)
        return destination.isResolved ? destination.mac : nil
    }

    /// Publishes a resolved MAC (control core only).
    public func setResolved(_ id: NextHopID, mac: MACAddress) {
        AtomicWord.atomicStore(mac.rawValue | Self.resolvedBit, at: words + Int(id.rawValue), ordering: .releasing)
    }

    /// Marks a next hop unresolved: workers buffer its packets from now on (control core only).
    public func setUnresolved(_ id: NextHopID) {
        AtomicWord.atomicStore(0, at: words + Int(id.rawValue), ordering: .releasing)
    }
}
