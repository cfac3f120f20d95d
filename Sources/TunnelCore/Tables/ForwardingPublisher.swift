import Atomics

/// Hands forwarding snapshots from the control core to the workers.
///
/// The control core publishes a new snapshot with one atomic pointer store; workers load
/// the pointer once per burst. A replaced snapshot is kept until every worker has passed
/// a quiescent point, then freed (`reclaim`). Only the control core calls the mutating
/// methods.
public final class ForwardingPublisher: @unchecked Sendable {
    private let slot: UnsafeMutablePointer<AtomicPointer>
    public let quiescentState: QuiescentState
    private var current: ForwardingSnapshot
    private var retired: [(snapshot: ForwardingSnapshot, epoch: UInt64)] = []

    public init(initial: ForwardingSnapshot, readers: Int) {
        slot = .allocate(capacity: 1)
        slot.initialize(to: .init(UnsafeRawPointer(initial.view)))
        quiescentState = .allocate(readers: readers)
        current = initial
    }

    /// What workers read the current snapshot through.
    public var reader: ForwardingReader { ForwardingReader(slot: slot) }

    /// Makes `snapshot` the one workers use from their next burst on; returns the epoch
    /// after which no worker uses the previous one (`quiescentState.allReaders(havePassed:)`).
    @discardableResult
    public func publish(_ snapshot: ForwardingSnapshot) -> UInt64 {
        AtomicPointer.atomicStore(
            UnsafeRawPointer(snapshot.view), at: slot, ordering: .releasing)
        let epoch = quiescentState.advance()
        retired.append((current, epoch))
        current = snapshot
        return epoch
    }

    /// Frees the snapshots no worker can still be reading; returns how many are left.
    @discardableResult
    public func reclaim() -> Int {
        retired.removeAll { quiescentState.allReaders(havePassed: $0.epoch) }
        return retired.count
    }

    /// The snapshot the control core last published.
    public var view: UnsafePointer<ForwardingView> { current.view }

    /// Only once the workers have stopped.
    deinit {
        slot.deallocate()
        quiescentState.deallocate()
    }
}

/// A worker's handle on the published snapshot: a trivial value, free to copy into the
/// worker's own state.
public struct ForwardingReader: @unchecked Sendable {
    @usableFromInline let slot: UnsafeMutablePointer<AtomicPointer>

    /// The snapshot to use for this burst. Valid until the caller reports quiescence.
    @inlinable @inline(__always)
    public func load() -> UnsafePointer<ForwardingView> {
        let raw = AtomicPointer.atomicLoad(at: slot, ordering: .acquiring)
        return raw.unsafelyUnwrapped.assumingMemoryBound(to: ForwardingView.self)
    }
}
