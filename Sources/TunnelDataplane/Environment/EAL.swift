import CDPDK
import Glibc

/// The DPDK environment: initialised once per process, before any other thread starts
/// (threads created later inherit the main lcore's affinity).
public enum EAL {
    /// Initialises EAL with `arguments` (`argv[0]` first). Prints DPDK's own log lines,
    /// then throws an explanation of the usual causes when initialisation fails.
    public static func initialize(arguments: [String]) throws(DataplaneError) {
        // EAL permutes argv and copies argv[0] over a consumed slot, and may keep pointers
        // into it: the strings live as long as the process.
        var cStrings = arguments.map { strdup($0) }
        let rc = cStrings.withUnsafeMutableBufferPointer { argv in
            rte_eal_init(Int32(argv.count), argv.baseAddress)
        }
        guard rc >= 0 else {
            let err = tf_errno()
            let reason = err == 0 ? "" : " (\(String(cString: rte_strerror(err))))"
            throw DataplaneError("EAL initialisation failed\(reason): " + advice(for: err, arguments: arguments))
        }
    }

    private static func advice(for err: Int32, arguments: [String]) -> String {
        switch err {
        case EACCES:
            return "run as root (DPDK needs hugepages and device access)"
        case ENOMEM:
            return "not enough hugepage memory: run 'sudo Hugepages/setup.sh' to reserve and mount hugepages, or add --no-huge to the EAL arguments"
        case EALREADY:
            return "EAL was already initialised in this process"
        case EEXIST, EBUSY:
            return "another DPDK process uses the same --file-prefix: give this one its own"
        case EINVAL:
            return "an EAL argument is invalid (see the lines above; 'tunnelfwd --help' lists the usage)"
        case ENOTSUP:
            return "the EAL does not support this configuration on this machine"
        default:
            if let owner = configLockOwner(filePrefix: filePrefix(in: arguments)) {
                return "another DPDK process (pid \(owner)) runs with --file-prefix \(filePrefix(in: arguments)): give this one its own --file-prefix"
            }
            return "see DPDK's messages above"
        }
    }

    /// The `--file-prefix` EAL was given (DPDK's default is `rte`).
    private static func filePrefix(in arguments: [String]) -> String {
        for (i, argument) in arguments.enumerated() {
            if argument == "--file-prefix", i + 1 < arguments.count { return arguments[i + 1] }
            if argument.hasPrefix("--file-prefix=") { return String(argument.dropFirst("--file-prefix=".count)) }
        }
        return "rte"
    }

    /// The pid holding the lock on a prefix's EAL config file: the primary process that
    /// owns the prefix (DPDK refuses a second one without saying why).
    private static func configLockOwner(filePrefix: String) -> pid_t? {
        let fd = open("/var/run/dpdk/\(filePrefix)/config", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &lock) == 0, lock.l_type != Int16(F_UNLCK) else { return nil }
        return lock.l_pid
    }

    public static var mainLcore: UInt32 { rte_get_main_lcore() }

    /// The worker lcores (every enabled lcore but the main one), in order.
    public static var workerLcores: [UInt32] {
        var lcores: [UInt32] = []
        var next = tf_next_worker_lcore(-1)
        while next < RTE_MAX_LCORE {
            lcores.append(next)
            next = tf_next_worker_lcore(Int32(next))
        }
        return lcores
    }

    public static var tscHz: UInt64 { rte_get_tsc_hz() }

    /// The folder of this process's runtime files (telemetry socket, control socket).
    public static var runtimeDirectory: String { String(cString: rte_eal_get_runtime_dir()) }

    public static func cleanup() {
        rte_eal_cleanup()
    }
}
