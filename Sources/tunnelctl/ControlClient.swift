import Foundation
import Glibc
import TunnelCore

/// Sends one request to the forwarder's control socket (`tunnelfwd.sock` beside the
/// telemetry socket) and returns its reply.
enum ControlClient {
    static func socketPath(filePrefix: String) -> String {
        (TelemetryClient.socketPath(filePrefix: filePrefix) as NSString).deletingLastPathComponent + "/tunnelfwd.sock"
    }

    static func send(_ request: ControlRequest, filePrefix: String) throws -> ControlReply {
        let path = socketPath(filePrefix: filePrefix)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let address = UnixSocketAddress(path: path) else { throw ClientError("socket path too long: \(path)") }
        let connected = address.withSocketAddress { connect(fd, $0, $1) }
        guard connected == 0 else {
            throw ClientError("cannot connect to \(path) (\(String(cString: strerror(errno)))): is tunnelfwd running with --file-prefix \(filePrefix)?")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let message = try JSONEncoder().encode(request) + Data("\n".utf8)
        let sent = message.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == message.count else { throw ClientError("send: \(String(cString: strerror(errno)))") }
        var reply = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            reply.append(contentsOf: chunk[..<n])
        }
        guard !reply.isEmpty else { throw ClientError("the forwarder closed the connection without a reply") }
        return try JSONDecoder().decode(ControlReply.self, from: reply)
    }
}
