/// What EVPN has put in the overlay: the remote VTEPs of each EVPN segment (a tunnel each,
/// held for a while after FRR withdraws it), their flood-list memberships, the remote
/// MACs, and the local MACs that FRR has moved away.
public struct EVPNState: Sendable {
    /// Tunnels EVPN makes are named `evpn-<vni>-<vtep address>`; no other may be.
    public static let tunnelNamePrefix = "evpn-"
    /// A local MAC that FRR moved to a remote VTEP is not advertised again sooner than
    /// this, so that two hosts sending from one MAC do not feed a ping-pong of moves.
    public static let readvertiseIntervalMs: UInt64 = 1000

    public struct RemoteMAC: Sendable, Equatable {
        public var tunnel: String
        public var sticky: Bool
    }

    public struct VTEP: Sendable, Equatable {
        public var tunnel: String
        /// False when the VTEP's tunnel is a configured one that EVPN uses as it is.
        public var owned: Bool
        /// Withdrawn: the tunnel goes at this time unless FRR installs the VTEP again.
        public var heldUntil: UInt64?
        public var floods = false
        public var floodHeldUntil: UInt64?
    }

    public struct Statistics: Sendable, Equatable {
        /// EVPN entries for MACs that a static entry forwards elsewhere (the static entry wins).
        public var conflicts = 0
        /// VTEPs that tunnelfwd cannot reach as a tunnel (rules, tables full).
        public var refused = 0
        /// Local MACs that FRR moved to a remote VTEP, and remote MACs seen here since.
        public var movedAway = 0
        public var movedHere = 0
    }

    public let segments: Set<VNI>
    public let holdMs: UInt64
    public internal(set) var remoteMACs: [Overlay.MACKey: RemoteMAC] = [:]
    public internal(set) var vteps: [EVPNVTEP: VTEP] = [:]
    var refused: Set<EVPNVTEP> = []
    /// When FRR last moved each local MAC away.
    var movedAway: [Overlay.MACKey: UInt64] = [:]
    public internal(set) var statistics = Statistics()

    init(settings: EVPNSettings?) {
        segments = Set(settings?.segments.map(\.vni) ?? [])
        holdMs = UInt64(settings?.holdMs ?? 0)
    }

    public static func tunnelName(_ vtep: EVPNVTEP) -> String {
        let port = vtep.udpPort == EncapsulationType.vxlan.defaultDestinationPort ? "" : "-\(vtep.udpPort)"
        return "\(tunnelNamePrefix)\(vtep.vni)-\(vtep.address)\(port)"
    }

    public var heldCount: Int { vteps.values.filter { $0.heldUntil != nil }.count }

    func vtep(usingTunnel name: String) -> EVPNVTEP? {
        vteps.first { $0.value.tunnel == name }?.key
    }

    /// The tunnels of segment `vni`'s VTEPs that are in its flood list, by name.
    public func floodTunnels(_ vni: VNI) -> [String] {
        vteps.filter { $0.key.vni == vni && $0.value.floods }.map(\.value.tunnel).sorted()
    }

    mutating func forgetMACs(behind tunnel: String) -> [Overlay.MACKey] {
        let gone = remoteMACs.filter { $0.value.tunnel == tunnel }.map(\.key)
        for key in gone { remoteMACs[key] = nil }
        return gone
    }

    func mayAdvertise(_ key: Overlay.MACKey, nowMs: UInt64) -> Bool {
        guard let moved = movedAway[key] else { return true }
        return nowMs &- moved >= Self.readvertiseIntervalMs
    }
}

