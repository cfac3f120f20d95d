import TunnelCore

extension Array where Element == UInt8 {
    /// Bytes from a hex string such as scapy's `raw(p).hex()`; whitespace is ignored.
    init(hex: String) {
        let digits = hex.filter { !$0.isWhitespace }.map { UInt8(String($0), radix: 16)! }
        precondition(digits.count % 2 == 0, "odd number of hex digits")
        self = stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    var hex: String { map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

/// Runs `body` on a heap buffer holding exactly `bytes`, so that a read past the end
/// lands outside the allocation (and is reported when testing with
/// `--sanitize=address`).
func withExactBuffer<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer, Int) throws -> R) rethrows -> R {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes.count, 1), alignment: 1)
    defer { buffer.deallocate() }
    bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    return try body(buffer, bytes.count)
}

/// An Ethernet frame carrying an IPv4 header (with `options` after the 20 fixed bytes)
/// and `payload`, optionally behind one 802.1Q tag. The IPv4 checksum is left 0: the
/// flow parser does not look at it.
func ipv4Frame(
    destinationMAC: MACAddress = MACAddress(0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x01),
    sourceMAC: MACAddress = MACAddress(0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x02),
    vlan: UInt16? = nil,
    source: IPv4Address = IPv4Address(10, 0, 0, 1), destination: IPv4Address = IPv4Address(10, 0, 0, 2),
    protocol: IPProtocol = .udp, flagsAndOffset: UInt16 = 0, options: [UInt8] = [],
    payload: [UInt8] = [0x04, 0xD2, 0x00, 0x50, 0x00, 0x08, 0x00, 0x00]
) -> [UInt8] {
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }
    var frame = (0..<6).map { destinationMAC.octet($0) } + (0..<6).map { sourceMAC.octet($0) }
    if let vlan { frame += be16(0x8100) + be16(vlan) }
    frame += be16(0x0800)
    let headerLength = 20 + options.count
    frame += [0x40 | UInt8(headerLength / 4), 0] + be16(UInt16(headerLength + payload.count)) + be16(1)
    frame += be16(flagsAndOffset) + [64, `protocol`.rawValue, 0, 0] + be32(source.rawValue) + be32(destination.rawValue)
    return frame + options + payload
}
