import CDPDK

/// The packet-buffer pool all ports receive into and the control core allocates from.
public struct MbufPool: @unchecked Sendable {
    public let pointer: OpaquePointer

    /// Per-lcore cache size: big enough to amortise the ring, small enough that caches
    /// cannot hide a large part of the pool.
    static let cacheSize: UInt32 = 256

    public init(name: String, count: Int, socket: Int32) throws(DataplaneError) {
        guard let pool = rte_pktmbuf_pool_create(
            name, UInt32(count), Self.cacheSize, 0, UInt16(RTE_MBUF_DEFAULT_BUF_SIZE), socket)
        else {
            let err = tf_errno()
            throw DataplaneError("cannot create a pool of \(count) mbufs (\(String(cString: rte_strerror(err)))): "
                + "reserve more hugepages (Hugepages/setup.sh), lower pending.per_core or dataplane.extra_mbufs, or give EAL more memory with -m")
        }
        pointer = pool
    }

    /// Mbufs currently out of the pool: in rings, in flight, buffered, or leaked.
    public var inUse: UInt32 { rte_mempool_in_use_count(pointer) }

    public var capacity: UInt32 { UInt32(rte_mempool_avail_count(pointer)) + inUse }

    public func free() {
        rte_mempool_free(pointer)
    }
}