extension Overlay {
    /// Applies a batch of what FRR installed or withdrew, in the mirror's order (VTEPs
    /// before what uses them, after for removals).
    public mutating func applyEVPN(_ changes: [EVPNFDBChange], nowMs: UInt64) -> OverlayEffects {
        var effects = OverlayEffects()
        let hold = nowMs &+ evpn.holdMs
        for change in changes {
            switch change {
            case .vtepAdded(_, let vtep):
                addVTEP(vtep, nowMs: nowMs, &effects)
            case .vtepRemoved(_, let vtep):
                if evpn.refused.remove(vtep) != nil { continue }
                evpn.vteps[vtep]?.heldUntil = hold
            case .floodJoined(_, let vtep):
                guard var state = evpn.vteps[vtep] else { continue }
                state.floodHeldUntil = nil
                if !state.floods {
                    state.floods = true
                    effects.publish = true
                }
                evpn.vteps[vtep] = state
            case .floodLeft(_, let vtep):
                evpn.vteps[vtep]?.floodHeldUntil = hold
            case .remoteMAC(let vni, let mac, let remote):
                guard let state = evpn.vteps[remote.vtep] else { continue }
                let key = MACKey(segment: vni, mac: mac)
                if let local = learned.entries[key], local.tunnel == nil {
                    // FRR moved our local MAC away: it has been seen behind that VTEP
                    // later (a higher sequence number). zebra has already taken our
                    // kernel entry over, so there is nothing to withdraw.
                    learned.forget(key)
                    evpn.movedAway[key] = nowMs
                    evpn.statistics.movedAway += 1
                }
                if forwarding[key] != nil && evpn.remoteMACs[key] == nil { evpn.statistics.conflicts += 1 }
                evpn.remoteMACs[key] = EVPNState.RemoteMAC(tunnel: state.tunnel, sticky: remote.sticky)
                refresh(key, &effects)
            case .remoteMACGone(let vni, let mac):
                let key = MACKey(segment: vni, mac: mac)
                guard evpn.remoteMACs.removeValue(forKey: key) != nil else { continue }
                refresh(key, &effects)
            }
        }
        return effects
    }

    /// A VTEP installed again while held keeps its tunnel: an FRR restart churns nothing.
    private mutating func addVTEP(_ vtep: EVPNVTEP, nowMs: UInt64, _ effects: inout OverlayEffects) {
        if evpn.vteps[vtep] != nil {
            evpn.vteps[vtep]!.heldUntil = nil
            return
        }
        let tunnel = Tunnel(name: EVPNState.tunnelName(vtep), type: .vxlan, remote: vtep.address, vni: vtep.vni,
                            destinationPort: vtep.udpPort)
        if let configured = byEndpoint[TunnelRules.Endpoint(tunnel)] {
            evpn.vteps[vtep] = EVPNState.VTEP(tunnel: configured, owned: false)
            return
        }
        do {
            effects.merge(try addTunnel(tunnel, origin: .evpn, nowMs: nowMs))
            evpn.vteps[vtep] = EVPNState.VTEP(tunnel: tunnel.name, owned: true)
        } catch {
            evpn.refused.insert(vtep)
            evpn.statistics.refused += 1
            effects.notices.append("evpn: VTEP \(vtep.address) of segment \(vtep.vni) refused: \(error)")
        }
    }

    /// Ends the holds that have run out: flood-list memberships leave, tunnels go. Also
    /// forgets local MACs' moves older than the re-advertising interval.
    public mutating func expireEVPNHolds(nowMs: UInt64) -> OverlayEffects {
        var effects = OverlayEffects()
        for (vtep, state) in evpn.vteps {
            if let until = state.floodHeldUntil, nowMs >= until {
                evpn.vteps[vtep]!.floods = false
                evpn.vteps[vtep]!.floodHeldUntil = nil
                effects.publish = true
            }
            if let until = state.heldUntil, nowMs >= until {
                evpn.vteps[vtep] = nil
                if state.owned { effects.merge(removeTunnel(named: state.tunnel, nowMs: nowMs).effects) }
                effects.publish = true
            }
        }
        evpn.movedAway = evpn.movedAway.filter { nowMs &- $0.value < EVPNState.readvertiseIntervalMs }
        return effects
    }
}
