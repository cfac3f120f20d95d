#!/usr/bin/python3
"""Throughput benchmark: tunnelfwd's encapsulation hit path and decapsulation against
dpdk-testpmd, one worker core, same virtual devices, same pcap source, same run; and the
miss path (buffer, ARP, flush) to 1 000 cold next hops through a tap. See bench/README.md.

Called by bench/run.sh (which builds first); runnable alone:

    /usr/bin/python3 bench/tools/throughput.py --tunnelfwd .build/release/tunnelfwd
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_config  # noqa: E402
import make_pcaps  # noqa: E402
from telemetry import RUNTIME_DIR, Telemetry, port_by_name  # noqa: E402

SIZES = (64, 512)
TYPES = ("vxlan", "geneve", "nvgre")
SCALES = (1, 10_000)           # tunnels (= inner MACs = forwarding entries = neighbors)
PCAP_FRAMES = 10_000           # every pcap has this many frames, so the source costs the same
# Launch k of a row has LAYOUT_STEP * k more mbufs in its pool (tunnelfwd and testpmd
# alike), which moves the pool's objects by 21 cache lines modulo 4 KiB (an object is
# 37 lines): each launch measures another memory layout (see "Memory layout" in
# bench/README.md).
LAYOUT_STEP = 49
UPLINK_DEV = "net_null0"
ACCESS_DEV = "net_pcap0"
# Decapsulation rows: the uplink replays tunnel packets, the access port is the sink.
DECAP_UPLINK_DEV = "net_pcap0"
DECAP_ACCESS_DEV = "net_null0"
DECAP_TYPES = ("vxlan",)
DECAP_SIZE = 64                # inner frame
LOCAL = "10.0.0.1"             # make_config.UPLINK's address: the local tunnel endpoint
REMOTE = "10.0.0.2"            # make_config.remote(0)
# Miss path: a finite pcap to this many cold next hops.
MISS_TUNNELS = 1000
MISS_FRAMES = 100_000
MISS_SIZE = 64
MISS_TAP = "tfbu0"             # names inside the row's own namespaces
MISS_VETH = "u0"


# ---------------------------------------------------------------------------------------
# What is measured

class Row:
    """One line of the table. `key` identifies it across runs."""

    def __init__(self, key, label, size, tunnels, kind, group=None, tunnels_text=None):
        self.key = key
        self.label = label       # e.g. "tunnelfwd vxlan" or "testpmd io"
        self.size = size
        self.tunnels = tunnels   # None for testpmd
        # "tunnelfwd", "testpmd" (encapsulation, access -> uplink), "tunnelfwd-decap",
        # "testpmd-decap" (uplink -> access) or "miss"
        self.kind = kind
        # Rows of one group share a testpmd io baseline (the "vs testpmd io" column).
        self.group = group or ("encap", size)
        self.tunnels_text = tunnels_text
        self.samples = []        # dicts: mpps, busy_cpp (self-measured), ...
        self.problems = []


def planned_rows(sizes, types, scales, baselines, decap_types=(), miss_frames=0):
    rows = []
    for size in sizes:
        for mode in baselines:
            rows.append(Row(("testpmd", mode, size), "testpmd " + mode, size, None, "testpmd"))
        for scale in scales:
            for t in types:
                rows.append(Row(("tunnelfwd", t, size, scale), "tunnelfwd " + t, size, scale, "tunnelfwd"))
    for t in decap_types:
        group = ("decap", t, DECAP_SIZE)
        rows.append(Row(("testpmd-decap", "io", t, DECAP_SIZE), "testpmd io, %s pcap on the uplink" % t,
                        DECAP_SIZE, None, "testpmd-decap", group))
        rows.append(Row(("tunnelfwd-decap", t, DECAP_SIZE), "tunnelfwd %s decapsulation" % t,
                        DECAP_SIZE, 1, "tunnelfwd-decap", group))
    if miss_frames:
        rows.append(Row(("miss", MISS_SIZE, MISS_TUNNELS), "tunnelfwd miss path (buffer, ARP, flush)",
                        MISS_SIZE, MISS_TUNNELS, "miss", ("miss",), "1 000 cold"))
    return rows


# ---------------------------------------------------------------------------------------
# Processes

class Launch:
    """One DPDK process on the benchmark's virtual devices, with its own --file-prefix
    (hugepage files unlinked, runtime directory removed afterwards)."""

    counter = 0
    live = set()     # started and not yet stopped: main() stops them if it is interrupted

    def __init__(self, ctx, argv_tail, pcap, name, stop_by_signal=True, vdevs=None, netns=None, memory=None):
        """`vdevs` replaces the encapsulation rows' devices (access net_pcap0 replaying
        `pcap`, uplink net_null0); `netns` runs the process in that network namespace."""
        Launch.counter += 1
        self.stop_by_signal = stop_by_signal
        self.ctx = ctx
        self.prefix = "tfbench%d-%d-%s" % (os.getpid(), Launch.counter, name)
        self.log_path = os.path.join(ctx.workdir, self.prefix + ".log")
        if vdevs is None:
            vdevs = ["%s,rx_pcap=%s,infinite_rx=1" % (ACCESS_DEV, pcap), "%s,no-rx=1" % UPLINK_DEV]
        self.eal = [
            "-l", ctx.args.lcores, "--no-pci", "-m", str(memory or ctx.args.memory), "--huge-unlink",
            "--file-prefix", self.prefix,
        ]
        for vdev in vdevs:
            self.eal += ["--vdev", vdev]
        self.wrapper = ["ip", "netns", "exec", netns] if netns else []
        self.argv_tail = argv_tail
        self.proc = None
        self.log = None

    def start(self, program):
        self.log = open(self.log_path, "w")
        argv = self.wrapper + [program] + self.eal + ["--"] + self.argv_tail
        self.log.write("# " + " ".join(argv) + "\n")
        self.log.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        Launch.live.add(self)

    def telemetry(self):
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("exited with status %d before its telemetry socket came up (log: %s)\n%s"
                                   % (self.proc.returncode, self.log_path, self.tail()))
            try:
                return Telemetry(self.prefix, timeout=0.5)
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("no telemetry socket after 60 s (log: %s)" % self.log_path)

    def stop(self):
        """SIGTERM (tunnelfwd) / stdin EOF (testpmd); SIGKILL after 20 s. Returns the log."""
        Launch.live.discard(self)
        if self.proc and self.proc.poll() is None:
            # testpmd without --stats-period quits (printing its statistics) at stdin EOF;
            # tunnelfwd ignores stdin and stops on SIGINT or SIGTERM. SIGTERM is the
            # fallback for both: a shell without job control starts background jobs with
            # SIGINT ignored, and a process inherits that until it sets its own handler,
            # so a SIGINT during tunnelfwd's start-up would be lost.
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(0 if self.stop_by_signal else 10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.log:
            self.log.close()
        shutil.rmtree(os.path.join(RUNTIME_DIR, self.prefix), ignore_errors=True)
        with open(self.log_path) as f:
            return f.read()

    def tail(self, n=15):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class OtherLoad:
    """CPU time used by every process but ours during a window: another busy-polling DPDK
    process on the worker's core halves the figures, and this tells such windows apart."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, exclude):
        self.exclude = set(exclude) | {os.getpid()}
        self.before = self.snapshot()

    def snapshot(self):
        ticks = {}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.exclude:
                continue
            try:
                with open("/proc/%s/stat" % name) as f:
                    text = f.read()
            except OSError:
                continue
            comm = text[text.find("(") + 1:text.rfind(")")]
            fields = text[text.rfind(")") + 2:].split()
            ticks[int(name)] = (int(fields[11]) + int(fields[12]), comm)   # utime + stime
        return ticks

    def finish(self, seconds):
        """Cores' worth of CPU the other processes used, and the busiest of them."""
        after = self.snapshot()
        used = []
        for pid, (t, comm) in after.items():
            t0 = self.before.get(pid, (0, comm))[0]
            if t > t0:
                used.append(((t - t0) / self.TICKS / seconds, "%s[%d]" % (comm, pid)))
        used.sort(reverse=True)
        return sum(u for u, _ in used), [n for u, n in used[:3] if u >= 0.05]


