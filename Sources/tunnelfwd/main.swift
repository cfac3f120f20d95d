import Glibc
import TunnelCore
import TunnelDataplane

let usage = """
    usage: tunnelfwd <EAL arguments> -- --config FILE

    A DPDK tunnel endpoint: encapsulates frames from access ports in VXLAN, Geneve or
    NVGRE toward remote tunnel endpoints over the uplink port, and decapsulates what
    they send back. Next hops are resolved by ARP ahead of traffic; a packet whose next
    hop has no MAC yet waits (pending.lifetime_ms) instead of being dropped.

    EAL arguments are DPDK's own (see 'dpdk-testpmd --help' or DPDK's EAL guide), e.g.
      -l 0-1                 lcores: the first is the control core, the others are workers
      -a 0000:03:00.0        a PCI NIC bound to vfio-pci
      --vdev net_tap0        a virtual device (net_tap, net_null, net_ring, net_pcap)
      --no-pci --no-huge     no PCI scan; no hugepages (slower)
      --file-prefix NAME     runtime files under /var/run/dpdk/NAME (tunnelctl --file-prefix NAME)

    Application options (after --):
      --config FILE          the YAML configuration (required; see deploy/ and README.md)
      --check                validate the configuration and exit without starting DPDK
      -h, --help             this text

    The telemetry socket is /var/run/dpdk/PREFIX/dpdk_telemetry.v2: use 'tunnelctl' or
    'dpdk-telemetry.py -f PREFIX' (commands /tunnelfwd/stats, /tunnelfwd/tunnels,
    /tunnelfwd/neighbors, /tunnelfwd/pending, /tunnelfwd/ports, /ethdev/stats,N).
    'tunnelctl --file-prefix PREFIX tunnel add|del, forwarding add|del, neighbor
    show|flush, pending' change and inspect it while it runs (owner-only socket
    /var/run/dpdk/PREFIX/tunnelfwd.sock). SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
    SIGUSR1, SIGUSR2 and SIGALRM stop it cleanly; SIGPIPE is ignored.
    """

func fail(_ message: String) -> Never {
    Log.error(message)
    exit(1)
}

let arguments = CommandLine.arguments
let separator = arguments.firstIndex(of: "--")
let ealArguments = Array(arguments[..<(separator ?? arguments.endIndex)])
var appArguments = separator.map { Array(arguments[($0 + 1)...]) } ?? []
if separator == nil && ealArguments.dropFirst().contains(where: { $0 == "-h" || $0 == "--help" }) {
    print(usage)
    exit(0)
}

var configPath: String?
var checkOnly = false
while !appArguments.isEmpty {
    let option = appArguments.removeFirst()
    switch option {
    case "-h", "--help":
        print(usage)
        exit(0)
    case "--config":
        guard !appArguments.isEmpty else { fail("--config needs a file name") }
        configPath = appArguments.removeFirst()
    case "--check":
        checkOnly = true
    default:
        fail("unknown option '\(option)' (tunnelfwd --help lists the options)")
    }
}
guard let configPath else { fail("missing --config FILE after '--' (tunnelfwd --help)") }

// The configuration is read and validated before EAL starts, so a mistake in it is the
// last line printed and no DPDK resource is touched.
let configuration: Configuration
do {
    configuration = try Configuration(contentsOfFile: configPath)
} catch {
    fail("\(configPath): \(error)")
}
if checkOnly {
    Log.info("\(configPath): configuration is valid")
    exit(0)
}

do {
    try Forwarder.run(configuration: configuration, ealArguments: ealArguments)
} catch {
    fail(error.description)
}
