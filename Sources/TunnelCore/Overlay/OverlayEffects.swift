/// What a change of the overlay asks of the control core, besides the tunnel and MAC
/// table entries the model has already written: the model decides, the control core does
/// the I/O.
public struct OverlayEffects: Sendable, Equatable {
    /// A next hop that a new tunnel brought: resolve it at once (mechanism 1).
    public struct NewNextHop: Sendable, Equatable {
        public var address: IPv4Address
        public var id: NextHopID
    }

    /// Segments, flood lists, access bindings, tunnel sources or the MAC table itself
    /// changed: publish a new snapshot.
    public var publish = false
    public var resolve: [NewNextHop] = []
    /// Next hops no tunnel uses any more: stop tracking them.
    public var forget: [IPv4Address] = []
    /// Local MACs of EVPN segments to write for FRR, and to take out.
    public var advertise: [Overlay.MACKey] = []
    public var withdraw: [Overlay.MACKey] = []
    /// Lines for the log: what the model refused from a source that cannot be answered
    /// (EVPN).
    public var notices: [String] = []

    public init() {}

    public var isEmpty: Bool { self == OverlayEffects() }

    public mutating func merge(_ other: OverlayEffects) {
        publish = publish || other.publish
        resolve += other.resolve
        forget += other.forget
        advertise += other.advertise
        withdraw += other.withdraw
        notices += other.notices
    }
}
