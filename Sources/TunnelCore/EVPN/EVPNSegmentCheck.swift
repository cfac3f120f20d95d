/// Whether the kernel devices of the EVPN segments are as FRR and tunnelfwd need them,
/// checked once at start-up against a dump of the network namespace's links.
public enum EVPNSegmentCheck {
    /// The UDP port of a vxlan device that reports none.
    static let defaultUDPPort: UInt16 = 4789

    /// Each segment of `settings` as the kernel holds it; the first device that is not as
    /// it must be is an error naming its field, e.g. `evpn.segments[0].vxlan_interface:
    /// 'vx42' is down (ip link set vx42 up)`.
    ///
    /// The vxlan device must carry the segment's VNI with `uplinkAddress` as its local
    /// address (FRR advertises that as the VTEP), be up (FRR withdraws the segment of a
    /// device that is down) and be a port of a bridge; the local port must be a port of
    /// the same bridge, since FRR advertises the MACs of that bridge.
    public static func segments(
        of settings: EVPNSettings, links: [LinkMessage], uplinkAddress: IPv4Address
    ) throws(ConfigurationError) -> [EVPNFDBMirror.Segment] {
        var byName: [String: LinkMessage] = [:]
        var byIndex: [UInt32: LinkMessage] = [:]
        // A bridge's messages about its ports (AF_BRIDGE) describe the same devices again.
        for link in links where !link.isDeletion && link.family != Netlink.familyBridge {
            if let name = link.name { byName[name] = link }
            byIndex[link.ifindex] = link
        }
        var result: [EVPNFDBMirror.Segment] = []
        for (i, segment) in settings.segments.enumerated() {
            let path = "evpn.segments[\(i)]"
            func fail(_ key: String, _ message: String) -> ConfigurationError {
                ConfigurationError(path: "\(path).\(key)", message: message)
            }
            let name = segment.vxlanInterface
            let quoted = ConfigurationText.quote(name)
            guard let device = byName[name] else {
                throw fail("vxlan_interface", "no interface named \(quoted) in this network namespace")
            }
            guard device.kind == "vxlan" else {
                throw fail("vxlan_interface", device.kind.map { "\(quoted) is a \(ConfigurationText.sanitize($0)), not a vxlan device" }
                    ?? "\(quoted) is not a vxlan device")
            }
            let vxlan = device.vxlan ?? LinkMessage.VXLAN()
            if vxlan.vni != segment.vni.rawValue {
                throw fail("vxlan_interface", "\(quoted) carries VNI \(vxlan.vni.map(String.init) ?? "none"), not \(segment.vni)")
            }
            if vxlan.local != uplinkAddress {
                throw fail("vxlan_interface", "\(quoted) has \(vxlan.local.map { "local address \($0)" } ?? "no local address"), "
                    + "not uplink.address \(uplinkAddress)")
            }
            guard device.flags.contains(.up) else {
                throw fail("vxlan_interface", "\(quoted) is down (ip link set \(ConfigurationText.sanitize(name)) up)")
            }
            guard let bridgeIndex = device.master, let bridge = byIndex[bridgeIndex], bridge.kind == "bridge" else {
                throw fail("vxlan_interface", "\(quoted) is not a port of any bridge")
            }
            let portName = ConfigurationText.quote(segment.localPort)
            guard let port = byName[segment.localPort] else {
                throw fail("local_port", "no interface named \(portName) in this network namespace")
            }
            guard port.master == bridgeIndex else {
                throw fail("local_port", "\(portName) is not a port of bridge \(ConfigurationText.quote(bridge.name ?? String(bridgeIndex))), "
                    + "where \(ConfigurationText.sanitize(name)) is")
            }
            result.append(EVPNFDBMirror.Segment(
                vni: segment.vni, vxlanInterface: device.ifindex, udpPort: vxlan.port ?? defaultUDPPort, localPort: port.ifindex))
        }
        return result
    }
}
