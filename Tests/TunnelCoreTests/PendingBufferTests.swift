import XCTest
@testable import TunnelCore

/// Mechanism 2: the per-worker buffer on miss, with fake packet pointers.
final class PendingBufferTests: XCTestCase {
    let x = NextHopID(rawValue: 0)
    let y = NextHopID(rawValue: 1)
    let z = NextHopID(rawValue: 7)
    let mac = MACAddress(0x02, 0, 0, 0, 0, 0x42)

    func packet(_ i: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: UInt(i))! }
    func number(_ p: UnsafeMutableRawPointer) -> Int { Int(bitPattern: UInt(bitPattern: p)) }

    struct Drained {
        var sent: [(Int, NextHopID)] = []
        var expired: [(Int, NextHopID)] = []
        var sentNumbers: [Int] { sent.map(\.0) }
        var expiredNumbers: [Int] { expired.map(\.0) }
    }

    func drain(_ buffer: inout PendingBuffer, now: UInt64, resolved: Set<NextHopID>) -> Drained {
        var d = Drained()
        buffer.drain(
            now: now,
            resolvedMAC: { resolved.contains($0) ? self.mac : nil },
            send: { entry, m in
                XCTAssertEqual(m, self.mac)
                d.sent.append((self.number(entry.packet), entry.nextHop))
            },
            expire: { entry in d.expired.append((self.number(entry.packet), entry.nextHop)) })
        return d
    }

    func removeAll(_ buffer: inout PendingBuffer) -> [Int] {
        var out: [Int] = []
        buffer.removeAll { out.append(self.number($0.packet)) }
        return out
    }

    // MARK: order

    func testDrainSendsEachNextHopInArrivalOrderAndKeepsTheRestInOrder() {
        var buffer = PendingBuffer(perCore: 64, perNeighbor: 16, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        let hops = [x, y, x, z, y, x, z, z, x, y]
        for (i, hop) in hops.enumerated() {
            XCTAssertNotEqual(buffer.enqueue(packet(i + 1), nextHop: hop, deadline: 1000), .perCoreFull)
        }
        XCTAssertEqual(buffer.count, 10)

        let first = drain(&buffer, now: 10, resolved: [y])
        XCTAssertEqual(first.sentNumbers, [2, 5, 10])
        XCTAssertTrue(first.expired.isEmpty)
        XCTAssertFalse(buffer.isWaiting(y))
        XCTAssertTrue(buffer.isWaiting(x) && buffer.isWaiting(z))
        XCTAssertEqual(buffer.count, 7)

        let second = drain(&buffer, now: 20, resolved: [y, z])
        XCTAssertEqual(second.sentNumbers, [4, 7, 8])
        let third = drain(&buffer, now: 30, resolved: [x, y, z])
        XCTAssertEqual(third.sentNumbers, [1, 3, 6, 9])
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertNil(buffer.earliestDeadline)
        XCTAssertTrue(buffer.occupancy().isEmpty)
    }

    func testIsWaitingAndWaitingCount() {
        var buffer = PendingBuffer(perCore: 8, perNeighbor: 8, nextHopCapacity: 8)
        defer { buffer.deallocate() }
        XCTAssertFalse(buffer.isWaiting(x))
        _ = buffer.enqueue(packet(1), nextHop: x, deadline: 100)
        _ = buffer.enqueue(packet(2), nextHop: x, deadline: 100)
        _ = buffer.enqueue(packet(3), nextHop: z, deadline: 100)
        XCTAssertTrue(buffer.isWaiting(x))
        XCTAssertEqual(buffer.waitingCount(x), 2)
        XCTAssertEqual(buffer.waitingCount(z), 1)
        XCTAssertFalse(buffer.isWaiting(y))
        XCTAssertEqual(buffer.occupancy().map(\.0), [x, z])
        XCTAssertEqual(buffer.occupancy().map(\.1), [2, 1])
        _ = drain(&buffer, now: 0, resolved: [x])
        XCTAssertFalse(buffer.isWaiting(x))
        XCTAssertTrue(buffer.isWaiting(z))
        XCTAssertEqual(removeAll(&buffer), [3])
        XCTAssertFalse(buffer.isWaiting(z))
    }

    func testALimitedDrainStartsNoNewNextHopPastItsLimitButSendsAStartedOneWhole() {
        // Six next hops, two packets each, interleaved: 1 a, 2 b, 3 c, ..., 7 a, 8 b, ...
        let hops = (0..<6).map { NextHopID(rawValue: UInt32($0)) }
        var buffer = PendingBuffer(perCore: 16, perNeighbor: 16, nextHopCapacity: 8)
        defer { buffer.deallocate() }
        for i in 0..<12 { _ = buffer.enqueue(packet(i + 1), nextHop: hops[i % 6], deadline: 100) }
        var walks: [[Int]] = []
        var complete: [Bool] = []
        repeat {
            var sent: [Int] = []
            complete.append(buffer.drain(now: 0, limit: 3, resolvedMAC: { _ in self.mac },
                                         send: { e, _ in sent.append(self.number(e.packet)) },
                                         expire: { _ in XCTFail("nothing expires") }))
            walks.append(sent)
        } while complete.last == false
        // Each walk starts next hops until 3 packets are out, then sends only theirs.
        XCTAssertEqual(walks, [[1, 2, 3, 7, 8, 9], [4, 5, 6, 10, 11, 12]])
        XCTAssertEqual(complete, [false, true])
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertTrue(hops.allSatisfy { !buffer.isWaiting($0) })
    }

    /// Packets keep arriving for a resolved next hop that still has packets waiting, more
    /// per iteration than the limit: each walk still empties it, so the packets after the
    /// walk find nothing waiting and need not be buffered at all.
    func testAResolvedNextHopLeavesWholeHoweverManyWaitAndHoweverSmallTheLimit() {
        var buffer = PendingBuffer(perCore: 1024, perNeighbor: 1024, nextHopCapacity: 8)
        defer { buffer.deallocate() }
        var next = 1
        var sent: [Int] = []
        for _ in 0..<5 {
            for _ in 0..<100 {
                XCTAssertNotEqual(buffer.enqueue(packet(next), nextHop: x, deadline: 100), .perNeighborFull)
                next += 1
            }
            let complete = buffer.drain(now: 0, limit: 32, resolvedMAC: { _ in self.mac },
                                        send: { e, _ in sent.append(self.number(e.packet)) },
                                        expire: { _ in XCTFail("nothing expires") })
            XCTAssertTrue(complete)
            XCTAssertFalse(buffer.isWaiting(x))
        }
        XCTAssertEqual(sent, Array(1..<next))
    }

    func testIsFirstMarksTheFirstPacketSinceTheNextHopLastHadNone() {
        var buffer = PendingBuffer(perCore: 16, perNeighbor: 16, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        XCTAssertEqual(buffer.enqueue(packet(1), nextHop: x, deadline: 100), .buffered(isFirst: true))
        XCTAssertEqual(buffer.enqueue(packet(2), nextHop: x, deadline: 100), .buffered(isFirst: false))
        XCTAssertEqual(buffer.enqueue(packet(3), nextHop: y, deadline: 100), .buffered(isFirst: true))
        var sent: [Int] = []
        buffer.drain(now: 0, resolvedMAC: { _ in self.mac },
                     send: { e, _ in sent.append(self.number(e.packet)) },
                     expire: { _ in XCTFail("nothing expires") })
        XCTAssertEqual(sent, [1, 2, 3])
        XCTAssertEqual(buffer.enqueue(packet(4), nextHop: x, deadline: 200), .buffered(isFirst: true))
        XCTAssertEqual(buffer.enqueue(packet(5), nextHop: x, deadline: 200), .buffered(isFirst: false))
        // Expiry empties the next hop too: the next one is first again.
        XCTAssertEqual(drain(&buffer, now: 200, resolved: []).expiredNumbers, [4, 5])
        XCTAssertEqual(buffer.enqueue(packet(6), nextHop: x, deadline: 300), .buffered(isFirst: true))
    }

    // MARK: bounds

    func testPerNeighborBoundDropsTheArrivingPacket() {
        var buffer = PendingBuffer(perCore: 100, perNeighbor: 3, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        for i in 1...3 { XCTAssertNotEqual(buffer.enqueue(packet(i), nextHop: x, deadline: 50), .perNeighborFull) }
        XCTAssertEqual(buffer.enqueue(packet(4), nextHop: x, deadline: 50), .perNeighborFull)
        XCTAssertEqual(buffer.enqueue(packet(5), nextHop: y, deadline: 50), .buffered(isFirst: true))
        XCTAssertEqual(buffer.waitingCount(x), 3)
        XCTAssertEqual(buffer.count, 4)
        // The waiting ones are kept, in order.
        XCTAssertEqual(drain(&buffer, now: 0, resolved: [x]).sentNumbers, [1, 2, 3])
        XCTAssertEqual(buffer.enqueue(packet(6), nextHop: x, deadline: 50), .buffered(isFirst: true))
    }

    func testPerCoreBoundDropsTheArrivingPacketEvenWhenNotAPowerOfTwo() {
        var buffer = PendingBuffer(perCore: 5, perNeighbor: 100, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        for i in 1...5 {
            XCTAssertEqual(buffer.enqueue(packet(i), nextHop: i % 2 == 0 ? x : y, deadline: 50),
                           .buffered(isFirst: i <= 2))
        }
        XCTAssertEqual(buffer.enqueue(packet(6), nextHop: z, deadline: 50), .perCoreFull)
        XCTAssertEqual(buffer.enqueue(packet(7), nextHop: x, deadline: 50), .perCoreFull)
        XCTAssertEqual(buffer.count, 5)
        XCTAssertFalse(buffer.isWaiting(z))
        XCTAssertEqual(buffer.waitingCount(x) + buffer.waitingCount(y), 5)
        XCTAssertEqual(drain(&buffer, now: 0, resolved: [x]).sentNumbers, [2, 4])
        XCTAssertEqual(buffer.enqueue(packet(8), nextHop: z, deadline: 50), .buffered(isFirst: true))
    }

    // MARK: expiry

    func testExpiryIsAtTheDeadlineNotBefore() {
        var buffer = PendingBuffer(perCore: 8, perNeighbor: 8, nextHopCapacity: 8)
        defer { buffer.deallocate() }
        _ = buffer.enqueue(packet(1), nextHop: x, deadline: 100)
        _ = buffer.enqueue(packet(2), nextHop: y, deadline: 150)
        _ = buffer.enqueue(packet(3), nextHop: x, deadline: 200)
        XCTAssertEqual(buffer.earliestDeadline, 100)
        XCTAssertTrue(drain(&buffer, now: 99, resolved: []).expired.isEmpty)
        XCTAssertEqual(buffer.count, 3)
        XCTAssertEqual(drain(&buffer, now: 100, resolved: []).expiredNumbers, [1])
        XCTAssertEqual(buffer.earliestDeadline, 150)
        XCTAssertTrue(buffer.isWaiting(x))
        XCTAssertEqual(drain(&buffer, now: 199, resolved: []).expiredNumbers, [2])
        XCTAssertEqual(buffer.earliestDeadline, 200)
        // A packet whose next hop has resolved leaves even when past its deadline.
        XCTAssertEqual(drain(&buffer, now: 10_000, resolved: [x]).sentNumbers, [3])
        XCTAssertNil(buffer.earliestDeadline)
        XCTAssertTrue(buffer.isEmpty)
    }

    func testExpiryPreservesTheOrderOfTheSurvivors() {
        var buffer = PendingBuffer(perCore: 16, perNeighbor: 16, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        for i in 1...8 { _ = buffer.enqueue(packet(i), nextHop: i % 2 == 0 ? x : y, deadline: UInt64(i * 10)) }
        XCTAssertEqual(drain(&buffer, now: 40, resolved: []).expiredNumbers, [1, 2, 3, 4])
        XCTAssertEqual(buffer.earliestDeadline, 50)
        XCTAssertEqual(drain(&buffer, now: 41, resolved: [y]).sentNumbers, [5, 7])
        XCTAssertEqual(removeAll(&buffer), [6, 8])
    }

    // MARK: ring

    func testRingWrapsAroundOverManyCyclesAgainstAModel() {
        var rng = SplitMix(seed: 42)
        var buffer = PendingBuffer(perCore: 12, perNeighbor: 5, nextHopCapacity: 4)
        defer { buffer.deallocate() }
        var model: [(n: Int, hop: NextHopID, deadline: UInt64)] = []
        var enqueued = 0, sent = 0, expired = 0, refused = 0, removed = 0
        var seenOut = Set<Int>()
        var now: UInt64 = 0
        var nextPacket = 1

        for round in 0..<3000 {
            now += rng.next() % 4
            for _ in 0..<Int(rng.next() % 6) {
                let hop = NextHopID(rawValue: UInt32(rng.next() % 4))
                let deadline = now + 20
                let n = nextPacket
                nextPacket += 1
                let waiting = model.filter { $0.hop == hop }.count
                let expected: PendingBuffer.Admission =
                    model.count >= 12 ? .perCoreFull : waiting >= 5 ? .perNeighborFull : .buffered(isFirst: waiting == 0)
                let got = buffer.enqueue(packet(n), nextHop: hop, deadline: deadline)
                XCTAssertEqual(got, expected, "round \(round)")
                if case .buffered = got {
                    model.append((n, hop, deadline))
                    enqueued += 1
                } else {
                    refused += 1
                }
            }
            XCTAssertEqual(buffer.count, model.count)
            XCTAssertEqual(buffer.earliestDeadline, model.first?.deadline)
            if rng.next() % 3 == 0 {
                let resolved = Set((0..<4).filter { _ in rng.next() % 3 == 0 }.map { NextHopID(rawValue: UInt32($0)) })
                let d = drain(&buffer, now: now, resolved: resolved)
                let expectSent = model.filter { resolved.contains($0.hop) }.map(\.n)
                let expectExpired = model.filter { !resolved.contains($0.hop) && $0.deadline <= now }.map(\.n)
                model.removeAll { resolved.contains($0.hop) || $0.deadline <= now }
                XCTAssertEqual(d.sentNumbers, expectSent, "round \(round)")
                XCTAssertEqual(d.expiredNumbers, expectExpired, "round \(round)")
                sent += d.sent.count
                expired += d.expired.count
                for n in d.sentNumbers + d.expiredNumbers { XCTAssertTrue(seenOut.insert(n).inserted, "packet \(n) out twice") }
            }
            for h in 0..<4 {
                let hop = NextHopID(rawValue: UInt32(h))
                XCTAssertEqual(buffer.waitingCount(hop), model.filter { $0.hop == hop }.count)
            }
        }
        let rest = removeAll(&buffer)
        XCTAssertEqual(rest, model.map(\.n))
        removed = rest.count
        for n in rest { XCTAssertTrue(seenOut.insert(n).inserted, "packet \(n) out twice") }
        XCTAssertEqual(enqueued, sent + expired + removed, "every buffered packet leaves exactly once")
        XCTAssertEqual(enqueued + refused, nextPacket - 1)
        XCTAssertGreaterThan(enqueued, 1000, "the ring went round many times")
        XCTAssertGreaterThan(refused, 0)
        XCTAssertTrue(buffer.isEmpty)
    }

    func testRemoveAllHandsOverEveryPacketInOrder() {
        var buffer = PendingBuffer(perCore: 4, perNeighbor: 4, nextHopCapacity: 8)
        defer { buffer.deallocate() }
        // Move head and tail around the ring first.
        for round in 0..<5 {
            for i in 0..<3 { _ = buffer.enqueue(packet(round * 10 + i + 1), nextHop: x, deadline: 10) }
            XCTAssertEqual(drain(&buffer, now: 0, resolved: [x]).sent.count, 3)
        }
        for i in 1...4 { _ = buffer.enqueue(packet(100 + i), nextHop: i % 2 == 0 ? x : z, deadline: 10) }
        XCTAssertEqual(removeAll(&buffer), [101, 102, 103, 104])
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertEqual(buffer.count, 0)
        XCTAssertFalse(buffer.isWaiting(x) || buffer.isWaiting(z))
        XCTAssertEqual(buffer.enqueue(packet(200), nextHop: x, deadline: 10), .buffered(isFirst: true))
        XCTAssertEqual(removeAll(&buffer), [200])
    }

    // MARK: a MAC that arrives during a drain

    /// The worker's `resolvedMAC` reads the live next-hop table, which the control core
    /// may write in the middle of a drain. A next hop seen unresolved for an earlier
    /// packet must not send a later packet of the same next hop in that pass.
    func testANextHopResolvingDuringADrainDoesNotReorderItsPackets() {
        var buffer = PendingBuffer(perCore: 16, perNeighbor: 16, nextHopCapacity: 8)
        defer { _ = removeAll(&buffer); buffer.deallocate() }
        for i in 1...4 { _ = buffer.enqueue(packet(i), nextHop: i == 2 ? y : x, deadline: 1000) }
        var lookups = 0
        var out: [Int] = []
        buffer.drain(
            now: 0,
            resolvedMAC: { hop in
                lookups += 1
                // x resolves after its first packet was looked at.
                return hop == x && lookups > 1 ? self.mac : nil
            },
            send: { e, _ in out.append(self.number(e.packet)) },
            expire: { _ in XCTFail("nothing expires") })
        XCTAssertEqual(out, [], "x's packets 3 and 4 would overtake packet 1")
        XCTAssertEqual(buffer.waitingCount(x), 3)
        XCTAssertEqual(drain(&buffer, now: 1, resolved: [x]).sentNumbers, [1, 3, 4])
    }
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
