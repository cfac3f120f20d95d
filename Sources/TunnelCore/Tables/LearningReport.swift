/// A worker's news for the control core: inner MAC `mac` of segment `vni` was seen
/// coming from `source`, and the forwarding table does not send it there. Two words, so
/// that it travels through a 16-byte-element ring without allocation.
public struct LearningReport: Equatable, Sendable {
    public enum Source: Equatable, Sendable {
        /// A `type` tunnel packet from `remote`.
        case tunnel(EncapsulationType, remote: IPv4Address)
        /// A frame received on an access port of an EVPN segment: a local MAC.
        case accessPort
    }

    public var mac: MACAddress
    public var vni: VNI
    public var source: Source

    public init(mac: MACAddress, vni: VNI, source: Source) {
        self.mac = mac
        self.vni = vni
        self.source = source
    }

    /// The code of an access-port source where a tunnel's type index goes.
    private static let accessPortCode: UInt64 = 0xFF

    /// MAC in bits 47…0 and the source's code (its type's index in
    /// `EncapsulationType.allCases`, or 0xFF for an access port) in bits 55…48; VNI in bits
    /// 55…32 and the remote address (0 for an access port) in bits 31…0.
    public var words: (UInt64, UInt64) {
        let (code, remote): (UInt64, UInt32) = switch source {
        case .tunnel(let type, let remote): (UInt64(EncapsulationType.allCases.firstIndex(of: type)!), remote.rawValue)
        case .accessPort: (Self.accessPortCode, 0)
        }
        return (mac.rawValue | code << 48, UInt64(vni.rawValue) << 32 | UInt64(remote))
    }

    public init?(words: (UInt64, UInt64)) {
        let code = words.0 >> 48 & 0xFF
        guard let vni = VNI(UInt32(truncatingIfNeeded: words.1 >> 32)) else { return nil }
        let source: Source
        if code == Self.accessPortCode {
            source = .accessPort
        } else {
            guard code < EncapsulationType.allCases.count else { return nil }
            source = .tunnel(EncapsulationType.allCases[Int(code)], remote: IPv4Address(rawValue: UInt32(truncatingIfNeeded: words.1)))
        }
        self.init(mac: MACAddress(rawValue: words.0 & 0xFFFF_FFFF_FFFF), vni: vni, source: source)
    }
}
