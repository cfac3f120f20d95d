import CDPDK
import Synchronization
import TunnelCore

/// What the telemetry thread may read while the lcores run.
///
/// Counters are read directly (each a whole 64-bit word); everything the control core
/// owns is published here as plain values under a mutex, so the telemetry thread never
/// touches control-plane structures.
final class TelemetrySource: Sendable {
    struct PortRole: Sendable {
        var port: PortID
        var role: String
        var segment: VNI?
        var vlan: UInt16?
    }

    struct TunnelStatus: Sendable {
        var tunnel: Tunnel
        var origin: Overlay.TunnelOrigin
        var nextHop: IPv4Address
        var nextHopMAC: MACAddress?
    }

    /// One EVPN segment: its devices and what EVPN has put in it.
    struct EVPNSegmentStatus: Sendable {
        var settings: EVPNSettings.Segment
        var vteps: Int
        var flood: Int
        var remoteMACs: Int
        var localMACs: Int
    }

    struct ControlState: Sendable {
        var tunnels: [TunnelStatus] = []
        var neighbors: [TunnelNeighborRow] = []
        var underlay: [UnderlayNeighborRow] = []
        var pending: PendingReport?
        /// `nil` without EVPN.
        var evpn: [EVPNSegmentStatus]?
    }

    let counters: CounterTable
    let pool: MbufPool
    let ports: [PortRole]
    let links: LinkStates
    let firstPacketDelays: [DelayHistogram]
    private let control = Mutex(ControlState())
    /// TSC when the workers were launched; 0 before.
    private let startedAt = Atomic<UInt64>(0)

    /// Marks the moment the workers start: `uptime_us` counts from it.
    func markStarted() { startedAt.store(rte_rdtsc(), ordering: .relaxed) }

    /// Microseconds since the workers started; 0 before.
    var uptimeMicroseconds: UInt64 {
        let started = startedAt.load(ordering: .relaxed)
        guard started != 0 else { return 0 }
        return UInt64((Double(rte_rdtsc() &- started) * 1e6 / Double(EAL.tscHz)).rounded())
    }

    init(counters: CounterTable, pool: MbufPool, ports: [PortRole], links: LinkStates, firstPacketDelays: [DelayHistogram]) {
        self.counters = counters
        self.pool = pool
        self.ports = ports
        self.links = links
        self.firstPacketDelays = firstPacketDelays
    }

    func publish(_ state: ControlState) {
        control.withLock { $0 = state }
    }

    var state: ControlState { control.withLock { $0 } }
}

/// The forwarder's own telemetry commands, beside DPDK's `/ethdev/...`.
///
/// DPDK cannot unregister a command, and its telemetry thread answers until
/// `rte_eal_cleanup`: each callback runs holding `current`, and `detach` takes the source
/// away under the same lock before the memory it reads (counters, pool, histograms) is
/// freed, so that a late query gets an error instead of freed memory.
enum Telemetry {
    private static let current = Mutex<TelemetrySource?>(nil)

    static func register(_ source: TelemetrySource) {
        current.withLock { $0 = source }
        register("/tunnelfwd/stats", "Packet counters: totals, dropped by reason, lcores, per_core by lcore id (up to 8); mbufs_in_use, cycles_per_packet, uptime_us") {
            _, _, d in Telemetry.answer { Telemetry.stats($0, TelemetryData(raw: d!)) }
        }
        register("/tunnelfwd/core", "Packet counters of one lcore; parameter: its lcore id") {
            _, params, d in Telemetry.answer { Telemetry.core($0, TelemetryData(raw: d!), lcore: params.flatMap { UInt32(String(cString: $0)) }) }
        }
        register("/tunnelfwd/tunnels", "The first 64 tunnels keyed by name ('_' for '.' and '-'): type, remote, VNI, next hop and its MAC") {
            _, _, d in Telemetry.answer { Telemetry.tunnels($0, TelemetryData(raw: d!)) }
        }
        register("/tunnelfwd/ports", "Ports by DPDK port id with their role (uplink or access), segment, VLAN, MTU and link as last polled") {
            _, _, d in Telemetry.answer { Telemetry.ports($0, TelemetryData(raw: d!)) }
        }
        register("/tunnelfwd/neighbors", "The first 64 tunnel neighbors keyed by address ('_' for '.'); parameter 'all': of the underlay table") {
            _, params, d in Telemetry.answer { Telemetry.neighbors($0, TelemetryData(raw: d!), all: params.map { String(cString: $0) } == "all") }
        }
        register("/tunnelfwd/pending", "Pending-buffer occupancy: total, per worker lcore, per next hop; limits") {
            _, _, d in Telemetry.answer { Telemetry.pending($0, TelemetryData(raw: d!)) }
        }
        register("/tunnelfwd/evpn", "EVPN: VTEPs (held ones), remote and local MACs, netlink messages, redumps, conflicts, write errors; segments by VNI") {
            _, _, d in Telemetry.answer { Telemetry.evpn($0, TelemetryData(raw: d!)) }
        }
    }

