import Glibc
import TunnelCore

/// What a `NetlinkRequests` writes into the kernel: the request for each change of one
/// entry, and the words and counter for what the kernel does not take.
protocol NetlinkRequestKind {
    /// Which entry (a neighbor's address, a segment's MAC).
    associatedtype Key: Hashable
    /// What the entry holds (a neighbor's MAC, the port a MAC is written on).
    associatedtype Value: Equatable

    /// Starts each log line (`kernel_sync`).
    var logPrefix: String { get }
    /// Counts refusals, lost acknowledgements and removals unconfirmed at shutdown.
    var errorCounter: Counter { get }
    /// Several requests, and several removals, in a log line: `neighbor update(s) on eth0`.
    var requestsNoun: String { get }
    var removalsNoun: String { get }

    /// The request that makes the kernel hold `change`.
    func request(_ key: Key, _ change: NetlinkChange<Value>, sequence: UInt32) -> NetlinkRequest
    /// What the kernel refused with errno `reason`, to follow "refused to" in the log
    /// line (`set 10.0.0.2 to 02:00:00:00:00:02 on eth0`); `nil` when that refusal is
    /// harmless.
    func refusal(_ key: Key, _ change: NetlinkChange<Value>, reason: Int32) -> String?
}

/// A change of one entry: hold `value`, or no longer hold the `value` written.
enum NetlinkChange<Value: Equatable>: Equatable {
    case set(Value)
    case remove(Value)
}

/// Keeps kernel entries as this process wants them, on the control core, so it never
/// waits for the kernel: `set` and `remove` note the wanted state of an entry, and
/// `exchange`, once per loop iteration, sends what changed and reads the
/// acknowledgements that have arrived. A refusal is logged once, with the reason, and
/// counted; a send the socket cannot take now is tried again on the next iteration with
/// the entry's latest wanted state.
final class NetlinkRequests<Kind: NetlinkRequestKind> {
    typealias Key = Kind.Key
    typealias Value = Kind.Value

    /// Requests sent and not yet acknowledged, at most: their acknowledgements then always
    /// fit in the socket's receive buffer (one that does not is lost, with ENOBUFS).
    private static var maxInFlight: Int { 64 }
    /// Datagrams read per `exchange`, at most.
    private static var readsPerExchange: Int { 64 }
    /// How long a clean shutdown waits for the kernel to confirm the removals.
    private static var shutdownWaitMs: UInt64 { 1000 }

    let kind: Kind
    private let socket: NetlinkSocket
    /// What we asked the kernel to hold, sent or acknowledged, and not removed: taken out
    /// again at shutdown.
    private var written: [Key: Value] = [:]
    /// The latest wanted change of each entry not sent yet.
    private var unsent: [Key: NetlinkChange<Value>] = [:]
    /// Sent requests by sequence number, until their acknowledgement.
    private var inFlight: [UInt32: (key: Key, change: NetlinkChange<Value>)] = [:]
    private var reply = [UInt8](repeating: 0, count: 8192)

    init(kind: Kind, socket: NetlinkSocket) {
        self.kind = kind
        self.socket = socket
    }

    func set(_ key: Key, _ value: Value) {
        guard wanted(key) != value else { return }
        unsent[key] = .set(value)
    }

    func remove(_ key: Key) {
        guard wanted(key) != nil else { return }
        // Never sent, never written: nothing to take out.
        unsent[key] = written[key].map { .remove($0) }
    }

    /// Takes `value` as written by this process for `key` (an entry an earlier run left),
    /// so that `remove` and `removeAll` take it out.
    func adopt(_ key: Key, _ value: Value) {
        written[key] = value
    }

    private func wanted(_ key: Key) -> Value? {
        switch unsent[key] {
        case .set(let value): value
        case .remove: nil
        case nil: written[key]
        }
    }

    /// Reads the acknowledgements that have arrived and sends the changes not sent yet;
    /// returns how many messages went either way.
    func exchange(counters: CounterBlock) -> Int {
        receiveAcknowledgements(counters: counters) + sendChanges(counters: counters)
    }

    /// Takes out everything this process wrote (clean shutdown), waiting a bounded time
    /// for the kernel to confirm.
    func removeAll(counters: CounterBlock) {
        unsent = written.mapValues { .remove($0) }
        let deadline = Clock.milliseconds + Self.shutdownWaitMs
        while !(unsent.isEmpty && inFlight.isEmpty) && Clock.milliseconds < deadline {
            if exchange(counters: counters) == 0 { socket.wait(ms: 10) }
        }
        let unconfirmed = unsent.count + inFlight.count
        if unconfirmed > 0 {
            counters.add(kind.errorCounter, unconfirmed)
            Log.error("\(kind.logPrefix): \(unconfirmed) \(kind.removalsNoun) unconfirmed at shutdown")
        }
    }

    private func sendChanges(counters: CounterBlock) -> Int {
        guard !unsent.isEmpty, inFlight.count < Self.maxInFlight else { return 0 }
        var sent = 0
        for (key, change) in Array(unsent.prefix(Self.maxInFlight - inFlight.count)) {
            let sequence = socket.nextSequence()
            let result = socket.send(kind.request(key, change, sequence: sequence).bytes)
            let error = errno
            if result < 0 && (error == EAGAIN || error == ENOBUFS || error == EINTR) { break }
            unsent[key] = nil
            if result < 0 {
                refused(key, change, reason: error, counters: counters)
                continue
            }
            inFlight[sequence] = (key, change)
            switch change {
            case .set(let value): written[key] = value
            case .remove: written[key] = nil
            }
            sent += 1
        }
        return sent
    }

    private func receiveAcknowledgements(counters: CounterBlock) -> Int {
        guard !inFlight.isEmpty else { return 0 }
        var received = 0
        for _ in 0..<Self.readsPerExchange {
            let n = socket.receive(into: &reply)
            if n < 0 {
                if errno == ENOBUFS {
                    // Acknowledgements were dropped: which requests they answered is lost.
                    counters.add(kind.errorCounter)
                    Log.error("\(kind.logPrefix): acknowledgements of \(inFlight.count) \(kind.requestsNoun) were lost (netlink receive buffer full)")
                    inFlight.removeAll()
                }
                break
            }
            received += 1
            // An acknowledgement echoes its request: a few dozen bytes, far from the buffer's size.
            let messages = reply.withUnsafeBytes { Netlink.messages(in: UnsafeRawBufferPointer(rebasing: $0[..<min(n, $0.count)])) }
            for case .success(let message) in messages {
                guard case .error(let code) = message.payload, let request = inFlight.removeValue(forKey: message.sequence),
                      code != 0 else { continue }
                refused(request.key, request.change, reason: code, counters: counters)
            }
            if inFlight.isEmpty { break }
        }
        return received
    }

    private func refused(_ key: Key, _ change: NetlinkChange<Value>, reason: Int32, counters: CounterBlock) {
        // The kernel does not hold it: a later update to the same value is sent again.
        if case .set(let value) = change, written[key] == value { written[key] = nil }
        guard let what = kind.refusal(key, change, reason: reason) else { return }
        counters.add(kind.errorCounter)
        Log.error("\(kind.logPrefix): the kernel refused to \(what): \(String(cString: strerror(reason)))")
    }
}
