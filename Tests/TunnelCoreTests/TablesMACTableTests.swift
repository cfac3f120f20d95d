import XCTest
@testable import TunnelCore

/// The MAC table the control core changes in place under the workers: entries, tombstones
/// and copies.
final class TablesMACTableTests: XCTestCase {
    func key(_ i: Int, segment: UInt16 = 0) -> UInt64 {
        MACTableReader.key(segment: segment, mac: MACAddress(rawValue: 0x0250_5600_0000 + UInt64(i)))
    }

    func route(_ t: UInt32, slot: Int? = nil) -> MACRoute { MACRoute(tunnel: TunnelIndex(rawValue: t), learnedSlot: slot) }

    /// The bucket that holds `key`, found by scanning every bucket.
    func bucket(of key: UInt64, in table: MACTable) -> Int? {
        (0..<table.bucketCount).first { AtomicWord.atomicLoad(at: table.reader.keyWord($0), ordering: .relaxed) == key }
    }

    /// Two keys that hash to the same bucket of `table`.
    func collidingKeys(in table: MACTable) -> (UInt64, UInt64) {
        var seen: [Int: UInt64] = [:]
        for i in 1... {
            let k = key(i)
            if let other = seen.updateValue(k, forKey: table.reader.index(of: k)) { return (other, k) }
        }
        fatalError()
    }

    func testSetUpdateRemove() {
        let table = MACTable(capacity: 4)
        XCTAssertEqual(table.bucketCount, 16)
        XCTAssertNil(table.route(key: key(1)))
        XCTAssertTrue(table.set(key(1), route(3)))
        XCTAssertEqual(table.route(key: key(1)), route(3))
        XCTAssertNil(table.route(key: key(1, segment: 1)), "same MAC, other segment")
        XCTAssertTrue(table.set(key(1), route(4, slot: 9)))
        XCTAssertEqual(table.route(key: key(1)), route(4, slot: 9))
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(table.used, 1)

        table.remove(key(1))
        XCTAssertNil(table.route(key: key(1)))
        XCTAssertEqual(table.count, 0)
        XCTAssertEqual(table.used, 1, "a removed entry leaves a tombstone")
        table.remove(key(1))
        table.remove(key(2))
        XCTAssertEqual(table.count, 0)
        XCTAssertEqual(table.used, 1)

        XCTAssertTrue(table.set(key(1), route(5)))
        XCTAssertEqual(table.route(key: key(1)), route(5))
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(table.used, 1, "the same key takes its tombstone back")
        // Tunnel index 0 and learnt slot 0 are real values, not "empty".
        XCTAssertTrue(table.set(key(2), route(0, slot: 0)))
        XCTAssertEqual(table.route(key: key(2)), route(0, slot: 0))
        XCTAssertEqual(table.route(key: key(2))?.tunnel, TunnelIndex(rawValue: 0))
        XCTAssertTrue(table.set(key(3), MACRoute(tunnel: .local, learnedSlot: 16383)))
        XCTAssertEqual(table.route(key: key(3)), MACRoute(tunnel: .local, learnedSlot: 16383))
        XCTAssertEqual(Set(table.entries.map(\.key)), [key(1), key(2), key(3)])
    }

    func testATombstoneIsReusedOnlyByItsOwnKey() {
        let table = MACTable(capacity: 4)
        let (a, b) = collidingKeys(in: table)
        XCTAssertTrue(table.set(a, route(1)))
        let home = bucket(of: a, in: table)!
        table.remove(a)
        // b hashes to a's bucket, but that bucket keeps a's key: b goes further along.
        XCTAssertTrue(table.set(b, route(2)))
        XCTAssertEqual(bucket(of: a, in: table), home)
        XCTAssertNotEqual(bucket(of: b, in: table), home)
        XCTAssertNil(table.route(key: a))
        XCTAssertEqual(table.route(key: b), route(2), "found past the tombstone")
        XCTAssertEqual(table.used, 2)
        XCTAssertTrue(table.set(a, route(3)))
        XCTAssertEqual(bucket(of: a, in: table), home)
        XCTAssertEqual(table.route(key: a), route(3))
        XCTAssertEqual(table.route(key: b), route(2))
        XCTAssertEqual(table.used, 2)
        XCTAssertEqual(table.count, 2)
    }