def wait_for_traffic(read_counter, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("exited with status %d" % proc.returncode)
        value = read_counter()
        if value:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("no packets after %.0f s" % timeout)
        time.sleep(0.05)


def wait_for_port(t, name, timeout=30.0):
    """The port id of `name`: ports come up after the telemetry socket, so retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return port_by_name(t, name)
        except (LookupError, TypeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Window:
    """Two readings of a launch's counters, `seconds` apart after `warmup`, and what
    other processes used of the machine meanwhile."""

    def __init__(self, ctx, launch, read, ready):
        """`ready(reading)` says traffic is flowing; `read()` takes a reading."""
        wait_for_traffic(lambda: ready(read()), launch.proc)
        time.sleep(ctx.args.warmup)
        self.first, start = read(), time.monotonic()
        others = OtherLoad([launch.proc.pid])
        time.sleep(ctx.args.seconds)
        self.last, end = read(), time.monotonic()
        self.elapsed = end - start
        self.other_cores, self.other_processes = others.finish(self.elapsed)


def measure_tunnelfwd(ctx, row):
    pcap = ctx.pcap(row.size, row.tunnels)
    config = os.path.join(ctx.workdir, "tunnelfwd-%s-%d-layout%d.yaml" % (row.key[1], row.tunnels, ctx.layout))
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write(make_config.render(row.key[1], row.tunnels, row.tunnels, UPLINK_DEV, ACCESS_DEV,
                                       extra_mbufs=8192 + PCAP_FRAMES + ctx.layout_mbufs))
    launch = Launch(ctx, ["--config", config], pcap, "tf")
    launch.start(ctx.args.tunnelfwd)
    try:
        t = launch.telemetry()
        window = Window(ctx, launch, lambda: t.query("/tunnelfwd/stats"), lambda s: (s or {}).get("tx"))
        t.close()
    except Exception as e:  # noqa: BLE001
        launch.stop()
        raise RuntimeError("tunnelfwd %s: %s\n%s" % (row.label, e, launch.tail()))
    log = launch.stop()
    a, b, elapsed = window.first, window.last, window.elapsed
    worker = str(ctx.worker_lcore)
    wa, wb = a["per_core"][worker], b["per_core"][worker]
    tx = b["tx"] - a["tx"]
    encapsulated = b["encapsulated"] - a["encapsulated"]
    dropped = b["dropped"]["total"] - a["dropped"]["total"]
    busy_packets = wb["busy_packets"] - wa["busy_packets"]
    sample = {
        "mpps": tx / elapsed / 1e6,
        "busy_cpp": (wb["busy_cycles"] - wa["busy_cycles"]) / busy_packets if busy_packets else None,
        "elapsed": elapsed,
        "other_cores": window.other_cores,
        "other_processes": window.other_processes,
    }
    # The counters are read one after the other while packets move, by a telemetry
    # thread that shares its CPU with the control core: allow what 200 µs at this rate
    # can move (a few bursts; 1 536 packets were seen once at 35 Mpps).
    if dropped or abs(encapsulated - tx) > max(256, int(tx / elapsed * 200e-6)):
        row.problems.append("%d dropped, %d encapsulated vs %d sent in one window" % (dropped, encapsulated, tx))
    m = re.search(r"(\d+) mbuf\(s\) not returned", log)
    if m and int(m.group(1)):
        row.problems.append("%s mbufs not returned at shutdown" % m.group(1))
    return sample


def measure_testpmd(ctx, row):
    """testpmd on the encapsulation rows' devices (net_pcap0 -> net_null0), or on the
    decapsulation rows' (row.kind "testpmd-decap": tunnel pcap on net_pcap0 -> net_null0)."""
    mode = row.key[1]
    if row.kind == "testpmd-decap":
        pcap = ctx.tunnel_pcap(row.key[2], row.size)
        vdevs, sink, held = decap_vdevs(pcap, ctx.arp_pcap()), DECAP_ACCESS_DEV, 2 * PCAP_FRAMES
    else:
        pcap = ctx.pcap(row.size, 1)
        vdevs, sink, held = None, UPLINK_DEV, PCAP_FRAMES
    launch = Launch(ctx, [
        "--forward-mode=" + mode, "--record-core-cycles", "--no-mlockall",
        "--total-num-mbufs=%d" % (32768 + held + ctx.layout_mbufs), "--rxd=1024", "--txd=1024", "--burst=32",
    ], pcap, "tp", stop_by_signal=False, vdevs=vdevs)
    launch.start(ctx.args.testpmd)
    try:
        t = launch.telemetry()
        port = wait_for_port(t, sink)
        window = Window(ctx, launch, lambda: (t.query("/ethdev/stats,%d" % port) or {}).get("opackets"), bool)
        t.close()
    except Exception as e:  # noqa: BLE001
        launch.stop()
        raise RuntimeError("testpmd %s: %s\n%s" % (mode, e, launch.tail()))
    log = launch.stop()
    sample = {"mpps": (window.last - window.first) / window.elapsed / 1e6, "busy_cpp": None,
              "elapsed": window.elapsed, "other_cores": window.other_cores, "other_processes": window.other_processes}
    # --record-core-cycles: busy cycles of the forwarding lcore over the whole run.
    m = re.search(r"CPU cycles/packet=([\d.]+) .* at (\d+) MHz Clock", log)
    if m:
        sample["busy_cpp"] = float(m.group(1))
        ctx.tsc_hz = int(m.group(2)) * 1_000_000
    else:
        row.problems.append("testpmd printed no cycles/packet")
    return sample


# ---------------------------------------------------------------------------------------
# Decapsulation: the uplink replays tunnel packets for the local endpoint, the access
# port is the sink.

def decap_vdevs(pcap, control_pcap):
    """The same device arguments for tunnelfwd and testpmd. net_pcap makes one RX queue
    per rx_pcap= (and, without tx_pcap/tx_iface, one dropping TX queue per RX queue);
    tunnelfwd wants workers + 1 queue pairs on the uplink, the last for the control core.
    That queue replays ARP requests for an address that is not ours, which the control
    core reads and ignores: tunnel packets there would be handed to the worker through
    a ring and measured with it, and an empty pcap is not an option (with infinite_rx,
    DPDK 22.11's eth_pcap_rx_infinite allocates a burst of mbufs and returns without
    freeing them when its ring is empty). testpmd (--rxq=1) reads queue 0 only."""
    return ["%s,rx_pcap=%s,rx_pcap=%s,infinite_rx=1" % (DECAP_UPLINK_DEV, pcap, control_pcap),
            "%s,no-rx=1" % DECAP_ACCESS_DEV]


def measure_decapsulation(ctx, row):
    """tunnelfwd with uplink = net_pcap replaying VXLAN (Geneve, NVGRE) packets from
    10.0.0.2 to 10.0.0.1, VNI 100 = the access port's segment, 64 B inner frames;
    access port = net_null (no-rx) as the sink. One tunnel (to 10.0.0.2, static
    neighbor) of the row's type. Rate = the worker's `decapsulated` over the window,
    checked against the access port's /ethdev/stats opackets."""
    kind = row.key[1]
    pcap = ctx.tunnel_pcap(kind, row.size)
    config = os.path.join(ctx.workdir, "tunnelfwd-decap-%s-layout%d.yaml" % (kind, ctx.layout))
    if not os.path.exists(config):
        with open(config, "w") as f:
            # infinite_rx keeps a copy of every pcap frame per RX queue: two queues.
            f.write(make_config.render(kind, 1, 1, DECAP_UPLINK_DEV, DECAP_ACCESS_DEV,
                                       extra_mbufs=8192 + 2 * PCAP_FRAMES + ctx.layout_mbufs))
    launch = Launch(ctx, ["--config", config], pcap, "tfd", vdevs=decap_vdevs(pcap, ctx.arp_pcap()))
    launch.start(ctx.args.tunnelfwd)
    worker, control = str(ctx.worker_lcore), str(ctx.control_lcore)
    try:
        t = launch.telemetry()
        sink = wait_for_port(t, DECAP_ACCESS_DEV)
        window = Window(ctx, launch, lambda: (t.query("/tunnelfwd/stats"), t.query("/ethdev/stats,%d" % sink)["opackets"]),
                        lambda r: ((r[0] or {}).get("per_core") or {}).get(worker, {}).get("decapsulated"))
        t.close()
    except Exception as e:  # noqa: BLE001
        launch.stop()
        raise RuntimeError("tunnelfwd %s: %s\n%s" % (row.label, e, launch.tail()))
    log = launch.stop()
    (a, oa), (b, ob), elapsed = window.first, window.last, window.elapsed
    wa, wb = a["per_core"][worker], b["per_core"][worker]
    ca, cb = a["per_core"][control], b["per_core"][control]
    decapsulated = wb["decapsulated"] - wa["decapsulated"]
    delivered = ob - oa
    busy_packets = wb["busy_packets"] - wa["busy_packets"]
    worker_dropped = wb["dropped"]["total"] - wa["dropped"]["total"]
    sample = {
        "mpps": decapsulated / elapsed / 1e6,
        "sink_mpps": delivered / elapsed / 1e6,
        "busy_cpp": (wb["busy_cycles"] - wa["busy_cycles"]) / busy_packets if busy_packets else None,
        # The control core's own uplink queue replays ARP requests (see decap_vdevs);
        # what it hands to the worker shows as decapsulated beyond the worker's own rx.
        "control_rx_mpps": (cb["rx"] - ca["rx"]) / elapsed / 1e6,
        "handed_back_mpps": max(0, decapsulated - (wb["rx"] - wa["rx"])) / elapsed / 1e6,
        "elapsed": elapsed,
        "other_cores": window.other_cores,
        "other_processes": window.other_processes,
    }
    other_drops = (b["dropped"]["total"] - a["dropped"]["total"]) - worker_dropped
    if worker_dropped or other_drops:
        row.problems.append("%d dropped by the worker, %d dropped elsewhere in one window"
                            % (worker_dropped, other_drops))
    sent = wb["tx"] - wa["tx"]
    # decapsulated and tx come from one reply (a few bursts apart at most); the sink's
    # opackets from another query, some hundred microseconds later at each end.
    if abs(decapsulated - sent) > max(256, decapsulated // 100_000) or abs(decapsulated - delivered) > decapsulated // 100:
        row.problems.append("%d decapsulated, %d sent by the worker, %d counted by %s in one window"
                            % (decapsulated, sent, delivered, DECAP_ACCESS_DEV))
    m = re.search(r"(\d+) mbuf\(s\) not returned", log)
    if m and int(m.group(1)):
        row.problems.append("%s mbufs not returned at shutdown" % m.group(1))
    return sample


# ---------------------------------------------------------------------------------------
# Miss path: 1 000 cold next hops behind a tap, answered by a kernel.

def run_cmd(argv, input=None):
    p = subprocess.run(argv, input=input, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv[:6]), (p.stderr or p.stdout).strip()))
    return p.stdout


