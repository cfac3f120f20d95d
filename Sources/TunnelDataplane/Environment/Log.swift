import Glibc

/// Line-at-a-time output straight to the file descriptors, so messages interleave
/// correctly with DPDK's own log lines and reach a pipe or journal at once.
public enum Log {
    public static func info(_ message: String) { write(line: "tunnelfwd: " + message, to: 1) }
    public static func error(_ message: String) { write(line: "tunnelfwd: " + message, to: 2) }

    private static func write(line: String, to fd: Int32) {
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}
