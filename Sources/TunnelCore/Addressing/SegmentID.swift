/// A 24-bit virtual network identifier: the VXLAN VNI, the Geneve VNI, or the NVGRE VSID.
public struct VNI: Hashable, Sendable, Comparable {
    public static let max: UInt32 = 0xFF_FFFF
    public let rawValue: UInt32

    public init?(_ value: UInt32) {
        guard value <= VNI.max else { return nil }
        rawValue = value
    }

    public static func < (a: VNI, b: VNI) -> Bool { a.rawValue < b.rawValue }
}

extension VNI: CustomStringConvertible {
    public var description: String { String(rawValue) }
}
