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

/// Mechanism 1 of SPEC §1: keeps every tunnel neighbor resolved ahead of traffic.
///
/// - A new tunnel neighbor without a usable underlay entry is asked for at once, then
///   retried with back-off (`retry_initial_ms` doubling to `retry_max_ms`) for as long as
///   a tunnel needs it; a data-path miss asks again at once (at most every
///   `min_interval_ms`) and restarts the back-off.
/// - A resolved one is re-probed with unicast requests before `reachable_ms` runs out, and
///   keeps its MAC while probed; only `probes` unanswered probes make it unresolved.
/// - Every change of the underlay table updates just the tunnel neighbor at that address.
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
    public private(set) var underlay = UnderlayNeighborTable()
    public private(set) var tunnelNeighbors: [IPv4Address: TunnelNeighbor] = [:]
    private var addressByID: [NextHopID: IPv4Address] = [:]
    private var timers = Heap<Timer>()
    private var limiter: RequestRateLimiter
    private var nextGeneration: UInt64 = 0
    /// Replies that matched no entry and were ignored.
    public private(set) var unsolicitedReplies = 0

    /// Probes are spaced like the slowest retry, so a probe series lasts `probes` of them.
    private var probeIntervalMs: UInt64 { UInt64(settings.retryMaxMs) }

    public init(settings: ResolutionSettings, nowMs: UInt64) {
        self.settings = settings
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
        return neighbor.published == nil
            ? [.publish(neighbor.id, nil)]
            : [.publish(neighbor.id, nil), .kernelRemove(address)]
    }

    /// An ARP message received on the uplink; `localAddress` is our endpoint address.
    public mutating func receive(_ message: ARPMessage, localAddress: IPv4Address, nowMs: UInt64) -> [ResolverAction] {
        let sender = message.senderAddress
        guard sender != IPv4Address(rawValue: 0), sender != localAddress,
              !message.senderMAC.isMulticast, message.senderMAC != MACAddress(rawValue: 0) else { return [] }
        let gratuitous = sender == message.targetAddress
        switch message.operation {
        case .reply where !gratuitous:
            guard underlay.confirm(sender, mac: message.senderMAC, nowMs: nowMs) else {
                unsolicitedReplies += 1
                return []
            }
        case .request where message.targetAddress == localAddress:
            // A binding we already hold is unchanged: a request proves nothing about whether
            // the neighbor answers, so the probe series goes on as it was.
            guard underlay.learn(sender, mac: message.senderMAC, nowMs: nowMs) else { return [] }
        case .request, .reply:
            // Gratuitous ARP and requests for others only refresh a binding we hold.
            guard let entry = underlay[sender], entry.state != .permanent, entry.mac != nil else { return [] }
            if entry.mac == message.senderMAC { return [] }
            _ = underlay.learn(sender, mac: message.senderMAC, nowMs: nowMs)
        default:
            return []
        }
        return underlayChanged(sender, nowMs: nowMs)
    }

    /// A worker buffered a packet for `id`, which it found unresolved.
    public mutating func miss(_ id: NextHopID, nowMs: UInt64) -> [ResolverAction] {
        guard let address = addressByID[id], var neighbor = tunnelNeighbors[address] else { return [] }
        guard neighbor.phase == .resolving else {
            // The worker looked before our last publication reached it; say it again.
            return neighbor.published.map { [.publish(id, $0)] } ?? []
        }
        if let last = neighbor.lastRequestMs, nowMs &- last < UInt64(settings.minIntervalMs) { return [] }
        neighbor.intervalMs = UInt64(settings.retryInitialMs)
        tunnelNeighbors[address] = neighbor
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
        underlay.expire(olderThan: keepMs, nowMs: nowMs) { tunnelNeighbors[$0] != nil }
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
    /// update of SPEC §1; nothing else is looked at).
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
