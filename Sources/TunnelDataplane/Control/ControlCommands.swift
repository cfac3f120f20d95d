import CDPDK
import TunnelCore

/// The control core's answers to tunnelctl: runtime changes of the overlay, each applied
/// to the model, published to the workers as a new snapshot and reported in one line once
/// the workers use it, and the neighbor and pending reports, which telemetry also
/// publishes.
extension ControlCore {
    /// A refused request changes nothing and is answered with the reason in one line. A
    /// change comes with the epoch of the snapshot that carries it: the server holds its
    /// reply until every worker has passed that epoch, so that the reply means "in force",
    /// and the control core goes on meanwhile.
    mutating func handle(_ request: ControlRequest) -> ControlServer.Answer {
        var inForceAt: UInt64?
        do {
            let reply = try perform(request, nowMs: Clock.milliseconds, inForceAt: &inForceAt)
            return ControlServer.Answer(reply: reply, inForceAt: inForceAt)
        } catch {
            return ControlServer.Answer(reply: .failure("\(error)"))
        }
    }

    private mutating func perform(_ request: ControlRequest, nowMs now: UInt64, inForceAt: inout UInt64?) throws -> ControlReply {
        switch request {
        case .tunnelAdd(let spec):
            let tunnel = try spec.tunnel()
            let effects = try overlay.addTunnel(tunnel, nowMs: now)
            inForceAt = apply(effects, nowMs: now)
            publishTelemetry(nowMs: now)
            let hop = overlay.nextHop(of: tunnel)!
            return ControlReply(ok: true, message: "tunnel \(tunnel.name) added: \(tunnel.type.rawValue) to \(tunnel.remote) vni \(tunnel.vni), next hop \(hop) (\(nextHopState(hop)))")
        case .tunnelDelete(let name):
            let deleted = try overlay.deleteTunnel(named: name, nowMs: now)
            inForceAt = apply(deleted.effects, nowMs: now)
            publishTelemetry(nowMs: now)
            return ControlReply(ok: true, message: "tunnel \(name) deleted with \(deleted.forwardingEntriesRemoved) forwarding entr\(deleted.forwardingEntriesRemoved == 1 ? "y" : "ies") and \(deleted.floodListsLeft) flood-list membership(s)"
                + (deleted.effects.forget.first.map { "; next hop \($0) no longer tracked" } ?? ""))
        case .tunnelShow:
            let rows = tunnelRows(nowMs: now)
            return ControlReply(ok: true, message: "\(rows.count) tunnel(s)", tunnels: rows)
        case .forwardingAdd(let segment, let macText, let name):
            let (vni, mac) = try ControlRequest.forwardingKey(segment: segment, mac: macText)
            inForceAt = apply(try overlay.addForwarding(segment: vni, mac: mac, tunnel: name), nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): \(mac) -> tunnel \(name)")
        case .forwardingDelete(let segment, let macText):
            let (vni, mac) = try ControlRequest.forwardingKey(segment: segment, mac: macText)
            inForceAt = apply(try overlay.deleteForwarding(segment: vni, mac: mac), nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): \(mac) removed")
        case .forwardingShow(let segment):
            let rows = try forwardingRows(segment: segment.map(ControlRequest.segmentVNI))
            var byOrigin: [String: Int] = [:]
            for row in rows { byOrigin[row.origin, default: 0] += 1 }
            let summary = byOrigin.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            return ControlReply(ok: true, message: "\(rows.count) forwarding entr\(rows.count == 1 ? "y" : "ies")"
                                + (summary.isEmpty ? "" : ": \(summary)"), forwarding: rows)
        case .floodAdd(let segment, let name):
            let vni = try ControlRequest.segmentVNI(segment)
            inForceAt = apply(try overlay.addFlood(segment: vni, tunnel: name), nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): tunnel \(name) joined the flood list")
        case .floodDelete(let segment, let name):
            let vni = try ControlRequest.segmentVNI(segment)
            inForceAt = apply(try overlay.deleteFlood(segment: vni, tunnel: name), nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): tunnel \(name) left the flood list")
        case .floodShow(let segment):
            let wanted = try segment.map(ControlRequest.segmentVNI)
            let rows = floodRows().filter { wanted == nil || $0.segment == wanted!.rawValue }
            return ControlReply(ok: true, message: "\(rows.count) flood list(s)", flood: rows)
        case .neighborShow(let all):
            return ControlReply(ok: true, message: "\(overlay.neighbors.count) tunnel neighbor(s)",
                                neighbors: neighborRows(nowMs: now), underlay: all ? underlayRows(nowMs: now) : nil)
        case .neighborFlush:
            let tracked = resolver.tunnelNeighbors.values.filter { $0.phase != .permanent }.count
            let actions = resolver.flush(nowMs: now)
            apply(actions)
            publishTelemetry(nowMs: now)
            return ControlReply(ok: true, message: "neighbor table flushed; resolving \(tracked) tunnel neighbor(s) again")
        case .pending:
            return ControlReply(ok: true, message: "", pending: pendingReport())
        }
    }

    private func nextHopState(_ hop: IPv4Address) -> String {
        resolver.tunnelNeighbors[hop].map { $0.published == nil ? "resolving" : "resolved" } ?? "?"
    }

    // MARK: reports

    private func neighborRows(nowMs: UInt64, limit: Int = .max) -> [TunnelNeighborRow] {
        overlay.neighbors.entries.values.sorted { $0.address < $1.address }.prefix(limit).map { entry in
            let underlay = resolver.underlay[entry.address]
            return TunnelNeighborRow(
                address: entry.address.description,
                state: underlay?.state.rawValue ?? "incomplete",
                mac: nextHops.resolvedMAC(entry.id)?.description,
                ageMs: underlay.map { nowMs &- $0.updatedMs },
                tunnels: entry.tunnels.sorted(), id: entry.id.rawValue)
        }
    }

