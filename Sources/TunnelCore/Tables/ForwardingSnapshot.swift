#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a forwarding snapshot is built from: plain Swift values, assembled by the control
/// plane from its overlay model.
public struct ForwardingPlan: Sendable {
    public struct MACEntry: Sendable {
        public var segment: UInt16
        public var mac: MACAddress
        public var tunnel: TunnelIndex
        /// The entry's slot in `LearnedAges` when it was learnt; `nil` for a static one.
        public var learnedSlot: Int?

        public init(segment: UInt16, mac: MACAddress, tunnel: TunnelIndex, learnedSlot: Int? = nil) {
            self.segment = segment
            self.mac = mac
            self.tunnel = tunnel
            self.learnedSlot = learnedSlot
        }
    }

    /// The segments' VNIs; a segment's index in this array is its index everywhere else.
    public var segments: [VNI] = []
    /// Flood list per segment index (same count as `segments`).
    public var flood: [[TunnelIndex]] = []
    /// Access ports per segment index that decapsulated frames go to (same count).
    public var deliveries: [[AccessDelivery]] = []
    public var decapsulationPorts = DecapsulationPorts()
    /// Access binding per DPDK port id.
    public var access: [UInt16: AccessBinding] = [:]
    public var tunnels: [TunnelEntry] = []
    public var macs: [MACEntry] = []
    /// Per segment index, the remotes its tunnel packets may come from.
    public var sources: [(segment: UInt16, remote: IPv4Address)] = []
    public var acceptsAnySource = false

    public init() {}
}

/// Owns one immutable `ForwardingView` and the arrays behind it, in a single allocation.
///
/// The control core owns it; `ForwardingPublisher` keeps a replaced snapshot alive until
/// the workers are done with it.
public final class ForwardingSnapshot: @unchecked Sendable {
    public let view: UnsafePointer<ForwardingView>
    private let base: UnsafeMutableRawPointer
    private let size: Int

    /// Port ids up to this value can be access ports (DPDK's RTE_MAX_ETHPORTS is 32 here).
    public static let accessCapacity = 64

