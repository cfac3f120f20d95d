import Atomics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a forwarding entry sends a frame, as the workers read it.
public struct MACRoute: Equatable, Sendable {
    public var tunnel: TunnelIndex
    /// The entry's slot in `LearnedAges` when it was learnt; `nil` otherwise.
    public var learnedSlot: Int?

    public init(tunnel: TunnelIndex, learnedSlot: Int? = nil) {
        self.tunnel = tunnel
        self.learnedSlot = learnedSlot
    }

    /// Tunnel index + 1 in bits 31…0, learnt slot + 1 in bits 63…32: never 0.
    @inlinable @inline(__always)
    var word: UInt64 {
        UInt64(tunnel.rawValue &+ 1) | UInt64(learnedSlot.map { UInt32($0) &+ 1 } ?? 0) << 32
    }

    @inlinable @inline(__always)
    init(word: UInt64) {
        let slot = UInt32(truncatingIfNeeded: word >> 32)
        self.init(tunnel: TunnelIndex(rawValue: UInt32(truncatingIfNeeded: word) &- 1),
                  learnedSlot: slot == 0 ? nil : Int(slot &- 1))
    }
}

/// How the workers read a `MACTable`: trivial values only, so that a lookup does no
/// reference counting. Valid while the snapshot that holds it is.
public struct MACTableReader: @unchecked Sendable {
    /// Two words a bucket: the key (segment index in bits 63…48, MAC below; 0 marks a
    /// bucket never used, as no entry has a zero MAC), then a `MACRoute` word (0 for a
    /// removed entry).
    @usableFromInline let words: UnsafeMutablePointer<AtomicWord>
    @usableFromInline let mask: Int
    @usableFromInline let shift: UInt64

    /// The key of an inner MAC in a segment: segment index in bits 63…48, MAC below.
    @inlinable @inline(__always)
    public static func key(segment: UInt16, mac: MACAddress) -> UInt64 {
        UInt64(segment) << 48 | mac.rawValue
    }

    /// Fibonacci hashing: the multiply spreads the MAC's low (vendor-assigned) bits over
    /// the top bits, which select the bucket.
    @inlinable @inline(__always)
    func index(of key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) &>> shift)
    }

    @inlinable @inline(__always)
    func keyWord(_ bucket: Int) -> UnsafeMutablePointer<AtomicWord> { words + (2 &* bucket) }

    @inlinable @inline(__always)
    func routeWord(_ bucket: Int) -> UnsafeMutablePointer<AtomicWord> { words + (2 &* bucket &+ 1) }

    /// Whether the table is small enough (16 KiB) to stay in the L1 cache, where
    /// prefetching its buckets costs instructions and saves nothing.
    @inlinable
    public var fitsInL1Cache: Bool { mask < 1024 }

    /// Where the bucket for `key` starts, to prefetch.
    @inlinable @inline(__always)
    public func bucketAddress(key: UInt64) -> UnsafeRawPointer {
        UnsafeRawPointer(keyWord(index(of: key)))
    }

    /// The route of `key`, or `nil`. Safe against the writer at any time.
    @inlinable @inline(__always)
    public func route(key: UInt64) -> MACRoute? {
        var i = index(of: key)
        while true {
            let found = AtomicWord.atomicLoad(at: keyWord(i), ordering: .acquiring)
            if found == key {
                let word = AtomicWord.atomicLoad(at: routeWord(i), ordering: .relaxed)
                return word == 0 ? nil : MACRoute(word: word)
            }
            if found == 0 { return nil }
            i = (i &+ 1) & mask
        }
    }
}

