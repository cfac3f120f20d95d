import Foundation
import Glibc
import TunnelCore

/// The runtime-control socket, `tunnelfwd.sock` in the EAL runtime directory, owner-only.
/// Served from the control core's loop without blocking it: one request per connection,
/// read and answered at once (tunnelctl sends it whole, then waits).
final class ControlServer {
    let path: String
    private let fd: Int32

    init(directory: String) throws(DataplaneError) {
        path = directory + "/tunnelfwd.sock"
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DataplaneError("control socket: \(String(cString: strerror(errno)))") }
        guard let address = UnixSocketAddress(path: path) else {
            throw DataplaneError("control socket path too long: \(path) (use a shorter --file-prefix)")
        }
        // Owner-only from the first moment: no window in which others could connect.
        let oldMask = umask(0o077)
        let bound = address.withSocketAddress { bind(fd, $0, $1) }
        umask(oldMask)
        guard bound == 0, listen(fd, 16) == 0 else {
            throw DataplaneError("control socket \(path): \(String(cString: strerror(errno)))")
        }
        chmod(path, 0o600)
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Answers every waiting connection with `handle`; returns how many there were.
    func serve(_ handle: (ControlRequest) -> ControlReply) -> Int {
        var served = 0
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return served }
            served += 1
            defer { close(client) }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let reply: ControlReply
            if let data = readRequest(client) {
                do {
                    reply = handle(try JSONDecoder().decode(ControlRequest.self, from: data))
                } catch {
                    reply = .failure("malformed request: \(error)")
                }
            } else {
                reply = .failure("no request received")
            }
            guard let encoded = try? JSONEncoder().encode(reply) else { continue }
            writeAll(client, encoded + Data("\n".utf8))
        }
    }

    /// Reads up to the newline that ends a request.
    private func readRequest(_ client: Int32) -> Data? {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while data.count < 1 << 20 {
            let n = recv(client, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data.append(contentsOf: chunk[..<n])
            if chunk[..<n].contains(UInt8(ascii: "\n")) { break }
        }
        return data.isEmpty ? nil : data
    }

    private func writeAll(_ client: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                offset += n
            }
        }
    }
}