    /// Rows of a table that a reply shows (the control core publishes no more): DPDK takes
    /// 256 entries in a dictionary, but its 16 KiB reply holds only about 80 tunnel rows
    /// and drops the rest without a word. The tables' sizes are gauges in
    /// `/tunnelfwd/stats`, and tunnelctl lists every row.
    static let rowsShown = 64

    /// Takes the source away (at shutdown): waits for a callback in progress, and later
    /// ones answer with an error.
    static func detach() {
        current.withLock { $0 = nil }
    }

    private static func answer(_ body: (TelemetrySource) -> Int32) -> Int32 {
        current.withLock { source in source.map(body) ?? -1 }
    }

    /// DPDK refuses a help text over RTE_TEL_MAX_STRING_LEN, and then the command does not
    /// exist: a mistake caught at start-up, not by a user finding `null`.
    private static func register(_ command: String, _ help: String, _ callback: telemetry_cb) {
        let rc = rte_telemetry_register_cmd(command, callback, help)
        precondition(rc == 0, "telemetry command \(command) not registered (\(rc))")
    }

    private static func stats(_ source: TelemetrySource, _ d: TelemetryData) -> Int32 {
        let table = source.counters
        d.startDictionary()
        for counter in Counter.allCases { d.add(counter.name, table.total(counter)) }
        d.add("dropped", container: dropped(table.lcores.map { table.block(lcore: $0) }))
        d.add("cycles_per_packet", cyclesPerPacket(cycles: table.total(.busyCycles), packets: table.total(.busyPackets)))
        d.add("pending_full", table.total(.pendingFull))
        let delay = DelayHistogram.summary(of: source.firstPacketDelays)
        if let h = TelemetryData.allocate() {
            h.startDictionary()
            h.add("count", delay.count)
            h.add("p50", delay.p50)
            h.add("p99", delay.p99)
            h.add("max", delay.max)
            d.add("first_packet_delay_us", container: h)
        }
        d.add("uptime_us", source.uptimeMicroseconds)
        d.add("mbufs_in_use", UInt64(source.pool.inUse))
        d.add("mbufs_total", UInt64(source.pool.capacity))
        if let lcores = TelemetryData.allocate() {
            lcores.startArray()
            for lcore in table.lcores { lcores.append(UInt64(lcore)) }
            d.add("lcores", container: lcores)
        }
        guard table.lcores.count <= perCoreInStats else { return 0 }
        if let perCore = TelemetryData.allocate() {
            perCore.startDictionary()
            for lcore in table.lcores {
                if let core = TelemetryData.allocate() {
                    counters(of: lcore, in: table, into: core)
                    perCore.add(String(lcore), container: core)
                }
            }
            d.add("per_core", container: perCore)
        }
        return 0
    }

    /// A reply holds 16 KiB (DPDK's MAX_OUTPUT_LEN), the totals take about 1.5 KiB and an
    /// lcore's counters about 1.4 KiB: past this many lcores `/tunnelfwd/stats` leaves
    /// `per_core` out rather than have DPDK drop it silently, and `/tunnelfwd/core,N` gives
    /// each lcore's. (8, not 10, leaves room for counters still to come.)
    static let perCoreInStats = 8

    private static func core(_ source: TelemetrySource, _ d: TelemetryData, lcore: UInt32?) -> Int32 {
        guard let lcore, source.counters.lcores.contains(lcore) else { return -1 }
        counters(of: lcore, in: source.counters, into: d)
        return 0
    }

    private static func counters(of lcore: UInt32, in table: CounterTable, into d: TelemetryData) {
        let block = table.block(lcore: lcore)
        d.startDictionary()
        for counter in Counter.allCases { d.add(counter.name, block.value(counter)) }
        d.add("dropped", container: dropped([block]))
        d.add("cycles_per_packet", cyclesPerPacket(cycles: block.value(.busyCycles), packets: block.value(.busyPackets)))
    }

    private static func dropped(_ blocks: [CounterBlock]) -> TelemetryData {
        let d = TelemetryData.allocate()!
        d.startDictionary()
        var total: UInt64 = 0
        for reason in DropReason.allCases {
            let n = blocks.reduce(0) { $0 &+ $1.value(reason) }
            total &+= n
            d.add(reason.name, n)
        }
        d.add("total", total)
        return d
    }

    private static func cyclesPerPacket(cycles: UInt64, packets: UInt64) -> UInt64 {
        packets == 0 ? 0 : (cycles + packets / 2) / packets
    }

    private static func tunnels(_ source: TelemetrySource, _ d: TelemetryData) -> Int32 {
        d.startDictionary()
        var used = Set<String>()
        for status in source.state.tunnels {
            guard let t = TelemetryData.allocate() else { continue }
            t.startDictionary()
            t.add("name", status.tunnel.name)
            t.add("origin", status.origin.rawValue)
            t.add("type", status.tunnel.type.rawValue)
            t.add("remote", status.tunnel.remote.description)
            t.add("vni", UInt64(status.tunnel.vni.rawValue))
            if let port = status.tunnel.destinationPort { t.add("dst_port", UInt64(port)) }
            t.add("next_hop", status.nextHop.description)
            t.add("next_hop_mac", status.nextHopMAC?.description ?? "unresolved")
            // Names differing only in '.' or '-' would share a key: number the later ones.
            var key = TelemetryData.key(status.tunnel.name)
            var suffix = 2
            while !used.insert(key).inserted {
                key = TelemetryData.key(status.tunnel.name) + "_\(suffix)"
                suffix += 1
            }
            d.add(key, container: t)
        }
        return 0
    }

