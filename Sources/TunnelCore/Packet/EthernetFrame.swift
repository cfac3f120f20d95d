/// Reading and rewriting the Ethernet header of a frame in place.
///
/// Every function requires at least `HeaderSize.ethernet` (14) readable bytes at
/// `frame`; the VLAN functions say what more they need. They load whole words rather
/// than byte by byte, which is why they read up to two bytes past the field itself,
/// but never past the 14-byte header.
public enum EthernetFrame {
    @inlinable @inline(__always)
    public static func destination(of frame: UnsafeRawPointer) -> MACAddress {
        MACAddress(rawValue: UInt64(bigEndian: frame.loadUnaligned(as: UInt64.self)) >> 16)
    }

    @inlinable @inline(__always)
    public static func source(of frame: UnsafeRawPointer) -> MACAddress {
        // Bytes 4…11: the low 48 bits are the source address.
        MACAddress(rawValue: UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: 4, as: UInt64.self)))
    }

    @inlinable @inline(__always)
    public static func etherType(of frame: UnsafeRawPointer) -> EtherType {
        EtherType(rawValue: UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt16.self)))
    }

    /// Rewrites the destination address only (a buffered packet learning its next hop).
    @inlinable @inline(__always)
    public static func setDestination(_ destination: MACAddress, of frame: UnsafeMutableRawPointer) {
        frame.storeBytes(of: UInt32(truncatingIfNeeded: destination.rawValue >> 16).bigEndian, as: UInt32.self)
        frame.storeBytes(of: UInt16(truncatingIfNeeded: destination.rawValue).bigEndian, toByteOffset: 4, as: UInt16.self)
    }

    /// Writes destination and source addresses and the EtherType: a complete header.
    @inlinable @inline(__always)
    public static func writeHeader(
        to frame: UnsafeMutableRawPointer,
        destination: MACAddress, source: MACAddress, etherType: EtherType
    ) {
        frame.storeBytes(of: (destination.rawValue << 16 | source.rawValue >> 32).bigEndian, as: UInt64.self)
        frame.storeBytes(
            of: (UInt32(truncatingIfNeeded: source.rawValue)).bigEndian, toByteOffset: 8, as: UInt32.self)
        frame.storeBytes(of: etherType.rawValue.bigEndian, toByteOffset: 12, as: UInt16.self)
    }

    /// The tag control information (priority, DEI, VLAN ID) of the outer 802.1Q tag,
    /// or `nil` when the frame is untagged or too short to hold a tag and an EtherType.
    @inlinable @inline(__always)
    public static func vlanTag(of frame: UnsafeRawPointer, length: Int) -> UInt16? {
        guard length >= HeaderSize.ethernet &+ HeaderSize.vlanTag, etherType(of: frame) == .vlan else {
            return nil
        }
        return UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
    }

    /// Removes the 802.1Q tag after the source address by moving both addresses four
    /// bytes forward; returns the new start of the frame (`frame + 4`). The caller then
    /// drops the first four bytes of the buffer (`rte_pktmbuf_adj`).
    ///
    /// Requires a tagged frame of at least 18 bytes.
    @inlinable @inline(__always)
    @discardableResult
    public static func removeVLANTag(from frame: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        // Both loads happen before either store, so the overlap is harmless.
        let head = frame.loadUnaligned(as: UInt64.self)
        let tail = frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        frame.storeBytes(of: head, toByteOffset: 4, as: UInt64.self)
        frame.storeBytes(of: tail, toByteOffset: 12, as: UInt32.self)
        return frame + HeaderSize.vlanTag
    }

    /// Inserts an 802.1Q tag with `tci` after the source address. `start` is four
    /// bytes before an untagged frame (the caller has prepended them,
    /// `rte_pktmbuf_prepend`); the addresses move there and the tag fills the gap, so
    /// the tagged frame begins at `start`.
    @inlinable @inline(__always)
    public static func insertVLANTag(_ tci: UInt16, at start: UnsafeMutableRawPointer) {
        let head = start.loadUnaligned(fromByteOffset: 4, as: UInt64.self)
        let tail = start.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        start.storeBytes(of: head, as: UInt64.self)
        start.storeBytes(of: tail, toByteOffset: 8, as: UInt32.self)
        start.storeBytes(of: (UInt32(EtherType.vlan.rawValue) << 16 | UInt32(tci)).bigEndian,
                         toByteOffset: 12, as: UInt32.self)
    }
}
