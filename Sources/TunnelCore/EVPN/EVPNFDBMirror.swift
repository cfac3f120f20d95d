/// A remote VXLAN tunnel endpoint as an EVPN segment reaches it: the address from
/// `NDA_DST`, with the VNI and UDP port of the segment's vxlan device unless the entry
/// names others (`NDA_VNI`, `NDA_PORT`).
public struct EVPNVTEP: Hashable, Sendable, Comparable {
    public var address: IPv4Address
    public var vni: VNI
    public var udpPort: UInt16

    public init(address: IPv4Address, vni: VNI, udpPort: UInt16) {
        self.address = address
        self.vni = vni
        self.udpPort = udpPort
    }

    public static func < (a: EVPNVTEP, b: EVPNVTEP) -> Bool {
        (a.address, a.vni, a.udpPort) < (b.address, b.vni, b.udpPort)
    }
}

/// Where a remote MAC lives, as FRR installed it.
public struct EVPNRemoteMAC: Hashable, Sendable {
    public var vtep: EVPNVTEP
    /// `NTF_STICKY` on the vxlan entry: the MAC is pinned behind this VTEP.
    public var sticky: Bool

    public init(vtep: EVPNVTEP, sticky: Bool) {
        self.vtep = vtep
        self.sticky = sticky
    }
}

/// One difference between what `EVPNFDBMirror.takeChanges()` reported last and now.
/// A batch lists VTEP and flood-list additions first and removals last, so that a caller
/// applying it in order never points a MAC at a VTEP it does not have yet.
public enum EVPNFDBChange: Hashable, Sendable {
    /// The VTEP is now in the segment's flood list or behind at least one of its MACs.
    case vtepAdded(VNI, EVPNVTEP)
    case floodJoined(VNI, EVPNVTEP)
    /// A remote MAC appeared, or its VTEP or sticky flag changed.
    case remoteMAC(VNI, MACAddress, EVPNRemoteMAC)
    case remoteMACGone(VNI, MACAddress)
    case floodLeft(VNI, EVPNVTEP)
    /// The VTEP is neither in the flood list nor behind any remote MAC any more.
    case vtepRemoved(VNI, EVPNVTEP)
}

/// What FRR (zebra, BGP EVPN) has installed in the kernel's forwarding database for the
/// EVPN segments, read from the neighbour messages of the segments' vxlan devices and
/// stand-in ports.
///
/// zebra installs a remote MAC as two entries: a bridge entry on the vxlan port
/// (`NDA_MASTER`) and a vxlan entry (`NTF_SELF`) that carries the VTEP. When a remote
/// MAC becomes local, FRR moves the bridge entry but leaves the vxlan entry behind, so a
/// MAC counts as remote only while both hold: its bridge entry is on the vxlan port and
/// it has a vxlan entry. Type-3 routes are zero-MAC vxlan entries, one per VTEP of the
/// flood list.
///
/// Applying a message twice changes nothing. After lost notifications (`ENOBUFS`), a
/// full dump applied between `beginResync()` and `endResync()` removes whatever the dump
/// no longer holds.
public struct EVPNFDBMirror: Sendable {
    /// One EVPN segment as the kernel holds it.
    public struct Segment: Hashable, Sendable {
        public var vni: VNI
        /// The ifindex of the segment's vxlan device (`IFLA_VXLAN_ID` is `vni`).
        public var vxlanInterface: UInt32
        /// The device's `IFLA_VXLAN_PORT`: the UDP port of VTEPs whose entry names none.
        public var udpPort: UInt16
        /// The ifindex of the bridge port where local MACs are written for FRR.
        public var localPort: UInt32

        public init(vni: VNI, vxlanInterface: UInt32, udpPort: UInt16, localPort: UInt32) {
            self.vni = vni
            self.vxlanInterface = vxlanInterface
            self.udpPort = udpPort
            self.localPort = localPort
        }
    }

    /// What the kernel holds for one MAC of a segment, with the resync generation in
    /// which each part was last confirmed.
    fileprivate struct MACEntry {
        /// From the vxlan (`NTF_SELF`) entry written by a control plane.
        var remote: EVPNRemoteMAC?
        var remoteSeen: UInt64 = 0
        /// The ifindex of the bridge entry's port.
        var masterPort: UInt32?
        var masterSeen: UInt64 = 0

        var isEmpty: Bool { remote == nil && masterPort == nil }
    }

