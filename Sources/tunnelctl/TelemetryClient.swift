import Foundation
import Glibc
import TunnelCore

/// A client of DPDK's telemetry socket (`/var/run/dpdk/PREFIX/dpdk_telemetry.v2`), the
/// same protocol as dpdk-telemetry.py: a SEQPACKET socket that greets with a JSON
/// object, then answers each command with one JSON object keyed by the command.
struct TelemetryClient {
    let path: String
    private let fd: Int32

    static func socketPath(filePrefix: String) -> String {
        let runtime = getuid() == 0 ? "/var/run/dpdk" : (ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? "/tmp") + "/dpdk"
        return "\(runtime)/\(filePrefix)/dpdk_telemetry.v2"
    }

    init(filePrefix: String) throws {
        path = Self.socketPath(filePrefix: filePrefix)
        fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(String(cString: strerror(errno)))") }
        guard let address = UnixSocketAddress(path: path) else { throw ClientError("socket path too long: \(path)") }
        let rc = address.withSocketAddress { connect(fd, $0, $1) }
        guard rc == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ClientError("cannot connect to \(path) (\(why)): is tunnelfwd running with --file-prefix \(filePrefix)?")
        }
        _ = try receive()
    }

    /// Sends `command` (e.g. `/tunnelfwd/stats` or `/ethdev/stats,0`) and returns the
    /// value of the reply.
    func query(_ command: String) throws -> Any {
        guard send(fd, command, command.utf8.count, 0) >= 0 else {
            throw ClientError("send: \(String(cString: strerror(errno)))")
        }
        let reply = try receive()
        guard let object = reply as? [String: Any], let value = object[command.split(separator: ",").first.map(String.init) ?? command] else {
            throw ClientError("unexpected reply to \(command)")
        }
        if value is NSNull { throw ClientError("\(command) is not a command of this forwarder") }
        return value
    }

    private func receive() throws -> Any {
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { throw ClientError("the forwarder closed the telemetry connection") }
        return try JSONSerialization.jsonObject(with: Data(buffer[..<n]))
    }

    func close() { Glibc.close(fd) }
}

struct ClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
