/// The control plane's model of the overlay: tunnels, inner-MAC forwarding entries, flood
/// lists and access ports, plus the tunnel neighbors they need. It is the single source of
/// truth from which forwarding snapshots are built; runtime commands change it.
public struct Overlay: Sendable {
    public struct MACKey: Hashable, Sendable {
        public var segment: VNI
        public var mac: MACAddress
    }

    public struct BoundAccessPort: Sendable {
        public var portID: UInt16
        public var config: AccessPort
    }

    public struct DeletedTunnel: Sendable {
        public var forwardingEntriesRemoved: Int
        public var floodListsLeft: Int
        /// The next hop, when this tunnel was its last user.
        public var removedNextHop: TunnelNeighborTable.Entry?
    }

    public let uplink: Uplink
    public let localMAC: MACAddress
    public let maxTunnels: Int
    public let access: [BoundAccessPort]
    public let acceptsAnySource: Bool
    /// Tunnels in the order they were created.
    public private(set) var tunnels: [Tunnel] = []
    /// Indexes of `tunnels`, so that checking a new tunnel costs no scan of the others.
    private var byName: [String: Tunnel] = [:]
    private var byEndpoint: [TunnelRules.Endpoint: String] = [:]
    /// Each tunnel's outer header, built once when the tunnel is added: a plan copies them.
    private var headers: [String: OuterHeaderTemplate] = [:]
    public private(set) var forwarding: [MACKey: String] = [:]
    /// MACs learnt from decapsulated traffic; a static entry (`forwarding`) for the same
    /// key takes precedence and is never learnt over.
    public private(set) var learned: LearnedMACs
    /// Where a tunnel packet comes from, as far as learning can tell: the first tunnel
    /// created with this format, remote and VNI (another port or flow id is a twin).
    private struct Origin: Hashable {
        var type: EncapsulationType
        var remote: IPv4Address
        var vni: VNI

        init(_ tunnel: Tunnel) { (type, remote, vni) = (tunnel.type, tunnel.remote, tunnel.vni) }
        init(_ report: LearningReport) { (type, remote, vni) = (report.type, report.remote, report.vni) }
    }
    private var byOrigin: [Origin: String] = [:]
    public private(set) var flood: [VNI: [String]] = [:]
    public private(set) var neighbors: TunnelNeighborTable

    /// Builds the overlay of a validated configuration. `accessPortIDs` are the DPDK port
    /// ids of `configuration.access`, in the same order.
    public init(configuration: Configuration, localMAC: MACAddress, accessPortIDs: [UInt16], nowMs: UInt64) throws(OverlayError) {
        precondition(accessPortIDs.count == configuration.access.count)
        uplink = configuration.uplink
        self.localMAC = localMAC
        maxTunnels = configuration.dataplane.maxTunnels
        access = zip(accessPortIDs, configuration.access).map { BoundAccessPort(portID: $0, config: $1) }
        acceptsAnySource = configuration.decapsulation.acceptFrom == .any
        learned = LearnedMACs(capacity: configuration.learning.enabled ? configuration.learning.maxEntries : 0)
        neighbors = TunnelNeighborTable(allocator: NextHopAllocator(
            capacity: configuration.dataplane.maxNextHops,
            quarantineMs: UInt64(configuration.pending.lifetimeMs) + 1000))
        for tunnel in configuration.tunnels { _ = try addTunnel(tunnel, nowMs: nowMs) }
        for entry in configuration.forwarding {
            try addForwarding(segment: entry.segment, mac: entry.mac, tunnel: entry.tunnel)
        }
        for list in configuration.flood { flood[list.segment] = list.tunnels }
    }

    public func tunnel(named name: String) -> Tunnel? {
        byName[name]
    }

    public func nextHop(of tunnel: Tunnel) -> IPv4Address? {
        uplink.nextHop(for: tunnel.remote)
    }