    fileprivate struct SegmentState {
        let segment: Segment
        var macs: [MACAddress: MACEntry] = [:]
        /// The flood list, with the generation in which each VTEP was last confirmed.
        var flood: [EVPNVTEP: UInt64] = [:]

        // As last reported by `takeChanges`.
        var reportedMACs: [MACAddress: EVPNRemoteMAC] = [:]
        var reportedFlood: Set<EVPNVTEP> = []
        /// How many reported remote MACs are behind each VTEP.
        var reportedMACsPerVTEP: [EVPNVTEP: Int] = [:]
        /// The flood list and the VTEPs of the remote MACs.
        var reportedVTEPs: Set<EVPNVTEP> = []

        // Changed since last reported.
        var dirtyMACs: Set<MACAddress> = []
        var dirtyFlood: Set<EVPNVTEP> = []

        init(segment: Segment) { self.segment = segment }

        func remoteMAC(_ mac: MACAddress) -> EVPNRemoteMAC? {
            guard let entry = macs[mac], entry.masterPort == segment.vxlanInterface else { return nil }
            return entry.remote
        }

        mutating func update(_ mac: MACAddress, _ change: (inout MACEntry) -> Void) {
            var entry = macs.removeValue(forKey: mac) ?? MACEntry()
            change(&entry)
            if !entry.isEmpty { macs[mac] = entry }
            dirtyMACs.insert(mac)
        }
    }

    private var segments: [VNI: SegmentState] = [:]
    /// Segment of each watched ifindex: its vxlan device and its local port.
    private var segmentOfInterface: [UInt32: VNI] = [:]
    /// Raised by each `beginResync`; what a resync does not confirm is older.
    private var generation: UInt64 = 0

    /// Watches `segments`; each VNI, vxlan device and local port must appear once.
    public init(segments: [Segment]) {
        for segment in segments {
            precondition(self.segments[segment.vni] == nil, "EVPN segment \(segment.vni) given twice")
            for ifindex in [segment.vxlanInterface, segment.localPort] {
                precondition(segmentOfInterface.updateValue(segment.vni, forKey: ifindex) == nil,
                             "ifindex \(ifindex) watched twice")
            }
            self.segments[segment.vni] = SegmentState(segment: segment)
        }
    }

    /// Takes in one neighbour message; messages of other families and devices, and
    /// entries that say nothing about EVPN state, are ignored.
    public mutating func apply(_ message: NeighborMessage) {
        guard message.family == Netlink.familyBridge, let mac = message.linkLayerAddress,
              let vni = segmentOfInterface[message.ifindex] else { return }
        let generation = generation
        segments[vni]!.apply(message, mac: mac, generation: generation)
    }

    /// Starts a full re-dump: every entry the dump (or a notification) does not confirm
    /// before `endResync()` is then removed.
    public mutating func beginResync() {
        generation += 1
    }

    /// Removes what was not confirmed since `beginResync()`.
    public mutating func endResync() {
        let generation = generation
        for vni in segments.keys {
            segments[vni]!.sweep(olderThan: generation)
        }
    }

    /// The remote MACs of segment `vni`.
    public func remoteMACs(_ vni: VNI) -> [MACAddress: EVPNRemoteMAC] {
        guard let state = segments[vni] else { return [:] }
        var result: [MACAddress: EVPNRemoteMAC] = [:]
        for mac in state.macs.keys {
            if let remote = state.remoteMAC(mac) { result[mac] = remote }
        }
        return result
    }

    /// The flood list of segment `vni` (its type-3 routes).
    public func floodList(_ vni: VNI) -> Set<EVPNVTEP> {
        guard let state = segments[vni] else { return [] }
        return Set(state.flood.keys)
    }

    /// The remote VTEPs of segment `vni`: its flood list and the VTEPs of its remote MACs.
    public func remoteVTEPs(_ vni: VNI) -> Set<EVPNVTEP> {
        floodList(vni).union(remoteMACs(vni).values.map(\.vtep))
    }

    /// What changed since the last call (or since the start), additions first.
    public mutating func takeChanges() -> [EVPNFDBChange] {
        var changes: [EVPNFDBChange] = []
        for vni in segments.keys.sorted() {
            segments[vni]!.takeChanges(into: &changes)
        }
        // VTEPs are added before what uses them, and removed after.
        func rank(_ change: EVPNFDBChange) -> Int {
            switch change {
            case .vtepAdded: 0
            case .floodJoined: 1
            case .remoteMAC: 2
            case .remoteMACGone: 3
            case .floodLeft: 4
            case .vtepRemoved: 5
            }
        }
        return changes.enumerated()
            .sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }
            .map(\.element)
    }
}

extension EVPNFDBMirror.SegmentState {
    mutating func apply(_ message: NeighborMessage, mac: MACAddress, generation: UInt64) {
        if message.master != nil {
            applyBridgeEntry(message, mac: mac, generation: generation)
        } else if message.flags.contains(.selfEntry), message.ifindex == segment.vxlanInterface {
            applyVXLANEntry(message, mac: mac, generation: generation)
        }
    }