class MissTopology:
    """Two namespaces made for one launch and removed afterwards:

        <tag>-dp (tunnelfwd runs here)                    <tag>-rm
        tfbu0 (net_tap0, uplink) <-tc mirred-> u0 ==veth== eth0: 10.0.0.2 ... 10.0.3.233 /16

    The tap is made beforehand (persistent, multi_queue: net_tap attaches to it) and wired
    to the veth with tc mirred both ways (u32 match-all: some kernels, sandboxes among them, have no matchall
    classifier; never a bridge, which would swallow frames for the tap's own MAC), so the
    wire is up before the first packet. The remote namespace's kernel holds every remote
    address and answers every ARP request; an nftables ingress rule there counts and drops
    the tunnel packets (no ICMP back, no kernel UDP work). IPv6 is off in both."""

    def __init__(self, tag, tunnels):
        self.dp, self.rm = tag + "-dp", tag + "-rm"
        self.tunnels = tunnels
        self.namespaces = []
        self.counting = False

    def build(self):
        for ns in (self.dp, self.rm):
            run_cmd(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            run_cmd(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1"])
            run_cmd(["ip", "-n", ns, "link", "set", "lo", "up"])
        run_cmd(["ip", "-n", self.dp, "tuntap", "add", "dev", MISS_TAP, "mode", "tap", "multi_queue"])
        # Room for a burst of ARP replies on their way to DPDK (the default is 1000).
        run_cmd(["ip", "-n", self.dp, "link", "set", MISS_TAP, "txqueuelen", "10000"])
        run_cmd(["ip", "-n", self.dp, "link", "add", MISS_VETH, "type", "veth", "peer", "name", "eth0", "netns", self.rm])
        run_cmd(["ip", "-n", self.dp, "link", "set", MISS_VETH, "up"])
        run_cmd(["ip", "-n", self.rm, "link", "set", "eth0", "up"])
        for a, b in ((MISS_TAP, MISS_VETH), (MISS_VETH, MISS_TAP)):
            run_cmd(["ip", "netns", "exec", self.dp, "tc", "qdisc", "replace", "dev", a, "clsact"])
            run_cmd(["ip", "netns", "exec", self.dp, "tc", "filter", "replace", "dev", a, "ingress", "pref", "1",
                     "protocol", "all", "u32", "match", "u32", "0", "0",
                     "action", "mirred", "egress", "redirect", "dev", b])
        prefix = make_config.UPLINK.network.prefixlen
        run_cmd(["ip", "-n", self.rm, "-batch", "-"], input="".join(
            "address add %s/%d dev eth0\n" % (make_config.remote(n), prefix) for n in range(self.tunnels)))
        if shutil.which("nft"):
            run_cmd(["ip", "netns", "exec", self.rm, "nft", "-f", "-"], input=(
                "table netdev tfbench {\n"
                '  chain in { type filter hook ingress device "eth0" priority 0; policy accept; '
                "meta protocol ip counter drop; }\n"
                "}\n"))
            self.counting = True

    def remote_received(self):
        """IPv4 packets that reached the remote namespace (None without nft)."""
        if not self.counting:
            return None
        out = run_cmd(["ip", "netns", "exec", self.rm, "nft", "list", "table", "netdev", "tfbench"])
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else None

    def destroy(self):
        """Removes what build made, whatever state it got to; returns error texts."""
        errors = []
        if self.dp in self.namespaces:
            # A persistent tap outlives its users: delete it before its namespace.
            subprocess.run(["ip", "-n", self.dp, "link", "del", MISS_TAP], capture_output=True)
        for ns in reversed(self.namespaces):
            p = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if p.returncode != 0 and "No such file" not in p.stderr:
                errors.append(p.stderr.strip())
        self.namespaces.clear()
        return errors


def miss_memory_mb(ctx, frames):
    """EAL -m for the miss path: its pool holds pending.per_core (= frames) mbufs more."""
    mbufs = frames + 12_000                     # + rings, bursts, caches, extra_mbufs
    return max(ctx.args.memory, 128 + (mbufs * 2560 >> 20))


def measure_miss_path(ctx, row):
    """tunnelfwd with 1 000 VXLAN tunnels to 1 000 on-link remotes, none with a static
    neighbor (all cold at start); access = net_pcap replaying a FINITE pcap of N 64 B
    frames, frame i to inner MAC i % 1 000 (static forwarding entry -> tunnel i % 1 000);
    uplink = net_tap wired to a namespace whose kernel answers ARP for the 1 000 remotes
    (MissTopology). `pending` holds N packets in all and per next hop, so nothing is
    dropped. Measured: wall time from the workers' start (the first packet) to the last
    one flushed, on tunnelfwd's own clock (`uptime_us` of the poll that first sees every
    packet sent; telemetry polled about every millisecond, from the control lcore), hence packets/s
    through buffer -> ARP -> flush; misses, buffered, flushed, expired (must be 0),
    arp_requests; first_packet_delay_us p50/p99/max."""
    frames = ctx.args.miss_frames
    pcap = ctx.miss_pcap(frames)
    config = os.path.join(ctx.workdir, "tunnelfwd-miss-%d.yaml" % frames)
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write(make_config.render("vxlan", MISS_TUNNELS, MISS_TUNNELS, "net_tap0", ACCESS_DEV, extra_mbufs=1024,
                                       static_neighbors=False, pending={"per_core": frames, "per_neighbor": frames}))
    topology = MissTopology("tfbench%d" % os.getpid(), MISS_TUNNELS)
    launch = None
    worker, control = str(ctx.worker_lcore), str(ctx.control_lcore)
    affinity = os.sched_getaffinity(0)
    log = ""
    try:
        try:
            topology.build()
        except RuntimeError as e:
            raise RuntimeError("miss path: building the namespaces: %s" % e)
        launch = Launch(ctx, ["--config", config], pcap, "miss", netns=topology.dp,
                        memory=miss_memory_mb(ctx, frames),
                        vdevs=["net_tap0,iface=%s" % MISS_TAP, "%s,rx_pcap=%s" % (ACCESS_DEV, pcap)])
        launch.start(ctx.args.tunnelfwd)
        # The pcap starts playing the moment the worker starts, which is when tunnelfwd's
        # `uptime_us` starts counting: times below are on that clock, so no poll needs to
        # beat the first packet.
        connect_deadline = time.monotonic() + 60
        while True:
            try:
                t = Telemetry(launch.prefix, timeout=0)
                break
            except (TimeoutError, OSError):
                if launch.proc.poll() is not None or time.monotonic() > connect_deadline:
                    raise RuntimeError("no telemetry socket (exit status %s)" % launch.proc.poll())
                time.sleep(0.001)
        # The poller shares the control lcore (mostly asleep), not the worker's.
        os.sched_setaffinity(0, {ctx.control_lcore})
        others = None
        end = final = None
        polls = 0
        timeline = []            # (uptime in s, misses, flushed) of each poll after the first packet
        deadline = time.monotonic() + 30
        while True:
            s = t.query("/tunnelfwd/stats")
            polls += 1
            if launch.proc.poll() is not None:
                raise RuntimeError("exited with status %d" % launch.proc.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("not done after 30 s: %s" % (
                    {k: s.get(k) for k in ("rx", "encapsulated", "flushed", "expired", "pending_now")} if s else s))
            w = (s or {}).get("per_core", {}).get(worker)
            if w is None or w["rx"] == 0:
                time.sleep(0.0005)
                continue
            if others is None:
                others, first_poll, others_since = OtherLoad([launch.proc.pid]), polls, time.monotonic()
            uptime = s["uptime_us"] / 1e6
            timeline.append((uptime, w["misses"], w["flushed"]))
            # The worker's tx are data packets only (the control core sends the ARP).
            if w["tx"] + s["expired"] + s["dropped"]["total"] >= frames and s["pending_now"] == 0:
                end, final = uptime, s
                break
            time.sleep(0.001)
        other_cores, other_names = others.finish(max(time.monotonic() - others_since, 0.01))
        t.close()
        remote = topology.remote_received()
    except Exception as e:  # noqa: BLE001
        tail = launch.tail() if launch else ""
        raise RuntimeError("%s: %s\n%s" % (row.label, e, tail))
    finally:
        os.sched_setaffinity(0, affinity)
        try:
            if launch:
                log = launch.stop()
        finally:
            errors = topology.destroy()
            if errors:
                print("  miss path: cleanup: %s" % "; ".join(errors), file=sys.stderr)
    wall = end
    w = final["per_core"][worker]
    delay = final["first_packet_delay_us"]
    # Seen from outside: when the last miss had arrived, and when the last buffered packet
    # had left. The longest real wait lies between their difference and the latter.
    last_miss = next(t_ for t_, misses, _ in timeline if misses >= w["misses"])
    all_flushed = next(t_ for t_, _, flushed in timeline if flushed >= w["flushed"])
    sample = {
        "mpps": frames / wall / 1e6,
        "wall_s": wall,
        "poll_ms": 1000 * wall / max(polls - first_poll, 1),
        "busy_cpp": w["busy_cycles"] / frames,
        "frames": frames,
        "tx": w["tx"],
        "remote_received": remote,
        "misses": final["misses"],
        "buffered": final["buffered"],
        "flushed": final["flushed"],
        "expired": final["expired"],
        "dropped": final["dropped"]["total"],
        "arp_requests": final["arp_requests"],
        "arp_replies": final["arp_replies"],
        "delay_count": delay["count"],
        "delay_p50_us": delay["p50"],
        "delay_p99_us": delay["p99"],
        "delay_max_us": delay["max"],
        "last_miss_ms": 1000 * last_miss,
        "all_flushed_ms": 1000 * all_flushed,
        "elapsed": wall,
        "other_cores": other_cores,
        "other_processes": other_names,
    }
    if final["expired"] or final["dropped"]["total"]:
        row.problems.append("%d expired, %d dropped (%s)" % (final["expired"], final["dropped"]["total"],
                            ", ".join("%s %d" % kv for kv in final["dropped"].items() if kv[1] and kv[0] != "total")))
    if final["flushed"] != final["buffered"] or w["tx"] != frames:
        row.problems.append("%d buffered, %d flushed, %d of %d sent" % (final["buffered"], final["flushed"], w["tx"], frames))
    if remote is not None and remote != w["tx"]:
        row.problems.append("%d sent, %d reached the remote namespace" % (w["tx"], remote))
    m = re.search(r"(\d+) mbuf\(s\) not returned", log)
    if m and int(m.group(1)):
        row.problems.append("%s mbufs not returned at shutdown" % m.group(1))
    return sample


MEASURE = {
    "tunnelfwd": measure_tunnelfwd,
    "testpmd": measure_testpmd,
    "tunnelfwd-decap": measure_decapsulation,
    "testpmd-decap": measure_testpmd,
    "miss": measure_miss_path,
}


# ---------------------------------------------------------------------------------------
# Context: temp dir, pcaps, tools

class Context:
    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="tunnelfwd-bench-")
        self.pcaps = {}
        self.tsc_hz = None
        lcores = expand_lcores(args.lcores)
        if len(lcores) != 2:
            raise SystemExit("--lcores must name two lcores (control, worker), got %r" % args.lcores)
        self.control_lcore, self.worker_lcore = lcores
        self.outer_size = {}     # tunnel type -> outer frame length of the decapsulation pcap
        self.layout = 0          # the round being run: which memory layout its launches get

    @property
    def layout_mbufs(self):
        return LAYOUT_STEP * self.layout

    def pcap(self, size, macs):
        key = (size, macs)
        if key not in self.pcaps:
            path = os.path.join(self.workdir, "inner-%dB-%dmacs.pcap" % (size, macs))
            make_pcaps.write(path, size=size, macs=macs, frames=PCAP_FRAMES)
            self.pcaps[key] = path
        return self.pcaps[key]

    def tunnel_pcap(self, kind, size):
        """PCAP_FRAMES tunnel packets from REMOTE to LOCAL, VNI = the access segment."""
        key = ("tunnel", kind, size)
        if key not in self.pcaps:
            path = os.path.join(self.workdir, "%s-%dB.pcap" % (kind, size))
            make_pcaps.write_tunnel(path, kind, size, PCAP_FRAMES, LOCAL, REMOTE, make_config.SEGMENT,
                                    uplink_mac="02:70:63:61:70:00")   # net_pcap0's MAC
            self.pcaps[key] = path
            with open(path, "rb") as f:
                f.seek(24 + 8)
                self.outer_size[kind] = struct.unpack("<I", f.read(4))[0]
        return self.pcaps[key]

    def arp_pcap(self):
        """PCAP_FRAMES ARP requests from another host on the uplink's link for another
        address: for the control core's uplink queue in the decapsulation rows."""
        key = ("arp",)
        if key not in self.pcaps:
            path = os.path.join(self.workdir, "arp.pcap")
            make_pcaps.write_arp(path, PCAP_FRAMES, sender="10.0.0.9", target="10.0.0.77")
            self.pcaps[key] = path
        return self.pcaps[key]

    def miss_pcap(self, frames):
        """A finite pcap of `frames` frames to MISS_TUNNELS inner MACs, round robin."""
        key = ("miss", frames)
        if key not in self.pcaps:
            path = os.path.join(self.workdir, "miss-%dB-%dmacs-%d.pcap" % (MISS_SIZE, MISS_TUNNELS, frames))
            make_pcaps.write(path, size=MISS_SIZE, macs=MISS_TUNNELS, frames=frames)
            self.pcaps[key] = path
        return self.pcaps[key]

    def cleanup(self):
        if self.args.keep:
            print("kept %s (pcaps, configs, logs)" % self.workdir, file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def expand_lcores(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def fallback_tsc_hz():
    """Used only when testpmd did not run: the CPU's nominal clock from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"cpu MHz\s*:\s*([\d.]+)", f.read())
        return float(m.group(1)) * 1e6 if m else None
    except OSError:
        return None


# ---------------------------------------------------------------------------------------
# Report

def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(values), max(values))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(ctx, rows):
    head = ["frame", "tunnels", "forwarder", "Mpps median (min–max)", "vs testpmd io",
            "TSC cycles/pkt", "busy cycles/pkt (own count)"]
    lines = []
    io = {r.group: median(s["mpps"] for s in r.samples) for r in rows
          if r.kind in ("testpmd", "testpmd-decap") and r.key[1] == "io"}
    hz = ctx.tsc_hz or fallback_tsc_hz()
    for r in rows:
        mpps = [s["mpps"] for s in r.samples]
        med = median(mpps)
        frame = "%d B" % r.size
        if r.kind in ("tunnelfwd-decap", "testpmd-decap"):
            frame = "%d B in %s" % (r.size, ctx.outer_size.get(r.key[2 if r.kind == "testpmd-decap" else 1], "?"))
        tunnels = r.tunnels_text or ("{:,}".format(r.tunnels).replace(",", " ") if r.tunnels else "-")
        if not r.samples:
            lines.append([frame, tunnels, r.label, "failed", "-", "-", "-"])
            continue
        ratio = "%.2f" % (med / io[r.group]) if med and io.get(r.group) else "-"
        # The miss path's rate is a wall-clock one over a finite burst, not a busy-polling
        # core's: TSC cycles/pkt would not mean the same there.
        tsc = spread([hz / (m * 1e6) for m in mpps if m], "%.1f") if hz and r.kind != "miss" else "-"
        busy = spread([s["busy_cpp"] for s in r.samples], "%.1f" if r.kind != "miss" else "%.0f")
        label = r.label + (" ⚠" if r.problems else "")
        lines.append([frame, tunnels, label, spread(mpps, "%.2f" if (med or 0) >= 1 else "%.3f"), ratio, tsc, busy])
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) for i in range(len(head))]
    fmt = lambda cells: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    out = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(l) for l in lines]
    return "\n".join(out), hz


def decap_notes(ctx, rows):
    decap = [r for r in rows if r.kind == "tunnelfwd-decap" and r.samples]
    if not any(r.kind in ("tunnelfwd-decap", "testpmd-decap") for r in rows):
        return []
    notes = [
        "Decapsulation rows: uplink `%s,rx_pcap=F,rx_pcap=ARP,infinite_rx=1` replaying %d tunnel packets "
        "(from %s to %s, VNI %d = the access port's segment, outer UDP checksum 0, 1 024 flows; frame column: "
        "inner size in outer size), access port `%s,no-rx=1` as the sink; tunnelfwd has one tunnel of the type. "
        "The same device arguments for testpmd io. net_pcap gives one RX queue per rx_pcap (and one dropping TX "
        "queue per RX queue), and tunnelfwd needs workers + 1 on the uplink: the worker and testpmd read queue 0; "
        "tunnelfwd's control core polls queue 1, which replays ARP requests for another address (read and "
        "ignored; tunnel packets there would reach the worker through the hand-off ring, and an empty pcap "
        "would leak mbufs: DPDK 22.11 eth_pcap_rx_infinite)."
        % (DECAP_UPLINK_DEV, PCAP_FRAMES, REMOTE, LOCAL, make_config.SEGMENT, DECAP_ACCESS_DEV),
        "Decapsulation Mpps: tunnelfwd = the worker's `decapsulated` (checked against %s opackets), testpmd = "
        "%s opackets; cycles as for the other rows." % (DECAP_ACCESS_DEV, DECAP_ACCESS_DEV),
    ]
    for r in decap:
        notes.append(
            "%s: meanwhile tunnelfwd's control core (lcore %d) read %s Mpps of those ARP requests on its own "
            "uplink queue and handed %s Mpps to the worker (must be 0); not counted in the row, and the control "
            "core was busy all along instead of mostly asleep."
            % (r.label, ctx.control_lcore, spread([s["control_rx_mpps"] for s in r.samples], "%.2f"),
               spread([s["handed_back_mpps"] for s in r.samples], "%.2f")))
    return notes


def miss_notes(ctx, rows):
    notes = []
    for r in rows:
        if r.kind != "miss":
            continue
        ss = r.samples
        notes.append(
            "Miss path: per launch, a finite pcap (no infinite_rx) of %s %d B frames, frame i to inner MAC i %% 1 000 "
            "-> tunnel i %% 1 000 (VXLAN) -> its own on-link remote 10.0.0.2 ... 10.0.3.233, none with a static "
            "neighbor: all 1 000 next hops cold at start. Uplink `net_tap0` joined by tc mirred to a veth into a "
            "namespace holding the 1 000 remote addresses, whose kernel answers every ARP request. `pending: "
            "{ per_core: N, per_neighbor: N }` so nothing is dropped, lifetime 3 s."
            % ("{:,}".format(ctx.args.miss_frames).replace(",", " "), MISS_SIZE))
        notes.append(
            "Miss path Mpps = frames / wall time from the worker's start (the pcap plays from its first poll) "
            "to the last packet flushed, on tunnelfwd's clock: the `uptime_us` of the first /tunnelfwd/stats "
            "reply that shows every packet sent (polled every %s ms from the control lcore, so an upper bound "
            "within a poll): %s s. Every packet goes through the kernel (tap write, tc mirred, veth; ARP "
            "both ways): this is the tap's rate as much as tunnelfwd's. Busy cycles/pkt for this row: the "
            "worker's busy_cycles over the whole burst / frames (tap syscalls included); no TSC figure, the "
            "core is not saturated throughout."
            % (spread([s["poll_ms"] for s in ss], "%.1f"), spread([s["wall_s"] for s in ss], "%.3f")))
        if ss:
            notes.append(
                "Miss path, seen from outside (polls): all misses had arrived %s ms after the first packet, and "
                "all buffered packets had left %s ms after it; so the longest real wait was between their "
                "difference and the latter. tunnelfwd measures each flushed packet's wait to the start of the "
                "loop iteration that sends it, and flushes at most 4 bursts per iteration, so the histogram below measures the waits as they "
                "were."
                % (spread([s["last_miss_ms"] for s in ss], "%.0f"), spread([s["all_flushed_ms"] for s in ss], "%.0f")))
            notes.append(
                "Miss path counters (median of launches): misses %s, buffered %s, flushed %s, expired %s, dropped %s, "
                "arp_requests %s, arp_replies %s, reached the remote namespace %s. **First-packet delay** "
                "(/tunnelfwd/stats first_packet_delay_us: each buffered packet's wait from miss to flush, "
                "%s packets; log-linear histogram, values are bucket middles, within 12.5 %%): "
                "p50 %s µs, p99 %s µs, max %s µs."
                % tuple(spread([s[k] for s in ss], "%d") for k in (
                    "misses", "buffered", "flushed", "expired", "dropped", "arp_requests", "arp_replies",
                    "remote_received", "delay_count", "delay_p50_us", "delay_p99_us", "delay_max_us")))
    return notes


def describe_machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"
    dpdk = cmd(["dpkg-query", "-W", "-f=${Version}", "libdpdk-dev"]) or "?"
    swift = cmd(["swift", "--version"]).splitlines()
    commit = cmd(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always", "--dirty"])
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "dpdk": dpdk,
            "swift": swift[0] if swift else "?", "commit": commit}


def interrupted(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tunnelfwd", required=True, help="the release tunnelfwd binary")
    p.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "dpdk-testpmd")
    p.add_argument("--runs", type=int, default=3, help="launches per row; the table shows median, min, max (default 3)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured window per launch (default 2)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic before the window (default 1)")
    p.add_argument("--lcores", default="0-1", help="EAL -l: control lcore, worker lcore (default 0-1)")
    p.add_argument("--memory", type=int, default=256, help="EAL -m in MB (default 256)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="inner frame sizes (default 64,512)")
    p.add_argument("--types", default=",".join(TYPES), help="tunnel types (default vxlan,geneve,nvgre)")
    p.add_argument("--scales", default=",".join(map(str, SCALES)), help="tunnel counts (default 1,10000)")
    p.add_argument("--baselines", default="io,macswap", help="testpmd forward modes (default io,macswap)")
    p.add_argument("--decap-types", default=",".join(DECAP_TYPES),
                   help="tunnel types of the decapsulation rows, each with its testpmd io baseline "
                        "(default vxlan; '' for none)")
    p.add_argument("--miss-frames", type=int, default=MISS_FRAMES,
                   help="frames of the miss-path burst to 1 000 cold next hops (default 100000; 0: no miss-path row)")
    p.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results"),
                   help="where latest.md and latest.json go (default bench/results)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (pcaps, configs, process logs)")
    args = p.parse_args()

    sizes = [int(x) for x in args.sizes.split(",") if x]
    types = [x for x in args.types.split(",") if x]
    scales = [int(x) for x in args.scales.split(",") if x]
    baselines = [x for x in args.baselines.split(",") if x]
    if "io" not in baselines:
        print("note: without the testpmd io baseline there is no ratio column", file=sys.stderr)
    decap_types = [x for x in args.decap_types.split(",") if x]
    for t in decap_types:
        if t not in TYPES:
            raise SystemExit("--decap-types: unknown tunnel type %r" % t)
    rows = planned_rows(sizes, types, scales, baselines, decap_types, args.miss_frames)
    ctx = Context(args)
    # SIGTERM unwinds like Ctrl-C, so that processes, namespaces and the temp dir go.
    signal.signal(signal.SIGTERM, interrupted)
    machine = describe_machine()
    started = time.monotonic()
    load_before = os.getloadavg()
    per_launch = args.warmup + args.seconds + 2
    windowed = sum(1 for r in rows if r.kind != "miss")
    estimate = args.runs * (windowed * per_launch + (len(rows) - windowed) * 6)
    print("%d rows x %d runs of %g s (+%g s warm-up): about %.0f s"
          % (len(rows), args.runs, args.seconds, args.warmup, estimate), file=sys.stderr)
    failures = []
    try:
        for run in range(args.runs):
            ctx.layout = run
            # Interleaved: every row once per round, so that noise from other work on the
            # machine spreads over all rows instead of hitting one.
            for r in rows:
                try:
                    s = MEASURE[r.kind](ctx, r)
                    r.samples.append(s)
                    busy = ("  others used %.2f cores: %s" % (s["other_cores"], " ".join(s["other_processes"]))
                            if s["other_cores"] >= 0.1 else "")
                    extra = ""
                    if r.kind == "miss":
                        extra = ("  %.0f ms, %d expired, %d ARP requests; first-packet delay p50 %d µs p99 %d µs "
                                 "max %d µs; all buffered packets out after %.0f ms" % (
                                     1000 * s["wall_s"], s["expired"], s["arp_requests"], s["delay_p50_us"],
                                     s["delay_p99_us"], s["delay_max_us"], s["all_flushed_ms"]))
                    print("  run %d/%d  %4d B  %-8s %-18s %7.3f Mpps%s%s" % (
                        run + 1, args.runs, r.size, str(r.tunnels or ""), r.label, s["mpps"], extra, busy),
                        file=sys.stderr)
                except RuntimeError as e:
                    failures.append(str(e))
                    print("  run %d/%d  %s FAILED: %s" % (run + 1, args.runs, r.label, e), file=sys.stderr)
        text, hz = table(ctx, rows)
    finally:
        for launch in list(Launch.live):
            launch.stop()
        ctx.cleanup()
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()

    notes = [
        "Each figure: median (min–max) of %d launches, each measured over %g s after %g s of warm-up; "
        "rows interleaved round by round. Round k gives every process %d more mbufs: each round measures "
        "another memory layout." % (args.runs, args.seconds, args.warmup, LAYOUT_STEP),
        "Encapsulation rows: source `net_pcap` replaying %d real Ethernet/IPv4/UDP frames (1 024 flows) with "
        "infinite_rx; sink: `net_null` (no-rx). Same vdevs, EAL arguments and lcores (`-l %s`, worker = lcore %d) "
        "for tunnelfwd and testpmd." % (PCAP_FRAMES, args.lcores, ctx.worker_lcore),
        "Frame size = DPDK data length (no FCS). 10 000 tunnels = 10 000 inner MACs, each with a "
        "static forwarding entry to its own tunnel, 10 000 remotes with static neighbors: every lookup hits.",
        "Encapsulation Mpps: tunnelfwd = `tx` of /tunnelfwd/stats, testpmd = `opackets` of /ethdev/stats on "
        "net_null0, both sampled over telemetry at the window's ends.",
        "TSC cycles/pkt = TSC Hz (%s) x 1 core / pps: the whole core's time per packet, fair for a "
        "busy-polling core." % ("%.0f MHz" % (hz / 1e6) if hz else "unknown"),
        "Busy cycles/pkt (own count): tunnelfwd = per_core busy_cycles / busy_packets of the worker over "
        "the window (loop iterations that moved packets); testpmd = its --record-core-cycles figure "
        "(cycles of bursts that received packets), over its whole run including warm-up.",
        "vs testpmd io = tunnelfwd median / testpmd io median on the same devices and frames: for encapsulation "
        "the testpmd io row of the same frame size (targets: >= 0.60 with 1 tunnel, >= 0.45 with 10 000, "
        "64 B VXLAN), for decapsulation the testpmd io row on the same tunnel pcap.",
    ]
    notes += decap_notes(ctx, rows) + miss_notes(ctx, rows)
    loads = [s["other_cores"] for r in rows for s in r.samples]
    if loads:
        noisy = sum(1 for x in loads if x >= 0.1)
        notes.append("Other processes on the machine used %.2f cores on average during the windows (max %.2f); "
                     "%d of %d windows had >= 0.1 core of other load%s."
                     % (statistics.mean(loads), max(loads), noisy, len(loads),
                        ": these figures are noisy, take them again on a quiet machine" if noisy else ""))
    problems = [(r, p) for r in rows for p in sorted(set(r.problems))]
    header = [
        "# tunnelfwd throughput, one worker core",
        "",
        "%s · %s · %d cores · kernel %s · DPDK %s · %s · load average %.1f before, %.1f after · %s · %.0f s"
        % (machine["commit"], machine["cpu"], machine["cores"], machine["kernel"], machine["dpdk"],
           machine["swift"], load_before[0], load_after[0],
           datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), elapsed),
        "",
    ]
    body = [text, ""] + ["- " + n for n in notes]
    if problems:
        body += [""] + ["- ⚠ %s %d B %s: %s" % (r.label, r.size, r.tunnels or "", p) for r, p in problems]
    if failures:
        body += [""] + ["- FAILED: " + f.splitlines()[0] for f in failures]
    markdown = "\n".join(header + body) + "\n"
    print(markdown)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "latest.md"), "w") as f:
        f.write(markdown)
    with open(os.path.join(args.results, "latest.json"), "w") as f:
        json.dump({"machine": machine, "args": vars(args), "tsc_hz": hz,
                   "rows": [{"label": r.label, "size": r.size, "tunnels": r.tunnels, "samples": r.samples,
                             "problems": r.problems} for r in rows]}, f, indent=1)
    print("written: %s" % os.path.normpath(os.path.join(args.results, "latest.md")), file=sys.stderr)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
