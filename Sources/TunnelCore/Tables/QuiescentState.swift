import Atomics

/// Quiescent-state-based reclamation between one writer (the control core) and a fixed set
/// of readers (the workers), as DPDK's rte_rcu_qsbr and grout do it.
///
/// A reader reports, between two bursts, that it holds no pointer into shared tables; the
/// writer frees what it unpublished once every reader has reported since. The only cost on
/// the hot path is, per loop iteration, a load of the writer's epoch (a line only the writer
/// changes, and rarely) and a store into the reader's own cache line.
public struct QuiescentState: @unchecked Sendable {
    /// One reader's last seen epoch, alone in its cache line so readers never share one.
    @usableFromInline
    struct ReaderSlot {
        @usableFromInline var seen: AtomicWord
        var padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    }

    /// A reader that has stopped holds nothing and never blocks reclamation.
    public static let offline = UInt64.max

    @usableFromInline let epoch: UnsafeMutablePointer<AtomicWord>
    @usableFromInline let readers: UnsafeMutablePointer<ReaderSlot>
    public let readerCount: Int
    private let base: UnsafeMutableRawPointer

    public static func allocate(readers: Int) -> QuiescentState {
        QuiescentState(readerCount: readers)
    }

    private init(readerCount: Int) {
        self.readerCount = readerCount
        base = .allocate(byteCount: 64 * (readerCount + 1), alignment: 64)
        epoch = base.bindMemory(to: AtomicWord.self, capacity: 1)
        epoch.initialize(to: .init(1))
        readers = (base + 64).bindMemory(to: ReaderSlot.self, capacity: readerCount)
        // Readers start offline: a worker that has not started cannot hold anything.
        readers.initialize(repeating: ReaderSlot(seen: .init(Self.offline)), count: readerCount)
    }

    public func deallocate() {
        base.deallocate()
    }

    /// Reader `reader` holds no shared pointer now (call between bursts).
    @inlinable @inline(__always)
    public func reportQuiescent(reader: Int) {
        let now = AtomicWord.atomicLoad(at: epoch, ordering: .acquiring)
        AtomicWord.atomicStore(now, at: pointerToSeen(reader), ordering: .releasing)
    }

    /// Reader `reader` goes online: from now on it may hold shared pointers.
    ///
    /// Unlike a quiescent report, this needs a store-load barrier (as DPDK's
    /// `rte_rcu_qsbr_thread_online` has): without it the reader's first load of a shared
    /// pointer may be performed before its store is visible, and a writer that still sees
    /// it offline could free what it just loaded.
    public func goOnline(reader: Int) {
        let now = AtomicWord.atomicLoad(at: epoch, ordering: .relaxed)
        AtomicWord.atomicStore(now, at: pointerToSeen(reader), ordering: .relaxed)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    /// Reader `reader` stops reading for good (or for a while).
    public func goOffline(reader: Int) {
        AtomicWord.atomicStore(Self.offline, at: pointerToSeen(reader), ordering: .releasing)
    }

    /// Writer: starts a new epoch after unpublishing something; returns the epoch that
    /// every reader must reach before it may be freed.
    public func advance() -> UInt64 {
        AtomicWord.atomicLoadThenWrappingIncrement(at: epoch, ordering: .sequentiallyConsistent) + 1
    }

    /// Writer: true when every reader has reported quiescence in `epoch` or later.
    public func allReaders(havePassed epoch: UInt64) -> Bool {
        (0..<readerCount).allSatisfy {
            AtomicWord.atomicLoad(at: pointerToSeen($0), ordering: .acquiring) >= epoch
        }
    }

    @usableFromInline @inline(__always)
    func pointerToSeen(_ reader: Int) -> UnsafeMutablePointer<AtomicWord> {
        UnsafeMutableRawPointer(readers + reader).assumingMemoryBound(to: AtomicWord.self)
    }
}
