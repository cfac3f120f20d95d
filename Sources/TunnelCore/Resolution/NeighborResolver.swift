import HeapModule

/// What the resolver asks the control core to do. It never does I/O itself, and takes
/// the time as an argument, so tests drive it with a fake clock.
public enum ResolverAction: Sendable, Equatable {
    /// Send an ARP request for `target`: broadcast when `unicastTo` is nil, otherwise a
    /// unicast probe to the MAC we hold.
    case request(target: IPv4Address, unicastTo: MACAddress?)
    /// Write the data plane's next-hop word: a MAC, or unresolved (packets buffer).
    case publish(NextHopID, MACAddress?)
    /// Mirror a tunnel neighbor into the kernel's neighbor table, or take it out.
    case kernelSet(IPv4Address, MACAddress)
    case kernelRemove(IPv4Address)
}

/// What the resolver made of the ARP messages it was given, beyond the replies it took:
/// each message that changed nothing is counted under why.
public struct ARPStatistics: Sendable, Equatable {
    /// Replies to nothing we asked: never a new entry.
    public var unsolicited = 0
    /// Messages claiming another MAC for a neighbor we hold resolved: not taken; the MAC
    /// we hold is probed instead.
    public var conflicts = 0
    /// Senders we never learn: outside the uplink's prefix, not a host address, our own
    /// address, or a multicast or zero MAC.
    public var invalidSenders = 0
    /// New senders not learnt because the table holds `max_neighbors` entries no tunnel
    /// needs.
    public var tableFull = 0
    /// Messages with nothing to take: requests for other addresses and gratuitous ARP
    /// from senders we do not hold, bindings we already hold, other operations.
    public var ignored = 0

    public init() {}
}

/// Mechanism 1: keeps every tunnel neighbor resolved ahead of traffic.
///
/// - A new tunnel neighbor without a usable underlay entry is asked for at once, then
///   retried with back-off (`retry_initial_ms` doubling to `retry_max_ms`) for as long as
///   a tunnel needs it; a data-path miss asks again within `min_interval_ms` of the last
///   request (at once when that is long past) and restarts the back-off.
/// - A resolved one is re-probed with unicast requests before `reachable_ms` runs out, and
///   keeps its MAC while probed; only `probes` unanswered probes make it unresolved.
/// - A resolved neighbor's MAC changes only on a reply to our own request: a reply,
///   gratuitous ARP or request claiming another MAC makes us probe the MAC we hold, and
///   the claim wins only if that probe series fails and a broadcast request is answered.
/// - Every change of the underlay table updates just the tunnel neighbor at that address.
/// - The underlay table keeps only senders inside the uplink's prefix, and at most
///   `max_neighbors` entries that no tunnel needs.
/// - All requests pass one token bucket (`max_requests_per_second`).
public struct NeighborResolver: Sendable {
    public enum Phase: String, Sendable {
        /// No MAC: broadcast requests with back-off.
        case resolving
        /// MAC confirmed; a refresh is scheduled before it ages.
        case reachable
        /// MAC in use while unicast probes ask for confirmation.
        case probing
        /// Static entry: nothing to do.
        case permanent
    }

    public struct TunnelNeighbor: Sendable, Equatable {
        public let address: IPv4Address
        public let id: NextHopID
        public fileprivate(set) var phase: Phase
        /// The MAC the data plane currently uses, nil while unresolved.
        public fileprivate(set) var published: MACAddress?
        fileprivate var intervalMs: UInt64
        fileprivate var probesLeft: Int
        fileprivate var unanswered: Int
        public fileprivate(set) var lastRequestMs: UInt64?
        public fileprivate(set) var dueMs: UInt64
        fileprivate var generation: UInt64
    }

    private struct Timer: Comparable {
        var dueMs: UInt64
        var address: IPv4Address
        var generation: UInt64

        static func < (a: Timer, b: Timer) -> Bool { (a.dueMs, a.address) < (b.dueMs, b.address) }
    }

    public let settings: ResolutionSettings
    /// The uplink's address and prefix: our own address, and the senders worth learning.
    public let uplink: IPv4Interface
    public private(set) var underlay = UnderlayNeighborTable()
    public private(set) var tunnelNeighbors: [IPv4Address: TunnelNeighbor] = [:]
    private var addressByID: [NextHopID: IPv4Address] = [:]
    private var timers = Heap<Timer>()
    private var limiter: RequestRateLimiter
    private var nextGeneration: UInt64 = 0
    public private(set) var statistics = ARPStatistics()