/// The inner-MAC forwarding table: (segment index, MAC) → route. The control core changes
/// entries in place while the workers read it, so that adding or withdrawing one MAC
/// costs one bucket, not a copy of the table.
///
/// Open addressing with linear probes; one writer, readers without locks. A new key is
/// written route first, then key with release order, so a reader that sees the key sees
/// its route; a route changes with one atomic store. A removed entry keeps its key with a
/// zero route (a tombstone), since probe chains must stay intact under readers, and only
/// that same key may fill it again: a bucket never changes key while it is in use.
/// Tombstones are cleared by copying the table (`rebuilt`), which the caller publishes in
/// a snapshot; the old table is freed with the last snapshot that used it.
public final class MACTable: @unchecked Sendable {
    public let reader: MACTableReader
    private let size: Int
    public var bucketCount: Int { reader.mask + 1 }
    /// Entries with a route.
    public private(set) var count = 0
    /// Buckets with a key: entries and tombstones.
    public private(set) var used = 0

    /// A table for at least `capacity` entries at a load of at most one half.
    public init(capacity: Int) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        size = MemoryLayout<AtomicWord>.stride * 2 * n
        // Mapped, so that a table given back returns its memory to the system whole, and
        // starts zeroed (every bucket empty).
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { fatalError("cannot map \(size) bytes for a MAC table") }
        reader = MACTableReader(words: mapped.bindMemory(to: AtomicWord.self, capacity: 2 * n), mask: n - 1,
                                shift: UInt64(64 - n.trailingZeroBitCount))
    }

    deinit {
        munmap(reader.words, size)
    }

    public func route(key: UInt64) -> MACRoute? { reader.route(key: key) }

    /// Whether `set` of a new key would load the table past one half: the caller must
    /// rebuild first.
    public var isFull: Bool { (used + 1) * 2 > bucketCount }

    /// Sets the route of `key` (control core only). Returns false, changing nothing, for
    /// a key not in the table when it `isFull`.
    @discardableResult
    public func set(_ key: UInt64, _ route: MACRoute) -> Bool {
        precondition(key != 0, "key 0 marks an empty bucket")
        var i = reader.index(of: key)
        while true {
            let found = AtomicWord.atomicLoad(at: reader.keyWord(i), ordering: .relaxed)
            if found == key {
                if AtomicWord.atomicLoad(at: reader.routeWord(i), ordering: .relaxed) == 0 { count += 1 }
                AtomicWord.atomicStore(route.word, at: reader.routeWord(i), ordering: .releasing)
                return true
            }
            if found == 0 {
                guard !isFull else { return false }
                AtomicWord.atomicStore(route.word, at: reader.routeWord(i), ordering: .relaxed)
                AtomicWord.atomicStore(key, at: reader.keyWord(i), ordering: .releasing)
                count += 1
                used += 1
                return true
            }
            i = (i + 1) & reader.mask
        }
    }

    /// Removes the entry of `key`, if any (control core only).
    public func remove(_ key: UInt64) {
        var i = reader.index(of: key)
        while true {
            let found = AtomicWord.atomicLoad(at: reader.keyWord(i), ordering: .relaxed)
            if found == 0 { return }
            if found == key {
                if AtomicWord.atomicLoad(at: reader.routeWord(i), ordering: .relaxed) != 0 {
                    AtomicWord.atomicStore(0, at: reader.routeWord(i), ordering: .releasing)
                    count -= 1
                }
                return
            }
            i = (i + 1) & reader.mask
        }
    }

    /// Every entry, in bucket order.
    public var entries: [(key: UInt64, route: MACRoute)] {
        (0..<bucketCount).compactMap { i in
            let key = AtomicWord.atomicLoad(at: reader.keyWord(i), ordering: .relaxed)
            let word = AtomicWord.atomicLoad(at: reader.routeWord(i), ordering: .relaxed)
            return key == 0 || word == 0 ? nil : (key, MACRoute(word: word))
        }
    }

    /// A copy without tombstones, with room for as many entries again as it holds, and
    /// at least `room` more: copies are then rare, one per doubling or once removals have
    /// filled half the buckets.
    public func rebuilt(room: Int = 1) -> MACTable {
        let copy = MACTable(capacity: max(count * 2, count + room))
        for (key, route) in entries { copy.set(key, route) }
        return copy
    }
}
