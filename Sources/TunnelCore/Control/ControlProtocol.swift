/// The runtime-control protocol between `tunnelctl` and the forwarder: one JSON request
/// per connection on `/var/run/dpdk/PREFIX/tunnelfwd.sock`, answered by one JSON reply.
public enum ControlRequest: Codable, Sendable, Equatable {
    case tunnelAdd(TunnelSpec)
    case tunnelDelete(name: String)
    case tunnelShow
    case forwardingAdd(segment: UInt32, mac: String, tunnel: String)
    case forwardingDelete(segment: UInt32, mac: String)
    /// The inner-MAC forwarding table, every entry with its origin; one segment or all.
    case forwardingShow(segment: UInt32?)
    case floodAdd(segment: UInt32, tunnel: String)
    case floodDelete(segment: UInt32, tunnel: String)
    case floodShow(segment: UInt32?)
    case neighborShow(all: Bool)
    case neighborFlush
    case pending

    /// The segment and inner MAC of a forwarding command; the error is a one-line reason.
    public static func forwardingKey(segment: UInt32, mac: String) throws(ControlError) -> (VNI, MACAddress) {
        let vni = try segmentVNI(segment)
        return (vni, try field("mac") { () throws(ValueRules.Problem) in try ValueRules.macAddress(mac) })
    }

    /// The segment of a command, or a one-line reason.
    public static func segmentVNI(_ segment: UInt32) throws(ControlError) -> VNI {
        if let problem = ValueRules.vniProblem(Int(segment)) { throw ControlError("segment: " + problem) }
        return VNI(segment)!
    }

    /// A segment as tunnelctl's `--segment` gives it: text, read as the file reads a VNI.
    public static func segment(_ text: String) throws(ControlError) -> UInt32 {
        try field("segment") { () throws(ValueRules.Problem) in try ValueRules.vni(text).rawValue }
    }
}

/// Reads a command's field with a rule of the configuration file; its problem becomes the
/// command's one-line refusal, `field: message`, as the file's is `path: message`.
private func field<T>(_ name: String, _ rule: () throws(ValueRules.Problem) -> T) throws(ControlError) -> T {
    do {
        return try rule()
    } catch {
        throw ControlError("\(name): \(error.message)")
    }
}

/// A tunnel as a command gives it: unvalidated text and numbers, checked by the
/// forwarder with the same rules as the configuration file.
public struct TunnelSpec: Codable, Sendable, Equatable {
    public var name: String
    public var type: String
    public var remote: String
    public var vni: UInt32
    public var dstPort: UInt16?
    public var ttl: UInt8?
    public var df: Bool?
    public var flowID: UInt8?

    public init(name: String, type: String, remote: String, vni: UInt32,
                dstPort: UInt16? = nil, ttl: UInt8? = nil, df: Bool? = nil, flowID: UInt8? = nil) {
        self.name = name
        self.type = type
        self.remote = remote
        self.vni = vni
        self.dstPort = dstPort
        self.ttl = ttl
        self.df = df
        self.flowID = flowID
    }

    /// A tunnel as tunnelctl's options give it, all text: the numbers and the boolean are
    /// read as the configuration file reads them, and refused in its words.
    public static func parsing(name: String, type: String, remote: String, vni: String, dstPort: String?,
                               ttl: String?, df: String?, flowID: String?) throws(ControlError) -> TunnelSpec {
        func integer(_ text: String?, _ name: String, _ range: ClosedRange<Int>) throws(ControlError) -> Int? {
            guard let text else { return nil }
            return try field(name) { () throws(ValueRules.Problem) in try ValueRules.integer(text, in: range) }
        }
        return TunnelSpec(
            name: name, type: type, remote: remote,
            vni: try field("vni") { () throws(ValueRules.Problem) in try ValueRules.vni(vni).rawValue },
            dstPort: try integer(dstPort, "dst_port", TunnelRules.dstPortRange).map(UInt16.init),
            ttl: try integer(ttl, "ttl", TunnelRules.ttlRange).map(UInt8.init),
            df: try df.map { text throws(ControlError) in
                try field("df") { () throws(ValueRules.Problem) in try ValueRules.boolean(text) }
            },
            flowID: try integer(flowID, "flow_id", TunnelRules.flowIDRange).map(UInt8.init))
    }

    /// The tunnel, or a one-line reason naming the field. The checks that involve the
    /// uplink and other tunnels, and the ranges of the port and the TTL, are the
    /// overlay's (`TunnelRules`), as they are the file's.
    public func tunnel() throws(ControlError) -> Tunnel {
        guard let type = EncapsulationType(rawValue: type) else {
            throw ControlError("type: " + TunnelRules.unknownTypeMessage(self.type))
        }
        let remote = try field("remote") { () throws(ValueRules.Problem) in try ValueRules.ipv4Address(self.remote) }
        if let problem = ValueRules.vniProblem(Int(vni)) { throw ControlError("vni: " + problem) }
        return Tunnel(name: name, type: type, remote: remote, vni: VNI(vni)!, destinationPort: dstPort,
                      ttl: ttl ?? 64, dontFragment: df ?? true, flowID: flowID ?? 0)
    }
}