    /// Probes are spaced like the slowest retry, so a probe series lasts `probes` of them.
    private var probeIntervalMs: UInt64 { UInt64(settings.retryMaxMs) }

    public init(settings: ResolutionSettings, uplink: IPv4Interface, nowMs: UInt64) {
        self.settings = settings
        self.uplink = uplink
        limiter = RequestRateLimiter(perSecond: settings.maxRequestsPerSecond, nowMs: nowMs)
    }

    public func tunnelNeighbor(_ id: NextHopID) -> TunnelNeighbor? {
        addressByID[id].flatMap { tunnelNeighbors[$0] }
    }

    // MARK: inputs

    public mutating func addStatic(_ address: IPv4Address, mac: MACAddress, nowMs: UInt64) -> [ResolverAction] {
        underlay.setStatic(address, mac: mac, nowMs: nowMs)
        return underlayChanged(address, nowMs: nowMs)
    }

    /// A tunnel now needs `address` as its next hop, in data-plane slot `id`.
    public mutating func attach(_ address: IPv4Address, id: NextHopID, nowMs: UInt64) -> [ResolverAction] {
        guard tunnelNeighbors[address] == nil else { return [] }
        tunnelNeighbors[address] = TunnelNeighbor(
            address: address, id: id, phase: .resolving, published: nil,
            intervalMs: UInt64(settings.retryInitialMs), probesLeft: 0, unanswered: 0,
            lastRequestMs: nil, dueMs: nowMs, generation: 0)
        addressByID[id] = address
        if underlay[address]?.usableMAC == nil {
            underlay.markIncomplete(address, nowMs: nowMs)
            var actions: [ResolverAction] = []
            ask(address, nowMs: nowMs, actions: &actions)
            return actions
        }
        return underlayChanged(address, nowMs: nowMs)
    }

    /// The last tunnel using `address` is gone.
    public mutating func detach(_ address: IPv4Address, nowMs: UInt64) -> [ResolverAction] {
        guard let neighbor = tunnelNeighbors.removeValue(forKey: address) else { return [] }
        addressByID[neighbor.id] = nil
        tunnelNeighbors.releaseSpareCapacity()
        addressByID.releaseSpareCapacity()
        return neighbor.published == nil
            ? [.publish(neighbor.id, nil)]
            : [.publish(neighbor.id, nil), .kernelRemove(address)]
    }

    /// An ARP message received on the uplink.
    public mutating func receive(_ message: ARPMessage, nowMs: UInt64) -> [ResolverAction] {
        let sender = message.senderAddress
        guard isLearnable(sender, mac: message.senderMAC) else {
            statistics.invalidSenders += 1
            return []
        }
        let held = underlay[sender]
        if let known = held?.usableMAC, known != message.senderMAC {
            statistics.conflicts += 1
            return held?.state == .permanent ? [] : confirmAfterConflict(sender, nowMs: nowMs)
        }
        let gratuitous = sender == message.targetAddress
        switch message.operation {
        case .reply where !gratuitous:
            guard underlay.confirm(sender, mac: message.senderMAC, nowMs: nowMs) else {
                statistics.unsolicited += 1
                return []
            }
        case .request where message.targetAddress == uplink.address:
            if held == nil && underlay.count >= settings.maxNeighbors + tunnelNeighbors.count + underlay.staticCount {
                statistics.tableFull += 1
                return []
            }
            // A binding we already hold is unchanged: a request proves nothing about whether
            // the neighbor answers, so the probe series goes on as it was.
            guard underlay.learn(sender, mac: message.senderMAC, nowMs: nowMs) else {
                statistics.ignored += 1
                return []
            }
        case .request, .reply:
            // Gratuitous ARP and requests for others only give a MAC to an entry that has
            // none in use (a resolved one was handled above).
            guard let held, held.state != .permanent, held.mac != nil, held.mac != message.senderMAC else {
                statistics.ignored += 1
                return []
            }
            _ = underlay.learn(sender, mac: message.senderMAC, nowMs: nowMs)
        default:
            statistics.ignored += 1
            return []
        }
        return underlayChanged(sender, nowMs: nowMs)
    }

    /// Whether ARP from `address` with `mac` may teach us anything: a unicast host of the
    /// uplink's prefix other than ourselves. Anything else is noise or a spoof.
    private func isLearnable(_ address: IPv4Address, mac: MACAddress) -> Bool {
        uplink.contains(address) && address != uplink.address && mac.isUnicast
            && TunnelRules.hostAddressProblem(address, in: uplink) == nil
    }

