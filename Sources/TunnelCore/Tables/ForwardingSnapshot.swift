#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a forwarding snapshot is built from: plain Swift values for the small parts,
/// assembled by the control plane from its overlay model, and the shared tunnel and MAC
/// tables.
public struct ForwardingPlan: Sendable {
    public struct Segment: Sendable, Equatable {
        public var vni: VNI
        /// Where broadcast, multicast and unknown-unicast frames are replicated to.
        public var flood: [TunnelIndex] = []
        /// The access ports its decapsulated frames go to.
        public var deliveries: [AccessDelivery] = []
        public var learnsFromTunnels = true

        public init(vni: VNI, flood: [TunnelIndex] = [], deliveries: [AccessDelivery] = [], learnsFromTunnels: Bool = true) {
            self.vni = vni
            self.flood = flood
            self.deliveries = deliveries
            self.learnsFromTunnels = learnsFromTunnels
        }
    }

    /// The segments by index (the index in MAC keys and access bindings); `nil` for an
    /// index not in use.
    public var segments: [Segment?] = []
    public var decapsulationPorts = DecapsulationPorts()
    /// Access binding per DPDK port id.
    public var access: [UInt16: AccessBinding] = [:]
    public var tunnels: TunnelTable
    public var macs: MACTable
    /// Per segment index, the remotes its tunnel packets may come from.
    public var sources: [(segment: UInt16, remote: IPv4Address)] = []
    public var acceptsAnySource = false

    public init(tunnels: TunnelTable, macs: MACTable) {
        self.tunnels = tunnels
        self.macs = macs
    }
}

/// Owns one `ForwardingView` and the small arrays behind it, in a single allocation, and
/// keeps the tunnel and MAC tables it points to alive.
///
/// The control core owns it; `ForwardingPublisher` keeps a replaced snapshot alive until
/// the workers are done with it.
public final class ForwardingSnapshot: @unchecked Sendable {
    public let view: UnsafePointer<ForwardingView>
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private let tunnels: TunnelTable
    private let macs: MACTable

    /// Port ids up to this value can be access ports (DPDK's RTE_MAX_ETHPORTS is 32 here).
    public static let accessCapacity = 64

    public init(_ plan: ForwardingPlan) {
        precondition(plan.segments.count < Int(UInt16.max), "segment indexes are 16-bit")
        tunnels = plan.tunnels
        macs = plan.macs
        let segmentList = plan.segments.map { $0 ?? ForwardingPlan.Segment(vni: VNI(0)!) }
        let floodCount = segmentList.reduce(0) { $0 + $1.flood.count }
        let deliveryCount = segmentList.reduce(0) { $0 + $1.deliveries.count }
        var segmentBucketCount = 16
        while segmentBucketCount < plan.segments.count * 2 { segmentBucketCount <<= 1 }
        var sourceCount = 16
        while sourceCount < plan.sources.count * 2 { sourceCount <<= 1 }

        var layout = Layout()
        let viewOffset = layout.reserve(ForwardingView.self, count: 1)
        let segmentsOffset = layout.reserve(SegmentEntry.self, count: max(segmentList.count, 1))
        let floodOffset = layout.reserve(TunnelIndex.self, count: max(floodCount, 1))
        let deliveriesOffset = layout.reserve(AccessDelivery.self, count: max(deliveryCount, 1))
        let segmentBucketsOffset = layout.reserve(SegmentBucket.self, count: segmentBucketCount)
        let accessOffset = layout.reserve(AccessBinding.self, count: Self.accessCapacity)
        let sourcesOffset = layout.reserve(UInt64.self, count: sourceCount)

        // Mapped, not malloc'ed: snapshots come and go with every change, each a little
        // larger or smaller than the last, and malloc kept the freed ones. A mapping is
        // returned whole, and starts zeroed.
        size = layout.size
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { fatalError("cannot map \(size) bytes for a forwarding snapshot") }
        base = mapped

        let segments = (base + segmentsOffset).bindMemory(to: SegmentEntry.self, capacity: segmentList.count)
        let floodTunnels = (base + floodOffset).bindMemory(to: TunnelIndex.self, capacity: floodCount)
        let deliveries = (base + deliveriesOffset).bindMemory(to: AccessDelivery.self, capacity: deliveryCount)
        let segmentBuckets = (base + segmentBucketsOffset).bindMemory(to: SegmentBucket.self, capacity: segmentBucketCount)
        let access = (base + accessOffset).bindMemory(to: AccessBinding.self, capacity: Self.accessCapacity)
        let sources = (base + sourcesOffset).bindMemory(to: UInt64.self, capacity: sourceCount)

        var floodCursor = 0
        var deliveryCursor = 0
        for (i, segment) in segmentList.enumerated() {
            (floodTunnels + floodCursor).initialize(from: segment.flood, count: segment.flood.count)
            (deliveries + deliveryCursor).initialize(from: segment.deliveries, count: segment.deliveries.count)
            segments[i] = SegmentEntry(
                vni: segment.vni, floodStart: UInt32(floodCursor), floodCount: UInt32(segment.flood.count),
                deliveryStart: UInt32(deliveryCursor), deliveryCount: UInt32(segment.deliveries.count),
                learnsFromTunnels: segment.learnsFromTunnels)
            floodCursor += segment.flood.count
            deliveryCursor += segment.deliveries.count
        }
        access.initialize(repeating: .unbound, count: Self.accessCapacity)
        for (port, binding) in plan.access {
            precondition(Int(port) < Self.accessCapacity, "port id \(port) beyond the access table")
            access[Int(port)] = binding
        }

        let viewPointer = (base + viewOffset).bindMemory(to: ForwardingView.self, capacity: 1)
        viewPointer.initialize(to: ForwardingView(
            macs: plan.macs.reader, tunnels: plan.tunnels.entries,
            segments: segments, segmentCount: segmentList.count,
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
        for (i, segment) in plan.segments.enumerated() {
            guard let vni = segment?.vni else { continue }
            var b = (vni.rawValue &* 0x9E37_79B1) >> 16 & UInt32(segmentBucketCount - 1)
            while segmentBuckets[Int(b)].vniPlusOne != 0 { b = (b &+ 1) & UInt32(segmentBucketCount - 1) }
            segmentBuckets[Int(b)] = SegmentBucket(vniPlusOne: vni.rawValue + 1, segment: UInt32(i))
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
