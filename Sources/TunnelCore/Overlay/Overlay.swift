/// The control plane's model of the overlay: tunnels, inner-MAC forwarding entries, flood
/// lists and access ports, plus the tunnel neighbors they need. Every source of overlay
/// state goes through it: the configuration, `tunnelctl`, data-plane learning and EVPN.
///
/// It keeps the data plane's two large tables itself, entry by entry: a tunnel's outer
/// header is written once into its fixed slot of the `TunnelTable`, and a MAC's route into
/// the `MACTable` when that MAC changes, so no change copies the others. What each change
/// asks of the control core (publish a snapshot of the small parts, resolve a next hop,
/// write the kernel) comes back as `OverlayEffects`. Time is passed in.
///
/// A value type for its bookkeeping, but the tables are shared: a copy writes into the
/// same tunnel and MAC tables, so there is one overlay per forwarder (the control core's).
public struct Overlay: Sendable {
    public struct MACKey: Hashable, Sendable, Comparable {
        public var segment: VNI
        public var mac: MACAddress

        public init(segment: VNI, mac: MACAddress) {
            self.segment = segment
            self.mac = mac
        }

        public static func < (a: MACKey, b: MACKey) -> Bool { (a.segment.rawValue, a.mac) < (b.segment.rawValue, b.mac) }
    }

    public struct BoundAccessPort: Sendable {
        public var portID: UInt16
        public var config: AccessPort
    }

    /// Who made a tunnel.
    public enum TunnelOrigin: String, Sendable {
        /// The configuration file or `tunnelctl`.
        case configured = "static"
        /// A remote VTEP of an EVPN segment.
        case evpn
    }

    struct TunnelRecord: Sendable {
        var tunnel: Tunnel
        var index: TunnelIndex
        var nextHop: IPv4Address
        var origin: TunnelOrigin
    }

    public struct DeletedTunnel: Sendable {
        public var forwardingEntriesRemoved: Int
        public var floodListsLeft: Int
        public var effects: OverlayEffects
    }

    public let uplink: Uplink
    public let localMAC: MACAddress
    public let maxTunnels: Int
    public let access: [BoundAccessPort]
    public let acceptsAnySource: Bool
    /// Whether inner source MACs of tunnel packets are learnt (`learning.enabled`).
    public let learnsFromTunnels: Bool

    // The data plane's tables, written entry by entry.
    public let tunnelTable: TunnelTable
    public internal(set) var macTable: MACTable
    var tunnelSlots: SlotAllocator

    /// Tunnels by name, and their names in the order they were created.
    var records: [String: TunnelRecord] = [:]
    public internal(set) var tunnelNames: [String] = []
    var byEndpoint: [TunnelRules.Endpoint: String] = [:]
    var customPorts: [UInt16: (tunnel: Tunnel, users: Int)] = [:]
    /// Where a tunnel packet comes from, as far as learning can tell: the first tunnel
    /// created with this format, remote and VNI (another port or flow id is a twin).
    struct LearningOrigin: Hashable {
        var type: EncapsulationType
        var remote: IPv4Address
        var vni: VNI

        init(_ tunnel: Tunnel) { (type, remote, vni) = (tunnel.type, tunnel.remote, tunnel.vni) }
        init(type: EncapsulationType, remote: IPv4Address, vni: VNI) { (self.type, self.remote, self.vni) = (type, remote, vni) }
    }
    var byLearningOrigin: [LearningOrigin: String] = [:]

    // Segments: each VNI in use has a fixed index, the one MAC keys and access bindings
    // carry; an index is freed when its last tunnel goes (access segments stay).
    var segmentIndexes: [VNI: UInt16] = [:]
    var segmentVNIs: [VNI?] = []
    var freeSegmentIndexes: [UInt16] = []
    var tunnelsPerSegment: [VNI: Int] = [:]
    let accessSegments: Set<VNI>
    /// Where each access segment's decapsulated frames go.
    let deliveries: [VNI: [AccessDelivery]]