    public init(_ plan: ForwardingPlan) {
        precondition(plan.flood.count == plan.segments.count, "one flood list per segment")
        precondition(plan.deliveries.count == plan.segments.count, "one delivery list per segment")
        precondition(plan.segments.count < Int(UInt16.max), "segment indexes are 16-bit")
        // Load factor at most 1/2 keeps linear probes short even when MACs cluster.
        var bucketCount = 16
        while bucketCount < plan.macs.count * 2 { bucketCount <<= 1 }
        let floodCount = plan.flood.reduce(0) { $0 + $1.count }
        let deliveryCount = plan.deliveries.reduce(0) { $0 + $1.count }
        var segmentBucketCount = 16
        while segmentBucketCount < plan.segments.count * 2 { segmentBucketCount <<= 1 }
        var sourceCount = 16
        while sourceCount < plan.sources.count * 2 { sourceCount <<= 1 }

        var layout = Layout()
        let viewOffset = layout.reserve(ForwardingView.self, count: 1)
        let bucketsOffset = layout.reserve(ForwardingBucket.self, count: bucketCount)
        let tunnelsOffset = layout.reserve(TunnelEntry.self, count: max(plan.tunnels.count, 1))
        let segmentsOffset = layout.reserve(SegmentEntry.self, count: max(plan.segments.count, 1))
        let floodOffset = layout.reserve(TunnelIndex.self, count: max(floodCount, 1))
        let deliveriesOffset = layout.reserve(AccessDelivery.self, count: max(deliveryCount, 1))
        let segmentBucketsOffset = layout.reserve(SegmentBucket.self, count: segmentBucketCount)
        let accessOffset = layout.reserve(AccessBinding.self, count: Self.accessCapacity)
        let sourcesOffset = layout.reserve(UInt64.self, count: sourceCount)

        // Mapped, not malloc'ed: snapshots come and go with every change, each a little
        // larger or smaller than the last, and malloc kept the freed ones (10 000 tunnels
        // added one by one left gigabytes of heap behind). A mapping is returned whole,
        // and starts zeroed.
        size = layout.size
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { fatalError("cannot map \(size) bytes for a forwarding snapshot") }
        base = mapped

        let buckets = (base + bucketsOffset).bindMemory(to: ForwardingBucket.self, capacity: bucketCount)
        let tunnels = (base + tunnelsOffset).bindMemory(to: TunnelEntry.self, capacity: plan.tunnels.count)
        let segments = (base + segmentsOffset).bindMemory(to: SegmentEntry.self, capacity: plan.segments.count)
        let floodTunnels = (base + floodOffset).bindMemory(to: TunnelIndex.self, capacity: floodCount)
        let deliveries = (base + deliveriesOffset).bindMemory(to: AccessDelivery.self, capacity: deliveryCount)
        let segmentBuckets = (base + segmentBucketsOffset).bindMemory(to: SegmentBucket.self, capacity: segmentBucketCount)
        let access = (base + accessOffset).bindMemory(to: AccessBinding.self, capacity: Self.accessCapacity)
        let sources = (base + sourcesOffset).bindMemory(to: UInt64.self, capacity: sourceCount)

        tunnels.initialize(from: plan.tunnels, count: plan.tunnels.count)
        var floodCursor = 0
        var deliveryCursor = 0
        for (i, vni) in plan.segments.enumerated() {
            let list = plan.flood[i]
            let ports = plan.deliveries[i]
            (floodTunnels + floodCursor).initialize(from: list, count: list.count)
            (deliveries + deliveryCursor).initialize(from: ports, count: ports.count)
            segments[i] = SegmentEntry(
                vni: vni, floodStart: UInt32(floodCursor), floodCount: UInt32(list.count),
                deliveryStart: UInt32(deliveryCursor), deliveryCount: UInt32(ports.count))
            floodCursor += list.count
            deliveryCursor += ports.count
        }
        access.initialize(repeating: .unbound, count: Self.accessCapacity)
        for (port, binding) in plan.access {
            precondition(Int(port) < Self.accessCapacity, "port id \(port) beyond the access table")
            access[Int(port)] = binding
        }

        let shift = UInt64(64 - bucketCount.trailingZeroBitCount)
        let viewPointer = (base + viewOffset).bindMemory(to: ForwardingView.self, capacity: 1)
        viewPointer.initialize(to: ForwardingView(
            buckets: buckets, bucketMask: UInt64(bucketCount - 1), bucketShift: shift,
            tunnels: tunnels, tunnelCount: plan.tunnels.count,
            segments: segments, segmentCount: plan.segments.count,
            floodTunnels: floodTunnels, deliveries: deliveries,
            segmentBuckets: segmentBuckets, segmentBucketMask: UInt32(segmentBucketCount - 1),
            access: access, accessCapacity: Self.accessCapacity, decapsulationPorts: plan.decapsulationPorts,
            sources: sources, sourceMask: sourceCount - 1, acceptsAnySource: plan.acceptsAnySource
        ))
        for (segment, remote) in plan.sources {
            let key = ForwardingView.sourceKey(segment: segment, remote: remote)
            var i = ForwardingView.sourceSlot(of: key, mask: sourceCount - 1)
            while sources[i] != 0 && sources[i] != key { i = (i &+ 1) & (sourceCount - 1) }
            sources[i] = key
        }
        for (i, vni) in plan.segments.enumerated() {
            var b = (vni.rawValue &* 0x9E37_79B1) >> 16 & UInt32(segmentBucketCount - 1)
            while segmentBuckets[Int(b)].vniPlusOne != 0 { b = (b &+ 1) & UInt32(segmentBucketCount - 1) }
            segmentBuckets[Int(b)] = SegmentBucket(vniPlusOne: vni.rawValue + 1, segment: UInt32(i))
        }
        for entry in plan.macs {
            let key = ForwardingView.key(segment: entry.segment, mac: entry.mac)
            var i = viewPointer.pointee.bucketIndex(of: key)
            while buckets[i].tunnelPlusOne != 0 && buckets[i].key != key {
                i = (i &+ 1) & (bucketCount - 1)
            }
            buckets[i] = ForwardingBucket(key: key, tunnelPlusOne: entry.tunnel.rawValue + 1,
                                          learnedSlotPlusOne: entry.learnedSlot.map { UInt32($0) + 1 } ?? 0)
        }
        view = UnsafePointer(viewPointer)
    }

    deinit {
        munmap(base, size)
    }

    /// Offsets of the arrays inside the single allocation, each cache-line aligned.
    private struct Layout {
        var size = 0

        mutating func reserve<T>(_: T.Type, count: Int) -> Int {
            let offset = (size + 63) & ~63
            size = offset + MemoryLayout<T>.stride * count
            return offset
        }
    }
}