    /// Adds a tunnel and attaches it to its next hop; an `.added` result is a new tunnel
    /// neighbor to resolve at once.
    public mutating func addTunnel(_ tunnel: Tunnel, nowMs: UInt64) throws(OverlayError) -> TunnelNeighborTable.AttachResult {
        if self.tunnel(named: tunnel.name) != nil { throw .duplicateTunnel(tunnel.name) }
        guard tunnels.count < maxTunnels else { throw .tunnelTableFull(maxTunnels) }
        if let problem = TunnelRules.problem(with: tunnel, uplink: uplink) {
            throw .invalidTunnel(tunnel.name, problem.description)
        }
        if let problem = TunnelRules.portProblem(tunnel, among: tunnels) {
            throw .invalidTunnel(tunnel.name, problem.description)
        }
        if let twin = byEndpoint[TunnelRules.Endpoint(tunnel)] {
            throw .invalidTunnel(tunnel.name, TunnelRules.duplicateMessage(tunnel, of: twin))
        }
        let hop = nextHop(of: tunnel)!
        let result = neighbors.attach(tunnel: tunnel.name, nextHop: hop, nowMs: nowMs)
        if result == .full { throw .nextHopTableFull(hop) }
        tunnels.append(tunnel)
        byName[tunnel.name] = tunnel
        byEndpoint[TunnelRules.Endpoint(tunnel)] = tunnel.name
        headers[tunnel.name] = OuterHeaderTemplate(tunnel: tunnel, localAddress: uplink.address.address, localMAC: localMAC)
        if byOrigin[Origin(tunnel)] == nil { byOrigin[Origin(tunnel)] = tunnel.name }
        return result
    }

    /// Deletes a tunnel with its forwarding entries and flood-list memberships.
    public mutating func deleteTunnel(named name: String, nowMs: UInt64) throws(OverlayError) -> DeletedTunnel {
        guard let tunnel = byName.removeValue(forKey: name) else { throw .unknownTunnel(name) }
        tunnels.removeAll { $0.name == name }
        byEndpoint[TunnelRules.Endpoint(tunnel)] = nil
        headers[name] = nil
        let origin = Origin(tunnel)
        if byOrigin[origin] == name { byOrigin[origin] = tunnels.first { Origin($0) == origin }?.name }
        tunnels.releaseSpareCapacity()
        byName.releaseSpareCapacity()
        byEndpoint.releaseSpareCapacity()
        headers.releaseSpareCapacity()
        byOrigin.releaseSpareCapacity()
        let before = forwarding.count
        forwarding = forwarding.filter { $0.value != name }
        let learnedRemoved = learned.forget(tunnel: name)
        var floodLeft = 0
        for (segment, list) in flood where list.contains(name) {
            flood[segment] = list.filter { $0 != name }
            floodLeft += 1
        }
        let removed = neighbors.detach(tunnel: name, nextHop: nextHop(of: tunnel)!, nowMs: nowMs)
        return DeletedTunnel(forwardingEntriesRemoved: before - forwarding.count + learnedRemoved, floodListsLeft: floodLeft,
                             removedNextHop: removed)
    }

    public mutating func addForwarding(segment: VNI, mac: MACAddress, tunnel name: String) throws(OverlayError) {
        guard let tunnel = tunnel(named: name) else { throw .unknownTunnel(name) }
        guard tunnel.vni == segment else { throw .segmentMismatch(tunnel: name, vni: tunnel.vni, segment: segment) }
        guard mac.isUnicast else { throw .invalidMAC(mac) }
        let key = MACKey(segment: segment, mac: mac)
        if let existing = forwarding[key] { throw .duplicateForwarding(segment: segment, mac: mac, tunnel: existing) }
        forwarding[key] = name
        learned.forget(key)
    }

    /// Deletes a static entry, or else a learnt one.
    public mutating func deleteForwarding(segment: VNI, mac: MACAddress) throws(OverlayError) {
        let key = MACKey(segment: segment, mac: mac)
        guard forwarding.removeValue(forKey: key) != nil || learned.forget(key) != nil else {
            throw .unknownForwarding(segment: segment, mac: mac)
        }
    }

    /// Learns where a worker saw an inner MAC come from. `nil` when there is nothing to
    /// learn: no tunnel of ours has that origin, or a static entry owns the MAC.
    public mutating func learn(_ report: LearningReport) -> LearnedMACs.Outcome? {
        let key = MACKey(segment: report.vni, mac: report.mac)
        guard forwarding[key] == nil, report.mac.isUnicast,
              let tunnel = byOrigin[Origin(report)] else { return nil }
        return learned.learn(key, tunnel: tunnel)
    }

    /// Forgets the learnt MACs not seen for `agingTicks`; returns how many.
    public mutating func expireLearned(now: UInt64, agingTicks: UInt64, lastSeen: (Int) -> UInt64) -> Int {
        learned.expire(now: now, agingTicks: agingTicks, lastSeen: lastSeen).count
    }

