/// An IPv4 address in host byte order (`10.0.0.1` is `0x0A000001`).
public struct IPv4Address: Hashable, Sendable, Comparable {
    public let rawValue: UInt32

    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation strictly (four decimal octets, no leading zeros
    /// beyond a single `0`); `nil` if malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy(\.isASCIIDigit),
                  !(p.count > 1 && p.first == "0"),
                  let octet = UInt8(p) else { return nil }
            v = v << 8 | UInt32(octet)
        }
        rawValue = v
    }

    public static let any = IPv4Address(rawValue: 0)

    /// Whether a packet may come from this address: not unspecified, loopback,
    /// multicast, class E or the limited broadcast (RFC 1812 §5.3.7's martians).
    @inlinable @inline(__always)
    public var isPossibleSource: Bool {
        let top = rawValue >> 24
        return top != 0 && top != 127 && top < 224
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.rawValue < b.rawValue }
}

extension IPv4Address: CustomStringConvertible {
    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xFF).\(rawValue >> 8 & 0xFF).\(rawValue & 0xFF)"
    }
}

/// An address with its prefix length, as in `192.168.50.1/24`.
public struct IPv4Interface: Hashable, Sendable {
    public let address: IPv4Address
    public let prefixLength: Int

    public init?(address: IPv4Address, prefixLength: Int) {
        guard (0...32).contains(prefixLength) else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])),
              parts[1].allSatisfy(\.isASCIIDigit), let len = Int(parts[1]) else { return nil }
        self.init(address: a, prefixLength: len)
    }

    public var netmask: UInt32 { prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefixLength) }

    /// True when `other` lies inside this interface's subnet (is on-link).
    public func contains(_ other: IPv4Address) -> Bool {
        other.rawValue & netmask == address.rawValue & netmask
    }
}

extension IPv4Interface: CustomStringConvertible {
    public var description: String { "\(address)/\(prefixLength)" }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
