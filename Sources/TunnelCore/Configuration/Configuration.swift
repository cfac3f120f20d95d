/// The forwarder's configuration, validated: every value here has been checked, every
/// tunnel name referenced exists, every next hop is reachable. Built by
/// `Configuration(yaml:)`; the data plane never sees unvalidated input.
public struct Configuration: Sendable, Equatable {
    public var uplink: Uplink
    public var access: [AccessPort]
    public var tunnels: [Tunnel]
    public var forwarding: [ForwardingEntry]
    public var flood: [FloodList]
    public var neighbors: [StaticNeighbor]
    public var resolution: ResolutionSettings
    public var pending: PendingSettings
    public var learning: LearningSettings
    public var kernelSync: KernelSync?
    public var evpn: EVPNSettings?
    public var decapsulation: DecapsulationSettings
    public var dataplane: DataplaneSettings

    public init(
        uplink: Uplink, access: [AccessPort] = [], tunnels: [Tunnel] = [],
        forwarding: [ForwardingEntry] = [], flood: [FloodList] = [],
        neighbors: [StaticNeighbor] = [], resolution: ResolutionSettings = .init(),
        pending: PendingSettings = .init(), learning: LearningSettings = .init(),
        kernelSync: KernelSync? = nil, evpn: EVPNSettings? = nil,
        decapsulation: DecapsulationSettings = .init(), dataplane: DataplaneSettings = .init()
    ) {
        self.uplink = uplink
        self.access = access
        self.tunnels = tunnels
        self.forwarding = forwarding
        self.flood = flood
        self.neighbors = neighbors
        self.resolution = resolution
        self.pending = pending
        self.learning = learning
        self.kernelSync = kernelSync
        self.evpn = evpn
        self.decapsulation = decapsulation
        self.dataplane = dataplane
    }
}

/// A DPDK port as the configuration names it: by device name (`net_tap0`,
/// `0000:03:00.0`) or by port id.
public enum PortSelector: Sendable, Hashable, CustomStringConvertible {
    case name(String)
    case id(UInt16)

    public var description: String {
        switch self {
        case .name(let n): n
        case .id(let i): String(i)
        }
    }
}

public struct Uplink: Sendable, Equatable {
    public var port: PortSelector
    /// The local tunnel endpoint address and the on-link prefix.
    public var address: IPv4Interface
    public var gateway: IPv4Address?
    /// Layer-3 MTU of the underlay: the outer IPv4 total length may not exceed it.
    public var mtu: Int

    public init(port: PortSelector, address: IPv4Interface, gateway: IPv4Address? = nil, mtu: Int = 1500) {
        self.port = port
        self.address = address
        self.gateway = gateway
        self.mtu = mtu
    }

    /// The outer next hop for a remote endpoint: the remote itself when on-link,
    /// otherwise the gateway; `nil` when neither applies.
    public func nextHop(for remote: IPv4Address) -> IPv4Address? {
        address.contains(remote) ? remote : gateway
    }
}

public struct AccessPort: Sendable, Equatable {
    public var port: PortSelector
    public var segment: VNI
    /// With a VLAN, only frames tagged with it are taken, and the tag is removed before
    /// encapsulation; without one, frames (tagged or not) are carried unchanged.
    public var vlan: UInt16?

    public init(port: PortSelector, segment: VNI, vlan: UInt16? = nil) {
        self.port = port
        self.segment = segment
        self.vlan = vlan
    }
}

public enum EncapsulationType: String, Sendable, CaseIterable {
    case vxlan, geneve, nvgre

    /// The UDP destination port registered for the format; `nil` for NVGRE (no UDP).
    public var defaultDestinationPort: UInt16? {
        switch self {
        case .vxlan: 4789
        case .geneve: 6081
        case .nvgre: nil
        }
    }
}

public struct Tunnel: Sendable, Equatable {
    public var name: String
    public var type: EncapsulationType
    public var remote: IPv4Address
    /// VXLAN/Geneve VNI, or NVGRE VSID. It is also the segment the tunnel belongs to.
    public var vni: VNI
    /// UDP destination port (VXLAN, Geneve only).
    public var destinationPort: UInt16?
    public var ttl: UInt8
    public var dontFragment: Bool
    /// NVGRE FlowID (low 8 bits of the GRE key).
    public var flowID: UInt8

    public init(
        name: String, type: EncapsulationType, remote: IPv4Address, vni: VNI,
        destinationPort: UInt16? = nil, ttl: UInt8 = 64, dontFragment: Bool = true, flowID: UInt8 = 0
    ) {
        self.name = name
        self.type = type
        self.remote = remote
        self.vni = vni
        self.destinationPort = destinationPort ?? type.defaultDestinationPort
        self.ttl = ttl
        self.dontFragment = dontFragment
        self.flowID = flowID
    }
}

