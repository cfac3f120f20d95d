// Glibc's socket constants are found through CDPDK once a file that imports both looks
// them up (ControlServer): a Swift importer quirk.
import CDPDK
import Glibc
import TunnelCore

/// A non-blocking `NETLINK_ROUTE` socket of this process's network namespace.
final class NetlinkSocket {
    // <linux/netlink.h>
    static let NLM_F_REQUEST: UInt16 = 0x1
    static let NLM_F_ACK: UInt16 = 0x4
    static let NLM_F_DUMP: UInt16 = 0x300
    static let NLM_F_REPLACE: UInt16 = 0x100
    static let NLM_F_CREATE: UInt16 = 0x400
    /// Set on the messages of a dump that the kernel's tables changed under.
    static let NLM_F_DUMP_INTR: UInt16 = 0x10
    private static let SOL_NETLINK: Int32 = 270
    private static let NETLINK_ADD_MEMBERSHIP: Int32 = 1

    let fd: Int32
    private var sequence: UInt32 = 0

    /// `purpose` starts the error line (`evpn`, `kernel_sync`).
    init(purpose: String) throws(DataplaneError) {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw DataplaneError("\(purpose): cannot open a netlink socket: \(String(cString: strerror(errno)))") }
        // Bound explicitly: an unbound socket has port id 0, the kernel's own, and the
        // kernel's notifications skip the port id they come from.
        var local = NetlinkAddress()
        let bound = withUnsafePointer(to: &local) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<NetlinkAddress>.size)) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DataplaneError("\(purpose): cannot bind a netlink socket: \(reason)")
        }
    }

    deinit { close(fd) }

    /// The sequence number of the next request.
    func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Asks for a receive buffer of `bytes`: beyond `net.core.rmem_max` when the process
    /// may (CAP_NET_ADMIN), otherwise as much of it as that allows.
    func setReceiveBuffer(_ bytes: Int32) {
        var size = bytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Subscribes to the notifications of `group` (`RTNLGRP_*`); returns errno on failure.
    func join(group: Int32) -> Int32? {
        var value = group
        return setsockopt(fd, Self.SOL_NETLINK, Self.NETLINK_ADD_MEMBERSHIP, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
            ? nil : errno
    }

    /// Sends one message to the kernel; returns what `sendto` returned (errno tells a
    /// failure).
    func send(_ message: [UInt8]) -> Int {
        var kernel = NetlinkAddress()
        return withUnsafePointer(to: &kernel) { k in
            k.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<NetlinkAddress>.size))
            }
        }
    }

    /// Reads one datagram if one is there: its full length (more than `buffer.count` when
    /// it did not fit), or -1 with errno (EAGAIN: nothing there; ENOBUFS: the kernel
    /// dropped messages for want of buffer space).
    func receive(into buffer: inout [UInt8]) -> Int {
        recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
    }

    /// Waits up to `ms` milliseconds for something to read.
    func wait(ms: Int32) {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        poll(&ready, 1, ms)
    }

    /// Sends a dump request and reads its whole answer, waiting at most `timeoutMs`: for
    /// start-up, before the socket joins any group. `what` names the dump in errors.
    func dump(_ request: NetlinkRequest, what: String, purpose: String, timeoutMs: UInt64) throws(DataplaneError) -> [NetlinkMessage] {
        let sequence = request.sequence
        guard send(request.bytes) >= 0 else {
            throw DataplaneError("\(purpose): cannot ask the kernel for its \(what): \(String(cString: strerror(errno)))")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var answer: [NetlinkMessage] = []
        let deadline = Clock.milliseconds + timeoutMs
        while true {
            let n = receive(into: &buffer)
            if n < 0 {
                guard errno == EAGAIN || errno == EINTR else {
                    throw DataplaneError("\(purpose): reading the kernel's \(what) failed: \(String(cString: strerror(errno)))")
                }
                let now = Clock.milliseconds
                guard now < deadline else {
                    throw DataplaneError("\(purpose): the kernel did not send its \(what) within \(timeoutMs) ms")
                }
                wait(ms: Int32(deadline - now))
                continue
            }
            guard n <= buffer.count else {
                throw DataplaneError("\(purpose): a message of the kernel's \(what) is larger than \(buffer.count) bytes")
            }
            for result in buffer.withUnsafeBytes({ Netlink.messages(in: UnsafeRawBufferPointer(rebasing: $0[..<n])) }) {
                let message: NetlinkMessage
                switch result {
                case .success(let m): message = m
                case .failure(let error): throw DataplaneError("\(purpose): the kernel's \(what) holds a malformed message (\(error))")
                }
                guard message.sequence == sequence else { continue }
                switch message.payload {
                case .done: return answer
                case .error(let code):
                    throw DataplaneError("\(purpose): the kernel refused its \(what): \(String(cString: strerror(code)))")
                default: answer.append(message)
                }
            }
        }
    }
}

/// One request to the kernel, built field by field in host order: `struct nlmsghdr`,
/// then the body, then route attributes.
struct NetlinkRequest {
    private(set) var bytes: [UInt8] = []
    let sequence: UInt32

    init(type: UInt16, flags: UInt16, sequence: UInt32) {
        self.sequence = sequence
        // The length is kept up to date by every append.
        put(UInt32(0)); put(type); put(NetlinkSocket.NLM_F_REQUEST | flags); put(sequence); put(UInt32(0))
    }

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes += $0 }
        setLength()
    }

    mutating func attribute(_ kind: UInt16, _ payload: [UInt8]) {
        put(UInt16(4 + payload.count))
        put(kind)
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
        setLength()
    }

    private mutating func setLength() {
        withUnsafeBytes(of: UInt32(bytes.count)) { bytes.replaceSubrange(0..<4, with: $0) }
    }
}

/// `struct sockaddr_nl` (<linux/netlink.h>, which Glibc's module does not bring in); pid 0
/// addresses the kernel, or asks `bind` to choose one.
private struct NetlinkAddress {
    var family = UInt16(AF_NETLINK)
    var padding: UInt16 = 0
    var pid: UInt32 = 0
    var groups: UInt32 = 0
}
