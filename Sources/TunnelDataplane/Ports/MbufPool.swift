import CDPDK
import TunnelCore

/// The packet-buffer pool all ports receive into and the control core allocates from.
public struct MbufPool: @unchecked Sendable {
    public let pointer: OpaquePointer

    /// Per-lcore cache size: big enough to amortise the ring, small enough that caches
    /// cannot hide a large part of the pool.
    static let cacheSize: UInt32 = 256

    /// The data room of each mbuf when every port's MTU is `mtu`: DPDK's headroom (room
    /// for the outer headers, prepended in place), then the largest frame a port can
    /// receive (the MTU, an Ethernet header, a VLAN tag and the FCS) rounded up to whole
    /// KiB, the unit in which NICs such as ixgbe size their receive buffers. Received
    /// frames then fit one segment without RX scatter. Up to MTU 2026 this is DPDK's
    /// default (2 KiB + headroom), so jumbo frames cost memory only when configured.
    public static func dataRoom(mtu: Int) -> Int {
        // Some PMDs write the frame check sequence into the buffer, after the frame.
        let frame = mtu + HeaderSize.ethernet + HeaderSize.vlanTag + Int(RTE_ETHER_CRC_LEN)
        return Int(RTE_PKTMBUF_HEADROOM) + (frame + 1023) / 1024 * 1024
    }

    /// Hugepage memory of a pool of `count` mbufs with `dataRoom`, in MiB rounded up (the
    /// pool's own header aside).
    static func mebibytes(count: Int, dataRoom: Int) -> Int {
        let element = Int(rte_mempool_calc_obj_size(tf_mbuf_header_size + UInt32(dataRoom), 0, nil))
        return (count * element + (1 << 20) - 1) >> 20
    }

    /// A pool of `count` mbufs whose data room holds a frame of `mtu` (`uplink.mtu`).
    public init(name: String, count: Int, mtu: Int, socket: Int32) throws(DataplaneError) {
        let dataRoom = Self.dataRoom(mtu: mtu)
        guard let pool = rte_pktmbuf_pool_create(name, UInt32(count), Self.cacheSize, 0, UInt16(dataRoom), socket) else {
            let err = tf_errno()
            let jumbo = dataRoom > Int(RTE_MBUF_DEFAULT_BUF_SIZE)
                ? ", or lower uplink.mtu (\(mtu) makes every mbuf \(dataRoom) bytes instead of \(RTE_MBUF_DEFAULT_BUF_SIZE))" : ""
            throw DataplaneError("cannot create a pool of \(count) mbufs of \(dataRoom) bytes, "
                + "\(Self.mebibytes(count: count, dataRoom: dataRoom)) MiB of hugepage memory (\(String(cString: rte_strerror(err)))): "
                + "reserve more hugepages (Hugepages/setup.sh), lower pending.per_core or dataplane.extra_mbufs, "
                + "give EAL more memory with -m\(jumbo)")
        }
        pointer = pool
    }

    /// Its size, for the start-up line.
    public var summary: String {
        let dataRoom = Int(rte_pktmbuf_data_room_size(pointer))
        return "\(capacity) mbufs of \(dataRoom) bytes, \(Self.mebibytes(count: Int(capacity), dataRoom: dataRoom)) MiB"
    }

    /// Mbufs currently out of the pool: in rings, in flight, buffered, or leaked.
    public var inUse: UInt32 { rte_mempool_in_use_count(pointer) }

    public var capacity: UInt32 { UInt32(rte_mempool_avail_count(pointer)) + inUse }

    public func free() {
        rte_mempool_free(pointer)
    }
}
