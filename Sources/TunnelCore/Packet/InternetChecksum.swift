/// The Internet checksum (RFC 1071): the one's complement of the one's-complement sum
/// of the data taken as big-endian 16-bit words.
///
/// Values in and out are in host byte order: store a checksum with `.bigEndian`.
///
/// The sums load whole native-order words and convert once at the end. That is
/// allowed because the one's-complement sum is independent of byte order and of word
/// width as long as the carries wrap around (RFC 1071 §2 (B) and (C)).
public enum InternetChecksum {
    /// The one's-complement sum of `bytes`, folded to 16 bits, not complemented.
    ///
    /// An odd trailing byte is padded with a zero byte. `initial` is added in, so a
    /// sum can be continued over a second range provided the first one had an even
    /// length.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt16 = 0) -> UInt16 {
        guard let base = bytes.baseAddress else { return initial }
        let count = bytes.count
        var sum = UInt64(initial.bigEndian)
        var offset = 0
        while count - offset >= 8 {
            sum = addingWithEndAroundCarry(sum, base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset &+= 8
        }
        if count - offset >= 4 {
            sum = addingWithEndAroundCarry(sum, UInt64(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset &+= 4
        }
        if count - offset >= 2 {
            sum = addingWithEndAroundCarry(sum, UInt64(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset &+= 2
        }
        if count - offset == 1 {
            let last = UInt16(base.load(fromByteOffset: offset, as: UInt8.self)) << 8
            sum = addingWithEndAroundCarry(sum, UInt64(last.bigEndian))
        }
        return UInt16(bigEndian: fold(sum))
    }

    /// The checksum of `bytes`: the complement of their sum. Over data that already
    /// holds a correct checksum field this is 0.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt16 = 0) -> UInt16 {
        ~sum(bytes, initial: initial)
    }

    /// The header checksum for a 20-byte IPv4 header (IHL 5), ignoring whatever its
    /// checksum field holds now.
    @inlinable @inline(__always)
    public static func ipv4HeaderChecksum(_ header: UnsafeRawPointer) -> UInt16 {
        // Five loads instead of a masked fourth word: bytes 10 and 11 (the checksum
        // field) are simply not loaded.
        var sum = UInt64(header.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        return UInt16(bigEndian: ~fold(sum))
    }

    /// Whether a 20-byte IPv4 header (IHL 5) carries a correct header checksum.
    @inlinable @inline(__always)
    public static func ipv4HeaderChecksumIsValid(_ header: UnsafeRawPointer) -> Bool {
        var sum = UInt64(header.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        sum &+= UInt64(header.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        return fold(sum) == 0xFFFF
    }

    /// 16-bit one's-complement addition (an add and an add-with-carry). Like every sum
    /// here it does not depend on byte order: byte-swapped operands give the swapped sum.
    @inlinable @inline(__always)
    public static func add(_ a: UInt16, _ b: UInt16) -> UInt16 {
        let (s, overflow) = a.addingReportingOverflow(b)
        return s &+ (overflow ? 1 : 0)
    }

    /// Folds a one's-complement sum held in 64 bits down to 16 bits.
    @inlinable @inline(__always)
    public static func fold(_ sum: UInt64) -> UInt16 {
        var s = (sum >> 32) &+ (sum & 0xFFFF_FFFF)
        s = (s >> 32) &+ (s & 0xFFFF_FFFF)
        s = (s >> 16) &+ (s & 0xFFFF)
        s = (s >> 16) &+ (s & 0xFFFF)
        return UInt16(truncatingIfNeeded: s)
    }

    /// 64-bit one's-complement addition: the carry out of the top re-enters at the
    /// bottom, which cannot overflow again.
    @inlinable @inline(__always)
    internal static func addingWithEndAroundCarry(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (s, overflow) = a.addingReportingOverflow(b)
        return s &+ (overflow ? 1 : 0)
    }
}