public struct ForwardingEntry: Sendable, Equatable {
    public var segment: VNI
    public var mac: MACAddress
    public var tunnel: String

    public init(segment: VNI, mac: MACAddress, tunnel: String) {
        self.segment = segment
        self.mac = mac
        self.tunnel = tunnel
    }
}

public struct FloodList: Sendable, Equatable {
    public var segment: VNI
    public var tunnels: [String]

    public init(segment: VNI, tunnels: [String]) {
        self.segment = segment
        self.tunnels = tunnels
    }
}

public struct StaticNeighbor: Sendable, Equatable {
    public var address: IPv4Address
    public var mac: MACAddress

    public init(address: IPv4Address, mac: MACAddress) {
        self.address = address
        self.mac = mac
    }
}

/// Timers of the proactive resolution (mechanism 1).
public struct ResolutionSettings: Sendable, Equatable {
    /// First retry interval for an unresolved next hop; doubles up to `retryMaxMs`.
    public var retryInitialMs: Int = 100
    public var retryMaxMs: Int = 1000
    /// A data-path miss triggers an ARP request unless one went out this recently.
    public var minIntervalMs: Int = 10
    /// How long a reply keeps an entry reachable; it is re-probed before that.
    public var reachableMs: Int = 30_000
    /// Unanswered probes of a reachable entry before it becomes unresolved.
    public var probes: Int = 3
    /// Global bound on ARP requests sent per second.
    public var maxRequestsPerSecond: Int = 5000
    /// Underlay neighbors kept that no tunnel needs (learnt from requests for our
    /// address); tunnel next hops and static entries are always kept. Linux's
    /// `gc_thresh3` is 1024 too.
    public var maxNeighbors: Int = 1024

    public init() {}
}

/// Which tunnel packets are decapsulated.
public struct DecapsulationSettings: Sendable, Equatable {
    public enum Sources: String, Sendable, CaseIterable {
        /// Only from the remote of a tunnel in the packet's segment.
        case tunnels
        /// From any underlay host (martian sources are still dropped).
        case any
    }

    public var acceptFrom = Sources.tunnels

    public init() {}
}

/// Bounds of the buffer on miss (mechanism 2).
public struct PendingSettings: Sendable, Equatable {
    public var lifetimeMs: Int = 3000
    /// Packets one worker may hold in total.
    public var perCore: Int = 8192
    /// Packets one worker may hold for one next hop.
    public var perNeighbor: Int = 256

    public init() {}
}

/// Learning inner MACs from decapsulated traffic. The defaults are Linux's
/// bridge and vxlan ageing time and a table as large as the static one may be.
public struct LearningSettings: Sendable, Equatable {
    public var enabled = true
    /// Entries the learnt table holds; MACs beyond it stay unknown (flooded to).
    public var maxEntries = 16384
    /// A learnt MAC not seen for this long is forgotten.
    public var agingSeconds = 300

    public init() {}
}

public struct KernelSync: Sendable, Equatable {
    public var interface: String

    public init(interface: String) { self.interface = interface }
}

/// BGP EVPN through FRR: each segment's kernel vxlan device and bridge are FRR's view of
/// the segment. tunnelfwd reads the remote VTEPs and MACs FRR installs there, and writes
/// the MACs of its access ports on `localPort` for FRR to advertise.
public struct EVPNSettings: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        /// An access segment, and the VNI of its vxlan device.
        public var vni: VNI
        /// The kernel vxlan device FRR installs the segment's remote entries on.
        public var vxlanInterface: String
        /// A port of the same bridge, where tunnelfwd writes its local MACs.
        public var localPort: String

        public init(vni: VNI, vxlanInterface: String, localPort: String) {
            self.vni = vni
            self.vxlanInterface = vxlanInterface
            self.localPort = localPort
        }
    }

    /// How long a withdrawn VTEP keeps its tunnel and flood-list membership: longer than
    /// FRR takes to restart, so that a restart does not tear tunnels down.
    public var holdMs: Int = 8000
    public var segments: [Segment]

    public init(holdMs: Int = 8000, segments: [Segment]) {
        self.holdMs = holdMs
        self.segments = segments
    }
}

public struct DataplaneSettings: Sendable, Equatable {
    /// Packets per RX burst.
    public var burst: Int = 32
    /// Descriptors per RX and per TX queue.
    public var rxDescriptors: Int = 1024
    public var txDescriptors: Int = 1024
    /// Extra mbufs beyond what rings, bursts and the pending buffer can hold.
    public var extraMbufs: Int = 8192
    /// Maximum tunnels and next hops the data-plane tables are sized for.
    public var maxTunnels: Int = 16384
    public var maxNextHops: Int = 16384

    public init() {}
}
