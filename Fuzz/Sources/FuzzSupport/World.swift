import TunnelCore

/// The small forwarder every target works against: an uplink 192.168.50.1/24 with a
/// gateway, two access ports (port 1 takes VLAN 100), tunnels of the three formats to
/// 192.168.50.2 (the peer of the committed corpus), one on its own UDP port, one through
/// the gateway, static and flooded entries, and a learnt table of four. Built once
/// through the real configuration parser.
public struct World: Sendable {
    public static let yaml = """
        uplink: { port: uplink0, address: 192.168.50.1/24, gateway: 192.168.50.254 }
        access:
          - { port: access0, segment: 42 }
          - { port: access1, segment: 43, vlan: 100 }
        tunnels:
          - { name: vx, type: vxlan, remote: 192.168.50.2, vni: 42 }
          - { name: gnv, type: geneve, remote: 192.168.50.2, vni: 42 }
          - { name: gre, type: nvgre, remote: 192.168.50.2, vni: 42, flow_id: 7 }
          - { name: alt, type: vxlan, remote: 192.168.50.3, vni: 43, dst_port: 8472, ttl: 9, df: false }
          - { name: far, type: geneve, remote: 10.9.9.9, vni: 43 }
        forwarding:
          - { segment: 42, mac: "02:00:00:00:42:02", tunnel: vx }
          - { segment: 43, mac: "02:00:00:00:43:03", tunnel: alt }
        flood:
          - { segment: 42, tunnels: [vx, gnv, gre] }
          - { segment: 43, tunnels: [alt, far] }
        neighbors:
          - { address: 192.168.50.254, mac: "02:00:00:00:00:fe" }
        learning: { max_entries: 4 }

        """

    public static let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)
    /// DPDK port ids of the access ports, in configuration order.
    public static let accessPortIDs: [UInt16] = [0, 1]

    public let configuration: Configuration
    /// The overlay the snapshot was built from. Its tunnel and MAC tables are shared by
    /// every copy of it, so a target that changes an overlay starts from `newOverlay()`.
    public let overlay: Overlay
    /// The resolver with every tunnel neighbor attached at time 0 (and the static one
    /// known), as the control core starts it.
    public let resolver: NeighborResolver
    public let snapshot: ForwardingSnapshot

    public var local: IPv4Address { configuration.uplink.address.address }

    /// An overlay of the world's configuration with tables of its own, as at start-up.
    public func newOverlay() -> Overlay { Self.overlay(of: configuration) }

    private static func overlay(of configuration: Configuration) -> Overlay {
        do {
            return try Overlay(configuration: configuration, localMAC: localMAC, accessPortIDs: accessPortIDs, nowMs: 0)
        } catch {
            fatalError("the fuzzing world does not build: \(error)")
        }
    }

    public init() {
        do {
            configuration = try Configuration(yaml: Self.yaml)
        } catch {
            fatalError("the fuzzing world does not build: \(error)")
        }
        overlay = Self.overlay(of: configuration)
        var resolver = NeighborResolver(settings: configuration.resolution, uplink: configuration.uplink.address, nowMs: 0)
        for neighbor in configuration.neighbors {
            _ = resolver.addStatic(neighbor.address, mac: neighbor.mac, nowMs: 0)
        }
        for entry in overlay.neighbors.entries.values {
            _ = resolver.attach(entry.address, id: entry.id, nowMs: 0)
        }
        self.resolver = resolver
        snapshot = ForwardingSnapshot(overlay.plan())
    }
}

/// The tunnel of `overlay` whose entry sits in `slot` of the view's tunnel table, told by
/// its outer header (no two tunnels share one); `nil` for a slot beyond the table or no
/// tunnel's.
public func tunnel(at slot: TunnelIndex, of overlay: Overlay, in view: ForwardingView) -> Tunnel? {
    guard Int(slot.rawValue) < overlay.tunnelTable.capacity else { return nil }
    let header = view.entry(slot).pointee.header
    return overlay.tunnels.first {
        OuterHeaderTemplate(tunnel: $0, localAddress: overlay.uplink.address.address, localMAC: overlay.localMAC) == header
    }
}

/// A snapshot of `overlay` holds all of it: each segment's flood list is the overlay's,
/// each static entry routes to its tunnel, and each tunnel's remote is a source of its
/// segment.
public func checkSnapshot(_ snapshot: ForwardingSnapshot, of overlay: Overlay) {
    withExtendedLifetime(snapshot) {
        let view = snapshot.view.pointee
        for tunnel in overlay.tunnels {
            guard let segment = view.segment(vni: tunnel.vni) else { return expect(false, "no segment for tunnel \(tunnel.name)") }
            expect(view.accepts(segment: segment, from: tunnel.remote), "segment \(tunnel.vni) refuses \(tunnel.name)'s remote")
        }
        for s in 0..<view.segmentCount {
            let vni = view.segments[s].vni
            guard view.segment(vni: vni) == UInt16(s) else { continue }  // an index not in use
            let flood = view.floodList(segment: UInt16(s)).map { tunnel(at: $0, of: overlay, in: view)?.name }
            expect(flood == overlay.floodList(vni), "segment \(vni) floods to \(flood), not \(overlay.floodList(vni))")
        }
        for (key, name) in overlay.forwarding {
            guard let segment = view.segment(vni: key.segment), let slot = view.tunnel(segment: segment, mac: key.mac) else {
                return expect(false, "\(key.mac) in \(key.segment) is not in the snapshot")
            }
            expect(tunnel(at: slot, of: overlay, in: view)?.name == name, "\(key.mac) in \(key.segment) does not go to \(name)")
        }
    }
}