    /// Someone claims another MAC for `address`, whose MAC we use: ask the one we hold
    /// (unicast) instead of believing the claim. A tunnel neighbor already being probed
    /// goes on with its series; one confirmed less than `min_interval_ms` ago is probed
    /// at the end of that interval, so that a stream of claims costs one probe an interval.
    private mutating func confirmAfterConflict(_ address: IPv4Address, nowMs: UInt64) -> [ResolverAction] {
        guard var neighbor = tunnelNeighbors[address], neighbor.phase == .reachable else { return [] }
        neighbor.phase = .probing
        neighbor.probesLeft = settings.probes
        tunnelNeighbors[address] = neighbor
        underlay.setState(address, .probe, nowMs: nowMs)
        if let last = neighbor.lastRequestMs, nowMs &- last < UInt64(settings.minIntervalMs) {
            schedule(address, at: last &+ UInt64(settings.minIntervalMs))
            return []
        }
        var actions: [ResolverAction] = []
        probe(address, nowMs: nowMs, actions: &actions)
        return actions
    }

    /// A worker buffered a packet for `id`, which it found unresolved.
    public mutating func miss(_ id: NextHopID, nowMs: UInt64) -> [ResolverAction] {
        guard let address = addressByID[id], var neighbor = tunnelNeighbors[address] else { return [] }
        guard neighbor.phase == .resolving else {
            // The worker looked before our last publication reached it; say it again.
            return neighbor.published.map { [.publish(id, $0)] } ?? []
        }
        neighbor.intervalMs = UInt64(settings.retryInitialMs)
        tunnelNeighbors[address] = neighbor
        if let last = neighbor.lastRequestMs, nowMs &- last < UInt64(settings.minIntervalMs) {
            // Too soon after the last request to send another, too important to wait for
            // the back-off: ask again as soon as the interval allows.
            let due = last &+ UInt64(settings.minIntervalMs)
            if neighbor.dueMs > due { schedule(address, at: due) }
            return []
        }
        var actions: [ResolverAction] = []
        ask(address, nowMs: nowMs, actions: &actions)
        return actions
    }

    /// Forgets every learnt neighbor and resolves the tunnel neighbors again at once.
    public mutating func flush(nowMs: UInt64) -> [ResolverAction] {
        var actions: [ResolverAction] = []
        for address in underlay.flush() {
            guard var neighbor = tunnelNeighbors[address] else { continue }
            if neighbor.published != nil {
                actions += [.publish(neighbor.id, nil), .kernelRemove(address)]
                neighbor.published = nil
            }
            neighbor.phase = .resolving
            neighbor.intervalMs = UInt64(settings.retryInitialMs)
            neighbor.unanswered = 0
            neighbor.lastRequestMs = nil
            tunnelNeighbors[address] = neighbor
            underlay.markIncomplete(address, nowMs: nowMs)
            ask(address, nowMs: nowMs, actions: &actions)
        }
        return actions
    }

    /// Runs the timers that are due: retries, refreshes, probes, failures; ages the
    /// underlay entries nobody needs.
    public mutating func tick(nowMs: UInt64) -> [ResolverAction] {
        var actions: [ResolverAction] = []
        while let timer = timers.min, timer.dueMs <= nowMs {
            guard let neighbor = tunnelNeighbors[timer.address], neighbor.generation == timer.generation else {
                _ = timers.popMin()
                continue
            }
            // Every transition sends one request. Without a token the due timers stay queued,
            // oldest first, so none starves and none is popped again and again.
            guard limiter.hasToken(nowMs: nowMs) else { break }
            _ = timers.popMin()
            fire(neighbor, nowMs: nowMs, actions: &actions)
        }
        return actions
    }

    /// Ages out learnt entries that no tunnel needs (call now and then, e.g. every second).
    public mutating func expireUnused(nowMs: UInt64) {
        let keepMs = UInt64(settings.reachableMs) * 4
        let needed = tunnelNeighbors
        underlay.expire(olderThan: keepMs, nowMs: nowMs) { needed[$0] != nil }
    }

    /// When the next timer falls due, for a control loop that wants to sleep until then.
    public var nextDueMs: UInt64? { timers.min?.dueMs }

    // MARK: transitions