    /// The forwarding state the workers need, with outer headers ready for each tunnel.
    public func plan() -> ForwardingPlan {
        var plan = ForwardingPlan()
        let vnis = Set(access.map(\.config.segment)).union(forwarding.keys.map(\.segment)).union(flood.keys)
            .union(learned.entries.keys.map(\.segment))
        plan.segments = vnis.sorted()
        let segmentIndex = Dictionary(uniqueKeysWithValues: plan.segments.enumerated().map { ($1, UInt16($0)) })
        var tunnelIndex: [String: TunnelIndex] = [:]
        for tunnel in tunnels {
            tunnelIndex[tunnel.name] = TunnelIndex(rawValue: UInt32(plan.tunnels.count))
            plan.tunnels.append(TunnelEntry(header: headers[tunnel.name]!, nextHop: neighbors[nextHop(of: tunnel)!]!.id))
        }
        plan.flood = plan.segments.map { vni in (flood[vni] ?? []).compactMap { tunnelIndex[$0] } }
        plan.deliveries = plan.segments.map { vni in
            access.indices.filter { access[$0].config.segment == vni }.map {
                AccessDelivery(accessIndex: UInt16($0), vlan: access[$0].config.vlan ?? 0)
            }
        }
        // The registered ports are always served, so a peer can reach us before we have a
        // tunnel back to it. TunnelRules.portProblem keeps the rest distinct and few enough.
        plan.decapsulationPorts.add(EncapsulationType.vxlan.defaultDestinationPort!, .vxlan)
        plan.decapsulationPorts.add(EncapsulationType.geneve.defaultDestinationPort!, .geneve)
        for tunnel in tunnels {
            if let port = tunnel.destinationPort {
                let added = plan.decapsulationPorts.add(port, tunnel.type)
                precondition(added, "TunnelRules.portProblem bounds the ports in use")
            }
        }
        for port in access {
            plan.access[port.portID] = AccessBinding(segment: segmentIndex[port.config.segment]!, vlan: port.config.vlan ?? 0)
        }
        plan.acceptsAnySource = acceptsAnySource
        plan.sources = tunnels.compactMap { tunnel in segmentIndex[tunnel.vni].map { ($0, tunnel.remote) } }
        plan.macs = forwarding.map { key, name in
            ForwardingPlan.MACEntry(segment: segmentIndex[key.segment]!, mac: key.mac, tunnel: tunnelIndex[name]!)
        }
        plan.macs += learned.entries.map { key, entry in
            ForwardingPlan.MACEntry(segment: segmentIndex[key.segment]!, mac: key.mac, tunnel: tunnelIndex[entry.tunnel]!,
                                    learnedSlot: entry.slot)
        }
        return plan
    }
}

public enum OverlayError: Error, Equatable, CustomStringConvertible {
    case duplicateTunnel(String)
    case unknownTunnel(String)
    case invalidTunnel(String, String)
    case nextHopTableFull(IPv4Address)
    case tunnelTableFull(Int)
    case segmentMismatch(tunnel: String, vni: VNI, segment: VNI)
    case invalidMAC(MACAddress)
    case duplicateForwarding(segment: VNI, mac: MACAddress, tunnel: String)
    case unknownForwarding(segment: VNI, mac: MACAddress)

    public var description: String {
        switch self {
        case .duplicateTunnel(let n): "a tunnel named \(ConfigurationText.quote(n)) already exists"
        case .unknownTunnel(let n): "no tunnel named \(ConfigurationText.quote(n))"
        case .invalidTunnel(let n, let why): "tunnel \(ConfigurationText.quote(n)): \(why)"
        case .nextHopTableFull(let a): "next hop \(a): the next-hop table is full (dataplane.max_next_hops)"
        case .tunnelTableFull(let n): "there are \(n) tunnels already, the most dataplane.max_tunnels allows"
        case .segmentMismatch(let n, let vni, let s): "tunnel '\(n)' carries vni \(vni), not segment \(s)"
        case .invalidMAC(let m): "mac: " + ValueRules.notUnicastMessage(m)
        case .duplicateForwarding(let s, let m, let t): "segment \(s) already forwards \(m) to tunnel '\(t)'"
        case .unknownForwarding(let s, let m): "segment \(s) has no forwarding entry for \(m)"
        }
    }
}
