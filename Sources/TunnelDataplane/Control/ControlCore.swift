import CDPDK
import Glibc
import TunnelCore

/// The main lcore's loop: everything that is not the per-packet hot path.
///
/// - ARP: answers requests for the local endpoint, feeds replies and requests to the
///   neighbor resolver, and sends the requests and probes the resolver asks for.
/// - Resolution: runs the resolver's timers and the workers' miss notifications, and
///   publishes next-hop MACs to the data plane (and to the kernel, with kernel_sync).
/// - Runtime control: serves tunnelctl, applies the learning reports, and publishes
///   forwarding snapshots, reclaiming the old ones once the workers are past them.
/// - EVPN: reads what FRR installs in the kernel's FDB, and writes the local MACs for FRR
///   to advertise.
/// - Telemetry: keeps the telemetry thread's copy of the control state current.
///
/// Every change goes through the overlay model, which decides and returns its effects
/// (`OverlayEffects`); this loop does the I/O they ask for. It is the only writer of the
/// overlay model, the forwarding tables and snapshots and the next-hop table; the workers
/// only read them.
struct ControlCore {
    struct Worker {
        var lcore: UInt32
        /// ARP frames from this worker.
        var arp: OpaquePointer
        /// Next hops this worker found unresolved.
        var misses: OpaquePointer
        /// Uplink frames the device steered to the control core's queue, for this worker.
        var handoff: OpaquePointer
        /// This worker's `LearningReport`s; `nil` when learning is off.
        var learningReports: OpaquePointer?
        var pending: PendingCounts
    }

    let uplink: PortID
    /// The uplink queue pair reserved for the control core (the workers own the others).
    /// Devices such as net_tap need as many RX as TX queues and may steer frames to any
    /// of them, so the control core polls its RX queue too.
    let queue: UInt16
    let workers: [Worker]
    let pool: MbufPool
    let counters: CounterBlock
    let nextHops: NextHopTable
    let resolutions: ResolutionSignal
    let publisher: ForwardingPublisher
    let telemetry: TelemetrySource
    let server: ControlServer
    let kernel: KernelNeighborSync?
    let evpn: EVPNKernel?
    /// Every started port, whose link status is polled into `links`.
    let ports: [PortID]
    let links: LinkStates
    let pendingSettings: PendingSettings
    let running: RunFlag
    var overlay: Overlay
    var resolver: NeighborResolver
    let learning: Learning?
    /// What FRR has installed, as read so far; empty without EVPN.
    var evpnMirror: EVPNFDBMirror

    /// The control core's side of learning: where workers note when learnt and local
    /// MACs were last seen, and the ageing time.
    struct Learning {
        let ages: LearnedAges
        let agingTicks: UInt64
    }

    private static let burst = 32
    /// Idle sleep between polls: ARP and commands are answered within this, and the
    /// control core leaves its CPU to others when there is nothing to do.
    private static let idleMicroseconds: UInt32 = 200
    private static let telemetryPeriodMs: UInt64 = 250
    /// How often EVPN holds are checked: a withdrawn VTEP goes this much after its hold.
    private static let holdPeriodMs: UInt64 = 100

    var localAddress: IPv4Address { overlay.uplink.address.address }

    /// Applies what the resolver decided at start-up (static neighbors, first requests).
    mutating func start(with actions: [ResolverAction]) {
        apply(actions)
        receiveEVPN(nowMs: Clock.milliseconds)
        countOverlay()
        links.poll(ports)
        publishTelemetry(nowMs: Clock.milliseconds)
    }

