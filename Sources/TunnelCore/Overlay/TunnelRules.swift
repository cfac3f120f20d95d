/// The checks a tunnel must pass, shared by the configuration file, the overlay model and
/// runtime commands, so that all of them refuse the same things with the same words.
/// Each problem names the field it is about (`remote`, `name`, …); callers prefix their
/// own path (`tunnels[2].remote`).
public enum TunnelRules {
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public var field: String
        public var message: String

        public var description: String { "\(field): \(message)" }
    }

    public static let maxNameLength = 32
    public static let dstPortRange = 1...65535
    public static let ttlRange = 1...255
    public static let flowIDRange = 0...255

    public static func isValidName(_ name: String) -> Bool {
        (1...maxNameLength).contains(name.unicodeScalars.count) && name.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "." || c == "-"
        }
    }

    public static func nameProblem(_ name: String) -> String? {
        isValidName(name) ? nil : "\(ConfigurationText.quote(name)) is not a valid tunnel name (1 to \(maxNameLength) characters of A-Z a-z 0-9 _ . -)"
    }

    /// Why a tunnel of the configuration or `tunnelctl` cannot have this name: the names
    /// of the tunnels EVPN makes are EVPN's own.
    public static func reservedNameProblem(_ name: String) -> String? {
        name.hasPrefix(EVPNState.tunnelNamePrefix)
            ? "names beginning with '\(EVPNState.tunnelNamePrefix)' are kept for the tunnels EVPN makes" : nil
    }

    /// Why `a` cannot be a host's address (unspecified, broadcast, loopback, multicast,
    /// class E, or the network or broadcast address of `prefix`), or `nil`.
    public static func hostAddressProblem(_ a: IPv4Address, in prefix: IPv4Interface?) -> String? {
        let top = a.rawValue >> 24
        if a.rawValue == 0 { return "\(a) is the unspecified address" }
        if a.rawValue == 0xFFFF_FFFF { return "\(a) is the broadcast address" }
        if top == 127 { return "\(a) is a loopback address" }
        if top >= 224 && top < 240 { return "\(a) is a multicast address" }
        if top >= 240 { return "\(a) is a reserved (class E) address" }
        if let prefix, prefix.prefixLength <= 30, prefix.contains(a) {
            let host = a.rawValue & ~prefix.netmask
            if host == 0 { return "\(a) is the network address of uplink.address \(prefix)" }
            if host == ~prefix.netmask { return "\(a) is the broadcast address of uplink.address \(prefix)" }
        }
        return nil
    }

    /// Why `remote` cannot be a tunnel endpoint seen from `uplink`, or `nil`.
    public static func remoteProblem(_ remote: IPv4Address, uplink: Uplink) -> String? {
        if let problem = hostAddressProblem(remote, in: uplink.address) { return problem }
        if remote == uplink.address.address { return "\(remote) is the uplink's own address (uplink.address)" }
        if uplink.nextHop(for: remote) == nil {
            return "\(remote) is not on-link (outside uplink.address \(uplink.address)) and uplink.gateway is not set"
        }
        return nil
    }

    /// The first problem of a tunnel on its own (not against other tunnels), or `nil`.
    /// The file reads `dst_port` and `ttl` within their ranges; a runtime command's
    /// numbers are checked here, in the same words.
    public static func problem(with tunnel: Tunnel, uplink: Uplink) -> Problem? {
        if let p = nameProblem(tunnel.name) { return Problem(field: "name", message: p) }
        if let p = remoteProblem(tunnel.remote, uplink: uplink) { return Problem(field: "remote", message: p) }
        if let port = tunnel.destinationPort, let p = ValueRules.rangeProblem(Int(port), dstPortRange) {
            return Problem(field: "dst_port", message: p)
        }
        if let p = ValueRules.rangeProblem(Int(tunnel.ttl), ttlRange) { return Problem(field: "ttl", message: p) }
        if tunnel.type == .nvgre, let port = tunnel.destinationPort {
            return Problem(field: "dst_port", message: "dst_port \(port) is not allowed for nvgre (NVGRE has no UDP header)")
        }
        if tunnel.type != .nvgre, tunnel.flowID != 0 {
            return Problem(field: "flow_id", message: "flow_id \(tunnel.flowID) is only allowed for nvgre, not \(tunnel.type.rawValue)")
        }
        return nil
    }

    /// Distinct UDP ports beyond the two registered ones that tunnels may use: each port
    /// the uplink accepts tunnel packets on is one entry of `DecapsulationPorts`.
    public static let maxCustomPorts = DecapsulationPorts.capacity - 2

    /// Why `tunnel`'s UDP port cannot serve beside `others`: a port carries one format only
    /// (the receiver knows the format by the port), and there are only so many.
    public static func portProblem(_ tunnel: Tunnel, among others: [Tunnel]) -> Problem? {
        guard let port = tunnel.destinationPort else { return nil }
        for type in [EncapsulationType.vxlan, .geneve] where type != tunnel.type && type.defaultDestinationPort == port {
            return Problem(field: "dst_port", message: "dst_port \(port) is the registered \(type.rawValue) port, so it cannot carry \(tunnel.type.rawValue)")
        }
        let registered = Set([EncapsulationType.vxlan, .geneve].compactMap(\.defaultDestinationPort))
        if registered.contains(port) { return nil }
        if let other = others.first(where: { $0.destinationPort == port }) {
            return other.type == tunnel.type ? nil
                : Problem(field: "dst_port", message: "dst_port \(port) already carries \(other.type.rawValue) for tunnel '\(other.name)'")
        }
        // A port new to the uplink: count the ones in use only then (a few times at most).
        let custom = Set(others.compactMap(\.destinationPort)).subtracting(registered)
        if custom.count + 1 > maxCustomPorts {
            return Problem(field: "dst_port", message: "at most \(maxCustomPorts) UDP ports besides 4789 and 6081 can be in use, this would be \(custom.count + 1)")
        }
        return nil
    }

    /// What makes two tunnels put the same outer header on the wire.
    public struct Endpoint: Hashable, Sendable {
        var type: EncapsulationType
        var remote: IPv4Address
        var vni: VNI
        var port: UInt16?

        public init(_ tunnel: Tunnel) {
            type = tunnel.type
            remote = tunnel.remote
            vni = tunnel.vni
            port = tunnel.destinationPort
        }
    }

    public static func duplicateMessage(_ tunnel: Tunnel, of other: String) -> String {
        let port = tunnel.destinationPort.map { " dst_port \($0)" } ?? ""
        return "\(tunnel.type.rawValue) to \(tunnel.remote) vni \(tunnel.vni)\(port) duplicates tunnel '\(other)'"
    }

    public static func unknownTypeMessage(_ text: String) -> String {
        "unknown tunnel type \(ConfigurationText.quote(text)) (expected one of: \(EncapsulationType.allCases.map(\.rawValue).joined(separator: ", ")))"
    }
}