    func testAFullTableRefusesNewKeysOnly() {
        let table = MACTable(capacity: 4)  // 16 buckets: full at 8 used
        for i in 1...7 {
            XCTAssertFalse(table.isFull, "after \(i - 1)")
            XCTAssertTrue(table.set(key(i), route(UInt32(i))))
        }
        XCTAssertFalse(table.isFull)
        XCTAssertTrue(table.set(key(8), route(8)))
        XCTAssertTrue(table.isFull)
        XCTAssertFalse(table.set(key(9), route(9)))
        XCTAssertNil(table.route(key: key(9)))
        XCTAssertEqual(table.count, 8)
        XCTAssertTrue(table.set(key(8), route(80)), "an update needs no room")
        XCTAssertEqual(table.route(key: key(8)), route(80))
        table.remove(key(1))
        XCTAssertTrue(table.isFull, "a tombstone still takes its bucket")
        XCTAssertFalse(table.set(key(9), route(9)))
        XCTAssertTrue(table.set(key(1), route(10)), "its own key takes it back")
        XCTAssertEqual(table.count, 8)
        XCTAssertEqual(table.used, 8)
    }

    func testRebuiltDropsTombstonesAndKeepsEveryEntry() {
        let table = MACTable(capacity: 64)
        for i in 1...60 { XCTAssertTrue(table.set(key(i, segment: UInt16(i % 3)), route(UInt32(i), slot: i % 2 == 0 ? i : nil))) }
        for i in stride(from: 1, through: 60, by: 3) { table.remove(key(i, segment: UInt16(i % 3))) }
        XCTAssertEqual(table.count, 40)
        XCTAssertEqual(table.used, 60)
        let copy = table.rebuilt()
        XCTAssertFalse(copy === table)
        XCTAssertEqual(copy.count, 40)
        XCTAssertEqual(copy.used, 40, "no tombstones")
        XCTAssertFalse(copy.isFull)
        XCTAssertGreaterThanOrEqual(copy.bucketCount, 2 * 2 * 40, "room for as many again")
        for i in 1...60 {
            let k = key(i, segment: UInt16(i % 3))
            XCTAssertEqual(copy.route(key: k), table.route(key: k), "key \(i)")
            if i % 3 == 1 { XCTAssertNil(bucket(of: k, in: copy), "tombstone of \(i) copied") }
        }
        // The original is untouched: workers may still read it.
        XCTAssertEqual(table.used, 60)
        XCTAssertEqual(table.count, 40)
        // `room` asks for more.
        XCTAssertGreaterThanOrEqual(table.rebuilt(room: 1000).bucketCount, 2 * 1040)
        let empty = MACTable(capacity: 0).rebuilt()
        XCTAssertEqual(empty.count, 0)
        XCTAssertTrue(empty.set(key(1), route(1)))
    }

    /// Thousands of random changes against a Dictionary, rebuilding whenever `set` says
    /// the table is full, as the overlay does.
    func testRandomChangesAgreeWithADictionary() {
        var rng = SplitMix(seed: 0x7E57_0001)
        var table = MACTable(capacity: 8)
        var model: [UInt64: MACRoute] = [:]
        var rebuilds = 0
        // A pool small enough that keys come back to their tombstones, over three segments.
        let pool = (0..<400).map { key($0 * 7 + 1, segment: UInt16($0 % 3)) }
        for step in 0..<20_000 {
            let k = pool[Int(rng.next() % UInt64(pool.count))]
            if rng.next() % 5 < 3 {
                let r = route(UInt32(rng.next() % 16384), slot: rng.next() % 2 == 0 ? Int(rng.next() % 16384) : nil)
                let wasFull = table.isFull
                if !table.set(k, r) {
                    XCTAssertTrue(wasFull, "set refused at step \(step) when not full")
                    XCTAssertNil(model[k], "set refused an existing key at step \(step)")
                    let old = table
                    table = old.rebuilt()
                    rebuilds += 1
                    XCTAssertEqual(old.count, table.count)
                    XCTAssertTrue(table.set(k, r), "set refused after a rebuild at step \(step)")
                }
                model[k] = r
            } else {
                table.remove(k)
                model[k] = nil
            }
            XCTAssertEqual(table.count, model.count, "step \(step)")
            XCTAssertLessThanOrEqual(table.used * 2, table.bucketCount)
            if step % 1000 == 999 {
                for k in pool { XCTAssertEqual(table.route(key: k), model[k], "step \(step)") }
                XCTAssertEqual(Dictionary(uniqueKeysWithValues: table.entries.map { ($0.key, $0.route) }), model)
            }
        }
        XCTAssertGreaterThan(rebuilds, 2, "the test never filled the table")
        for k in pool { XCTAssertEqual(table.route(key: k), model[k]) }
        // Keys never set are not found.
        for i in 0..<1000 { XCTAssertNil(table.route(key: key(i * 7 + 2))) }
    }
}
