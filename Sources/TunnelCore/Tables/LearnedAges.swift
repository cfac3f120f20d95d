import Atomics

/// When each learnt MAC was last seen, in learning ticks, one word per `LearnedMACs`
/// slot. Workers write a slot at most once a tick (only when the tick has changed), so a
/// MAC that keeps arriving costs one shared store per tick, not one per packet; the
/// control core reads them to age entries out.
public struct LearnedAges: @unchecked Sendable {
    @usableFromInline
    let words: UnsafeMutablePointer<AtomicWord>

    public static func allocate(capacity: Int) -> LearnedAges {
        let words = UnsafeMutablePointer<AtomicWord>.allocate(capacity: capacity)
        words.initialize(repeating: .init(0), count: capacity)
        return LearnedAges(words: words)
    }

    public func deallocate() {
        words.deallocate()
    }

    @inlinable @inline(__always)
    public func touch(_ slot: Int, tick: UInt64) {
        if AtomicWord.atomicLoad(at: words + slot, ordering: .relaxed) != tick {
            AtomicWord.atomicStore(tick, at: words + slot, ordering: .relaxed)
        }
    }

    public func lastSeen(_ slot: Int) -> UInt64 {
        AtomicWord.atomicLoad(at: words + slot, ordering: .relaxed)
    }
}
