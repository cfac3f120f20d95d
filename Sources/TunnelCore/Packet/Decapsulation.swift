/// What an uplink frame turned out to be.
public enum DecapsulationVerdict: Equatable, Sendable {
    /// A tunnel packet of ours: the inner frame is `innerLength` bytes at `innerOffset`.
    case inner(type: EncapsulationType, vni: VNI, innerOffset: Int, innerLength: Int)
    /// Not addressed to a tunnel of ours (another address, protocol or port).
    case notForUs
    /// Addressed to us but unusable.
    case malformed
    case badChecksum
    /// An outer fragment: tunnel endpoints do not reassemble (RFC 7348 §4.3, RFC 8926 §4.1.1).
    case fragment
}

/// The UDP destination ports on which tunnel packets are accepted, and their format.
/// A handful at most (one per format and configured port), so a linear scan is fastest.
public struct DecapsulationPorts: Sendable {
    public static let capacity = 8
    @usableFromInline var ports: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
    @usableFromInline var types: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0

    public init() {}

    /// Adds a port (first one wins for a port given twice); false when full.
    @discardableResult
    public mutating func add(_ port: UInt16, _ type: EncapsulationType) -> Bool {
        precondition(type != .nvgre, "NVGRE is GRE, not UDP")
        if self.type(of: port) != nil { return true }
        guard count < Self.capacity else { return false }
        withUnsafeMutableBytes(of: &ports) { $0.storeBytes(of: port, toByteOffset: count * 2, as: UInt16.self) }
        withUnsafeMutableBytes(of: &types) { $0[count] = type == .vxlan ? 1 : 2 }
        count += 1
        return true
    }

    @inlinable @inline(__always)
    public func type(of port: UInt16) -> EncapsulationType? {
        withUnsafeBytes(of: ports) { p in
            withUnsafeBytes(of: types) { t in
                for i in 0..<count where p.load(fromByteOffset: i * 2, as: UInt16.self) == port {
                    return t[i] == 1 ? EncapsulationType.vxlan : .geneve
                }
                return nil
            }
        }
    }
}

/// Validates the outer headers of a frame received on the uplink and finds the inner
/// frame: IPv4 to our address with a correct header checksum and consistent
/// lengths, then VXLAN or Geneve on one of our UDP ports, or NVGRE.
public enum Decapsulation {
    /// - Parameters:
    ///   - frame: the Ethernet frame, `length` bytes (nothing past it is read).
    ///   - local: our endpoint address.
    ///
    /// Always inlined: the optimizer calls it out of line for its size, and the verdict
    /// then goes back through memory to be switched on again by the caller. (Measured:
    /// within the noise of the decapsulation row, 59–70 cycles a packet either way.)
    @inlinable @inline(__always)
    public static func classify(
        _ frame: UnsafeRawPointer, length: Int, local: IPv4Address, ports: DecapsulationPorts
    ) -> DecapsulationVerdict {
        let ipOffset = HeaderSize.ethernet
        guard length >= ipOffset + HeaderSize.ipv4, EthernetFrame.etherType(of: frame) == .ipv4 else { return .notForUs }
        let ip = frame + ipOffset
        let versionAndLength = ip.load(as: UInt8.self)
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard versionAndLength >> 4 == 4, headerLength >= HeaderSize.ipv4, length >= ipOffset + headerLength else {
            return .malformed
        }
        guard UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self)) == local.rawValue else { return .notForUs }
        let totalLength = Int(UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        guard totalLength >= headerLength, ipOffset + totalLength <= length else { return .malformed }
        // The common header, without options, in five loads; others through the general sum.
        let checksumIsValid = headerLength == HeaderSize.ipv4
            ? InternetChecksum.ipv4HeaderChecksumIsValid(ip)
            : InternetChecksum.checksum(UnsafeRawBufferPointer(start: ip, count: headerLength)) == 0
        guard checksumIsValid else { return .badChecksum }
        let fragment = UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard fragment & 0x3FFF == 0 else { return .fragment }

        let l4Offset = ipOffset + headerLength
        let l4Length = totalLength - headerLength
        let l4 = frame + l4Offset
        let protocolNumber = ip.load(fromByteOffset: 9, as: UInt8.self)
        let type: EncapsulationType
        let tunnelOffset: Int
        if protocolNumber == IPProtocol.udp.rawValue {
            guard l4Length >= HeaderSize.udp else { return .malformed }
            guard let t = ports.type(of: UInt16(bigEndian: l4.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) else {
                return .notForUs
            }
            let udpLength = Int(UInt16(bigEndian: l4.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
            guard udpLength == l4Length else { return .malformed }
            type = t
            tunnelOffset = l4Offset + HeaderSize.udp
        } else if protocolNumber == IPProtocol.gre.rawValue {
            type = .nvgre
            tunnelOffset = l4Offset
        } else {
            return .notForUs
        }

        let end = ipOffset + totalLength
        guard end - tunnelOffset >= 8 else { return .malformed }
        let word0 = UInt32(bigEndian: (frame + tunnelOffset).loadUnaligned(as: UInt32.self))
        let word1 = UInt32(bigEndian: (frame + tunnelOffset).loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let innerOffset: Int
        switch type {
        case .vxlan:
            // I flag set; the reserved bits are ignored on receipt (RFC 7348 §5).
            guard word0 & 0x0800_0000 != 0 else { return .malformed }
            innerOffset = tunnelOffset + HeaderSize.vxlan
        case .geneve:
            // Version 0 carrying Ethernet. Options are skipped, but one marked critical (C)
            // must not be ignored, so such a packet is dropped (RFC 8926 §3.4); an OAM
            // packet (O) is not for a tenant.
            let optionsLength = Int(word0 >> 24 & 0x3F) * 4
            guard word0 >> 30 == 0, word0 & 0xFFFF == UInt32(EtherType.transparentEthernetBridging.rawValue),
                  word0 & 0x0040_0000 == 0 else { return .malformed }
            guard word0 & 0x0080_0000 == 0 else { return .notForUs }
            innerOffset = tunnelOffset + HeaderSize.geneve + optionsLength
        case .nvgre:
            // Key present, no checksum, no sequence number, version 0, Ethernet payload.
            guard word0 == 0x2000_0000 | UInt32(EtherType.transparentEthernetBridging.rawValue) else { return .malformed }
            innerOffset = tunnelOffset + HeaderSize.greWithKey
        }
        guard end - innerOffset >= HeaderSize.ethernet else { return .malformed }
        return .inner(type: type, vni: VNI(unchecked: word1 >> 8), innerOffset: innerOffset, innerLength: end - innerOffset)
    }
}

extension Decapsulation {
    /// The outer IPv4 source of a frame that `classify` found to be a tunnel packet.
    @inlinable @inline(__always)
    public static func outerSource(of frame: UnsafeRawPointer) -> IPv4Address {
        IPv4Address(rawValue: UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: HeaderSize.ethernet + 12, as: UInt32.self)))
    }
}

extension VNI {
    /// For 24-bit values taken from a header: always in range.
    @inlinable
    init(unchecked value: UInt32) { self = VNI(value & VNI.max)! }
}
