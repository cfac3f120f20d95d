import XCTest
@testable import TunnelCore

/// Mechanism 1 driven by a fake clock: every input carries `nowMs`, and the timers run
/// only when the test calls `tick`.
final class ResolutionNeighborResolverTests: XCTestCase {
    let local = IPv4Address(192, 168, 50, 1)
    let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)
    let a = IPv4Address(192, 168, 50, 10)
    let b = IPv4Address(192, 168, 50, 11)
    let c = IPv4Address(192, 168, 50, 12)
    let macA = MACAddress(0x02, 0xAA, 0, 0, 0, 0x0A)
    let macA2 = MACAddress(0x02, 0xAA, 0, 0, 0, 0xA2)
    let macB = MACAddress(0x02, 0xBB, 0, 0, 0, 0x0B)
    let macC = MACAddress(0x02, 0xCC, 0, 0, 0, 0x0C)
    let idA = NextHopID(rawValue: 1)
    let idB = NextHopID(rawValue: 2)
    let idC = NextHopID(rawValue: 3)
    let defaults = ResolutionSettings()

    // MARK: helpers

    func resolver(_ settings: ResolutionSettings = ResolutionSettings(), nowMs: UInt64 = 0) -> NeighborResolver {
        NeighborResolver(settings: settings, uplink: IPv4Interface(address: local, prefixLength: 24)!, nowMs: nowMs)
    }

    /// The reply of `address` (owning `mac`) to one of our requests.
    func reply(_ address: IPv4Address, _ mac: MACAddress) -> ARPMessage {
        ARPMessage.request(senderMAC: localMAC, senderAddress: local, targetAddress: address).reply(with: mac)
    }

    /// `address` asks for our endpoint address.
    func requestToUs(_ address: IPv4Address, _ mac: MACAddress) -> ARPMessage {
        ARPMessage.request(senderMAC: mac, senderAddress: address, targetAddress: local)
    }

    func receive(_ r: inout NeighborResolver, _ m: ARPMessage, at t: UInt64) -> [ResolverAction] {
        r.receive(m, nowMs: t)
    }

    /// Runs every timer up to and including `end`, at the exact times they fall due.
    func advance(_ r: inout NeighborResolver, to end: UInt64) -> [(t: UInt64, action: ResolverAction)] {
        var out: [(UInt64, ResolverAction)] = []
        while let due = r.nextDueMs, due <= end {
            out += r.tick(nowMs: due).map { (due, $0) }
        }
        return out
    }

    func broadcastTimes(_ actions: [(t: UInt64, action: ResolverAction)], _ address: IPv4Address) -> [UInt64] {
        actions.filter { $0.action == .request(target: address, unicastTo: nil) }.map(\.t)
    }

    /// The address or next-hop id an action is about.
    func subject(_ action: ResolverAction) -> String {
        switch action {
        case .request(let t, _): "ip \(t)"
        case .publish(let id, _): "id \(id.rawValue)"
        case .kernelSet(let t, _): "ip \(t)"
        case .kernelRemove(let t): "ip \(t)"
        }
    }

    /// A resolver with `a` attached at 0 and resolved by a reply at `t`.
    func resolvedA(at t: UInt64 = 0) -> NeighborResolver {
        var r = resolver()
        XCTAssertEqual(r.attach(a, id: idA, nowMs: 0), [.request(target: a, unicastTo: nil)])
        XCTAssertEqual(receive(&r, reply(a, macA), at: t), [.publish(idA, macA), .kernelSet(a, macA)])
        return r
    }

    // MARK: attach and back-off

    func testAttachAsksAtOnceThenBacksOffToTheMaximumAndKeepsRetrying() {
        var r = resolver()
        XCTAssertEqual(r.attach(a, id: idA, nowMs: 0), [.request(target: a, unicastTo: nil)])
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .resolving)
        XCTAssertNil(r.tunnelNeighbor(idA)?.published)
        XCTAssertEqual(r.underlay[a]?.state, .incomplete)

        let actions = advance(&r, to: 30_000)
        XCTAssertTrue(actions.allSatisfy { $0.action == .request(target: a, unicastTo: nil) }, "\(actions)")
        // 100, 200, 400, 800, then 1000 ms apart for ever.
        var expected: [UInt64] = [100, 300, 700, 1500]
        while expected.last! + 1000 <= 30_000 { expected.append(expected.last! + 1000) }
        XCTAssertEqual(broadcastTimes(actions, a), expected)
        XCTAssertEqual(r.nextDueMs, expected.last! + 1000)
    }

    func testRetriesFollowTheConfiguredSettings() {
        var s = ResolutionSettings()
        s.retryInitialMs = 50
        s.retryMaxMs = 300
        var r = resolver(s)
        _ = r.attach(a, id: idA, nowMs: 1000)
        // 50, 100, 200, 300, 300 …
        XCTAssertEqual(broadcastTimes(advance(&r, to: 2250), a), [1050, 1150, 1350, 1650, 1950, 2250])
    }

    func testNothingHappensBeforeARetryIsDue() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        for t in stride(from: UInt64(0), to: 100, by: 1) { XCTAssertEqual(r.tick(nowMs: t), [], "at \(t)") }
        XCTAssertEqual(r.tick(nowMs: 100), [.request(target: a, unicastTo: nil)])
        XCTAssertEqual(r.tick(nowMs: 100), [])
        // A late tick sends one retry, not one per missed interval.
        XCTAssertEqual(r.tick(nowMs: 5000), [.request(target: a, unicastTo: nil)])
    }

    func testAttachingTwiceIsIgnored() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(r.attach(a, id: idA, nowMs: 5), [])
        XCTAssertEqual(broadcastTimes(advance(&r, to: 300), a), [100, 300])
    }

    func testAttachOfAnAlreadyKnownNeighborPublishesWithoutAsking() {
        var r = resolver()
        // A neighbor asked for us first: its binding is known (stale) before any tunnel needs it.
        XCTAssertEqual(receive(&r, requestToUs(a, macA), at: 0), [])
        XCTAssertEqual(r.underlay[a]?.state, .stale)
        XCTAssertEqual(r.attach(a, id: idA, nowMs: 10), [.publish(idA, macA), .kernelSet(a, macA)])
        // Confirmed at once by a unicast probe.
        XCTAssertEqual(r.tick(nowMs: 10), [.request(target: a, unicastTo: macA)])
    }

    // MARK: replies

    func testReplyPublishesAndStopsTheRetries() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        _ = advance(&r, to: 300)
        XCTAssertEqual(receive(&r, reply(a, macA), at: 350), [.publish(idA, macA), .kernelSet(a, macA)])
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .reachable)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        XCTAssertEqual(r.underlay[a], UnderlayNeighbor(mac: macA, state: .reachable, updatedMs: 350))
        XCTAssertEqual(advance(&r, to: 20_000).count, 0)
        // The same reply again changes nothing the data plane sees.
        XCTAssertEqual(receive(&r, reply(a, macA), at: 400), [])
    }

    func testUnsolicitedReplyCreatesNothing() {
        var r = resolver()
        XCTAssertEqual(receive(&r, reply(b, macB), at: 0), [])
        XCTAssertNil(r.underlay[b])
        XCTAssertEqual(r.statistics.unsolicited, 1)
        // Nor does a gratuitous one.
        let garp = ARPMessage(operation: .reply, senderMAC: macB, senderAddress: b, targetMAC: .broadcast, targetAddress: b)
        XCTAssertEqual(receive(&r, garp, at: 1), [])
        XCTAssertNil(r.underlay[b])
        XCTAssertEqual(r.underlay.count, 0)
        // Nor a request for someone else.
        let other = ARPMessage.request(senderMAC: macB, senderAddress: b, targetAddress: c)
        XCTAssertEqual(receive(&r, other, at: 2), [])
        XCTAssertNil(r.underlay[b])
        XCTAssertEqual(r.statistics.ignored, 2)
    }

    func testReplyRefreshesAnExistingNonTunnelEntry() {
        var r = resolver()
        _ = receive(&r, requestToUs(b, macB), at: 0)
        XCTAssertEqual(r.underlay[b]?.state, .stale)
        XCTAssertEqual(receive(&r, reply(b, macB), at: 500), [])
        XCTAssertEqual(r.underlay[b], UnderlayNeighbor(mac: macB, state: .reachable, updatedMs: 500))
        XCTAssertEqual(r.statistics, ARPStatistics())
        XCTAssertTrue(r.tunnelNeighbors.isEmpty)
    }

    func testBogusSendersAreIgnored() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        let fromUs = reply(local, macA)
        let zeroSender = ARPMessage(operation: .reply, senderMAC: macA, senderAddress: .any, targetMAC: localMAC, targetAddress: local)
        let multicastMAC = reply(a, MACAddress(0x01, 0, 0x5E, 0, 0, 1))
        let zeroMAC = reply(a, .zero)
        for m in [fromUs, zeroSender, multicastMAC, zeroMAC] {
            XCTAssertEqual(receive(&r, m, at: 5), [], "\(m)")
        }
        XCTAssertNil(r.tunnelNeighbor(idA)?.published)
        XCTAssertEqual(r.underlay[a]?.state, .incomplete)
        var unknownOp = reply(a, macA)
        unknownOp.operation = .init(rawValue: 3)
        XCTAssertEqual(receive(&r, unknownOp, at: 6), [])
    }

    func testRequestFromATunnelNeighborResolvesItStaleThenAUnicastProbeConfirmsIt() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(receive(&r, requestToUs(a, macA), at: 20), [.publish(idA, macA), .kernelSet(a, macA)])
        XCTAssertEqual(r.underlay[a]?.state, .stale)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        // Confirmation goes unicast to the MAC just learnt, at once; no broadcast retries.
        XCTAssertEqual(advance(&r, to: 20).map(\.action), [.request(target: a, unicastTo: macA)])
        XCTAssertEqual(r.underlay[a]?.state, .probe)
        XCTAssertEqual(receive(&r, reply(a, macA), at: 25), [])
        XCTAssertEqual(r.underlay[a]?.state, .reachable)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .reachable)
        XCTAssertEqual(advance(&r, to: 20_000).count, 0)
    }

    // MARK: claims of another MAC (spoofing)

    /// A request, gratuitous ARP or unsolicited reply claiming another MAC for a resolved
    /// neighbor: the MAC we hold is probed at once, and nothing is published.
    func testAnyClaimOfANewMACForAResolvedNeighborIsProbedNotTaken() {
        let garpRequest = ARPMessage(operation: .request, senderMAC: macA2, senderAddress: a, targetMAC: .zero, targetAddress: a)
        let garpReply = ARPMessage(operation: .reply, senderMAC: macA2, senderAddress: a, targetMAC: .broadcast, targetAddress: a)
        let claims = [requestToUs(a, macA2), garpRequest, garpReply, reply(a, macA2),
                      ARPMessage.request(senderMAC: macA2, senderAddress: a, targetAddress: b)]
        for claim in claims {
            var r = resolvedA()
            XCTAssertEqual(receive(&r, claim, at: 100), [.request(target: a, unicastTo: macA)], "\(claim)")
            XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
            XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .probing)
            XCTAssertEqual(r.statistics.conflicts, 1)
            // The real neighbor answers the probe: nothing changes, the spoof is over.
            XCTAssertEqual(receive(&r, reply(a, macA), at: 101), [])
            XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .reachable)
            XCTAssertEqual(r.underlay[a]?.mac, macA)
        }
    }

    /// A stream of claims costs one probe per min_interval_ms, and replies with the claimed
    /// MAC during the probes are not taken either.
    func testAStreamOfClaimsProbesAtMostOncePerMinInterval() {
        var r = resolvedA()
        var probes = 0
        for t in stride(from: UInt64(100), through: 199, by: 1) {
            probes += receive(&r, reply(a, macA2), at: t).count
            if t % 2 == 0 { probes += receive(&r, reply(a, macA), at: t).count }
            probes += advance(&r, to: t).count
        }
        XCTAssertEqual(probes, 10)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        XCTAssertEqual(r.statistics.conflicts, 100)
    }

    /// A neighbor that really changed its MAC is followed once the MAC we held stops
    /// answering: the probe series fails, a broadcast request goes out, and its reply wins.
    func testAClaimWinsOnlyAfterTheProbesOfTheHeldMACFail() {
        var r = resolvedA()
        XCTAssertEqual(receive(&r, requestToUs(a, macA2), at: 100), [.request(target: a, unicastTo: macA)])
        var t: UInt64 = 100
        var failed = false
        while !failed && t < 10_000 {
            t = r.tunnelNeighbor(idA)!.dueMs
            failed = r.tick(nowMs: t).contains(.publish(idA, nil))
            if !failed {
                XCTAssertEqual(receive(&r, reply(a, macA2), at: t), [], "a reply with the claimed MAC during the probes")
            }
        }
        XCTAssertTrue(failed)
        XCTAssertEqual(t, 100 + UInt64(defaults.probes * defaults.retryMaxMs))
        XCTAssertEqual(receive(&r, reply(a, macA2), at: t + 1), [.publish(idA, macA2), .kernelSet(a, macA2)])
    }

    func testARequestClaimingAStaticNeighborChangesNothing() {
        var r = resolver()
        _ = r.addStatic(a, mac: macA, nowMs: 0)
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(receive(&r, requestToUs(a, macA2), at: 10), [])
        XCTAssertEqual(r.underlay[a]?.mac, macA)
        XCTAssertEqual(r.statistics.conflicts, 1)
        XCTAssertNil(r.nextDueMs)
    }

    func testGratuitousARPOnlyUpdatesAHeldBinding() {
        var r = resolver()
        _ = receive(&r, requestToUs(a, macA), at: 0)
        XCTAssertEqual(r.underlay[a]?.state, .stale)
        XCTAssertEqual(r.underlay.count, 1)
        // Held but not used by a tunnel: the new MAC is taken, and would be confirmed.
        _ = r.attach(a, id: idA, nowMs: 50)
        _ = advance(&r, to: 10_000)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, nil, "the stale MAC never answered")
        let garp = ARPMessage(operation: .request, senderMAC: macA2, senderAddress: a, targetMAC: .zero, targetAddress: a)
        XCTAssertEqual(receive(&r, garp, at: 10_001), [.publish(idA, macA2), .kernelSet(a, macA2)])
        // While unresolved, a gratuitous ARP is not an answer.
        _ = r.attach(b, id: idB, nowMs: 100)
        let garpB = ARPMessage(operation: .request, senderMAC: macB, senderAddress: b, targetMAC: .zero, targetAddress: b)
        XCTAssertEqual(receive(&r, garpB, at: 110), [])
        XCTAssertNil(r.tunnelNeighbor(idB)?.published)
    }

    // MARK: refresh

    func testReachableEntryIsProbedBeforeItAgesAndKeepsForwarding() {
        var r = resolvedA(at: 0)
        let actions = advance(&r, to: UInt64(defaults.reachableMs) - 1)
        XCTAssertFalse(actions.isEmpty)
        XCTAssertTrue(actions.allSatisfy { $0.action == .request(target: a, unicastTo: macA) }, "\(actions)")
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .probing)
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        XCTAssertEqual(r.underlay[a]?.usableMAC, macA)

        // Answering the probe keeps it published and schedules the next refresh.
        let answered = actions[0].t + 5
        XCTAssertEqual(receive(&r, reply(a, macA), at: answered), [])
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .reachable)
        let next = advance(&r, to: answered + UInt64(defaults.reachableMs) - 1)
        let probes = next.filter { $0.action == .request(target: a, unicastTo: macA) }.map(\.t)
        XCTAssertFalse(next.contains { if case .publish = $0.action { true } else { false } }, "\(next)")
        XCTAssertGreaterThan(probes.first ?? 0, answered + UInt64(defaults.reachableMs) / 2)
        XCTAssertLessThan(probes.first ?? .max, answered + UInt64(defaults.reachableMs))
    }

    func testAnsweredProbesKeepTheEntryForAnHour() {
        var r = resolvedA(at: 0)
        var t: UInt64 = 0
        var probes = 0
        while t < 3_600_000 {
            guard let due = r.nextDueMs else { return XCTFail("no refresh scheduled") }
            t = due
            for action in r.tick(nowMs: t) {
                XCTAssertEqual(action, .request(target: a, unicastTo: macA))
                probes += 1
                XCTAssertEqual(receive(&r, reply(a, macA), at: t + 1), [])
            }
        }
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        // One probe per refresh, one refresh roughly every reachable_ms.
        XCTAssertGreaterThanOrEqual(probes, 3_600_000 / defaults.reachableMs)
        XCTAssertLessThanOrEqual(probes, 2 * 3_600_000 / defaults.reachableMs)
    }

    func testSilentPeerIsUnpublishedOnlyAfterTheProbesThenBroadcastsResume() {
        var r = resolvedA(at: 0)
        let actions = advance(&r, to: 40_000)
        let unicast = actions.filter { $0.action == .request(target: a, unicastTo: macA) }
        XCTAssertEqual(unicast.count, defaults.probes)
        guard let failIndex = actions.firstIndex(where: { $0.action == .publish(idA, nil) }) else {
            return XCTFail("never unpublished: \(actions)")
        }
        let failedAt = actions[failIndex].t
        XCTAssertTrue(unicast.allSatisfy { $0.t < failedAt })
        // Not before the last probe had its time to be answered.
        XCTAssertGreaterThan(failedAt, unicast.last!.t)
        XCTAssertLessThanOrEqual(failedAt, UInt64(defaults.reachableMs) + UInt64(defaults.retryMaxMs))
        XCTAssertEqual(Array(actions[failIndex...].prefix(3).map(\.action)),
                       [.publish(idA, nil), .kernelRemove(a), .request(target: a, unicastTo: nil)])
        XCTAssertEqual(actions.filter { $0.action == .publish(idA, nil) }.count, 1)
        XCTAssertEqual(broadcastTimes(actions, a).prefix(4).map { $0 - failedAt }, [0, 100, 300, 700])
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .resolving)
        XCTAssertNil(r.underlay[a]?.usableMAC)

        // The peer comes back.
        let t = actions.last!.t + 1
        XCTAssertEqual(receive(&r, reply(a, macA), at: t), [.publish(idA, macA), .kernelSet(a, macA)])
    }

    func testPeerThatOnlyAsksButNeverAnswersProbesStillFails() {
        var r = resolvedA(at: 0)
        var actions: [(t: UInt64, action: ResolverAction)] = []
        var t: UInt64 = 0
        while t < 40_000, !actions.contains(where: { $0.action == .publish(idA, nil) }) {
            t += 500
            // Its requests to us carry the binding we hold: they restart nothing.
            XCTAssertEqual(receive(&r, requestToUs(a, macA), at: t), [])
            actions += advance(&r, to: t)
        }
        guard let failed = actions.first(where: { $0.action == .publish(idA, nil) }) else {
            return XCTFail("never unpublished while it kept asking: \(actions)")
        }
        XCTAssertEqual(actions.filter { $0.action == .request(target: a, unicastTo: macA) }.count, defaults.probes)
        XCTAssertLessThanOrEqual(failed.t, UInt64(defaults.reachableMs) + UInt64(defaults.retryMaxMs))
    }

    func testLateProbeAnswerWithinTheSeriesKeepsTheEntry() {
        var r = resolvedA(at: 0)
        let first = advance(&r, to: 28_500)
        XCTAssertEqual(first.count, 2)  // two probes unanswered so far
        XCTAssertEqual(receive(&r, reply(a, macA), at: 28_600), [])
        let later = advance(&r, to: 50_000)
        XCTAssertFalse(later.contains { $0.action == .publish(idA, nil) }, "\(later)")
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
    }

    // MARK: miss

    func testMissAsksAtOnceAndRestartsTheBackOff() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(broadcastTimes(advance(&r, to: 700), a), [100, 300, 700])
        XCTAssertEqual(r.miss(idA, nowMs: 750), [.request(target: a, unicastTo: nil)])
        XCTAssertEqual(r.miss(idA, nowMs: 755), [])
        // The old retry (due at 1500) is gone; the back-off restarts at 100 ms.
        XCTAssertEqual(broadcastTimes(advance(&r, to: 3000), a), [760, 860, 1060, 1460, 2260])
    }

    /// A miss within min_interval_ms of an unanswered request (traffic starting just after
    /// the first request, or just after a retry) asks again when the interval ends, not when
    /// the back-off would: the first packet waits one interval plus a round trip.
    func testAMissJustAfterARequestAsksWhenTheIntervalEnds() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(r.miss(idA, nowMs: 3), [], "within min_interval of the last request")
        XCTAssertEqual(r.nextDueMs, 10)
        XCTAssertEqual(broadcastTimes(advance(&r, to: 10), a), [10])
        XCTAssertEqual(receive(&r, reply(a, macA), at: 60), [.publish(idA, macA), .kernelSet(a, macA)])

        // The same just after a retry, with a back-off longer than a packet's lifetime.
        var slow = ResolutionSettings()
        slow.retryInitialMs = 5000
        slow.retryMaxMs = 60_000
        var s = resolver(slow)
        _ = s.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(broadcastTimes(advance(&s, to: 5000), a), [5000])
        XCTAssertEqual(s.miss(idA, nowMs: 5004), [])
        XCTAssertEqual(broadcastTimes(advance(&s, to: 20_000), a), [5010, 10_010])
    }

    /// Whatever the timing of a miss against the retries, the next request goes out at
    /// most min_interval_ms after the previous one (at once when that is past), and the
    /// back-off starts again from retry_initial_ms.
    func testEveryMissIsFollowedByARequestWithinMinIntervalOfThePreviousOne() {
        for missAt in UInt64(0)..<330 {
            var r = resolver()
            _ = r.attach(a, id: idA, nowMs: 0)
            let last = ([0] + broadcastTimes(advance(&r, to: missAt), a)).max()!
            var after = r.miss(idA, nowMs: missAt).isEmpty ? [] : [missAt]
            after += broadcastTimes(advance(&r, to: missAt + 10), a)
            XCTAssertEqual(after.first, max(missAt, last + 10), "miss at \(missAt), previous request at \(last)")
            XCTAssertEqual(r.tunnelNeighbor(idA)?.dueMs, after.first.map { $0 + 100 }, "the back-off restarted")
        }
    }

    /// An earlier retry is never put off by a miss.
    func testAMissNeverPostponesAnEarlierRetry() {
        var fast = ResolutionSettings()
        fast.retryInitialMs = 4
        var r = resolver(fast)
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(r.miss(idA, nowMs: 2), [])
        XCTAssertEqual(r.nextDueMs, 4)
    }

    func testMissOfAResolvedNeighborRepublishesAndOfUnknownDoesNothing() {
        var r = resolvedA()
        XCTAssertEqual(r.miss(idA, nowMs: 10), [.publish(idA, macA)])
        XCTAssertEqual(r.miss(NextHopID(rawValue: 99), nowMs: 10), [])
        _ = r.detach(a, nowMs: 20)
        XCTAssertEqual(r.miss(idA, nowMs: 30), [])
    }

    func testManyMissesSendAtMostOneRequestPerMinInterval() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        var requests = 1
        for t in stride(from: UInt64(1), through: 99, by: 1) {
            requests += r.miss(idA, nowMs: t).count
            requests += advance(&r, to: t).count
        }
        // At 10, 20, … 90: one every min_interval.
        XCTAssertEqual(requests, 1 + 9)
    }

    // MARK: rate bound

    func testTenThousandAttachesStayWithinTheGlobalRate() {
        let s = ResolutionSettings()
        var r = resolver(s)
        var perMs = [Int](repeating: 0, count: 6001)
        var firstRequest: [IPv4Address: UInt64] = [:]
        func note(_ actions: [ResolverAction], _ t: UInt64) {
            for case .request(let target, nil) in actions {
                perMs[Int(t)] += 1
                if firstRequest[target] == nil { firstRequest[target] = t }
            }
        }
        let addresses = (0..<10_000).map { IPv4Address(rawValue: 0x0A00_0000 + UInt32($0)) }
        for (i, address) in addresses.enumerated() {
            note(r.attach(address, id: NextHopID(rawValue: UInt32(i)), nowMs: 0), 0)
        }
        for t in 1...6000 { note(r.tick(nowMs: UInt64(t)), UInt64(t)) }

        let burst = max(1, s.maxRequestsPerSecond / 4)
        var window = 0
        var worst = 0
        for t in 0...6000 {
            window += perMs[t]
            if t >= 1000 { window -= perMs[t - 1000] }
            worst = max(worst, window)
        }
        XCTAssertLessThanOrEqual(worst, s.maxRequestsPerSecond + burst)
        XCTAssertGreaterThan(perMs.reduce(0, +), 5 * s.maxRequestsPerSecond, "the rate is used, not wasted")
        // Nobody starves: every next hop is asked within the time the rate needs for all.
        XCTAssertEqual(firstRequest.count, addresses.count)
        XCTAssertLessThanOrEqual(firstRequest.values.max() ?? .max, 3000)
    }

    /// With one token per 100 ms, refused attempts wait in due order and do not count as
    /// retries: the back-off doubles per request sent.
    func testRefusedAttemptsKeepTheirPlaceAndDoNotGrowTheBackOff() {
        var s = ResolutionSettings()
        s.maxRequestsPerSecond = 10  // burst 2
        var r = resolver(s)
        var times: [IPv4Address: [UInt64]] = [:]
        func note(_ actions: [ResolverAction], _ t: UInt64) {
            for case .request(let target, nil) in actions { times[target, default: []].append(t) }
        }
        for (address, id) in [(a, idA), (b, idB), (c, idC)] { note(r.attach(address, id: id, nowMs: 0), 0) }
        XCTAssertEqual(times[c], nil, "over the burst")
        for t in stride(from: UInt64(100), through: 1000, by: 100) { note(r.tick(nowMs: t), t) }
        XCTAssertEqual(times[a], [0, 200, 500, 900])
        XCTAssertEqual(times[b], [0, 300, 600, 1000])
        XCTAssertEqual(times[c], [100, 400, 700])
    }

    func testAThousandNextHopsAreAllAskedWithinTheFirstSecond() {
        var r = resolver()
        var asked = Set<IPv4Address>()
        for i in 0..<1000 {
            let address = IPv4Address(rawValue: 0x0A00_0000 + UInt32(i))
            for case .request(let target, nil) in r.attach(address, id: NextHopID(rawValue: UInt32(i)), nowMs: 0) {
                asked.insert(target)
            }
        }
        for t in 1..<1000 {
            for case .request(let target, nil) in r.tick(nowMs: UInt64(t)) { asked.insert(target) }
        }
        XCTAssertEqual(asked.count, 1000)
    }

    func testRateLimiterBucket() {
        var l = RequestRateLimiter(perSecond: 1000, nowMs: 0)
        XCTAssertEqual(l.burst, 250)
        var taken = 0
        while l.take(nowMs: 0) { taken += 1 }
        XCTAssertEqual(taken, 250)
        XCTAssertFalse(l.take(nowMs: 0))
        XCTAssertTrue(l.take(nowMs: 1))
        XCTAssertFalse(l.take(nowMs: 1))
        // Idle time refills only up to the burst.
        taken = 0
        while l.take(nowMs: 100_000) { taken += 1 }
        XCTAssertEqual(taken, 250)
        // A clock that steps back takes nothing extra.
        XCTAssertFalse(l.take(nowMs: 50))
        var tiny = RequestRateLimiter(perSecond: 1, nowMs: 0)
        XCTAssertEqual(tiny.burst, 1)
        XCTAssertTrue(tiny.take(nowMs: 0))
        XCTAssertFalse(tiny.take(nowMs: 999))
        XCTAssertTrue(tiny.take(nowMs: 1999))
    }

    // MARK: static neighbors

    func testStaticNeighborIsPermanentPublishedAndNeverProbed() {
        var r = resolver()
        XCTAssertEqual(r.addStatic(a, mac: macA, nowMs: 0), [])
        XCTAssertEqual(r.attach(a, id: idA, nowMs: 0), [.publish(idA, macA), .kernelSet(a, macA)])
        XCTAssertEqual(r.tunnelNeighbor(idA)?.phase, .permanent)
        XCTAssertEqual(advance(&r, to: 1_000_000).count, 0)

        XCTAssertEqual(receive(&r, reply(a, macA2), at: 10), [])
        XCTAssertEqual(receive(&r, requestToUs(a, macA2), at: 11), [])
        let garp = ARPMessage(operation: .request, senderMAC: macA2, senderAddress: a, targetMAC: .zero, targetAddress: a)
        XCTAssertEqual(receive(&r, garp, at: 12), [])
        XCTAssertEqual(r.underlay[a], UnderlayNeighbor(mac: macA, state: .permanent, updatedMs: 0))
        XCTAssertEqual(r.tunnelNeighbor(idA)?.published, macA)
        XCTAssertEqual(r.miss(idA, nowMs: 13), [.publish(idA, macA)])
        r.expireUnused(nowMs: 100_000_000)
        XCTAssertEqual(r.underlay[a]?.state, .permanent)
    }

    func testStaticEntryAddedWhileResolvingStopsTheRetries() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        XCTAssertEqual(r.addStatic(a, mac: macA, nowMs: 50), [.publish(idA, macA), .kernelSet(a, macA)])
        XCTAssertEqual(advance(&r, to: 100_000).count, 0)
        // Overriding a learnt entry with a static one takes its MAC.
        var r2 = resolvedA()
        XCTAssertEqual(r2.addStatic(a, mac: macA2, nowMs: 10), [.publish(idA, macA2), .kernelSet(a, macA2)])
        XCTAssertEqual(advance(&r2, to: 100_000).count, 0)
    }

    // MARK: detach

    func testDetachUnpublishesAndStopsEveryTimer() {
        var r = resolvedA()
        XCTAssertEqual(r.detach(a, nowMs: 10), [.publish(idA, nil), .kernelRemove(a)])
        XCTAssertNil(r.tunnelNeighbor(idA))
        XCTAssertEqual(advance(&r, to: 1_000_000).count, 0)
        XCTAssertEqual(r.detach(a, nowMs: 20), [])

        var u = resolver()
        _ = u.attach(b, id: idB, nowMs: 0)
        XCTAssertEqual(u.detach(b, nowMs: 10), [.publish(idB, nil)])
        XCTAssertEqual(advance(&u, to: 1_000_000).count, 0)
        // A late reply finds no tunnel neighbor to publish.
        XCTAssertEqual(receive(&u, reply(b, macB), at: 20), [])
    }

    func testDetachWhileProbingStopsTheProbes() {
        var r = resolvedA()
        XCTAssertEqual(advance(&r, to: 27_500).count, 1)
        XCTAssertEqual(r.detach(a, nowMs: 27_600), [.publish(idA, nil), .kernelRemove(a)])
        XCTAssertEqual(advance(&r, to: 1_000_000).count, 0)
    }

    func testReattachAfterDetachStartsAfreshWithoutOldTimers() {
        var r = resolver()
        _ = r.attach(a, id: idA, nowMs: 0)
        _ = r.detach(a, nowMs: 50)
        let newID = NextHopID(rawValue: 7)
        XCTAssertEqual(r.attach(a, id: newID, nowMs: 60), [.request(target: a, unicastTo: nil)])
        XCTAssertNil(r.tunnelNeighbor(idA))
        // Only the new schedule: 160, 360; not the old one's 100.
        XCTAssertEqual(broadcastTimes(advance(&r, to: 400), a), [160, 360])
        XCTAssertEqual(receive(&r, reply(a, macA), at: 401), [.publish(newID, macA), .kernelSet(a, macA)])
    }

    // MARK: flush

    func testFlushUnpublishesLearntTunnelNeighborsAndAsksAgainAtOnce() {
        var r = resolvedA()
        _ = r.attach(b, id: idB, nowMs: 0)
        _ = r.addStatic(c, mac: macC, nowMs: 0)
        _ = r.attach(c, id: idC, nowMs: 0)
        _ = receive(&r, requestToUs(IPv4Address(192, 168, 50, 99), macB), at: 0)
        _ = advance(&r, to: 5000)

        let actions = r.flush(nowMs: 5000)
        let aboutA = actions.filter { subject($0) == "ip \(a)" || subject($0) == "id \(idA.rawValue)" }
        XCTAssertEqual(aboutA, [.publish(idA, nil), .kernelRemove(a), .request(target: a, unicastTo: nil)])
        let aboutB = actions.filter { subject($0) == "ip \(b)" || subject($0) == "id \(idB.rawValue)" }
        XCTAssertEqual(aboutB, [.request(target: b, unicastTo: nil)])
        XCTAssertEqual(actions.count, 4, "\(actions)")
        XCTAssertNil(r.underlay[IPv4Address(192, 168, 50, 99)])
        XCTAssertEqual(r.underlay[c]?.state, .permanent)
        XCTAssertEqual(r.tunnelNeighbor(idC)?.published, macC)

        // Both back-offs restart; the answers resolve them again.
        let retries = advance(&r, to: 5300)
        XCTAssertEqual(broadcastTimes(retries, a), [5100, 5300])
        XCTAssertEqual(broadcastTimes(retries, b), [5100, 5300])
        XCTAssertEqual(receive(&r, reply(a, macA), at: 5301), [.publish(idA, macA), .kernelSet(a, macA)])
    }

    // MARK: delta

    func testAChangeOfOneAddressActsOnlyOnThatAddress() {
        var r = resolver()
        let addresses = (0..<50).map { IPv4Address(192, 168, 50, UInt8(100 + $0)) }
        let macs = addresses.indices.map { MACAddress(rawValue: 0x0200_0000_0000 + UInt64($0)) }
        for (i, address) in addresses.enumerated() {
            _ = r.attach(address, id: NextHopID(rawValue: UInt32(i)), nowMs: 0)
            _ = receive(&r, reply(address, macs[i]), at: 1)
        }
        let target = addresses[17]
        let about: Set<String> = ["ip \(target)", "id 17"]
        XCTAssertEqual(receive(&r, reply(target, macA2), at: 10), [.request(target: target, unicastTo: macs[17])])
        for m in [reply(target, macs[17]), requestToUs(target, macA), reply(target, macA2)] {
            let actions = receive(&r, m, at: 10)
            XCTAssertTrue(actions.allSatisfy { about.contains(subject($0)) }, "\(actions)")
            XCTAssertTrue(advance(&r, to: 10).allSatisfy { about.contains(subject($0.action)) })
        }
        XCTAssertTrue(r.tunnelNeighbors.filter { $0.key != target }.allSatisfy { $0.value.phase == .reachable })
    }

    // MARK: what the underlay table keeps

    func testSendersOutsideThePrefixOrNotHostsAreNeverLearnt() {
        var r = resolver()
        let martians = [IPv4Address(10, 0, 0, 5), IPv4Address(192, 168, 50, 0), IPv4Address(192, 168, 50, 255),
                        IPv4Address(127, 0, 0, 1), IPv4Address(224, 0, 0, 5), IPv4Address(255, 255, 255, 255), .any, local]
        for sender in martians {
            XCTAssertEqual(receive(&r, requestToUs(sender, macB), at: 1), [], "\(sender)")
        }
        XCTAssertEqual(receive(&r, requestToUs(b, MACAddress(0x01, 0, 0x5E, 0, 0, 5)), at: 1), [])
        XCTAssertEqual(r.underlay.count, 0)
        XCTAssertEqual(r.statistics.invalidSenders, martians.count + 1)
    }

    /// New senders fill the table up to max_neighbors; the rest are counted, not kept,
    /// until entries age out. Tunnel neighbors and static entries are always kept.
    func testTheTableKeepsAtMostMaxNeighborsThatNoTunnelNeeds() {
        var settings = ResolutionSettings()
        settings.maxNeighbors = 50
        var r = resolver(settings)
        _ = r.addStatic(c, mac: macC, nowMs: 0)
        _ = r.attach(a, id: idA, nowMs: 0)
        for host in 100..<250 {
            let sender = IPv4Address(192, 168, 50, UInt8(host))
            _ = receive(&r, requestToUs(sender, MACAddress(0x02, 0, 0, 0, 1, UInt8(host))), at: 10)
        }
        XCTAssertEqual(r.underlay.count, 50 + 2)
        XCTAssertEqual(r.statistics.tableFull, 100)
        // The tunnel neighbor still resolves; known senders are still refreshed.
        XCTAssertEqual(receive(&r, reply(a, macA), at: 20), [.publish(idA, macA), .kernelSet(a, macA)])
        XCTAssertEqual(r.statistics.tableFull, 100)
        // Once the learnt ones age out, new senders are learnt again.
        r.expireUnused(nowMs: 10 + UInt64(settings.reachableMs) * 4)
        XCTAssertEqual(r.underlay.count, 2)
        _ = receive(&r, requestToUs(b, macB), at: 200_000)
        XCTAssertEqual(r.underlay[b]?.mac, macB)
    }

    // MARK: ageing of unused entries

    func testExpireUnusedKeepsWhatTunnelsNeed() {
        var r = resolvedA()
        _ = receive(&r, requestToUs(b, macB), at: 0)
        r.expireUnused(nowMs: UInt64(defaults.reachableMs) * 4 - 1)
        XCTAssertNotNil(r.underlay[b])
        r.expireUnused(nowMs: UInt64(defaults.reachableMs) * 4)
        XCTAssertNil(r.underlay[b])
        XCTAssertNotNil(r.underlay[a])
    }
}