public struct ControlError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct ControlReply: Codable, Sendable, Equatable {
    public var ok: Bool
    /// What was done, or why nothing was.
    public var message: String
    public var neighbors: [TunnelNeighborRow]?
    public var underlay: [UnderlayNeighborRow]?
    public var pending: PendingReport?
    public var forwarding: [ForwardingRow]?
    public var tunnels: [TunnelRow]?
    public var flood: [FloodRow]?

    public init(ok: Bool, message: String, neighbors: [TunnelNeighborRow]? = nil,
                underlay: [UnderlayNeighborRow]? = nil, pending: PendingReport? = nil, forwarding: [ForwardingRow]? = nil,
                tunnels: [TunnelRow]? = nil, flood: [FloodRow]? = nil) {
        self.ok = ok
        self.message = message
        self.neighbors = neighbors
        self.underlay = underlay
        self.pending = pending
        self.forwarding = forwarding
        self.tunnels = tunnels
        self.flood = flood
    }

    public static func failure(_ message: String) -> ControlReply { ControlReply(ok: false, message: message) }
}

public struct TunnelNeighborRow: Codable, Sendable, Equatable {
    public var address: String
    public var state: String
    public var mac: String?
    public var ageMs: UInt64?
    public var tunnels: [String]
    public var id: UInt32

    public init(address: String, state: String, mac: String?, ageMs: UInt64?, tunnels: [String], id: UInt32) {
        self.address = address
        self.state = state
        self.mac = mac
        self.ageMs = ageMs
        self.tunnels = tunnels
        self.id = id
    }
}

/// One inner-MAC forwarding entry, with its origin: `static` (configured, or added with
/// tunnelctl), `evpn` (installed by FRR), `learnt` (from decapsulated traffic) or `local`
/// (seen on an access port of an EVPN segment, and advertised), and for the last two the
/// time since its MAC was last seen.
public struct ForwardingRow: Codable, Sendable, Equatable {
    public var segment: UInt32
    public var mac: String
    /// `nil` for a local MAC.
    public var tunnel: String?
    public var origin: String
    public var lastSeenMs: UInt64?

    public init(segment: UInt32, mac: String, tunnel: String?, origin: String, lastSeenMs: UInt64?) {
        self.segment = segment
        self.mac = mac
        self.tunnel = tunnel
        self.origin = origin
        self.lastSeenMs = lastSeenMs
    }
}

/// One tunnel, with where it came from (`static` or `evpn`) and its next hop's state.
public struct TunnelRow: Codable, Sendable, Equatable {
    public var name: String
    public var type: String
    public var remote: String
    public var vni: UInt32
    public var dstPort: UInt16?
    public var origin: String
    public var nextHop: String
    public var state: String
    /// EVPN tunnels only: milliseconds until it goes, after FRR withdrew its VTEP.
    public var heldForMs: UInt64?

    public init(name: String, type: String, remote: String, vni: UInt32, dstPort: UInt16?, origin: String,
                nextHop: String, state: String, heldForMs: UInt64?) {
        self.name = name
        self.type = type
        self.remote = remote
        self.vni = vni
        self.dstPort = dstPort
        self.origin = origin
        self.nextHop = nextHop
        self.state = state
        self.heldForMs = heldForMs
    }
}

/// The flood list of a segment: its static tunnels, then those EVPN adds.
public struct FloodRow: Codable, Sendable, Equatable {
    public var segment: UInt32
    public var tunnels: [String]
    public var evpn: [String]

    public init(segment: UInt32, tunnels: [String], evpn: [String]) {
        self.segment = segment
        self.tunnels = tunnels
        self.evpn = evpn
    }
}

public struct UnderlayNeighborRow: Codable, Sendable, Equatable {
    public var address: String
    public var state: String
    public var mac: String?
    public var ageMs: UInt64

    public init(address: String, state: String, mac: String?, ageMs: UInt64) {
        self.address = address
        self.state = state
        self.mac = mac
        self.ageMs = ageMs
    }
}

public struct PendingReport: Codable, Sendable, Equatable {
    public var lifetimeMs: Int
    public var perCoreLimit: Int
    public var perNeighborLimit: Int
    public var total: Int
    /// Packets waiting per worker lcore.
    public var perCore: [String: Int]
    /// Packets waiting per next hop (all workers).
    public var byNextHop: [String: Int]

    public init(lifetimeMs: Int, perCoreLimit: Int, perNeighborLimit: Int, total: Int,
                perCore: [String: Int], byNextHop: [String: Int]) {
        self.lifetimeMs = lifetimeMs
        self.perCoreLimit = perCoreLimit
        self.perNeighborLimit = perNeighborLimit
        self.total = total
        self.perCore = perCore
        self.byNextHop = byNextHop
    }
}
