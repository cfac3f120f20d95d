import XCTest
@testable import TunnelCore

/// Tables that shrink at run time give their memory back as they empty, keep every
/// element, and copy themselves only at each halving.
final class CollectionsSpareCapacityTests: XCTestCase {
    func testADictionaryEmptiedOneByOneEndsSmallAndKeepsWhatIsLeft() {
        var d = Dictionary(uniqueKeysWithValues: (0..<10_000).map { ($0, "v\($0)") })
        let full = d.capacity
        var copies = 0
        for k in 0..<9_990 {
            d[k] = nil
            let before = d.capacity
            d.releaseSpareCapacity()
            if d.capacity != before { copies += 1 }
        }
        XCTAssertLessThanOrEqual(d.capacity, 64 * 4, "from \(full)")
        XCTAssertEqual(d, Dictionary(uniqueKeysWithValues: (9_990..<10_000).map { ($0, "v\($0)") }))
        XCTAssertLessThanOrEqual(copies, 10, "one copy per halving or so")
    }

    func testAnArrayEmptiedOneByOneEndsSmallAndKeepsItsOrder() {
        var a = Array(0..<10_000)
        while a.count > 10 {
            a.removeFirst()
            a.releaseSpareCapacity()
        }
        XCTAssertEqual(a, Array(9_990..<10_000))
        XCTAssertLessThanOrEqual(a.capacity, 64 * 4)
    }

    func testSmallOrBusyTablesAreLeftAlone() {
        var d = Dictionary(uniqueKeysWithValues: (0..<40).map { ($0, $0) })
        let small = d.capacity
        d.removeValue(forKey: 0)
        d.releaseSpareCapacity()
        XCTAssertEqual(d.capacity, small)
        var big = Dictionary(uniqueKeysWithValues: (0..<1_000).map { ($0, $0) })
        let capacity = big.capacity
        for k in 0..<500 { big[k] = nil }
        big.releaseSpareCapacity()
        XCTAssertEqual(big.capacity, capacity, "half full is not three-quarters empty")
    }
}