    /// A bridge entry says which port the MAC is behind. The bridge moves an entry from
    /// port to port with a NEW for the new port only, so a DEL counts only for the port
    /// the MAC is known behind.
    private mutating func applyBridgeEntry(_ message: NeighborMessage, mac: MACAddress, generation: UInt64) {
        let port = message.ifindex
        if message.isDeletion {
            guard macs[mac]?.masterPort == port else { return }
            update(mac) { $0.masterPort = nil }
        } else if message.state.contains(.permanent) {
            // zebra ignores permanent entries (a device's own MAC, iproute2's default
            // state): such a bridge entry is neither a remote MAC nor a written local one.
            guard macs[mac]?.masterPort != nil else { return }
            update(mac) { $0.masterPort = nil }
        } else {
            update(mac) {
                $0.masterPort = port
                $0.masterSeen = generation
            }
        }
    }

    /// A vxlan entry of the segment's device: a zero MAC is a flood-list VTEP, another
    /// MAC carries the VTEP of a remote MAC when a control plane wrote it.
    private mutating func applyVXLANEntry(_ message: NeighborMessage, mac: MACAddress, generation: UInt64) {
        guard case .ipv4(let address)? = message.destination else { return }
        var vni = segment.vni
        if let named = message.vni {
            guard let valid = VNI(named) else { return }
            vni = valid
        }
        let vtep = EVPNVTEP(address: address, vni: vni, udpPort: message.port ?? segment.udpPort)
        if mac == .zero {
            flood[vtep] = message.isDeletion ? nil : generation
            dirtyFlood.insert(vtep)
            return
        }
        if message.isDeletion {
            // An entry may hold several destinations; only the one named goes.
            guard macs[mac]?.remote?.vtep == vtep else { return }
            update(mac) { $0.remote = nil }
        } else if message.flags.contains(.externLearned) || message.flags.contains(.sticky) {
            update(mac) {
                $0.remote = EVPNRemoteMAC(vtep: vtep, sticky: message.flags.contains(.sticky))
                $0.remoteSeen = generation
            }
        } else {
            // Replaced by hand: no longer what a control plane installed.
            update(mac) { $0.remote = nil }
        }
    }

    mutating func sweep(olderThan generation: UInt64) {
        for (mac, entry) in macs {
            let staleRemote = entry.remote != nil && entry.remoteSeen < generation
            let staleMaster = entry.masterPort != nil && entry.masterSeen < generation
            guard staleRemote || staleMaster else { continue }
            update(mac) {
                if staleRemote { $0.remote = nil }
                if staleMaster { $0.masterPort = nil }
            }
        }
        for (vtep, seen) in flood where seen < generation {
            flood[vtep] = nil
            dirtyFlood.insert(vtep)
        }
    }

    /// Brings the reported state up to date with the dirty entries, noting each
    /// difference in `changes`.
    mutating func takeChanges(into changes: inout [EVPNFDBChange]) {
        let vni = segment.vni
        var touchedVTEPs = dirtyFlood
        for mac in dirtyMACs.sorted() {
            let now = remoteMAC(mac)
            let before = reportedMACs[mac]
            guard now != before else { continue }
            if let before {
                touchedVTEPs.insert(before.vtep)
                reportedMACsPerVTEP[before.vtep, default: 0] -= 1
                if reportedMACsPerVTEP[before.vtep] == 0 { reportedMACsPerVTEP[before.vtep] = nil }
            }
            if let now {
                touchedVTEPs.insert(now.vtep)
                reportedMACsPerVTEP[now.vtep, default: 0] += 1
            }
            reportedMACs[mac] = now
            changes.append(now.map { .remoteMAC(vni, mac, $0) } ?? .remoteMACGone(vni, mac))
        }
        for vtep in dirtyFlood.sorted() {
            let member = flood[vtep] != nil
            guard member != reportedFlood.contains(vtep) else { continue }
            if member { reportedFlood.insert(vtep) } else { reportedFlood.remove(vtep) }
            changes.append(member ? .floodJoined(vni, vtep) : .floodLeft(vni, vtep))
        }
        for vtep in touchedVTEPs.sorted() {
            let present = reportedFlood.contains(vtep) || reportedMACsPerVTEP[vtep] != nil
            guard present != reportedVTEPs.contains(vtep) else { continue }
            if present { reportedVTEPs.insert(vtep) } else { reportedVTEPs.remove(vtep) }
            changes.append(present ? .vtepAdded(vni, vtep) : .vtepRemoved(vni, vtep))
        }
        dirtyMACs.removeAll()
        dirtyFlood.removeAll()
    }
}
