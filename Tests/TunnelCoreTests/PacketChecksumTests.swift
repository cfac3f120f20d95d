import TunnelCore
import XCTest

final class PacketChecksumTests: XCTestCase {
    private func checksum(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBytes { InternetChecksum.checksum($0) }
    }

    func testRFC1071Example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        XCTAssertEqual(bytes.withUnsafeBytes { InternetChecksum.sum($0) }, 0xDDF2)
        XCTAssertEqual(checksum(bytes), 0x220D)
    }

    func testMatchesScapy() {
        // scapy.utils.checksum over the same bytes.
        XCTAssertEqual(checksum([UInt8](hex: "01020304050607")), 0xEFF3)
        XCTAssertEqual(checksum([UInt8](hex: "fafbfcfdfeffffffffffffffffffff01")), 0x0A04)
        XCTAssertEqual(checksum([UInt8](repeating: 0xFF, count: 40)), 0x0000)
        let long = Array((0..<3).map { _ in (0...255).map { UInt8($0) } }.joined()) + [0x42]
        XCTAssertEqual(checksum(long), 0x7D40)
    }

    func testEmptyAndSingleByte() {
        XCTAssertEqual(checksum([]), 0xFFFF)
        XCTAssertEqual(checksum([0x12]), ~UInt16(0x1200))
    }

    func testSumChainsOverEvenPrefix() {
        let bytes = (0..<101).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        bytes.withUnsafeBytes { all in
            let first = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: all[0..<36]))
            let chained = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: all[36...]), initial: first)
            XCTAssertEqual(chained, InternetChecksum.sum(all))
        }
    }

    func testEveryLengthAgreesWithBytewiseReference() {
        func reference(_ b: ArraySlice<UInt8>) -> UInt16 {
            var sum: UInt32 = 0
            var i = b.startIndex
            while i < b.endIndex {
                let high = UInt32(b[i]) << 8
                let low = i + 1 < b.endIndex ? UInt32(b[i + 1]) : 0
                sum += high | low
                i += 2
            }
            while sum > 0xFFFF { sum = (sum >> 16) + (sum & 0xFFFF) }
            return ~UInt16(sum)
        }
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7 ^ $0 >> 3) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let got = bytes.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
                XCTAssertEqual(got, reference(bytes[start..<end]), "bytes \(start)..<\(end)")
            }
        }
    }

    func testIPv4HeaderChecksumMatchesScapyAndIgnoresTheField() {
        // raw(IP(src="10.1.2.3", dst="172.16.254.1", ttl=17, id=0xCAFE, proto=6, len=1500))
        let valid = [UInt8](hex: "450005dccafe0000110623080a010203ac10fe01")
        var garbled = valid
        garbled[10] = 0x5A
        garbled[11] = 0xA5
        for header in [valid, garbled] {
            XCTAssertEqual(header.withUnsafeBytes { InternetChecksum.ipv4HeaderChecksum($0.baseAddress!) }, 0x2308)
        }
        XCTAssertTrue(valid.withUnsafeBytes { InternetChecksum.ipv4HeaderChecksumIsValid($0.baseAddress!) })
        XCTAssertFalse(garbled.withUnsafeBytes { InternetChecksum.ipv4HeaderChecksumIsValid($0.baseAddress!) })
        XCTAssertEqual(checksum(valid), 0)
    }

    func testFold() {
        XCTAssertEqual(InternetChecksum.fold(0), 0)
        XCTAssertEqual(InternetChecksum.fold(0xFFFF_FFFF_FFFF_FFFF), 0xFFFF)
        XCTAssertEqual(InternetChecksum.fold(0x0001_0000), 0x0001)
        XCTAssertEqual(InternetChecksum.fold(0x0003_FFFD), 0x0001)
    }

    func testAddWrapsTheCarryAroundInEitherByteOrder() {
        XCTAssertEqual(InternetChecksum.add(0xFFFF, 0x0001), 0x0001)
        XCTAssertEqual(InternetChecksum.add(0x8000, 0x8000), 0x0001)
        XCTAssertEqual(InternetChecksum.add(0x1234, 0x0000), 0x1234)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let a = UInt16.random(in: .min ... .max, using: &generator)
            let b = UInt16.random(in: .min ... .max, using: &generator)
            XCTAssertEqual(InternetChecksum.add(a, b), InternetChecksum.fold(UInt64(a) + UInt64(b)), "\(a) \(b)")
            XCTAssertEqual(InternetChecksum.add(a.byteSwapped, b.byteSwapped), InternetChecksum.add(a, b).byteSwapped)
        }
    }
}
