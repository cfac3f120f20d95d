/// A token bucket bounding the ARP requests the control core sends per second, so that
/// no amount of traffic to unresolved next hops can turn into a request storm.
public struct RequestRateLimiter: Sendable {
    public let perSecond: Int
    /// Up to a quarter of a second's worth at once: enough for a thousand next hops to
    /// ask in one go at the default rate.
    public let burst: Int
    private var tokens: Double
    private var lastMs: UInt64

    public init(perSecond: Int, nowMs: UInt64) {
        self.perSecond = perSecond
        burst = max(1, perSecond / 4)
        tokens = Double(burst)
        lastMs = nowMs
    }

    /// Takes a token if one is there.
    public mutating func take(nowMs: UInt64) -> Bool {
        guard hasToken(nowMs: nowMs) else { return false }
        tokens -= 1
        return true
    }

    /// Whether `take` would succeed now (takes nothing).
    public mutating func hasToken(nowMs: UInt64) -> Bool {
        if nowMs > lastMs {
            tokens = min(Double(burst), tokens + Double(nowMs - lastMs) * Double(perSecond) / 1000)
            lastMs = nowMs
        }
        return tokens >= 1
    }
}