    private static func neighbors(_ source: TelemetrySource, _ d: TelemetryData, all: Bool) -> Int32 {
        let state = source.state
        d.startDictionary()
        // The underlay rows are the tunnel rows' first fields: one writer for both.
        let rows: [(address: String, state: String, mac: String?, ageMs: UInt64?, tunnels: [String]?)] = all
            ? state.underlay.map { ($0.address, $0.state, $0.mac, $0.ageMs, nil) }
            : state.neighbors.map { ($0.address, $0.state, $0.mac, $0.ageMs, $0.tunnels) }
        for row in rows {
            guard let n = TelemetryData.allocate() else { continue }
            n.startDictionary()
            n.add("address", row.address)
            n.add("state", row.state)
            n.add("mac", row.mac ?? "")
            if let age = row.ageMs { n.add("age_ms", age) }
            if let tunnels = row.tunnels { n.add("tunnels", tunnels.joined(separator: ",")) }
            d.add(TelemetryData.key(row.address), container: n)
        }
        return 0
    }

    private static func pending(_ source: TelemetrySource, _ d: TelemetryData) -> Int32 {
        guard let report = source.state.pending else { return -1 }
        // Occupancy per core is read live from the workers' gauges; the per-next-hop split
        // is the control core's latest count.
        let table = source.counters
        let perCore = Dictionary(uniqueKeysWithValues: table.lcores.dropFirst().map {
            (String($0), Int(table.block(lcore: $0).value(.pendingNow)))
        })
        d.startDictionary()
        d.add("total", perCore.values.reduce(0, +))
        d.add("lifetime_ms", report.lifetimeMs)
        d.add("per_core_limit", report.perCoreLimit)
        d.add("per_neighbor_limit", report.perNeighborLimit)
        for (name, values) in [("per_core", perCore), ("by_next_hop", report.byNextHop)] {
            guard let c = TelemetryData.allocate() else { continue }
            c.startDictionary()
            for (key, n) in values.sorted(by: { $0.key < $1.key }).prefix(Int(RTE_TEL_MAX_DICT_ENTRIES)) {
                c.add(TelemetryData.key(key), n)
            }
            d.add(name, container: c)
        }
        return 0
    }

    private static func evpn(_ source: TelemetrySource, _ d: TelemetryData) -> Int32 {
        guard let segments = source.state.evpn else { return -1 }
        let table = source.counters
        d.startDictionary()
        for (name, counter) in [("vteps", Counter.evpnVTEPsNow), ("held_vteps", .evpnHeldVTEPsNow),
                                ("remote_macs", .evpnRemoteMACsNow), ("local_macs", .evpnLocalMACsNow),
                                ("netlink_messages", .evpnNetlinkMessages), ("redumps", .evpnRedumps),
                                ("conflicts", .evpnConflicts), ("refused", .evpnRefused), ("moved_away", .evpnMovedAway),
                                ("write_errors", .evpnWriteErrors)] {
            d.add(name, table.total(counter))
        }
        guard let all = TelemetryData.allocate() else { return 0 }
        all.startDictionary()
        for segment in segments {
            guard let s = TelemetryData.allocate() else { continue }
            s.startDictionary()
            s.add("vni", UInt64(segment.settings.vni.rawValue))
            s.add("vxlan_interface", segment.settings.vxlanInterface)
            s.add("local_port", segment.settings.localPort)
            s.add("vteps", segment.vteps)
            s.add("flood", segment.flood)
            s.add("remote_macs", segment.remoteMACs)
            s.add("local_macs", segment.localMACs)
            all.add(String(segment.settings.vni.rawValue), container: s)
        }
        d.add("segments", container: all)
        return 0
    }

    private static func ports(_ source: TelemetrySource, _ d: TelemetryData) -> Int32 {
        d.startDictionary()
        for role in source.ports {
            guard let p = TelemetryData.allocate() else { continue }
            p.startDictionary()
            p.add("name", role.port.name)
            p.add("role", role.role)
            p.add("mac", role.port.macAddress.description)
            if let segment = role.segment { p.add("segment", UInt64(segment.rawValue)) }
            if let vlan = role.vlan { p.add("vlan", UInt64(vlan)) }
            var mtu: UInt16 = 0
            if rte_eth_dev_get_mtu(role.port.rawValue, &mtu) == 0 { p.add("mtu", UInt64(mtu)) }
            p.add("link", source.links.isDown(role.port.rawValue) ? "down" : "up")
            d.add(String(role.port.rawValue), container: p)
        }
        return 0
    }
}