    /// Static entries: from the configuration or `tunnelctl`. They take precedence over
    /// every other source, and are never learnt over.
    public internal(set) var forwarding: [MACKey: String] = [:]
    /// MACs learnt from decapsulated traffic, and the local MACs of EVPN segments.
    public internal(set) var learned: LearnedMACs
    /// Static flood lists, by segment.
    public internal(set) var flood: [VNI: [String]] = [:]
    public internal(set) var neighbors: TunnelNeighborTable
    public internal(set) var evpn: EVPNState

    /// Builds the overlay of a validated configuration. `accessPortIDs` are the DPDK port
    /// ids of `configuration.access`, in the same order.
    public init(configuration: Configuration, localMAC: MACAddress, accessPortIDs: [UInt16], nowMs: UInt64) throws(OverlayError) {
        precondition(accessPortIDs.count == configuration.access.count)
        uplink = configuration.uplink
        self.localMAC = localMAC
        maxTunnels = configuration.dataplane.maxTunnels
        access = zip(accessPortIDs, configuration.access).map { BoundAccessPort(portID: $0, config: $1) }
        acceptsAnySource = configuration.decapsulation.acceptFrom == .any
        learnsFromTunnels = configuration.learning.enabled
        // Local MACs of EVPN segments take learnt slots too.
        let learns = configuration.learning.enabled || configuration.evpn != nil
        learned = LearnedMACs(capacity: learns ? configuration.learning.maxEntries : 0)
        tunnelTable = TunnelTable(capacity: maxTunnels)
        macTable = MACTable(capacity: configuration.forwarding.count)
        // A worker holds a tunnel's index for a burst at most; a second is ample.
        tunnelSlots = SlotAllocator(capacity: maxTunnels, quarantineMs: 1000)
        neighbors = TunnelNeighborTable(allocator: SlotAllocator(
            capacity: configuration.dataplane.maxNextHops,
            quarantineMs: UInt64(configuration.pending.lifetimeMs) + 1000))
        evpn = EVPNState(settings: configuration.evpn)
        accessSegments = Set(configuration.access.map(\.segment))
        deliveries = Dictionary(grouping: configuration.access.indices, by: { configuration.access[$0].segment })
            .mapValues { $0.map { AccessDelivery(accessIndex: UInt16($0), vlan: configuration.access[$0].vlan ?? 0) } }
        for vni in accessSegments.sorted() { _ = segmentIndex(claiming: vni) }
        for tunnel in configuration.tunnels { _ = try addTunnel(tunnel, nowMs: nowMs) }
        for entry in configuration.forwarding {
            _ = try addForwarding(segment: entry.segment, mac: entry.mac, tunnel: entry.tunnel)
        }
        for list in configuration.flood { flood[list.segment] = list.tunnels }
    }

    public func tunnel(named name: String) -> Tunnel? {
        records[name]?.tunnel
    }

    public func origin(ofTunnel name: String) -> TunnelOrigin? {
        records[name]?.origin
    }

    /// The tunnels in the order they were created.
    public var tunnels: [Tunnel] { tunnelNames.map { records[$0]!.tunnel } }

    public var tunnelCount: Int { records.count }

    public func nextHop(of tunnel: Tunnel) -> IPv4Address? {
        uplink.nextHop(for: tunnel.remote)
    }

    // MARK: tunnels

    /// Adds a tunnel from the configuration or `tunnelctl`; its new next hop, if any, is
    /// to be resolved at once.
    public mutating func addTunnel(_ tunnel: Tunnel, nowMs: UInt64) throws(OverlayError) -> OverlayEffects {
        if let problem = TunnelRules.reservedNameProblem(tunnel.name) { throw .invalidTunnel(tunnel.name, problem) }
        return try addTunnel(tunnel, origin: .configured, nowMs: nowMs)
    }

