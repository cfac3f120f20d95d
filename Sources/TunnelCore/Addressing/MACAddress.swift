/// A 48-bit Ethernet address, kept in the low 48 bits of a `UInt64` in wire order
/// (the first octet on the wire is bits 47…40), so that it fits in one register and in
/// one atomic word of the neighbor table.
public struct MACAddress: Hashable, Sendable, Comparable {
    public let rawValue: UInt64

    @inlinable
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    public init(_ o0: UInt8, _ o1: UInt8, _ o2: UInt8, _ o3: UInt8, _ o4: UInt8, _ o5: UInt8) {
        self.init(octets: (o0, o1, o2, o3, o4, o5))
    }

    public init(octets o: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        var v = UInt64(o.0)
        v = v << 8 | UInt64(o.1)
        v = v << 8 | UInt64(o.2)
        v = v << 8 | UInt64(o.3)
        v = v << 8 | UInt64(o.4)
        v = v << 8 | UInt64(o.5)
        self.rawValue = v
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` as separator); `nil` if malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let groups = parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 6 else { return nil }
        var v: UInt64 = 0
        for g in groups {
            guard g.count == 2, let b = UInt8(g, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        self.rawValue = v
    }

    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(rawValue: 0)

    /// The I/G bit: set for broadcast and multicast destinations.
    @inlinable
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    /// Whether a host may have this address: neither all-zero nor a group address.
    @inlinable
    public var isUnicast: Bool { rawValue != 0 && !isMulticast }

    @inlinable
    public func octet(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * i)) }

    /// Writes six bytes in wire order.
    @inlinable
    public func store(to p: UnsafeMutableRawPointer) {
        for i in 0..<6 { p.storeBytes(of: octet(i), toByteOffset: i, as: UInt8.self) }
    }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.rawValue < b.rawValue }
}

extension MACAddress: CustomStringConvertible {
    public var description: String {
        (0..<6).map { i in
            let s = String(octet(i), radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}
