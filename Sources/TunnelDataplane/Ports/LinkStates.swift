import Atomics
import CDPDK
import TunnelCore

/// Which ports' links are down, as the control core last saw them: one word per port id,
/// written by the control core every `pollPeriodMs`, read by a worker only when a TX
/// queue refuses packets, to count them `link_down` rather than `tx_full` (the hot path
/// never reads it), and by telemetry.
public struct LinkStates: @unchecked Sendable {
    private let words: UnsafeMutablePointer<AtomicWord>

    /// How often the control core asks the devices (a system call for net_tap).
    public static let pollPeriodMs: UInt64 = 100

    private static let capacity = Int(RTE_MAX_ETHPORTS)

    /// Every link up until the first poll says otherwise.
    public static func allocate() -> LinkStates {
        let words = UnsafeMutablePointer<AtomicWord>.allocate(capacity: capacity)
        words.initialize(repeating: AtomicWord(0), count: capacity)
        return LinkStates(words: words)
    }

    /// Reads each port's link status without waiting for the device to settle.
    public func poll(_ ports: [PortID]) {
        for port in ports {
            var link = rte_eth_link()
            let down: UInt64 = rte_eth_link_get_nowait(port.rawValue, &link) == 0 && link.link_status == 0 ? 1 : 0
            AtomicWord.atomicStore(down, at: words + Int(port.rawValue), ordering: .relaxed)
        }
    }

    public func isDown(_ port: UInt16) -> Bool {
        AtomicWord.atomicLoad(at: words + Int(port), ordering: .relaxed) != 0
    }

    /// Why packets that `port`'s TX queue did not take are lost.
    public func dropReason(port: UInt16) -> DropReason {
        isDown(port) ? .linkDown : .txFull
    }

    public func deallocate() {
        words.deallocate()
    }
}
