import CDPDK
import Foundation
import Glibc
import TunnelCore

/// The runtime-control socket, `tunnelfwd.sock` in the EAL runtime directory, owner-only.
///
/// Served from the control core's loop, which also answers ARP, so nothing here may wait:
/// every socket call is non-blocking, one `epoll_wait` without timeout per loop iteration
/// tells which sockets are ready, and an iteration does bounded work (a few accepts, one
/// read or write per ready connection, at most one request performed). A connection
/// carries one request, a JSON line, and gets one JSON line back. A client that stalls,
/// sends too much or does not read its reply loses its connection; nobody else notices.
final class ControlServer {
    /// A performed request: its reply and, for a change, the epoch of the snapshot that
    /// carries it. The reply goes out once every worker has passed that epoch, so that it
    /// means "in force".
    struct Answer {
        var reply: ControlReply
        var inForceAt: UInt64? = nil
    }

    /// Open connections at most. At the limit a new connection displaces the one that has
    /// waited longest for a complete request (a stalled client must not lock the operator
    /// out); when every open one has a request in progress the new one is refused.
    static let maxConnections = 64
    /// A request line (without its newline) may be this long.
    static let maxRequestBytes = 1 << 20
    /// A connection must have sent its whole request this long after it was accepted.
    static let requestTimeoutMs: UInt64 = 5000
    /// A client must have taken its reply this long after it was ready.
    static let replyTimeoutMs: UInt64 = 5000
    /// A reply waits at most this long for the workers to pass its snapshot's epoch (one
    /// may be descheduled); it is sent anyway then, as the change is published.
    static let inForceTimeoutMs: UInt64 = 1000
    private static let acceptsPerIteration = 16
    private static let eventsPerIteration = 32
    private static let readChunk = 16 << 10
    private static let sweepPeriodMs: UInt64 = 100

