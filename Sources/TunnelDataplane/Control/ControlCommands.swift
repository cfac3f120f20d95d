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
            let attached = try overlay.addTunnel(tunnel, nowMs: now)
            inForceAt = publishSnapshot(nowMs: now)
            let hop = overlay.nextHop(of: tunnel)!
            if case .added(let id) = attached {
                let actions = resolver.attach(hop, id: id, nowMs: now)
                apply(actions)
            }
            publishTelemetry(nowMs: now)
            let state = resolver.tunnelNeighbors[hop].map { $0.published == nil ? "resolving" : "resolved" } ?? "?"
            return ControlReply(ok: true, message: "tunnel \(tunnel.name) added: \(tunnel.type.rawValue) to \(tunnel.remote) vni \(tunnel.vni), next hop \(hop) (\(state))")
        case .tunnelDelete(let name):
            let deleted = try overlay.deleteTunnel(named: name, nowMs: now)
            inForceAt = publishSnapshot(nowMs: now)
            if let gone = deleted.removedNextHop {
                let actions = resolver.detach(gone.address, nowMs: now)
                apply(actions)
            }
            publishTelemetry(nowMs: now)
            return ControlReply(ok: true, message: "tunnel \(name) deleted with \(deleted.forwardingEntriesRemoved) forwarding entr\(deleted.forwardingEntriesRemoved == 1 ? "y" : "ies") and \(deleted.floodListsLeft) flood-list membership(s)"
                + (deleted.removedNextHop.map { "; next hop \($0.address) no longer tracked" } ?? ""))
        case .forwardingAdd(let segment, let macText, let name):
            let (vni, mac) = try ControlRequest.forwardingKey(segment: segment, mac: macText)
            try overlay.addForwarding(segment: vni, mac: mac, tunnel: name)
            inForceAt = publishSnapshot(nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): \(mac) -> tunnel \(name)")
        case .forwardingDelete(let segment, let macText):
            let (vni, mac) = try ControlRequest.forwardingKey(segment: segment, mac: macText)
            try overlay.deleteForwarding(segment: vni, mac: mac)
            inForceAt = publishSnapshot(nowMs: now)
            return ControlReply(ok: true, message: "segment \(vni): \(mac) removed")
        case .forwardingShow(let segment):
            let rows = forwardingRows(segment: segment)
            let learned = rows.filter(\.learned).count
            return ControlReply(ok: true, message: "\(rows.count) forwarding entr\(rows.count == 1 ? "y" : "ies"), \(learned) learnt",
                                forwarding: rows)
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

    /// Static entries, then learnt ones, of one segment or all; each sorted by segment and MAC.
    private func forwardingRows(segment: UInt32?) -> [ForwardingRow] {
        let order = { (a: Overlay.MACKey, b: Overlay.MACKey) in (a.segment.rawValue, a.mac) < (b.segment.rawValue, b.mac) }
        let wanted = { (key: Overlay.MACKey) in segment == nil || key.segment.rawValue == segment }
        let statics = overlay.forwarding.filter { wanted($0.key) }.sorted { order($0.key, $1.key) }.map { key, tunnel in
            ForwardingRow(segment: key.segment.rawValue, mac: key.mac.description, tunnel: tunnel, learned: false, lastSeenMs: nil)
        }
        let now = LearningClock.tick(tsc: rte_rdtsc())
        let learnt = overlay.learned.entries.filter { wanted($0.key) }.sorted { order($0.key, $1.key) }.map { key, entry in
            let seen = learning?.ages.lastSeen(entry.slot) ?? now
            return ForwardingRow(segment: key.segment.rawValue, mac: key.mac.description, tunnel: entry.tunnel, learned: true,
                                 lastSeenMs: LearningClock.milliseconds(ticks: now > seen ? now - seen : 0, tscHz: EAL.tscHz))
        }
        return statics + learnt
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
        telemetry.publish(
            tunnels: overlay.tunnels.prefix(rows).map { tunnel in
                let hop = overlay.nextHop(of: tunnel)!
                let id = overlay.neighbors[hop]!.id
                return TelemetrySource.TunnelStatus(tunnel: tunnel, nextHop: hop, nextHopMAC: nextHops.resolvedMAC(id))
            },
            neighbors: neighborRows(nowMs: nowMs, limit: rows),
            underlay: underlayRows(nowMs: nowMs, limit: rows),
            pending: pendingReport())
    }
}