    mutating func addTunnel(_ tunnel: Tunnel, origin: TunnelOrigin, nowMs: UInt64) throws(OverlayError) -> OverlayEffects {
        if records[tunnel.name] != nil { throw .duplicateTunnel(tunnel.name) }
        guard records.count < maxTunnels else { throw .tunnelTableFull(maxTunnels) }
        if let problem = TunnelRules.problem(with: tunnel, uplink: uplink) {
            throw .invalidTunnel(tunnel.name, problem.description)
        }
        if let problem = TunnelRules.portProblem(tunnel, among: tunnelsWithCustomPorts) {
            throw .invalidTunnel(tunnel.name, problem.description)
        }
        if let twin = byEndpoint[TunnelRules.Endpoint(tunnel)] {
            throw .invalidTunnel(tunnel.name, TunnelRules.duplicateMessage(tunnel, of: twin))
        }
        guard let slot = tunnelSlots.allocate(nowMs: nowMs) else { throw .tunnelTableFull(maxTunnels) }
        let hop = nextHop(of: tunnel)!
        let attached = neighbors.attach(tunnel: tunnel.name, nextHop: hop, nowMs: nowMs)
        guard attached != .full else {
            tunnelSlots.release(slot, nowMs: nowMs)
            throw .nextHopTableFull(hop)
        }
        var effects = OverlayEffects()
        let id: NextHopID
        switch attached {
        case .added(let new):
            id = new
            effects.resolve.append(.init(address: hop, id: new))
        case .shared(let existing):
            id = existing
        case .full:
            preconditionFailure()
        }
        let index = TunnelIndex(rawValue: slot)
        // Written before anything the workers read names the slot.
        tunnelTable[index] = TunnelEntry(
            header: OuterHeaderTemplate(tunnel: tunnel, localAddress: uplink.address.address, localMAC: localMAC), nextHop: id)
        records[tunnel.name] = TunnelRecord(tunnel: tunnel, index: index, nextHop: hop, origin: origin)
        tunnelNames.append(tunnel.name)
        byEndpoint[TunnelRules.Endpoint(tunnel)] = tunnel.name
        let learningOrigin = LearningOrigin(tunnel)
        if byLearningOrigin[learningOrigin] == nil { byLearningOrigin[learningOrigin] = tunnel.name }
        _ = segmentIndex(claiming: tunnel.vni)
        tunnelsPerSegment[tunnel.vni, default: 0] += 1
        countPort(of: tunnel, by: 1)
        effects.publish = true
        return effects
    }

    /// One tunnel per UDP port in use that is not a registered one: what
    /// `TunnelRules.portProblem` checks a new tunnel against (a handful at most).
    private var tunnelsWithCustomPorts: [Tunnel] { customPorts.values.map(\.tunnel) }

    private static let registeredPorts = Set([EncapsulationType.vxlan, .geneve].compactMap(\.defaultDestinationPort))

    private mutating func countPort(of tunnel: Tunnel, by change: Int) {
        guard let port = tunnel.destinationPort, !Self.registeredPorts.contains(port) else { return }
        let users = (customPorts[port]?.users ?? 0) + change
        var representative = customPorts[port]?.tunnel ?? tunnel
        if users > 0, change < 0, representative.name == tunnel.name {
            // Messages name a tunnel that still uses the port.
            representative = records.values.first { $0.tunnel.destinationPort == port }!.tunnel
        }
        customPorts[port] = users == 0 ? nil : (representative, users)
    }

    /// Deletes a tunnel made by the configuration or `tunnelctl`, with its forwarding
    /// entries and flood-list memberships.
    public mutating func deleteTunnel(named name: String, nowMs: UInt64) throws(OverlayError) -> DeletedTunnel {
        guard let record = records[name] else { throw .unknownTunnel(name) }
        guard record.origin == .configured else { throw .managedByEVPN(name) }
        if let vtep = evpn.vtep(usingTunnel: name) {
            throw .invalidTunnel(name, "EVPN reaches VTEP \(vtep.address) of segment \(vtep.vni) through it")
        }
        return removeTunnel(named: name, nowMs: nowMs)
    }

