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
        var nextHop: IPv4Address
        var nextHopMAC: MACAddress?
    }

    let counters: CounterTable
    let pool: MbufPool
    let ports: [PortRole]
    private let tunnels = Mutex<[TunnelStatus]>([])

    init(counters: CounterTable, pool: MbufPool, ports: [PortRole]) {
        self.counters = counters
        self.pool = pool
        self.ports = ports
    }

    func publish(tunnels list: [TunnelStatus]) {
        tunnels.withLock { $0 = list }
    }

    var tunnelStatuses: [TunnelStatus] { tunnels.withLock { $0 } }
}

/// The forwarder's own telemetry commands, beside DPDK's `/ethdev/...`.
enum Telemetry {
    /// Set once, before the commands are registered; read by the callbacks.
    nonisolated(unsafe) private static var source: TelemetrySource?

    static func register(_ source: TelemetrySource) {
        Self.source = source
        rte_telemetry_register_cmd("/tunnelfwd/stats", { _, _, d in Telemetry.stats(TelemetryData(raw: d!)) },
            "Packet counters: totals, dropped by reason, per_core by lcore id; mbufs_in_use, cycles_per_packet. No parameters")
        rte_telemetry_register_cmd("/tunnelfwd/tunnels", { _, _, d in Telemetry.tunnels(TelemetryData(raw: d!)) },
            "Configured tunnels by name with their next hop and its MAC. No parameters")
        rte_telemetry_register_cmd("/tunnelfwd/ports", { _, _, d in Telemetry.ports(TelemetryData(raw: d!)) },
            "Ports by DPDK port id with their role (uplink or access), segment and VLAN. No parameters")
    }

    private static func stats(_ d: TelemetryData) -> Int32 {
        guard let source else { return -1 }
        let table = source.counters
        d.startDictionary()
        for counter in Counter.allCases { d.add(counter.name, table.total(counter)) }
        d.add("dropped", container: dropped(table.lcores.map { table.block(lcore: $0) }))
        d.add("cycles_per_packet", cyclesPerPacket(cycles: table.total(.busyCycles), packets: table.total(.busyPackets)))
        d.add("mbufs_in_use", UInt64(source.pool.inUse))
        d.add("mbufs_total", UInt64(source.pool.capacity))
        if let perCore = TelemetryData.allocate() {
            perCore.startDictionary()
            for lcore in table.lcores {
                guard let core = TelemetryData.allocate() else { continue }
                let block = table.block(lcore: lcore)
                core.startDictionary()
                for counter in Counter.allCases { core.add(counter.name, block.value(counter)) }
                core.add("dropped", container: dropped([block]))
                core.add("cycles_per_packet", cyclesPerPacket(cycles: block.value(.busyCycles), packets: block.value(.busyPackets)))
                perCore.add(String(lcore), container: core)
            }
            d.add("per_core", container: perCore)
        }
        return 0
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

    private static func tunnels(_ d: TelemetryData) -> Int32 {
        guard let source else { return -1 }
        d.startDictionary()
        // A telemetry dictionary holds at most RTE_TEL_MAX_DICT_ENTRIES entries.
        for status in source.tunnelStatuses.prefix(Int(RTE_TEL_MAX_DICT_ENTRIES)) {
            guard let t = TelemetryData.allocate() else { continue }
            t.startDictionary()
            t.add("type", status.tunnel.type.rawValue)
            t.add("remote", status.tunnel.remote.description)
            t.add("vni", UInt64(status.tunnel.vni.rawValue))
            if let port = status.tunnel.destinationPort { t.add("dst_port", UInt64(port)) }
            t.add("next_hop", status.nextHop.description)
            t.add("next_hop_mac", status.nextHopMAC?.description ?? "unresolved")
            d.add(status.tunnel.name, container: t)
        }
        return 0
    }

    private static func ports(_ d: TelemetryData) -> Int32 {
        guard let source else { return -1 }
        d.startDictionary()
        for role in source.ports {
            guard let p = TelemetryData.allocate() else { continue }
            p.startDictionary()
            p.add("name", role.port.name)
            p.add("role", role.role)
            p.add("mac", role.port.macAddress.description)
            if let segment = role.segment { p.add("segment", UInt64(segment.rawValue)) }
            if let vlan = role.vlan { p.add("vlan", UInt64(vlan)) }
            d.add(String(role.port.rawValue), container: p)
        }
        return 0
    }
}
