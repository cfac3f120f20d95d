import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Configuration {
    /// Top-level keys of the YAML document.
    static let topLevelKeys = [
        "uplink", "access", "tunnels", "forwarding", "flood", "neighbors",
        "resolution", "pending", "learning", "kernel_sync", "evpn", "decapsulation", "dataplane",
    ]

    /// Parses and validates a YAML configuration. The first problem found is thrown, with
    /// the path of the offending field.
    public init(yaml: String) throws(ConfigurationError) {
        guard let root = try YAMLReader.compose(yaml) else {
            throw ConfigurationError(path: "uplink", message: "missing required key (the configuration is empty)")
        }
        if case .mapping = root {} else {
            throw ConfigurationError(
                path: "", message: "expected a mapping at the top level of the configuration, got \(YAMLReader.describe(root))")
        }
        let top = try MappingReader(root, path: "", allowed: Configuration.topLevelKeys)
        var v = Validator()
        let uplink = try v.uplink(top.required("uplink"), path: "uplink")
        v.uplink = uplink
        self.init(uplink: uplink)
        access = try v.access(top.sequence("access"), path: "access")
        tunnels = try v.tunnels(top.sequence("tunnels"), path: "tunnels")
        forwarding = try v.forwarding(top.sequence("forwarding"), path: "forwarding")
        flood = try v.flood(top.sequence("flood"), path: "flood")
        neighbors = try v.neighbors(top.sequence("neighbors"), path: "neighbors")
        if let node = try top.optional("resolution") { resolution = try v.resolution(node, path: "resolution") }
        if let node = try top.optional("pending") { pending = try v.pending(node, path: "pending") }
        if let node = try top.optional("learning") { learning = try v.learning(node, path: "learning") }
        if let node = try top.optional("kernel_sync") { kernelSync = try v.kernelSync(node, path: "kernel_sync") }
        if let node = try top.optional("evpn") { evpn = try v.evpn(node, path: "evpn", access: access) }
        if let node = try top.optional("decapsulation") { decapsulation = try v.decapsulation(node, path: "decapsulation") }
        let nextHops = tunnelNextHops.count
        if let node = try top.optional("dataplane") {
            dataplane = try v.dataplane(node, path: "dataplane", tunnels: tunnels.count, nextHops: nextHops)
        }
        // The data-plane tables have these sizes whether or not the file gives them; a
        // size it gives was checked against the counts above.
        if tunnels.count > dataplane.maxTunnels {
            throw ConfigurationError(
                path: "tunnels", message: "\(tunnels.count) tunnels are more than dataplane.max_tunnels (default \(dataplane.maxTunnels))")
        }
        if nextHops > dataplane.maxNextHops {
            throw ConfigurationError(
                path: "tunnels",
                message: "the tunnels need \(nextHops) next hops, more than dataplane.max_next_hops (default \(dataplane.maxNextHops))")
        }
    }

    /// Reads and parses a configuration file. An unreadable file gives one error line
    /// naming the file (empty `path`); problems inside it are as for `init(yaml:)`.
    public init(contentsOfFile path: String) throws(ConfigurationError) {
        let text = try Configuration.readFile(path)
        try self.init(yaml: text)
    }

    static func readFile(_ path: String) throws(ConfigurationError) -> String {
        func fail(_ reason: String) -> ConfigurationError {
            ConfigurationError(
                path: "", message: "cannot read configuration file \(ConfigurationText.quote(path)): \(reason)")
        }
        func errnoText(_ code: Int32) -> String {
            guard let s = strerror(code) else { return "error \(code)" }
            return String(cString: s)
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw fail(errnoText(errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail(errnoText(errno))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 64 << 20 { throw fail("larger than 64 MiB") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw fail("not valid UTF-8 text")
        }
        return text
    }

    /// The tunnel with the given name.
    public func tunnel(named name: String) -> Tunnel? {
        tunnels.first { $0.name == name }
    }

    /// The distinct outer next hops the tunnels need (each tunnel's remote when on-link,
    /// otherwise the gateway), in the order tunnels first use them.
    public var tunnelNextHops: [IPv4Address] {
        var seen = Set<IPv4Address>()
        var result: [IPv4Address] = []
        for t in tunnels {
            if let hop = uplink.nextHop(for: t.remote), seen.insert(hop).inserted { result.append(hop) }
        }
        return result
    }
}

// MARK: - Validation

/// Builds the model section by section; later sections are checked against earlier ones
/// (tunnel remotes against the uplink, forwarding and flood entries against the tunnels).
private struct Validator {
    var uplink: Uplink?
    var tunnelsByName: [String: (index: Int, tunnel: Tunnel)] = [:]

    typealias E = ConfigurationError

    // MARK: Scalars with a meaning

    /// A port id (plain decimal integer) or a device name (anything else).
    func parsePort(_ node: Node, _ path: String) throws(E) -> PortSelector {
        if case .scalar(let s) = node, !YAMLReader.isQuoted(s), !YAMLReader.isNull(node) {
            let digits = s.string.hasPrefix("-") ? s.string.dropFirst() : Substring(s.string)
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) {
                return .id(UInt16(try YAMLReader.int(node, path, 0...65535)))
            }
        }
        let name = try YAMLReader.string(node, path, expected: "a port name or port id")
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw E(path: path, message: "\(ConfigurationText.quote(name)) is not a valid port name or id")
        }
        return .name(name)
    }

    func parseVNI(_ node: Node, _ path: String) throws(E) -> VNI {
        let text = try YAMLReader.plain(node, path, expected: "an integer")
        return try YAMLReader.value(path) { () throws(ValueRules.Problem) in try ValueRules.vni(text) }
    }

    func parseAddress(_ node: Node, _ path: String) throws(E) -> IPv4Address {
        let text = try YAMLReader.string(node, path, expected: "an IPv4 address")
        return try YAMLReader.value(path) { () throws(ValueRules.Problem) in try ValueRules.ipv4Address(text) }
    }

    /// A unicast address a host can have: not 0.0.0.0, loopback, multicast or broadcast,
    /// and not the network or broadcast address of the uplink prefix.
    func checkHostAddress(_ a: IPv4Address, _ path: String, in prefix: IPv4Interface?) throws(E) {
        if let problem = TunnelRules.hostAddressProblem(a, in: prefix) { throw E(path: path, message: problem) }
    }

    /// A unicast MAC address.
    func parseMAC(_ node: Node, _ path: String) throws(E) -> MACAddress {
        let text = try YAMLReader.string(node, path, expected: "a MAC address")
        let m = try YAMLReader.value(path) { () throws(ValueRules.Problem) in try ValueRules.macAddress(text) }
        guard m.isUnicast else { throw E(path: path, message: ValueRules.notUnicastMessage(m)) }
        return m
    }

    // MARK: uplink

    func uplink(_ node: Node, path: String) throws(E) -> Uplink {
        let m = try MappingReader(node, path: path, allowed: ["port", "address", "gateway", "mtu"])
        let port = try parsePort(m.required("port"), m.path("port"))
        let addrText = try YAMLReader.string(m.required("address"), m.path("address"), expected: "an address/prefix")
        guard let address = IPv4Interface(addrText) else {
            if IPv4Address(addrText) != nil {
                throw E(path: m.path("address"),
                        message: "\(ConfigurationText.quote(addrText)) has no prefix length (expected address/prefix, e.g. 192.168.50.1/24)")
            }
            throw E(path: m.path("address"),
                    message: "\(ConfigurationText.quote(addrText)) is not a valid IPv4 address/prefix (e.g. 192.168.50.1/24)")
        }
        guard address.prefixLength >= 1 else {
            throw E(path: m.path("address"), message: "\(address) has prefix length 0 (expected 1..32)")
        }
        try checkHostAddress(address.address, m.path("address"), in: address)
        var gateway: IPv4Address?
        if let g = try m.optional("gateway") {
            let gw = try parseAddress(g, m.path("gateway"))
            try checkHostAddress(gw, m.path("gateway"), in: address)
            guard gw != address.address else {
                throw E(path: m.path("gateway"), message: "\(gw) is the uplink's own address (uplink.address)")
            }
            guard address.contains(gw) else {
                throw E(path: m.path("gateway"), message: "\(gw) is not inside uplink.address \(address)")
            }
            gateway = gw
        }
        let mtu = try m.int("mtu", 576...9000, default: 1500)
        return Uplink(port: port, address: address, gateway: gateway, mtu: mtu)
    }

    // MARK: access

    func access(_ items: [Node], path: String) throws(E) -> [AccessPort] {
        var result: [AccessPort] = []
        var seen: [PortSelector: Int] = [:]
        for (i, node) in items.enumerated() {
            let p = YAMLReader.item(path, i)
            let m = try MappingReader(node, path: p, allowed: ["port", "segment", "vlan"])
            let port = try parsePort(m.required("port"), m.path("port"))
            if port == uplink?.port {
                throw E(path: m.path("port"), message: "\(ConfigurationText.quote(port.description)) is the uplink port (uplink.port)")
            }
            if let j = seen[port] {
                throw E(path: m.path("port"),
                        message: "duplicate access port \(ConfigurationText.quote(port.description)) (also \(YAMLReader.item(path, j)))")
            }
            seen[port] = i
            let segment = try parseVNI(m.required("segment"), m.path("segment"))
            let vlan = try m.int("vlan", 1...4094).map { UInt16($0) }
            result.append(AccessPort(port: port, segment: segment, vlan: vlan))
        }
        return result
    }

    // MARK: tunnels


    mutating func tunnels(_ items: [Node], path: String) throws(E) -> [Tunnel] {
        guard let uplink else { return [] }
        var result: [Tunnel] = []
        var keys: [TunnelRules.Endpoint: Int] = [:]
        for (i, node) in items.enumerated() {
            let p = YAMLReader.item(path, i)
            let m = try MappingReader(
                node, path: p, allowed: ["name", "type", "remote", "vni", "dst_port", "ttl", "df", "flow_id"])

            let name = try m.string("name")
            if let other = tunnelsByName[name] {
                throw E(path: m.path("name"),
                        message: "duplicate tunnel name \(ConfigurationText.quote(name)) (also \(YAMLReader.item(path, other.index)))")
            }
            if let problem = TunnelRules.reservedNameProblem(name) { throw E(path: m.path("name"), message: problem) }
            let typeText = try m.string("type")
            guard let type = EncapsulationType(rawValue: typeText) else {
                throw E(path: m.path("type"), message: TunnelRules.unknownTypeMessage(typeText))
            }
            let tunnel = Tunnel(
                name: name, type: type, remote: try parseAddress(m.required("remote"), m.path("remote")),
                vni: try parseVNI(m.required("vni"), m.path("vni")),
                destinationPort: try m.int("dst_port", TunnelRules.dstPortRange).map(UInt16.init),
                ttl: UInt8(try m.int("ttl", TunnelRules.ttlRange, default: 64)), dontFragment: try m.bool("df") ?? true,
                flowID: UInt8(try m.int("flow_id", TunnelRules.flowIDRange, default: 0)))
            // The same rules, in the same words, as tunnels added at run time.
            if let problem = TunnelRules.problem(with: tunnel, uplink: uplink) ?? TunnelRules.portProblem(tunnel, among: result) {
                throw E(path: m.path(problem.field), message: problem.message)
            }
            let key = TunnelRules.Endpoint(tunnel)
            if let j = keys[key] {
                throw E(path: p, message: TunnelRules.duplicateMessage(tunnel, of: result[j].name) + " (\(YAMLReader.item(path, j)))")
            }
            keys[key] = i
            tunnelsByName[name] = (i, tunnel)
            result.append(tunnel)
        }
        return result
    }

    /// A tunnel name referenced for `segment`: it must exist and carry that segment.
    func reference(_ node: Node, _ path: String, segment: VNI) throws(E) -> String {
        let name = try YAMLReader.string(node, path, expected: "a tunnel name")
        guard let t = tunnelsByName[name]?.tunnel else {
            throw E(path: path, message: "unknown tunnel \(ConfigurationText.quote(name))")
        }
        guard t.vni == segment else {
            throw E(path: path,
                    message: "tunnel \(ConfigurationText.quote(name)) has vni \(t.vni), not segment \(segment)")
        }
        return name
    }

    // MARK: forwarding, flood

    func forwarding(_ items: [Node], path: String) throws(E) -> [ForwardingEntry] {
        var result: [ForwardingEntry] = []
        struct Key: Hashable { var segment: VNI; var mac: MACAddress }
        var seen: [Key: Int] = [:]
        for (i, node) in items.enumerated() {
            let p = YAMLReader.item(path, i)
            let m = try MappingReader(node, path: p, allowed: ["segment", "mac", "tunnel"])
            let segment = try parseVNI(m.required("segment"), m.path("segment"))
            let mac = try parseMAC(m.required("mac"), m.path("mac"))
            if let j = seen[Key(segment: segment, mac: mac)] {
                throw E(path: m.path("mac"),
                        message: "duplicate entry for segment \(segment), mac \(mac) (also \(YAMLReader.item(path, j)))")
            }
            seen[Key(segment: segment, mac: mac)] = i
            let tunnel = try reference(m.required("tunnel"), m.path("tunnel"), segment: segment)
            result.append(ForwardingEntry(segment: segment, mac: mac, tunnel: tunnel))
        }
        return result
    }

    func flood(_ items: [Node], path: String) throws(E) -> [FloodList] {
        var result: [FloodList] = []
        var seen: [VNI: Int] = [:]
        for (i, node) in items.enumerated() {
            let p = YAMLReader.item(path, i)
            let m = try MappingReader(node, path: p, allowed: ["segment", "tunnels"])
            let segment = try parseVNI(m.required("segment"), m.path("segment"))
            if let j = seen[segment] {
                throw E(path: m.path("segment"),
                        message: "duplicate flood list for segment \(segment) (also \(YAMLReader.item(path, j)))")
            }
            seen[segment] = i
            let listPath = m.path("tunnels")
            let list = try YAMLReader.sequence(m.required("tunnels"), listPath)
            var names: [String] = []
            for (j, item) in list.enumerated() {
                let itemPath = YAMLReader.item(listPath, j)
                let name = try reference(item, itemPath, segment: segment)
                if let k = names.firstIndex(of: name) {
                    throw E(path: itemPath,
                            message: "duplicate tunnel \(ConfigurationText.quote(name)) in the flood list (also \(YAMLReader.item(listPath, k)))")
                }
                names.append(name)
            }
            result.append(FloodList(segment: segment, tunnels: names))
        }
        return result
    }

    // MARK: neighbors

    func neighbors(_ items: [Node], path: String) throws(E) -> [StaticNeighbor] {
        guard let uplink else { return [] }
        var result: [StaticNeighbor] = []
        var seen: [IPv4Address: Int] = [:]
        for (i, node) in items.enumerated() {
            let p = YAMLReader.item(path, i)
            let m = try MappingReader(node, path: p, allowed: ["address", "mac"])
            let ap = m.path("address")
            let address = try parseAddress(m.required("address"), ap)
            try checkHostAddress(address, ap, in: uplink.address)
            if address == uplink.address.address {
                throw E(path: ap, message: "\(address) is the uplink's own address (uplink.address)")
            }
            guard uplink.address.contains(address) else {
                throw E(path: ap, message: "\(address) is not on-link (outside uplink.address \(uplink.address))")
            }
            if let j = seen[address] {
                throw E(path: ap, message: "duplicate neighbor \(address) (also \(YAMLReader.item(path, j)))")
            }
            seen[address] = i
            let mac = try parseMAC(m.required("mac"), m.path("mac"))
            result.append(StaticNeighbor(address: address, mac: mac))
        }
        return result
    }

    // MARK: settings

    func resolution(_ node: Node, path: String) throws(E) -> ResolutionSettings {
        let m = try MappingReader(node, path: path, allowed: [
            "retry_initial_ms", "retry_max_ms", "min_interval_ms", "reachable_ms", "probes",
            "max_requests_per_second", "max_neighbors",
        ])
        var r = ResolutionSettings()
        let initial = try m.int("retry_initial_ms", 1...60_000)
        let max = try m.int("retry_max_ms", 1...600_000)
        r.retryInitialMs = initial ?? r.retryInitialMs
        r.retryMaxMs = max ?? r.retryMaxMs
        if r.retryMaxMs < r.retryInitialMs {
            if max != nil {
                throw E(path: m.path("retry_max_ms"),
                        message: "\(r.retryMaxMs) is less than retry_initial_ms \(r.retryInitialMs)")
            }
            throw E(path: m.path("retry_initial_ms"),
                    message: "\(r.retryInitialMs) is more than retry_max_ms \(r.retryMaxMs) (the default)")
        }
        r.minIntervalMs = try m.int("min_interval_ms", 0...60_000, default: r.minIntervalMs)
        r.reachableMs = try m.int("reachable_ms", 1...3_600_000, default: r.reachableMs)
        r.probes = try m.int("probes", 1...100, default: r.probes)
        r.maxRequestsPerSecond = try m.int("max_requests_per_second", 1...1_000_000, default: r.maxRequestsPerSecond)
        r.maxNeighbors = try m.int("max_neighbors", 0...1_048_576, default: r.maxNeighbors)
        return r
    }

    func pending(_ node: Node, path: String) throws(E) -> PendingSettings {
        let m = try MappingReader(node, path: path, allowed: ["lifetime_ms", "per_core", "per_neighbor"])
        var s = PendingSettings()
        s.lifetimeMs = try m.int("lifetime_ms", 1...600_000, default: s.lifetimeMs)
        s.perCore = try m.int("per_core", 1...1_048_576, default: s.perCore)
        s.perNeighbor = try m.int("per_neighbor", 1...1_048_576, default: s.perNeighbor)
        return s
    }

    func learning(_ node: Node, path: String) throws(E) -> LearningSettings {
        let m = try MappingReader(node, path: path, allowed: ["enabled", "max_entries", "aging_s"])
        var s = LearningSettings()
        s.enabled = try m.bool("enabled") ?? s.enabled
        s.maxEntries = try m.int("max_entries", 1...1_048_576, default: s.maxEntries)
        s.agingSeconds = try m.int("aging_s", 1...86_400, default: s.agingSeconds)
        return s
    }

    func decapsulation(_ node: Node, path: String) throws(E) -> DecapsulationSettings {
        let m = try MappingReader(node, path: path, allowed: ["accept_from"])
        var s = DecapsulationSettings()
        if let node = try m.optional("accept_from") {
            let text = try YAMLReader.string(node, m.path("accept_from"))
            guard let sources = DecapsulationSettings.Sources(rawValue: text) else {
                throw E(path: m.path("accept_from"), message: "\(ConfigurationText.quote(text)) is not one of: "
                    + DecapsulationSettings.Sources.allCases.map(\.rawValue).joined(separator: ", "))
            }
            s.acceptFrom = sources
        }
        return s
    }

    /// A Linux interface name, as the kernel's `dev_valid_name` allows it.
    func interfaceName(_ m: MappingReader, _ key: String) throws(E) -> String {
        let name = try m.string(key)
        let valid = (1...15).contains(name.utf8.count) && name != "." && name != ".."
            && !name.unicodeScalars.contains { $0 == "/" || $0 == ":" || $0.properties.isWhitespace || $0.value < 0x20 }
        guard valid else {
            throw E(path: m.path(key),
                    message: "\(ConfigurationText.quote(name)) is not a valid interface name (1 to 15 bytes, no '/', ':' or whitespace)")
        }
        return name
    }

    func kernelSync(_ node: Node, path: String) throws(E) -> KernelSync {
        let m = try MappingReader(node, path: path, allowed: ["interface"])
        return KernelSync(interface: try interfaceName(m, "interface"))
    }

    /// What can be checked without the kernel; the devices themselves are checked when
    /// tunnelfwd starts (`EVPNSegmentCheck`).
    func evpn(_ node: Node, path: String, access: [AccessPort]) throws(E) -> EVPNSettings {
        let m = try MappingReader(node, path: path, allowed: ["hold_ms", "segments"])
        let listPath = m.path("segments")
        let items = try YAMLReader.sequence(m.required("segments"), listPath)
        guard !items.isEmpty else { throw E(path: listPath, message: "expected at least one segment") }
        var segments: [EVPNSettings.Segment] = []
        var seenVNIs: [VNI: Int] = [:]
        var seenInterfaces: [String: String] = [:]
        for (i, item) in items.enumerated() {
            let s = try MappingReader(item, path: YAMLReader.item(listPath, i), allowed: ["vni", "vxlan_interface", "local_port"])
            let vni = try parseVNI(s.required("vni"), s.path("vni"))
            if let j = seenVNIs[vni] {
                throw E(path: s.path("vni"), message: "duplicate segment \(vni) (also \(YAMLReader.item(listPath, j)))")
            }
            seenVNIs[vni] = i
            guard access.contains(where: { $0.segment == vni }) else {
                throw E(path: s.path("vni"), message: "\(vni) is not the segment of any access port (access[].segment)")
            }
            var names: [String] = []
            for key in ["vxlan_interface", "local_port"] {
                let name = try interfaceName(s, key)
                if let other = seenInterfaces[name] {
                    throw E(path: s.path(key), message: "duplicate interface \(ConfigurationText.quote(name)) (also \(other))")
                }
                seenInterfaces[name] = s.path(key)
                names.append(name)
            }
            segments.append(EVPNSettings.Segment(vni: vni, vxlanInterface: names[0], localPort: names[1]))
        }
        var settings = EVPNSettings(segments: segments)
        settings.holdMs = try m.int("hold_ms", 0...600_000, default: settings.holdMs)
        return settings
    }

    func dataplane(_ node: Node, path: String, tunnels: Int, nextHops: Int) throws(E) -> DataplaneSettings {
        let m = try MappingReader(node, path: path, allowed: [
            "burst", "rx_descriptors", "tx_descriptors", "extra_mbufs", "max_tunnels", "max_next_hops",
        ])
        var d = DataplaneSettings()
        d.burst = try m.int("burst", 1...256, default: d.burst)
        for key in ["rx_descriptors", "tx_descriptors"] {
            guard let n = try m.int(key, 64...16384) else { continue }
            guard n & (n - 1) == 0 else {
                throw E(path: m.path(key), message: "\(n) is not a power of two (expected 64, 128, ..., 16384)")
            }
            if key == "rx_descriptors" { d.rxDescriptors = n } else { d.txDescriptors = n }
        }
        d.extraMbufs = try m.int("extra_mbufs", 0...16_777_216, default: d.extraMbufs)
        if let n = try m.int("max_tunnels", 1...1_048_576) {
            guard n >= tunnels else { throw E(path: m.path("max_tunnels"), message: "\(n) is less than the \(tunnels) configured tunnels") }
            d.maxTunnels = n
        }
        if let n = try m.int("max_next_hops", 1...1_048_576) {
            guard n >= nextHops else {
                throw E(path: m.path("max_next_hops"), message: "\(n) is less than the \(nextHops) next hops the configured tunnels need")
            }
            d.maxNextHops = n
        }
        return d
    }
}
