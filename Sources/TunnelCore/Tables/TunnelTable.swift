#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The tunnels as the workers see them: one `TunnelEntry` per slot, a tunnel's slot
/// (its `TunnelIndex`) fixed for its whole life, so that adding or removing one tunnel
/// writes one entry and copies no other.
///
/// The control core writes a slot only while nothing the workers read refers to it: when
/// its tunnel is added, before any snapshot or MAC entry names it. A deleted tunnel's slot
/// is quarantined before reuse (`SlotAllocator`), as a worker may still hold its index
/// for the rest of a burst.
public final class TunnelTable: @unchecked Sendable {
    public let entries: UnsafeMutablePointer<TunnelEntry>
    public let capacity: Int
    private let size: Int

    public init(capacity: Int) {
        self.capacity = capacity
        size = max(MemoryLayout<TunnelEntry>.stride * capacity, 1)
        // Mapped: a slot costs memory only once written.
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { fatalError("cannot map \(size) bytes for the tunnel table") }
        entries = mapped.bindMemory(to: TunnelEntry.self, capacity: capacity)
    }

    deinit {
        munmap(entries, size)
    }

    public subscript(index: TunnelIndex) -> TunnelEntry {
        get { entries[Int(index.rawValue)] }
        set {
            precondition(Int(index.rawValue) < capacity, "tunnel slot \(index.rawValue) beyond the table")
            entries[Int(index.rawValue)] = newValue
        }
    }
}
