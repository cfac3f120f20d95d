import CDPDK
import Glibc
import TunnelCore

/// The main lcore's loop: everything that is not the per-packet hot path.
///
/// - ARP: answers requests for the local endpoint, feeds replies and requests to the
///   neighbor resolver, and sends the requests and probes the resolver asks for.
/// - Resolution: runs the resolver's timers and the workers' miss notifications, and
///   publishes next-hop MACs to the data plane (and to the kernel, with kernel_sync).
/// - Runtime control: serves tunnelctl, rebuilds and publishes forwarding snapshots,
///   reclaims the old ones once the workers are past them.
/// - Telemetry: keeps the telemetry thread's copy of the control state current.
///
/// It is the only writer of the overlay model, the forwarding snapshots and the next-hop
/// table; the workers only read them.
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
    /// Every started port, whose link status is polled into `links`.
    let ports: [PortID]
    let links: LinkStates
    let pendingSettings: PendingSettings
    let running: RunFlag
    var overlay: Overlay
    var resolver: NeighborResolver
    var learning: Learning?

    /// The control core's side of learning: where workers note when learnt MACs were
    /// last seen, the ageing time, and whether the workers' snapshot lags the model.
    struct Learning {
        let ages: LearnedAges
        let agingTicks: UInt64
        var changed = false
        var publishedMs: UInt64 = 0
        /// How long the last snapshot took to build: learnt changes wait ten times that
        /// (20 ms at least), so that a remote sending from ever new MACs keeps the control
        /// core rebuilding a tenth of its time at most, whatever the table's size.
        var buildMs: UInt64 = 0

        var publishPeriodMs: UInt64 { max(ControlCore.learningPublishPeriodMs, buildMs * 10) }
    }

    private static let burst = 32
    /// Idle sleep between polls: ARP and commands are answered within this, and the
    /// control core leaves its CPU to others when there is nothing to do.
    private static let idleMicroseconds: UInt32 = 200
    private static let telemetryPeriodMs: UInt64 = 250
    /// Learnt changes are published at most this often: a burst of new MACs costs one
    /// snapshot, not one per MAC.
    static let learningPublishPeriodMs: UInt64 = 20

    var localAddress: IPv4Address { overlay.uplink.address.address }

    /// Applies what the resolver decided at start-up (static neighbors, first requests).
    mutating func start(with actions: [ResolverAction]) {
        apply(actions)
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
                if let reports = worker.learningReports { work += learn(from: reports, into: frames) }
            }
            work += receiveFromUplink(into: frames, nowMs: now)
            // Bound to a local first: passed straight to `apply`, the mutated resolver was
            // copied whole on every call (seen with perf: 90 % of a core with 2 000
            // unresolved tunnels).
            let due = resolver.tick(nowMs: now)
            apply(due)
            work += server.serve(nowMs: now, workers: publisher.quiescentState, counters: counters) { handle($0) }
            work += kernel?.exchange(counters: counters) ?? 0
            publisher.reclaim()
            if now &- lastExpiry >= 1000 {
                resolver.expireUnused(nowMs: now)
                countResolver()
                expireLearned()
                lastExpiry = now
            }
            publishLearned(nowMs: now)
            if now &- lastLinkPoll >= LinkStates.pollPeriodMs {
                links.poll(ports)
                lastLinkPoll = now
            }
            if now &- lastTelemetry >= Self.telemetryPeriodMs {
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
    }

    // MARK: learning

    /// Takes a burst of a worker's learning reports into the model. `scratch` is the
    /// loop's frame array, used as room for 16 reports of two words.
    private mutating func learn(from reports: OpaquePointer, into scratch: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int {
        guard var state = learning else { return 0 }
        defer { learning = state }
        let words = UnsafeMutableRawPointer(scratch)
        let n = Int(rte_ring_sc_dequeue_burst_elem(reports, words, 16, UInt32(Self.burst / 2), nil))
        let tick = LearningClock.tick(tsc: rte_rdtsc())
        for i in 0..<n {
            let pair = (words.load(fromByteOffset: i * 16, as: UInt64.self), words.load(fromByteOffset: i * 16 + 8, as: UInt64.self))
            guard let report = LearningReport(words: pair), let outcome = overlay.learn(report) else { continue }
            switch outcome {
            case .added(let slot):
                state.ages.touch(slot, tick: tick)
                counters.add(.learned)
                state.changed = true
            case .moved(let slot, _):
                state.ages.touch(slot, tick: tick)
                counters.add(.learnedMoves)
                state.changed = true
            case .unchanged(let slot):
                // The worker's snapshot predates the entry: nothing to publish.
                state.ages.touch(slot, tick: tick)
            case .full:
                counters.add(.learnedTableFull)
            }
        }
        return n
    }

    private mutating func expireLearned() {
        guard var state = learning else { return }
        let aged = overlay.expireLearned(now: LearningClock.tick(tsc: rte_rdtsc()), agingTicks: state.agingTicks,
                                         lastSeen: state.ages.lastSeen)
        guard aged > 0 else { return }
        counters.add(.learnedAged, aged)
        state.changed = true
        learning = state
    }

    /// Publishes the learnt changes without waiting for the workers (nobody waits for a
    /// reply); the old snapshot is reclaimed once they have all moved on.
    private mutating func publishLearned(nowMs: UInt64) {
        guard let state = learning, state.changed, nowMs &- state.publishedMs >= state.publishPeriodMs else { return }
        _ = publishSnapshot(nowMs: nowMs)
    }

    /// Publishes a snapshot of the whole overlay, learnt entries included, for a command
    /// or for learning alike; returns its epoch.
    mutating func publishSnapshot(nowMs: UInt64) -> UInt64 {
        let started = Clock.milliseconds
        let epoch = publisher.publish(ForwardingSnapshot(overlay.plan()))
        learning?.buildMs = Clock.milliseconds &- started
        learning?.changed = false
        learning?.publishedMs = nowMs
        countOverlay()
        return epoch
    }

    /// The overlay's sizes, as gauges: telemetry lists only the first rows of its tables.
    private func countOverlay() {
        counters.set(.learnedNow, overlay.learned.count)
        counters.set(.tunnelsNow, overlay.tunnels.count)
        counters.set(.tunnelNeighborsNow, overlay.neighbors.count)
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