    mutating func run() {
        let frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Self.burst)
        defer { frames.deallocate() }
        var lastTelemetry: UInt64 = 0
        var lastExpiry: UInt64 = 0
        var lastLinkPoll: UInt64 = 0
        var lastHoldCheck: UInt64 = 0
        while running.isRunning {
            var work = 0
            let now = Clock.milliseconds
            for worker in workers {
                let n = Int(rte_ring_sc_dequeue_burst(worker.arp, frames, UInt32(Self.burst), nil))
                for i in 0..<n { receiveARP(OpaquePointer(frames[i].unsafelyUnwrapped), nowMs: now) }
                let m = Int(rte_ring_sc_dequeue_burst(worker.misses, frames, UInt32(Self.burst), nil))
                for i in 0..<m {
                    let id = NextHopID(rawValue: UInt32(UInt(bitPattern: frames[i]) &- 1))
                    let actions = resolver.miss(id, nowMs: now)
                    apply(actions)
                }
                work += n + m
                if let reports = worker.learningReports { work += learn(from: reports, into: frames, nowMs: now) }
            }
            work += receiveFromUplink(into: frames, nowMs: now)
            // Bound to a local first: passed straight to `apply`, the mutated resolver was
            // copied whole on every call (seen with perf: 90 % of a core with 2 000
            // unresolved tunnels).
            let due = resolver.tick(nowMs: now)
            apply(due)
            work += server.serve(nowMs: now, workers: publisher.quiescentState, counters: counters) { handle($0) }
            work += kernel?.exchange(counters: counters) ?? 0
            work += receiveEVPN(nowMs: now)
            work += evpn?.exchange(counters: counters) ?? 0
            publisher.reclaim()
            if now &- lastExpiry >= 1000 {
                resolver.expireUnused(nowMs: now)
                countResolver()
                expireLearned(nowMs: now)
                lastExpiry = now
            }
            if evpn != nil, now &- lastHoldCheck >= Self.holdPeriodMs {
                let effects = overlay.expireEVPNHolds(nowMs: now)
                apply(effects, nowMs: now)
                lastHoldCheck = now
            }
            if now &- lastLinkPoll >= LinkStates.pollPeriodMs {
                links.poll(ports)
                lastLinkPoll = now
            }
            if now &- lastTelemetry >= Self.telemetryPeriodMs {
                countOverlay()
                publishTelemetry(nowMs: now)
                lastTelemetry = now
            }
            if work == 0 { usleep(Self.idleMicroseconds) }
        }
    }

    /// Frees every frame still queued for the control core (at shutdown, workers stopped)
    /// and takes out the kernel neighbors this process wrote.
    func shutdown() {
        var frame: UnsafeMutableRawPointer?
        for worker in workers {
            while rte_ring_sc_dequeue(worker.arp, &frame) == 0 { rte_pktmbuf_free(OpaquePointer(frame)) }
            while rte_ring_sc_dequeue(worker.misses, &frame) == 0 {}
            while rte_ring_sc_dequeue(worker.handoff, &frame) == 0 { rte_pktmbuf_free(OpaquePointer(frame)) }
            // Learning reports hold no mbufs: the ring is freed with them in it.
        }
        kernel?.removeAll(counters: counters)
        evpn?.removeAll(counters: counters)
    }

    // MARK: learning

    /// Takes a burst of a worker's learning reports into the model. `scratch` is the
    /// loop's frame array, used as room for 16 reports of two words.
    private mutating func learn(from reports: OpaquePointer, into scratch: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                                nowMs: UInt64) -> Int {
        guard let learning else { return 0 }
        let words = UnsafeMutableRawPointer(scratch)
        let n = Int(rte_ring_sc_dequeue_burst_elem(reports, words, 16, UInt32(Self.burst / 2), nil))
        let tick = LearningClock.tick(tsc: rte_rdtsc())
        var effects = OverlayEffects()
        for i in 0..<n {
            let pair = (words.load(fromByteOffset: i * 16, as: UInt64.self), words.load(fromByteOffset: i * 16 + 8, as: UInt64.self))
            guard let report = LearningReport(words: pair), let (outcome, changes) = overlay.learn(report, nowMs: nowMs) else {
                continue
            }
            effects.merge(changes)
            switch outcome {
            case .added(let slot):
                learning.ages.touch(slot, tick: tick)
                counters.add(.learned)
            case .moved(let slot, _):
                learning.ages.touch(slot, tick: tick)
                counters.add(.learnedMoves)
            case .unchanged(let slot):
                learning.ages.touch(slot, tick: tick)
            case .full:
                counters.add(.learnedTableFull)
            }
        }
        if !effects.isEmpty { apply(effects, nowMs: nowMs) }
        return n
    }

    private mutating func expireLearned(nowMs: UInt64) {
        guard let learning else { return }
        let (aged, effects) = overlay.expireLearned(now: LearningClock.tick(tsc: rte_rdtsc()), agingTicks: learning.agingTicks,
                                                    lastSeen: learning.ages.lastSeen)
        counters.add(.learnedAged, aged)
        apply(effects, nowMs: nowMs)
    }

    // MARK: EVPN

    /// Reads what FRR changed in the kernel and applies it as one batch: the remote MACs
    /// go into the MAC table in place, and VTEP and flood-list changes make one snapshot.
    @discardableResult
    private mutating func receiveEVPN(nowMs: UInt64) -> Int {
        guard let evpn else { return 0 }
        let read = evpn.receive(into: &evpnMirror, counters: counters)
        let changes = evpnMirror.takeChanges()
        guard !changes.isEmpty else { return read }
        let effects = overlay.applyEVPN(changes, nowMs: nowMs)
        apply(effects, nowMs: nowMs)
        return read + changes.count
    }

    // MARK: effects

    /// Does what a change of the model asks for; returns the epoch after which every
    /// worker sees the change (`ControlServer` holds a command's reply until then).
    @discardableResult
    mutating func apply(_ effects: OverlayEffects, nowMs: UInt64) -> UInt64 {
        for line in effects.notices { Log.error(line) }
        let epoch = effects.publish ? publishSnapshot() : publisher.quiescentState.advance()
        for hop in effects.resolve {
            let actions = resolver.attach(hop.address, id: hop.id, nowMs: nowMs)
            apply(actions)
        }
        for address in effects.forget {
            let actions = resolver.detach(address, nowMs: nowMs)
            apply(actions)
        }
        for key in effects.advertise { evpn?.advertise(key.mac, segment: key.segment) }
        for key in effects.withdraw { evpn?.withdraw(key.mac, segment: key.segment) }
        countOverlay()
        return epoch
    }

    /// Publishes a snapshot of the segments, flood lists, access bindings and sources,
    /// with the model's tunnel and MAC tables; returns its epoch.
    private mutating func publishSnapshot() -> UInt64 {
        publisher.publish(ForwardingSnapshot(overlay.plan()))
    }

    /// The overlay's sizes, as gauges: telemetry lists only the first rows of its tables.
    private func countOverlay() {
        counters.set(.learnedNow, overlay.learned.count)
        counters.set(.tunnelsNow, overlay.tunnelCount)
        counters.set(.tunnelNeighborsNow, overlay.neighbors.count)
        guard evpn != nil else { return }
        let state = overlay.evpn
        counters.set(.evpnVTEPsNow, state.vteps.count)
        counters.set(.evpnHeldVTEPsNow, state.heldCount)
        counters.set(.evpnRemoteMACsNow, state.remoteMACs.count)
        counters.set(.evpnLocalMACsNow, overlay.learned.localCount)
        counters.set(.evpnConflicts, state.statistics.conflicts)
        counters.set(.evpnRefused, state.statistics.refused)
        counters.set(.evpnMovedAway, state.statistics.movedAway)
    }

    // MARK: resolution

    func apply(_ actions: [ResolverAction]) {
        var resolved = false
        for action in actions {
            switch action {
            case .request(let target, let unicastTo):
                let request = ARPMessage.request(senderMAC: overlay.localMAC, senderAddress: localAddress, targetAddress: target)
                if send(request, to: unicastTo ?? .broadcast) { counters.add(.arpRequests) }
            case .publish(let id, let mac?):
                nextHops.setResolved(id, mac: mac)
                resolved = true
            case .publish(let id, nil):
                nextHops.setUnresolved(id)
            case .kernelSet(let address, let mac):
                kernel?.set(address, mac: mac)
            case .kernelRemove(let address):
                kernel?.remove(address)
            }
        }
        if resolved { resolutions.signal() }
    }

    /// Frames that the device steered to the control core's own RX queue: ARP is ours,
    /// the rest goes to a worker, the flow's hash choosing which, so a flow stays in order.
    private mutating func receiveFromUplink(into frames: UnsafeMutablePointer<UnsafeMutableRawPointer?>, nowMs: UInt64) -> Int {
        let burst = UnsafeMutableRawPointer(frames).assumingMemoryBound(to: OpaquePointer?.self)
        let n = Int(rte_eth_rx_burst(uplink.rawValue, queue, burst, UInt16(Self.burst)))
        if n > 0 { counters.add(.rx, n) }
        for i in 0..<n {
            let m = burst[i].unsafelyUnwrapped
            let length = Int(tf_mbuf_data_len(m))
            if length >= HeaderSize.ethernet, EthernetFrame.etherType(of: tf_mbuf_data(m)!) == .arp {
                receiveARP(m, nowMs: nowMs)
                continue
            }
            let hash = length >= HeaderSize.ethernet ? InnerFlow.hash(frame: tf_mbuf_data(m)!, length: length) : 0
            let worker = workers[Int(hash % UInt32(workers.count))]
            if rte_ring_sp_enqueue(worker.handoff, UnsafeMutableRawPointer(m)) != 0 {
                rte_pktmbuf_free(m)
                counters.drop(.controlRingFull)
            }
        }
        return n
    }

    private mutating func receiveARP(_ m: OpaquePointer, nowMs: UInt64) {
        defer { rte_pktmbuf_free(m) }
        guard let message = ARPMessage(parsingFrame: tf_mbuf_data(m)!, length: Int(tf_mbuf_data_len(m))) else {
            counters.drop(.malformed)
            return
        }
        if message.operation == .reply { counters.add(.arpReplies) }
        if message.asksToBeAnswered(by: localAddress), send(message.reply(with: overlay.localMAC), to: message.senderMAC) {
            counters.add(.arpAnswered)
        }
        let actions = resolver.receive(message, nowMs: nowMs)
        apply(actions)
        countResolver()
    }

    /// The resolver's own counts, as the control core's counters: it keeps them as plain
    /// values, being free of DPDK.
    private func countResolver() {
        let seen = resolver.statistics
        counters.set(.underlayNeighbors, resolver.underlay.count)
        counters.set(.arpUnsolicited, seen.unsolicited)
        counters.set(.arpConflicts, seen.conflicts)
        counters.set(.arpInvalidSenders, seen.invalidSenders)
        counters.set(.arpIgnored, seen.ignored)
        counters.set(.underlayFull, seen.tableFull)
    }

    /// Transmits one ARP frame on the control core's own uplink queue.
    @discardableResult
    private func send(_ message: ARPMessage, to destination: MACAddress) -> Bool {
        guard let m = rte_pktmbuf_alloc(pool.pointer) else {
            counters.drop(.noMbuf)
            return false
        }
        let length = message.write(to: tf_mbuf_data(m)!, destination: destination)
        tf_mbuf_set_len(m, UInt16(length))
        var frame: OpaquePointer? = m
        guard rte_eth_tx_burst(uplink.rawValue, queue, &frame, 1) == 1 else {
            rte_pktmbuf_free(m)
            counters.drop(links.dropReason(port: uplink.rawValue))
            return false
        }
        counters.add(.tx)
        return true
    }
}