    let path: String
    private let listener: Int32
    private let epoll: Int32
    private var connections: [Int32: Connection] = [:]
    /// Connections with a complete request, in arrival order; one is performed per call.
    private var queued: [Int32] = []
    /// Connections whose reply waits for the workers.
    private var awaiting: [Int32] = []
    private var lastSweepMs: UInt64 = 0
    private let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: eventsPerIteration)
    private let chunk = UnsafeMutableRawPointer.allocate(byteCount: readChunk, alignment: 16)

    private final class Connection {
        enum Phase: Equatable {
            case reading
            case queued
            case awaitingWorkers(epoch: UInt64, sinceMs: UInt64)
            case writing(deadlineMs: UInt64)
        }

        let fd: Int32
        let acceptedMs: UInt64
        var phase = Phase.reading
        var input = Data()
        var output = Data()
        var written = 0

        init(fd: Int32, acceptedMs: UInt64) {
            self.fd = fd
            self.acceptedMs = acceptedMs
        }
    }

    init(directory: String) throws(DataplaneError) {
        path = directory + "/tunnelfwd.sock"
        unlink(path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw DataplaneError("control socket: \(String(cString: strerror(errno)))") }
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = listener
        guard epoll >= 0, epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw DataplaneError("control socket: epoll: \(reason)")
        }
        self.listener = listener
        self.epoll = epoll
        guard let address = UnixSocketAddress(path: path) else {
            throw DataplaneError("control socket path too long: \(path) (use a shorter --file-prefix)")
        }
        // Owner-only from the first moment: no window in which others could connect.
        let oldMask = umask(0o077)
        let bound = address.withSocketAddress { bind(listener, $0, $1) }
        umask(oldMask)
        guard bound == 0, listen(listener, Int32(Self.maxConnections)) == 0 else {
            throw DataplaneError("control socket \(path): \(String(cString: strerror(errno)))")
        }
        chmod(path, 0o600)
    }

    deinit {
        for fd in connections.keys { close(fd) }
        close(epoll)
        close(listener)
        unlink(path)
        events.deallocate()
        chunk.deallocate()
    }

    /// One loop iteration's turn: accepts, reads and writes what is ready, performs at
    /// most one complete request with `handle`, releases the replies whose change is in
    /// force, and closes connections past their time. Returns how much it did (0: idle).
    func serve(nowMs now: UInt64, workers: QuiescentState, counters: CounterBlock,
               _ handle: (ControlRequest) -> Answer) -> Int {
        let reported = max(Int(epoll_wait(epoll, events, Int32(Self.eventsPerIteration), 0)), 0)
        for i in 0..<reported {
            let fd = events[i].data.fd
            if fd == listener {
                accept(nowMs: now, counters: counters)
            } else if let connection = connections[fd] {
                // An fd closed and reused within this batch gets a stale event: harmless,
                // every handler only tries a non-blocking call.
                ready(connection, counters: counters)
            }
        }
        var work = reported
        if !queued.isEmpty, let connection = connections[queued.removeFirst()], connection.phase == .queued {
            perform(connection, nowMs: now, workers: workers, counters: counters, handle)
            work += 1
        }
        releaseAnswers(nowMs: now, workers: workers)
        if now &- lastSweepMs >= Self.sweepPeriodMs {
            sweep(nowMs: now, counters: counters)
            lastSweepMs = now
        }
        counters.set(.controlConnectionsNow, connections.count)
        return work
    }

    // MARK: connections

    private func accept(nowMs now: UInt64, counters: CounterBlock) {
        for _ in 0..<Self.acceptsPerIteration {
            // Another error than EAGAIN (EMFILE, ECONNABORTED) is retried next iteration.
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            if connections.count >= Self.maxConnections && !displaceStalest(counters: counters) {
                counters.add(.controlRejected)
                sendError(fd, "too many control connections (\(Self.maxConnections) with requests in progress); try again")
                close(fd)
                continue
            }
            guard watch(fd, for: EPOLLIN.rawValue, adding: true) else {
                close(fd)
                continue
            }
            let connection = Connection(fd: fd, acceptedMs: now)
            connections[fd] = connection
            // tunnelctl sends its request right after connecting: it is usually there.
            receive(connection, counters: counters)
        }
    }

    /// Closes the connection that has waited longest for a complete request; false when
    /// every open connection has one.
    private func displaceStalest(counters: CounterBlock) -> Bool {
        guard let stalest = connections.values.filter({ $0.phase == .reading }).min(by: { $0.acceptedMs < $1.acceptedMs })
        else { return false }
        reject(stalest, "closed: \(Self.maxConnections) control connections were open and this one had sent no complete request",
               counters: counters)
        return true
    }

    private func ready(_ connection: Connection, counters: CounterBlock) {
        switch connection.phase {
        case .reading:
            receive(connection, counters: counters)
        case .queued:
            // Only a hang-up or an error is reported in this phase. The request is complete
            // and is performed all the same; its reply then finds the client gone.
            epoll_ctl(epoll, EPOLL_CTL_DEL, connection.fd, nil)
        case .awaitingWorkers:
            finish(connection)
        case .writing:
            write(connection)
        }
    }

    /// Reads what has arrived; the request ends at a newline, or where the client ends its
    /// stream.
    private func receive(_ connection: Connection, counters: CounterBlock) {
        let n = recv(connection.fd, chunk, Self.readChunk, Int32(MSG_DONTWAIT))
        if n < 0 {
            if errno != EAGAIN && errno != EINTR { finish(connection) }
            return
        }
        if n == 0 {
            if connection.input.isEmpty { finish(connection) } else { complete(connection) }
            return
        }
        let newline = memchr(chunk, Int32(UInt8(ascii: "\n")), n)
        let length = newline.map { chunk.distance(to: $0) } ?? n
        guard connection.input.count + length <= Self.maxRequestBytes else {
            reject(connection, "request longer than \(Self.maxRequestBytes) bytes", counters: counters)
            return
        }
        connection.input.append(chunk.assumingMemoryBound(to: UInt8.self), count: length)
        if newline != nil { complete(connection) }
    }

    private func complete(_ connection: Connection) {
        connection.phase = .queued
        // Bytes after the request are not read: nothing more is reported but a hang-up.
        _ = watch(connection.fd, for: 0, adding: false)
        queued.append(connection.fd)
    }

    private func perform(_ connection: Connection, nowMs now: UInt64, workers: QuiescentState, counters: CounterBlock,
                         _ handle: (ControlRequest) -> Answer) {
        let answer: Answer
        do {
            answer = handle(try JSONDecoder().decode(ControlRequest.self, from: connection.input))
        } catch {
            answer = Answer(reply: .failure("malformed request: \(error)"))
        }
        counters.add(.controlRequests)
        connection.input = Data()
        guard let line = Self.line(answer.reply) else {
            finish(connection)
            return
        }
        connection.output = line
        if let epoch = answer.inForceAt, !workers.allReaders(havePassed: epoch) {
            connection.phase = .awaitingWorkers(epoch: epoch, sinceMs: now)
            awaiting.append(connection.fd)
        } else {
            startWriting(connection, nowMs: now)
        }
    }

    private func releaseAnswers(nowMs now: UInt64, workers: QuiescentState) {
        awaiting.removeAll { fd in
            guard let connection = connections[fd], case .awaitingWorkers(let epoch, let since) = connection.phase else {
                return true
            }
            guard workers.allReaders(havePassed: epoch) || now &- since >= Self.inForceTimeoutMs else { return false }
            startWriting(connection, nowMs: now)
            return true
        }
    }

    private func startWriting(_ connection: Connection, nowMs now: UInt64) {
        connection.phase = .writing(deadlineMs: now + Self.replyTimeoutMs)
        write(connection)
    }

    /// Writes as much of the reply as the socket takes; closes the connection once it is
    /// all out (one request per connection) or the client is gone.
    private func write(_ connection: Connection) {
        while connection.written < connection.output.count {
            let n = connection.output.withUnsafeBytes { bytes in
                send(connection.fd, bytes.baseAddress! + connection.written, bytes.count - connection.written,
                     Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n > 0 {
                connection.written += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                if !watch(connection.fd, for: EPOLLOUT.rawValue, adding: false) { finish(connection) }
                return
            } else {
                break
            }
        }
        finish(connection)
    }

    /// Closes connections whose request or reply is overdue.
    private func sweep(nowMs now: UInt64, counters: CounterBlock) {
        for connection in Array(connections.values) {
            switch connection.phase {
            case .reading where now &- connection.acceptedMs >= Self.requestTimeoutMs:
                reject(connection, "no complete request within \(Self.requestTimeoutMs) ms", counters: counters)
            case .writing(let deadline) where now >= deadline:
                counters.add(.controlRejected)
                finish(connection)
            default:
                break
            }
        }
    }

    /// Closes a connection for breaking a limit, telling the client why in one line if
    /// its socket takes it.
    private func reject(_ connection: Connection, _ message: String, counters: CounterBlock) {
        counters.add(.controlRejected)
        sendError(connection.fd, message)
        finish(connection)
    }

    private func sendError(_ fd: Int32, _ message: String) {
        guard let line = Self.line(.failure(message)) else { return }
        _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    }

    /// A reply as it goes on the wire: its JSON and a newline.
    private static func line(_ reply: ControlReply) -> Data? {
        (try? JSONEncoder().encode(reply)).map { $0 + Data("\n".utf8) }
    }

    private func finish(_ connection: Connection) {
        close(connection.fd)
        connections[connection.fd] = nil
    }

    private func watch(_ fd: Int32, for mask: UInt32, adding: Bool) -> Bool {
        var event = epoll_event()
        event.events = mask
        event.data.fd = fd
        return epoll_ctl(epoll, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event) == 0
    }
}