    mutating func removeTunnel(named name: String, nowMs: UInt64) -> DeletedTunnel {
        let record = records.removeValue(forKey: name)!
        let tunnel = record.tunnel
        tunnelNames.removeAll { $0 == name }
        byEndpoint[TunnelRules.Endpoint(tunnel)] = nil
        countPort(of: tunnel, by: -1)
        let learningOrigin = LearningOrigin(tunnel)
        if byLearningOrigin[learningOrigin] == name {
            byLearningOrigin[learningOrigin] = tunnelNames.first { LearningOrigin(records[$0]!.tunnel) == learningOrigin }
        }
        records.releaseSpareCapacity()
        tunnelNames.releaseSpareCapacity()
        byEndpoint.releaseSpareCapacity()
        byLearningOrigin.releaseSpareCapacity()

        var effects = OverlayEffects()
        var removed: [MACKey] = forwarding.filter { $0.value == name }.map(\.key)
        for key in removed { forwarding[key] = nil }
        removed += learned.forget(tunnel: name)
        removed += evpn.forgetMACs(behind: name)
        forwarding.releaseSpareCapacity()
        for key in removed { refresh(key, &effects) }
        var floodLeft = 0
        for (segment, list) in flood where list.contains(name) {
            flood[segment] = list.filter { $0 != name }
            floodLeft += 1
        }
        if let gone = neighbors.detach(tunnel: name, nextHop: record.nextHop, nowMs: nowMs) {
            effects.forget.append(gone.address)
        }
        tunnelsPerSegment[tunnel.vni]! -= 1
        if tunnelsPerSegment[tunnel.vni] == 0 {
            tunnelsPerSegment[tunnel.vni] = nil
            releaseSegmentIndex(of: tunnel.vni)
        }
        tunnelSlots.release(record.index.rawValue, nowMs: nowMs)
        effects.publish = true
        return DeletedTunnel(forwardingEntriesRemoved: removed.count, floodListsLeft: floodLeft, effects: effects)
    }

    // MARK: segments

    /// The index of segment `vni`, given it one if it has none.
    mutating func segmentIndex(claiming vni: VNI) -> UInt16 {
        if let index = segmentIndexes[vni] { return index }
        let index: UInt16
        if !freeSegmentIndexes.isEmpty {
            // The longest-free index first: a worker that still reads the old snapshot
            // finds nothing of the new segment under it.
            index = freeSegmentIndexes.removeFirst()
            segmentVNIs[Int(index)] = vni
        } else {
            precondition(segmentVNIs.count < Int(UInt16.max), "segment indexes are 16-bit")
            index = UInt16(segmentVNIs.count)
            segmentVNIs.append(vni)
        }
        segmentIndexes[vni] = index
        return index
    }

    private mutating func releaseSegmentIndex(of vni: VNI) {
        guard !accessSegments.contains(vni), let index = segmentIndexes.removeValue(forKey: vni) else { return }
        segmentVNIs[Int(index)] = nil
        freeSegmentIndexes.append(index)
    }

    // MARK: the MAC table

    /// The route the workers should find for `key`: a static entry, else an EVPN one, else
    /// a learnt or local one.
    func route(for key: MACKey) -> MACRoute? {
        if let name = forwarding[key] { return MACRoute(tunnel: records[name]!.index) }
        if let remote = evpn.remoteMACs[key] { return MACRoute(tunnel: records[remote.tunnel]!.index) }
        if let entry = learned.entries[key] {
            return MACRoute(tunnel: entry.tunnel.map { records[$0]!.index } ?? .local, learnedSlot: entry.slot)
        }
        return nil
    }

    /// Writes the route of `key` into the MAC table after a change of any of its sources.
    /// A table too full for a new key is copied into a larger one first, which the next
    /// snapshot carries to the workers.
    mutating func refresh(_ key: MACKey, _ effects: inout OverlayEffects) {
        guard let segment = segmentIndexes[key.segment] else { return }
        let tableKey = MACTableReader.key(segment: segment, mac: key.mac)
        guard let route = route(for: key) else {
            macTable.remove(tableKey)
            return
        }
        if !macTable.set(tableKey, route) {
            macTable = macTable.rebuilt()
            macTable.set(tableKey, route)
            effects.publish = true
        }
    }

    /// The route the workers find for `key` now.
    public func publishedRoute(_ key: MACKey) -> MACRoute? {
        segmentIndexes[key.segment].flatMap { macTable.route(key: MACTableReader.key(segment: $0, mac: key.mac)) }
    }

    // MARK: the snapshot

