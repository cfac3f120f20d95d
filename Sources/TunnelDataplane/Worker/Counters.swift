import Atomics
import TunnelCore

/// A packet counter of one lcore; `name` is its telemetry name.
public enum Counter: Int, CaseIterable, Sendable {
    case rx, tx, encapsulated, decapsulated
    /// Extra copies made for head-end replication (one flooded frame to N tunnels adds N-1),
    /// or for delivering one decapsulated frame to several access ports.
    case floodCopies
    /// Packets whose next hop had no MAC (or had packets already waiting) when they arrived.
    case misses
    case buffered, flushed, expired
    case arpRequests, arpReplies
    /// TSC cycles spent in loop iterations that moved packets, and the packets they moved.
    case busyCycles, busyPackets
    /// A gauge, not a counter: packets in this lcore's pending buffer now.
    case pendingNow
    /// Workers: inner source MACs reported to the control core for learning (at most one
    /// report per MAC and remote per learning tick).
    case learningReports
    /// Control core: MACs learnt, moved to another tunnel, and forgotten for age.
    case learned, learnedMoves, learnedAged
    /// Control core: reports not learnt because the learnt table was full.
    case learnedTableFull
    /// A gauge on the control core: learnt entries now.
    case learnedNow
    /// Control core: ARP requests for our address that were answered.
    case arpAnswered
    /// Control core, ARP that was not taken (see `ARPStatistics`): replies to nothing we
    /// asked; claims of another MAC for a resolved neighbor (probed instead); senders
    /// outside the uplink prefix or with a multicast or zero MAC; messages with nothing to
    /// take; new senders refused because the underlay table is at `max_neighbors`.
    case arpUnsolicited, arpConflicts, arpInvalidSenders, arpIgnored, underlayFull
    /// A gauge on the control core: entries in the underlay neighbor table.
    case underlayNeighbors
    /// Gauges on the control core: tunnels, and the next hops they need.
    case tunnelsNow, tunnelNeighborsNow
    /// Control core: tunnelctl requests performed (malformed ones included).
    case controlRequests
    /// Control core: control connections closed for breaking a limit (over the connection
    /// limit, request too long or not complete in time, reply not taken in time).
    case controlRejected
    /// A gauge on the control core: control connections open now.
    case controlConnectionsNow
    /// Control core: neighbor updates the kernel refused, or did not confirm (kernel_sync).
    case kernelSyncErrors
    /// Control core: rtnetlink messages read about the EVPN segments' devices and their
    /// forwarding entries.
    case evpnNetlinkMessages
    /// Control core: forwarding-table dumps started again because the kernel dropped
    /// notifications (ENOBUFS) or changed its tables during a dump.
    case evpnRedumps
    /// Control core: local-MAC writes the kernel refused, or did not confirm.
    case evpnWriteErrors
    /// Gauges on the control core: remote VTEPs of the EVPN segments (held ones among
    /// them), remote MACs installed by FRR, local MACs advertised.
    case evpnVTEPsNow, evpnHeldVTEPsNow, evpnRemoteMACsNow, evpnLocalMACsNow
    /// Control core: EVPN entries for MACs a static entry forwards elsewhere (the static
    /// entry wins); VTEPs that cannot be a tunnel (off-link without a gateway, tables
    /// full); local MACs FRR moved to a remote VTEP.
    case evpnConflicts, evpnRefused, evpnMovedAway

    public var name: String {
        switch self {
        case .rx: "rx"
        case .tx: "tx"
        case .encapsulated: "encapsulated"
        case .decapsulated: "decapsulated"
        case .floodCopies: "flood_copies"
        case .misses: "misses"
        case .buffered: "buffered"
        case .flushed: "flushed"
        case .expired: "expired"
        case .arpRequests: "arp_requests"
        case .arpReplies: "arp_replies"
        case .busyCycles: "busy_cycles"
        case .busyPackets: "busy_packets"
        case .pendingNow: "pending_now"
        case .learningReports: "learning_reports"
        case .learned: "learned"
        case .learnedMoves: "learned_moves"
        case .learnedAged: "learned_aged"
        case .learnedTableFull: "learned_table_full"
        case .learnedNow: "learned_now"
        case .arpAnswered: "arp_answered"
        case .arpUnsolicited: "arp_unsolicited"
        case .arpConflicts: "arp_conflicts"
        case .arpInvalidSenders: "arp_invalid_senders"
        case .arpIgnored: "arp_ignored"
        case .underlayFull: "underlay_full"
        case .underlayNeighbors: "underlay_neighbors"
        case .tunnelsNow: "tunnels_now"
        case .tunnelNeighborsNow: "tunnel_neighbors_now"
        case .controlRequests: "control_requests"
        case .controlRejected: "control_rejected"
        case .controlConnectionsNow: "control_connections_now"
        case .kernelSyncErrors: "kernel_sync_errors"
        case .evpnNetlinkMessages: "evpn_netlink_messages"
        case .evpnRedumps: "evpn_redumps"
        case .evpnWriteErrors: "evpn_write_errors"
        case .evpnVTEPsNow: "evpn_vteps_now"
        case .evpnHeldVTEPsNow: "evpn_held_vteps_now"
        case .evpnRemoteMACsNow: "evpn_remote_macs_now"
        case .evpnLocalMACsNow: "evpn_local_macs_now"
        case .evpnConflicts: "evpn_conflicts"
        case .evpnRefused: "evpn_refused"
        case .evpnMovedAway: "evpn_moved_away"
        }
    }
}

