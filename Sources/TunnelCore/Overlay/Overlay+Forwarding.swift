/// Forwarding entries from every source but EVPN (static ones, learnt ones, local ones)
/// and the static flood lists.
extension Overlay {
    /// Where a forwarding entry comes from, in order of precedence.
    public enum ForwardingOrigin: String, Sendable {
        /// The configuration file or `tunnelctl`.
        case configured = "static"
        /// BGP EVPN, through FRR.
        case evpn
        /// Learnt from decapsulated traffic.
        case learnt
        /// Seen behind an access port of an EVPN segment, and advertised.
        case local
    }

    /// One forwarding entry as the workers use it.
    public struct ForwardingEntryInfo: Sendable, Equatable {
        public var key: MACKey
        /// `nil` for a local MAC.
        public var tunnel: String?
        public var origin: ForwardingOrigin
        public var learnedSlot: Int?
    }

    public mutating func addForwarding(segment: VNI, mac: MACAddress, tunnel name: String) throws(OverlayError) -> OverlayEffects {
        guard let tunnel = tunnel(named: name) else { throw .unknownTunnel(name) }
        guard tunnel.vni == segment else { throw .segmentMismatch(tunnel: name, vni: tunnel.vni, segment: segment) }
        guard mac.isUnicast else { throw .invalidMAC(mac) }
        let key = MACKey(segment: segment, mac: mac)
        if let existing = forwarding[key] { throw .duplicateForwarding(segment: segment, mac: mac, tunnel: existing) }
        var effects = OverlayEffects()
        forwarding[key] = name
        if evpn.remoteMACs[key] != nil { evpn.statistics.conflicts += 1 }
        if let gone = learned.forget(key), gone.tunnel == nil { effects.withdraw.append(key) }
        refresh(key, &effects)
        return effects
    }

    /// Deletes a static entry, or else a learnt or local one; an EVPN entry goes only when
    /// FRR withdraws it.
    public mutating func deleteForwarding(segment: VNI, mac: MACAddress) throws(OverlayError) -> OverlayEffects {
        let key = MACKey(segment: segment, mac: mac)
        var effects = OverlayEffects()
        if forwarding.removeValue(forKey: key) == nil {
            if evpn.remoteMACs[key] != nil { throw .notStatic(segment: segment, mac: mac, origin: "EVPN") }
            guard let gone = learned.forget(key) else { throw .unknownForwarding(segment: segment, mac: mac) }
            if gone.tunnel == nil { effects.withdraw.append(key) }
        }
        refresh(key, &effects)
        return effects
    }

    /// Every forwarding entry in force, of one segment or all, sorted by segment and MAC.
    public func forwardingEntries(segment: VNI? = nil) -> [ForwardingEntryInfo] {
        let wanted = { (key: MACKey) in segment == nil || key.segment == segment }
        var keys = Set(forwarding.keys.filter(wanted))
        keys.formUnion(evpn.remoteMACs.keys.filter(wanted))
        keys.formUnion(learned.entries.keys.filter(wanted))
        return keys.sorted().map { key in
            if let name = forwarding[key] { return ForwardingEntryInfo(key: key, tunnel: name, origin: .configured) }
            if let remote = evpn.remoteMACs[key] { return ForwardingEntryInfo(key: key, tunnel: remote.tunnel, origin: .evpn) }
            let entry = learned.entries[key]!
            return ForwardingEntryInfo(key: key, tunnel: entry.tunnel, origin: entry.tunnel == nil ? .local : .learnt,
                                       learnedSlot: entry.slot)
        }
    }

    // MARK: flood lists

    public mutating func addFlood(segment: VNI, tunnel name: String) throws(OverlayError) -> OverlayEffects {
        guard let tunnel = tunnel(named: name) else { throw .unknownTunnel(name) }
        guard tunnel.vni == segment else { throw .segmentMismatch(tunnel: name, vni: tunnel.vni, segment: segment) }
        guard !(flood[segment] ?? []).contains(name) else { throw .duplicateFlood(segment: segment, tunnel: name) }
        flood[segment, default: []].append(name)
        var effects = OverlayEffects()
        effects.publish = true
        return effects
    }

    public mutating func deleteFlood(segment: VNI, tunnel name: String) throws(OverlayError) -> OverlayEffects {
        guard let list = flood[segment], list.contains(name) else { throw .notInFlood(segment: segment, tunnel: name) }
        flood[segment] = list.filter { $0 != name }
        if flood[segment]!.isEmpty { flood[segment] = nil }
        var effects = OverlayEffects()
        effects.publish = true
        return effects
    }

    // MARK: learning

    /// Learns where a worker saw an inner MAC come from. `nil` when there is nothing to
    /// learn: no tunnel of ours has that origin, a static or EVPN entry owns the MAC, the
    /// segment learns otherwise, or a local MAC that FRR has just moved away shows up
    /// again too soon.
    public mutating func learn(_ report: LearningReport, nowMs: UInt64) -> (LearnedMACs.Outcome, OverlayEffects)? {
        let key = MACKey(segment: report.vni, mac: report.mac)
        guard forwarding[key] == nil, report.mac.isUnicast else { return nil }
        var effects = OverlayEffects()
        let outcome: LearnedMACs.Outcome
        switch report.source {
        case .tunnel(let type, let remote):
            guard learnsFromTunnels, !evpn.segments.contains(report.vni), evpn.remoteMACs[key] == nil,
                  let tunnel = byLearningOrigin[LearningOrigin(type: type, remote: remote, vni: report.vni)] else { return nil }
            outcome = learned.learn(key, tunnel: tunnel)
        case .accessPort:
            guard evpn.segments.contains(report.vni), evpn.mayAdvertise(key, nowMs: nowMs) else { return nil }
            // Seen here: the MAC has moved from its remote VTEP (FRR follows once the
            // local entry is written, with a higher sequence number).
            if evpn.remoteMACs.removeValue(forKey: key) != nil { evpn.statistics.movedHere += 1 }
            outcome = learned.learn(key, tunnel: nil)
            switch outcome {
            case .added, .moved: effects.advertise.append(key)
            case .unchanged, .full: break
            }
        }
        refresh(key, &effects)
        return (outcome, effects)
    }

    /// Forgets the learnt and local MACs not seen for `agingTicks`; local ones are
    /// withdrawn.
    public mutating func expireLearned(now: UInt64, agingTicks: UInt64, lastSeen: (Int) -> UInt64) -> (aged: Int, effects: OverlayEffects) {
        var effects = OverlayEffects()
        let aged = learned.expire(now: now, agingTicks: agingTicks, lastSeen: lastSeen)
        for (key, entry) in aged {
            if entry.tunnel == nil { effects.withdraw.append(key) }
            refresh(key, &effects)
        }
        return (aged.count, effects)
    }
}
