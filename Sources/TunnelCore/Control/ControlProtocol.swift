/// The runtime-control protocol between `tunnelctl` and the forwarder: one JSON request
/// per connection on `/var/run/dpdk/PREFIX/tunnelfwd.sock`, answered by one JSON reply.
public enum ControlRequest: Codable, Sendable, Equatable {
    case tunnelAdd(TunnelSpec)
    case tunnelDelete(name: String)
    case forwardingAdd(segment: UInt32, mac: String, tunnel: String)
    case forwardingDelete(segment: UInt32, mac: String)
    /// The inner-MAC forwarding table, static and learnt entries; one segment or all.
    case forwardingShow(segment: UInt32?)
    case neighborShow(all: Bool)
    case neighborFlush
    case pending

    /// The segment and inner MAC of a forwarding command; the error is a one-line reason.
    public static func forwardingKey(segment: UInt32, mac: String) throws(ControlError) -> (VNI, MACAddress) {
        guard let vni = VNI(segment) else { throw ControlError("segment: \(segment) is over the 24-bit maximum \(VNI.max)") }
        guard let address = MACAddress(mac) else {
            throw ControlError("mac: '\(mac)' is not a valid MAC address (expected aa:bb:cc:dd:ee:ff)")
        }
        return (vni, address)
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

    /// The tunnel, or a one-line reason naming the field. The checks that involve the
    /// uplink and other tunnels are the overlay's (`TunnelRules`).
    public func tunnel() throws(ControlError) -> Tunnel {
        guard let type = EncapsulationType(rawValue: type) else {
            throw ControlError("type: " + TunnelRules.unknownTypeMessage(self.type))
        }
        guard let remote = IPv4Address(remote) else { throw ControlError("remote: '\(self.remote)' is not a valid IPv4 address") }
        guard let vni = VNI(vni) else { throw ControlError("vni: \(self.vni) is over the 24-bit maximum \(VNI.max)") }
        return Tunnel(name: name, type: type, remote: remote, vni: vni, destinationPort: dstPort,
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

    public init(ok: Bool, message: String, neighbors: [TunnelNeighborRow]? = nil,
                underlay: [UnderlayNeighborRow]? = nil, pending: PendingReport? = nil, forwarding: [ForwardingRow]? = nil) {
        self.ok = ok
        self.message = message
        self.neighbors = neighbors
        self.underlay = underlay
        self.pending = pending
        self.forwarding = forwarding
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

/// One inner-MAC forwarding entry: configured (or added with tunnelctl), or learnt from
/// decapsulated traffic, with the time since its MAC was last seen.
public struct ForwardingRow: Codable, Sendable, Equatable {
    public var segment: UInt32
    public var mac: String
    public var tunnel: String
    public var learned: Bool
    /// Learnt entries only: milliseconds since the MAC last arrived through the tunnel.
    public var lastSeenMs: UInt64?

    public init(segment: UInt32, mac: String, tunnel: String, learned: Bool, lastSeenMs: UInt64?) {
        self.segment = segment
        self.mac = mac
        self.tunnel = tunnel
        self.learned = learned
        self.lastSeenMs = lastSeenMs
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
