import Glibc

/// A `sockaddr_un` for a filesystem path: the control and telemetry sockets.
public struct UnixSocketAddress {
    private var storage = sockaddr_un()

    /// `nil` when the path does not fit `sun_path`.
    public init?(path: String) {
        storage.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: storage.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
    }

    /// Calls `body` with the address as `bind`, `connect` and friends take it.
    public func withSocketAddress<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
