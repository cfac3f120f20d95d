/// One tunnel as the workers see it: a ready outer header and the next hop whose MAC
/// completes it. One cache line (`TunnelTable` is page-aligned).
public struct TunnelEntry: Sendable {
    public var header: OuterHeaderTemplate
    public var nextHop: NextHopID

    public init(header: OuterHeaderTemplate, nextHop: NextHopID) {
        self.header = header
        self.nextHop = nextHop
    }
}

/// Identifies a tunnel: its slot in the `TunnelTable`, fixed for the tunnel's life.
public struct TunnelIndex: Hashable, Sendable, Comparable {
    public let rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The route of a MAC behind an access port of its own segment (a local MAC of an
    /// EVPN segment): not a tunnel.
    public static let local = TunnelIndex(rawValue: UInt32.max &- 3)

    public static func < (a: TunnelIndex, b: TunnelIndex) -> Bool { a.rawValue < b.rawValue }
}

/// What a worker needs to know about an access port: which segment its frames belong to,
/// which VLAN tag, if any, it takes, and whether its source MACs are learnt as local MACs.
public struct AccessBinding: Sendable, Equatable {
    /// Index into the snapshot's segments; `AccessBinding.unbound` when the port is not
    /// an access port.
    public var segment: UInt16
    /// 0 = frames are carried unchanged, tagged or not.
    public var vlan: UInt16
    /// The segment is an EVPN segment: the MACs behind this port are advertised.
    public var learnsSources: Bool

    /// A port that is not an access port. Workers never see it: they receive only on
    /// access ports, and every snapshot binds all of them.
    public static let unbound = AccessBinding(segment: 0xFFFF, vlan: 0)

    public init(segment: UInt16, vlan: UInt16, learnsSources: Bool = false) {
        self.segment = segment
        self.vlan = vlan
        self.learnsSources = learnsSources
    }
}

public struct SegmentEntry: Sendable {
    public var vni: VNI
    public var floodStart: UInt32
    public var floodCount: UInt32
    public var deliveryStart: UInt32
    public var deliveryCount: UInt32
    /// Inner source MACs of its tunnel packets are learnt (not in EVPN segments, whose
    /// remote MACs come from BGP).
    public var learnsFromTunnels: Bool
}

/// Where a decapsulated frame of a segment goes: an access port, by its position in the
/// forwarder's list of access ports, and the VLAN tag to put on it (0: none).
public struct AccessDelivery: Sendable, Equatable {
    public var accessIndex: UInt16
    public var vlan: UInt16

    public init(accessIndex: UInt16, vlan: UInt16) {
        self.accessIndex = accessIndex
        self.vlan = vlan
    }
}

@usableFromInline
struct SegmentBucket {
    /// VNI + 1; 0 marks an empty bucket.
    @usableFromInline var vniPlusOne: UInt32
    @usableFromInline var segment: UInt32
}

/// The forwarding state of the data plane as the workers read it: access bindings,
/// segments with their flood lists and deliveries, the accepted sources, and the two
/// tables that change in place, tunnels and inner MACs.
///
/// It lives at the start of a single allocation together with the small arrays it points
/// to. The control core builds a new one when segments, flood lists, access ports or
/// tunnel sources change, and publishes it; the tunnel and MAC tables are shared between
/// snapshots and changed entry by entry. The old snapshot is freed once every worker has
/// passed a quiescent point (see `QuiescentState`). Everything here is trivial, so a
/// worker holding a pointer to it does no reference counting.
public struct ForwardingView {
    public let macs: MACTableReader
    public let tunnels: UnsafeMutablePointer<TunnelEntry>
    public let segments: UnsafeMutablePointer<SegmentEntry>
    public let segmentCount: Int
    @usableFromInline let floodTunnels: UnsafeMutablePointer<TunnelIndex>
    @usableFromInline let deliveries: UnsafeMutablePointer<AccessDelivery>
    @usableFromInline let segmentBuckets: UnsafeMutablePointer<SegmentBucket>
    @usableFromInline let segmentBucketMask: UInt32
    @usableFromInline let access: UnsafeMutablePointer<AccessBinding>
    public let accessCapacity: Int
    /// The UDP ports on which VXLAN and Geneve packets are accepted.
    public let decapsulationPorts: DecapsulationPorts
    /// Keys (`sourceKey`) of the remotes that each segment accepts tunnel packets from:
    /// its tunnels' remotes. Open addressing, 0 for an empty slot.
    @usableFromInline let sources: UnsafeMutablePointer<UInt64>
    @usableFromInline let sourceMask: Int
    /// `decapsulation.accept_from: any`: every source is accepted.
    public let acceptsAnySource: Bool