    /// Every forwarding entry in force, of one segment or all, sorted by segment and MAC.
    private func forwardingRows(segment: VNI?) -> [ForwardingRow] {
        let now = LearningClock.tick(tsc: rte_rdtsc())
        return overlay.forwardingEntries(segment: segment).map { entry in
            let lastSeenMs = entry.learnedSlot.map { slot in
                let seen = learning?.ages.lastSeen(slot) ?? now
                return LearningClock.milliseconds(ticks: now > seen ? now - seen : 0, tscHz: EAL.tscHz)
            }
            return ForwardingRow(segment: entry.key.segment.rawValue, mac: entry.key.mac.description, tunnel: entry.tunnel,
                                 origin: entry.origin.rawValue, lastSeenMs: lastSeenMs)
        }
    }

    /// The tunnels in the order they were created, the first `limit` of them.
    func tunnelRows(nowMs: UInt64, limit: Int = .max) -> [TunnelRow] {
        let held = Dictionary(overlay.evpn.vteps.values.compactMap { vtep in vtep.heldUntil.map { (vtep.tunnel, $0) } },
                              uniquingKeysWith: min)
        return overlay.tunnelNames.prefix(limit).map { name in
            let tunnel = overlay.tunnel(named: name)!
            let hop = overlay.nextHop(of: tunnel)!
            return TunnelRow(name: name, type: tunnel.type.rawValue, remote: tunnel.remote.description, vni: tunnel.vni.rawValue,
                             dstPort: tunnel.destinationPort, origin: overlay.origin(ofTunnel: name)!.rawValue,
                             nextHop: hop.description, state: nextHopState(hop),
                             heldForMs: held[name].map { $0 > nowMs ? $0 - nowMs : 0 })
        }
    }

    /// Every segment with a flood list, static or from EVPN.
    func floodRows() -> [FloodRow] {
        let segments = Set(overlay.flood.keys).union(overlay.evpn.vteps.keys.map(\.vni))
        return segments.sorted().map { vni in
            let configured = overlay.flood[vni] ?? []
            return FloodRow(segment: vni.rawValue, tunnels: configured,
                            evpn: overlay.evpn.floodTunnels(vni).filter { !configured.contains($0) })
        }
    }

    private func underlayRows(nowMs: UInt64, limit: Int = .max) -> [UnderlayNeighborRow] {
        resolver.underlay.entries.sorted { $0.key < $1.key }.prefix(limit).map { address, entry in
            UnderlayNeighborRow(address: address.description, state: entry.state.rawValue,
                                mac: entry.mac?.description, ageMs: nowMs &- entry.updatedMs)
        }
    }

    private func pendingReport() -> PendingReport {
        var perCore: [String: Int] = [:]
        var byNextHop: [String: Int] = [:]
        for worker in workers {
            perCore[String(worker.lcore)] = 0
        }
        for entry in overlay.neighbors.entries.values {
            for worker in workers {
                let n = worker.pending.waitingCount(entry.id)
                guard n > 0 else { continue }
                perCore[String(worker.lcore), default: 0] += n
                byNextHop[entry.address.description, default: 0] += n
            }
        }
        return PendingReport(
            lifetimeMs: pendingSettings.lifetimeMs, perCoreLimit: pendingSettings.perCore,
            perNeighborLimit: pendingSettings.perNeighbor, total: perCore.values.reduce(0, +),
            perCore: perCore, byNextHop: byNextHop)
    }

    /// Telemetry shows the first rows of a table (`Telemetry.rowsShown`), so only those
    /// are built, four times a second: with 10 000 tunnels, formatting every row took the
    /// control core 15 % of a CPU.
    func publishTelemetry(nowMs: UInt64) {
        let rows = Telemetry.rowsShown
        telemetry.publish(TelemetrySource.ControlState(
            tunnels: overlay.tunnelNames.prefix(rows).map { name in
                let tunnel = overlay.tunnel(named: name)!
                let hop = overlay.nextHop(of: tunnel)!
                let id = overlay.neighbors[hop]!.id
                return TelemetrySource.TunnelStatus(tunnel: tunnel, origin: overlay.origin(ofTunnel: name)!, nextHop: hop,
                                                    nextHopMAC: nextHops.resolvedMAC(id))
            },
            neighbors: neighborRows(nowMs: nowMs, limit: rows),
            underlay: underlayRows(nowMs: nowMs, limit: rows),
            pending: pendingReport(),
            evpn: evpn.map { kernel in evpnStatus(kernel.settings) }))
    }

    /// Per EVPN segment, counted from the model (a few segments; the counting is linear in
    /// the VTEPs and MACs, four times a second).
    private func evpnStatus(_ settings: EVPNSettings) -> [TelemetrySource.EVPNSegmentStatus] {
        let state = overlay.evpn
        var remote: [VNI: Int] = [:]
        for key in state.remoteMACs.keys { remote[key.segment, default: 0] += 1 }
        var local: [VNI: Int] = [:]
        for (key, entry) in overlay.learned.entries where entry.tunnel == nil { local[key.segment, default: 0] += 1 }
        return settings.segments.map { segment in
            let vteps = state.vteps.filter { $0.key.vni == segment.vni }
            return TelemetrySource.EVPNSegmentStatus(
                settings: segment, vteps: vteps.count, flood: vteps.values.filter(\.floods).count,
                remoteMACs: remote[segment.vni] ?? 0, localMACs: local[segment.vni] ?? 0)
        }
    }
}
