/// A worker's news for the control core: inner MAC `mac` of segment `vni` arrived in a
/// `type` tunnel packet from `remote`, and the forwarding table does not send it there.
/// Two words, so that it travels through a 16-byte-element ring without allocation.
public struct LearningReport: Equatable, Sendable {
    public var mac: MACAddress
    public var vni: VNI
    public var type: EncapsulationType
    public var remote: IPv4Address

    public init(mac: MACAddress, vni: VNI, type: EncapsulationType, remote: IPv4Address) {
        self.mac = mac
        self.vni = vni
        self.type = type
        self.remote = remote
    }

    /// MAC in bits 47…0 and the type's index in `EncapsulationType.allCases` in bits
    /// 55…48; VNI in bits 55…32 and the remote address in bits 31…0.
    public var words: (UInt64, UInt64) {
        let typeIndex = UInt64(EncapsulationType.allCases.firstIndex(of: type)!)
        return (mac.rawValue | typeIndex << 48, UInt64(vni.rawValue) << 32 | UInt64(remote.rawValue))
    }

    public init?(words: (UInt64, UInt64)) {
        let typeIndex = Int(words.0 >> 48 & 0xFF)
        guard typeIndex < EncapsulationType.allCases.count, let vni = VNI(UInt32(truncatingIfNeeded: words.1 >> 32)) else {
            return nil
        }
        self.init(mac: MACAddress(rawValue: words.0 & 0xFFFF_FFFF_FFFF), vni: vni,
                  type: EncapsulationType.allCases[typeIndex], remote: IPv4Address(rawValue: UInt32(truncatingIfNeeded: words.1)))
    }
}