    /// The key of a remote in a segment: segment index + 1 in bits 47…32 (never 0), address
    /// below.
    @inlinable @inline(__always)
    public static func sourceKey(segment: UInt16, remote: IPv4Address) -> UInt64 {
        (UInt64(segment) &+ 1) << 32 | UInt64(remote.rawValue)
    }

    @inlinable @inline(__always)
    static func sourceSlot(of key: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
    }

    /// Whether tunnel packets of `segment` may come from `remote`.
    @inlinable @inline(__always)
    public func accepts(segment: UInt16, from remote: IPv4Address) -> Bool {
        if acceptsAnySource { return true }
        let key = Self.sourceKey(segment: segment, remote: remote)
        var i = Self.sourceSlot(of: key, mask: sourceMask)
        while true {
            let slot = sources[i]
            if slot == key { return true }
            if slot == 0 { return false }
            i = (i &+ 1) & sourceMask
        }
    }

    /// The key of an inner MAC in a segment.
    @inlinable @inline(__always)
    public static func key(segment: UInt16, mac: MACAddress) -> UInt64 {
        MACTableReader.key(segment: segment, mac: mac)
    }

    /// Whether the MAC table stays in the L1 cache, where prefetching its buckets costs
    /// instructions and saves nothing.
    @inlinable
    public var bucketsFitInL1Cache: Bool { macs.fitsInL1Cache }

    /// The access binding of a DPDK port id.
    @inlinable @inline(__always)
    public func binding(ofPort port: UInt16) -> AccessBinding {
        Int(port) < accessCapacity ? access[Int(port)] : .unbound
    }

    /// Where the first cache line of the bucket for a key lives, so a burst can prefetch
    /// every packet's bucket before looking any of them up.
    @inlinable @inline(__always)
    public func bucketAddress(key: UInt64) -> UnsafeRawPointer {
        macs.bucketAddress(key: key)
    }

    /// The tunnel that `mac` is reached through in `segment` (`TunnelIndex.local` for a
    /// local MAC); `nil` for an unknown MAC.
    @inlinable @inline(__always)
    public func tunnel(segment: UInt16, mac: MACAddress) -> TunnelIndex? {
        tunnel(key: Self.key(segment: segment, mac: mac))
    }

    /// The tunnel of a forwarding key (`key(segment:mac:)`); `nil` when it has none.
    @inlinable @inline(__always)
    public func tunnel(key: UInt64) -> TunnelIndex? {
        macs.route(key: key)?.tunnel
    }

    /// The route of a forwarding key: its tunnel and, when the entry was learnt, its slot
    /// in `LearnedAges`; `nil` when the key has no entry.
    @inlinable @inline(__always)
    public func route(key: UInt64) -> MACRoute? {
        macs.route(key: key)
    }

    @inlinable @inline(__always)
    public func entry(_ index: TunnelIndex) -> UnsafeMutablePointer<TunnelEntry> {
        tunnels + Int(index.rawValue)
    }

    /// The segment a received VNI belongs to; `nil` for a VNI we do not serve.
    @inlinable @inline(__always)
    public func segment(vni: VNI) -> UInt16? {
        var i = (vni.rawValue &* 0x9E37_79B1) >> 16 & segmentBucketMask
        while true {
            let bucket = segmentBuckets[Int(i)]
            if bucket.vniPlusOne == 0 { return nil }
            if bucket.vniPlusOne == vni.rawValue &+ 1 { return UInt16(truncatingIfNeeded: bucket.segment) }
            i = (i &+ 1) & segmentBucketMask
        }
    }

    /// The access ports that decapsulated frames of `segment` are delivered to.
    @inlinable @inline(__always)
    public func deliveries(segment: UInt16) -> UnsafeBufferPointer<AccessDelivery> {
        let s = segments[Int(segment)]
        return UnsafeBufferPointer(start: deliveries + Int(s.deliveryStart), count: Int(s.deliveryCount))
    }

    /// The tunnels that broadcast, multicast and unknown-unicast frames of `segment` are
    /// replicated to (head-end replication).
    @inlinable @inline(__always)
    public func floodList(segment: UInt16) -> UnsafeBufferPointer<TunnelIndex> {
        let s = segments[Int(segment)]
        return UnsafeBufferPointer(start: floodTunnels + Int(s.floodStart), count: Int(s.floodCount))
    }
}