    /// The small parts of the forwarding state (segments with their flood lists and
    /// deliveries, access bindings, decapsulation ports, accepted sources), with the
    /// shared tunnel and MAC tables.
    public func plan() -> ForwardingPlan {
        var plan = ForwardingPlan(tunnels: tunnelTable, macs: macTable)
        plan.segments = segmentVNIs.map { vni in
            vni.map { vni in
                ForwardingPlan.Segment(
                    vni: vni, flood: floodList(vni).map { records[$0]!.index }, deliveries: deliveries[vni] ?? [],
                    learnsFromTunnels: learnsFromTunnels && !evpn.segments.contains(vni))
            }
        }
        // The registered ports are always served, so a peer can reach us before we have a
        // tunnel back to it. TunnelRules.portProblem keeps the rest distinct and few enough.
        plan.decapsulationPorts.add(EncapsulationType.vxlan.defaultDestinationPort!, .vxlan)
        plan.decapsulationPorts.add(EncapsulationType.geneve.defaultDestinationPort!, .geneve)
        for tunnel in tunnelsWithCustomPorts {
            let added = plan.decapsulationPorts.add(tunnel.destinationPort!, tunnel.type)
            precondition(added, "TunnelRules.portProblem bounds the ports in use")
        }
        for port in access {
            plan.access[port.portID] = AccessBinding(
                segment: segmentIndexes[port.config.segment]!, vlan: port.config.vlan ?? 0,
                learnsSources: evpn.segments.contains(port.config.segment))
        }
        plan.acceptsAnySource = acceptsAnySource
        plan.sources = records.values.map { (segmentIndexes[$0.tunnel.vni]!, $0.tunnel.remote) }
        return plan
    }

    /// The flood list of a segment: its static list, then the VTEPs EVPN floods to that
    /// are not on it.
    public func floodList(_ vni: VNI) -> [String] {
        let configured = flood[vni] ?? []
        guard evpn.segments.contains(vni) else { return configured }
        return configured + evpn.floodTunnels(vni).filter { !configured.contains($0) }
    }
}

public enum OverlayError: Error, Equatable, CustomStringConvertible {
    case duplicateTunnel(String)
    case unknownTunnel(String)
    case invalidTunnel(String, String)
    case managedByEVPN(String)
    case nextHopTableFull(IPv4Address)
    case tunnelTableFull(Int)
    case segmentMismatch(tunnel: String, vni: VNI, segment: VNI)
    case invalidMAC(MACAddress)
    case duplicateForwarding(segment: VNI, mac: MACAddress, tunnel: String)
    case unknownForwarding(segment: VNI, mac: MACAddress)
    case notStatic(segment: VNI, mac: MACAddress, origin: String)
    case duplicateFlood(segment: VNI, tunnel: String)
    case notInFlood(segment: VNI, tunnel: String)

    public var description: String {
        switch self {
        case .duplicateTunnel(let n): "a tunnel named \(ConfigurationText.quote(n)) already exists"
        case .unknownTunnel(let n): "no tunnel named \(ConfigurationText.quote(n))"
        case .invalidTunnel(let n, let why): "tunnel \(ConfigurationText.quote(n)): \(why)"
        case .managedByEVPN(let n): "tunnel '\(n)' comes from EVPN: it goes when FRR withdraws its VTEP"
        case .nextHopTableFull(let a): "next hop \(a): the next-hop table is full (dataplane.max_next_hops)"
        case .tunnelTableFull(let n): "there are \(n) tunnels already, the most dataplane.max_tunnels allows"
        case .segmentMismatch(let n, let vni, let s): "tunnel '\(n)' carries vni \(vni), not segment \(s)"
        case .invalidMAC(let m): "mac: " + ValueRules.notUnicastMessage(m)
        case .duplicateForwarding(let s, let m, let t): "segment \(s) already forwards \(m) to tunnel '\(t)'"
        case .unknownForwarding(let s, let m): "segment \(s) has no forwarding entry for \(m)"
        case .notStatic(let s, let m, let o): "segment \(s): the entry for \(m) comes from \(o), not from configuration: it cannot be deleted"
        case .duplicateFlood(let s, let t): "tunnel '\(t)' is already in the flood list of segment \(s)"
        case .notInFlood(let s, let t): "tunnel '\(t)' is not in the static flood list of segment \(s)"
        }
    }
}