/// Why a packet was dropped. Every freed packet that was not sent is counted under one.
public enum DropReason: Int, CaseIterable, Sendable {
    /// Still waiting for its next hop's MAC when the worker stopped (a packet that
    /// cannot wait is `pendingFull`).
    case noNeighbor
    /// No tunnel to send to: unknown or flooded frame in a segment without a flood list.
    case noTunnel
    /// Too short for its headers, or otherwise not a frame we can read.
    case malformed
    /// Larger than the uplink MTU once encapsulated.
    case mtu
    /// The TX queue did not take it while the link was up.
    case txFull
    /// No mbuf for a copy or a reply.
    case noMbuf
    /// No headroom in front of the frame for the outer headers.
    case noHeadroom
    /// Not tagged with the access port's VLAN.
    case vlanMismatch
    /// ARP frame for the control core, whose ring was full.
    case controlRingFull
    /// Uplink traffic that is neither ARP nor for a tunnel of ours.
    case notForUs
    /// A tunnel packet whose VNI belongs to no segment with an access port.
    case unknownVNI
    /// An outer IPv4 header with a wrong checksum.
    case badChecksum
    /// An outer IPv4 fragment (tunnel endpoints do not reassemble).
    case fragment
    /// The pending buffer's per-core or per-neighbor bound was reached.
    case pendingFull
    /// A tunnel packet whose outer destination MAC is not the uplink's (broadcast,
    /// multicast, or another host's that reached us anyway).
    case notOurMAC
    /// A tunnel packet from an address no packet may come from (0/8, loopback, multicast,
    /// class E, broadcast) or from our own.
    case martianSource
    /// A tunnel packet from a remote that no tunnel of its segment has
    /// (`decapsulation.accept_from: tunnels`).
    case unknownSource
    /// The TX queue did not take it while the port's link was down.
    case linkDown
    /// Received in more than one segment (a device that scatters despite a data room
    /// sized for the MTU): the worker reads frames from one segment only.
    case chained
    /// From an access port to a local MAC of its own EVPN segment: the frame has arrived
    /// where it was going (a bridge filters it the same way).
    case localDestination

    public var name: String {
        switch self {
        case .noNeighbor: "no_neighbor"
        case .noTunnel: "no_tunnel"
        case .malformed: "malformed"
        case .mtu: "mtu"
        case .txFull: "tx_full"
        case .noMbuf: "no_mbuf"
        case .noHeadroom: "no_headroom"
        case .vlanMismatch: "vlan_mismatch"
        case .controlRingFull: "control_ring_full"
        case .notForUs: "not_for_us"
        case .unknownVNI: "unknown_vni"
        case .badChecksum: "bad_checksum"
        case .fragment: "fragment"
        case .pendingFull: "pending_full"
        case .notOurMAC: "not_our_mac"
        case .martianSource: "martian_source"
        case .unknownSource: "unknown_source"
        case .linkDown: "link_down"
        case .chained: "chained"
        case .localDestination: "local_destination"
        }
    }
}

/// The counters of one lcore: written only by that lcore, read by telemetry.
///
/// Increments are a relaxed load and a relaxed store: plain moves on x86, no locked
/// instruction, yet a reader on another thread always sees a whole value.
public struct CounterBlock: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<AtomicWord>

    @inlinable @inline(__always)
    public func add(_ counter: Counter, _ n: Int = 1) {
        bump(counter.rawValue, UInt64(truncatingIfNeeded: n))
    }

    @inlinable @inline(__always)
    public func drop(_ reason: DropReason, _ n: Int = 1) {
        bump(Counter.allCases.count + reason.rawValue, UInt64(truncatingIfNeeded: n))
    }

    @inlinable @inline(__always)
    func bump(_ index: Int, _ n: UInt64) {
        let p = words + index
        let v = AtomicWord.atomicLoad(at: p, ordering: .relaxed)
        AtomicWord.atomicStore(v &+ n, at: p, ordering: .relaxed)
    }

    /// Sets a gauge (`pendingNow`).
    @inlinable @inline(__always)
    public func set(_ counter: Counter, _ n: Int) {
        AtomicWord.atomicStore(UInt64(truncatingIfNeeded: n), at: words + counter.rawValue, ordering: .relaxed)
    }

    public func value(_ counter: Counter) -> UInt64 { read(counter.rawValue) }
    public func value(_ reason: DropReason) -> UInt64 { read(Counter.allCases.count + reason.rawValue) }

    func read(_ index: Int) -> UInt64 {
        AtomicWord.atomicLoad(at: words + index, ordering: .relaxed)
    }
}

/// Every lcore's counter block, each in its own cache lines, indexed by lcore id.
public struct CounterTable: @unchecked Sendable {
    static let wordsPerBlock = (Counter.allCases.count + DropReason.allCases.count + 7) & ~7
    private let base: UnsafeMutablePointer<AtomicWord>
    public let lcores: [UInt32]

    public init(lcores: [UInt32], maxLcore: Int) {
        self.lcores = lcores
        let count = Self.wordsPerBlock * maxLcore
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64)
        base = raw.bindMemory(to: AtomicWord.self, capacity: count)
        base.initialize(repeating: .init(0), count: count)
    }

    public func block(lcore: UInt32) -> CounterBlock {
        CounterBlock(words: base + Int(lcore) * Self.wordsPerBlock)
    }

    public func total(_ counter: Counter) -> UInt64 {
        lcores.reduce(0) { $0 &+ block(lcore: $1).value(counter) }
    }

    public func total(_ reason: DropReason) -> UInt64 {
        lcores.reduce(0) { $0 &+ block(lcore: $1).value(reason) }
    }

    public func deallocate() {
        UnsafeMutableRawPointer(base).deallocate()
    }
}
