/// The checks a tunnel must pass, shared by the configuration file and runtime commands so
/// both refuse the same things with the same words.
public enum TunnelRules {
    public static let maxNameLength = 32

    public static func nameProblem(_ name: String) -> String? {
        guard (1...maxNameLength).contains(name.count) else { return "name must be 1 to \(maxNameLength) characters" }
        let allowed = name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0))
        }
        return allowed ? nil : "name may hold only letters, digits, '_', '.' and '-'"
    }

    /// Why `remote` cannot be a tunnel endpoint seen from `uplink`, or `nil`.
    public static func remoteProblem(_ remote: IPv4Address, uplink: Uplink) -> String? {
        if remote == .any { return "\(remote) is not a unicast address" }
        if remote.rawValue >> 28 == 0xE || remote.rawValue == .max { return "\(remote) is not a unicast address" }
        if remote == uplink.address.address { return "\(remote) is the local endpoint address" }
        if uplink.nextHop(for: remote) == nil {
            return "\(remote) is not inside uplink.address \(uplink.address) and uplink.gateway is not set"
        }
        return nil
    }

    public static func problem(with tunnel: Tunnel, uplink: Uplink) -> String? {
        if let p = nameProblem(tunnel.name) { return p }
        if let p = remoteProblem(tunnel.remote, uplink: uplink) { return p }
        if tunnel.type == .nvgre && tunnel.destinationPort != nil { return "nvgre has no UDP destination port" }
        if tunnel.ttl == 0 { return "ttl must be 1 to 255" }
        return nil
    }

    /// Two tunnels that would put the same outer header on the wire.
    public static func sameEndpoint(_ a: Tunnel, _ b: Tunnel) -> Bool {
        a.type == b.type && a.remote == b.remote && a.vni == b.vni && a.destinationPort == b.destinationPort
    }
}