    private mutating func fire(_ neighbor: TunnelNeighbor, nowMs: UInt64, actions: inout [ResolverAction]) {
        var neighbor = neighbor
        let address = neighbor.address
        switch neighbor.phase {
        case .permanent:
            return
        case .resolving:
            ask(address, nowMs: nowMs, actions: &actions)
        case .reachable:
            // Refresh before the entry ages: probe it while it keeps forwarding.
            neighbor.phase = .probing
            neighbor.probesLeft = settings.probes
            tunnelNeighbors[address] = neighbor
            underlay.setState(address, .probe, nowMs: nowMs)
            probe(address, nowMs: nowMs, actions: &actions)
        case .probing where neighbor.probesLeft > 0:
            probe(address, nowMs: nowMs, actions: &actions)
        case .probing:
            // A whole probe series went unanswered: only now does the MAC stop being used.
            underlay.setState(address, .failed, nowMs: nowMs)
            neighbor.phase = .resolving
            neighbor.intervalMs = UInt64(settings.retryInitialMs)
            neighbor.unanswered = settings.probes
            if neighbor.published != nil {
                actions += [.publish(neighbor.id, nil), .kernelRemove(address)]
                neighbor.published = nil
            }
            tunnelNeighbors[address] = neighbor
            ask(address, nowMs: nowMs, actions: &actions)
        }
    }

    /// The underlay entry at `address` changed: bring its tunnel neighbor in line (the delta
    /// update: nothing else is looked at).
    private mutating func underlayChanged(_ address: IPv4Address, nowMs: UInt64) -> [ResolverAction] {
        guard var neighbor = tunnelNeighbors[address], let entry = underlay[address] else { return [] }
        var actions: [ResolverAction] = []
        let mac = entry.usableMAC
        if mac != neighbor.published {
            actions.append(.publish(neighbor.id, mac))
            actions.append(mac.map { .kernelSet(address, $0) } ?? .kernelRemove(address))
            neighbor.published = mac
        }
        neighbor.unanswered = 0
        switch entry.state {
        case .permanent:
            neighbor.phase = .permanent
            tunnelNeighbors[address] = neighbor
            cancelTimer(address)
        case .reachable:
            neighbor.phase = .reachable
            tunnelNeighbors[address] = neighbor
            let probing = UInt64(settings.probes) * probeIntervalMs
            let refresh = entry.updatedMs &+ UInt64(settings.reachableMs) &- min(probing, UInt64(settings.reachableMs) / 2)
            schedule(address, at: max(refresh, nowMs))
        case .stale, .probe:
            // Usable but unconfirmed: confirm it now, forwarding meanwhile.
            neighbor.phase = .reachable
            tunnelNeighbors[address] = neighbor
            schedule(address, at: nowMs)
        case .incomplete, .failed:
            tunnelNeighbors[address] = neighbor
        }
        return actions
    }

    /// Broadcasts a request for an unresolved neighbor and schedules the next retry.
    private mutating func ask(_ address: IPv4Address, nowMs: UInt64, actions: inout [ResolverAction]) {
        guard var neighbor = tunnelNeighbors[address] else { return }
        if limiter.take(nowMs: nowMs) {
            actions.append(.request(target: address, unicastTo: nil))
            neighbor.lastRequestMs = nowMs
            neighbor.unanswered += 1
            if neighbor.unanswered > settings.probes { underlay.setState(address, .failed, nowMs: nowMs) }
            // The back-off grows with requests sent, not with attempts the rate refused.
            let interval = neighbor.intervalMs
            neighbor.intervalMs = min(interval * 2, UInt64(settings.retryMaxMs))
            tunnelNeighbors[address] = neighbor
            schedule(address, at: nowMs &+ interval)
        } else {
            // Over the global rate: due now, keeping its place if it was already waiting.
            schedule(address, at: min(neighbor.dueMs, nowMs))
        }
    }

    /// Sends one unicast probe of a resolved neighbor.
    private mutating func probe(_ address: IPv4Address, nowMs: UInt64, actions: inout [ResolverAction]) {
        guard var neighbor = tunnelNeighbors[address] else { return }
        if limiter.take(nowMs: nowMs) {
            actions.append(.request(target: address, unicastTo: neighbor.published))
            neighbor.lastRequestMs = nowMs
            neighbor.probesLeft -= 1
            tunnelNeighbors[address] = neighbor
            schedule(address, at: nowMs &+ probeIntervalMs)
        } else {
            schedule(address, at: min(neighbor.dueMs, nowMs))
        }
    }

    private mutating func schedule(_ address: IPv4Address, at dueMs: UInt64) {
        guard var neighbor = tunnelNeighbors[address] else { return }
        nextGeneration &+= 1
        neighbor.generation = nextGeneration
        neighbor.dueMs = dueMs
        tunnelNeighbors[address] = neighbor
        timers.insert(Timer(dueMs: dueMs, address: address, generation: nextGeneration))
    }

    private mutating func cancelTimer(_ address: IPv4Address) {
        nextGeneration &+= 1
        tunnelNeighbors[address]?.generation = nextGeneration
    }
}
