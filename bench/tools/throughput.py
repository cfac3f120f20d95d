#!/usr/bin/python3
"""Throughput benchmark: tunnelfwd's encapsulation hit path against dpdk-testpmd, one
worker core, same virtual devices, same pcap source, same run. See bench/README.md.

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
UPLINK_DEV = "net_null0"
ACCESS_DEV = "net_pcap0"


# ---------------------------------------------------------------------------------------
# What is measured

class Row:
    """One line of the table. `key` identifies it across runs."""

    def __init__(self, key, label, size, tunnels, kind):
        self.key = key
        self.label = label       # e.g. "tunnelfwd vxlan" or "testpmd io"
        self.size = size
        self.tunnels = tunnels   # None for testpmd
        self.kind = kind         # "tunnelfwd" or "testpmd"
        self.samples = []        # dicts: mpps, busy_cpp (self-measured), ...
        self.problems = []


def planned_rows(sizes, types, scales, baselines):
    rows = []
    for size in sizes:
        for mode in baselines:
            rows.append(Row(("testpmd", mode, size), "testpmd " + mode, size, None, "testpmd"))
        for scale in scales:
            for t in types:
                rows.append(Row(("tunnelfwd", t, size, scale), "tunnelfwd " + t, size, scale, "tunnelfwd"))
    return rows


# ---------------------------------------------------------------------------------------
# Processes

class Launch:
    """One DPDK process on the benchmark's virtual devices, with its own --file-prefix
    (hugepage files unlinked, runtime directory removed afterwards)."""

    counter = 0

    def __init__(self, ctx, argv_tail, pcap, name, stop_by_signal=True):
        Launch.counter += 1
        self.stop_by_signal = stop_by_signal
        self.ctx = ctx
        self.prefix = "tfbench%d-%d-%s" % (os.getpid(), Launch.counter, name)
        self.log_path = os.path.join(ctx.workdir, self.prefix + ".log")
        self.eal = [
            "-l", ctx.args.lcores, "--no-pci", "-m", str(ctx.args.memory), "--huge-unlink",
            "--file-prefix", self.prefix,
            "--vdev", "%s,rx_pcap=%s,infinite_rx=1" % (ACCESS_DEV, pcap),
            "--vdev", "%s,no-rx=1" % UPLINK_DEV,
        ]
        self.argv_tail = argv_tail
        self.proc = None
        self.log = None

    def start(self, program):
        self.log = open(self.log_path, "w")
        argv = [program] + self.eal + ["--"] + self.argv_tail
        self.log.write("# " + " ".join(argv) + "\n")
        self.log.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)

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
        """SIGINT (tunnelfwd) / stdin EOF (testpmd); SIGKILL after 20 s. Returns the log."""
        if self.proc and self.proc.poll() is None:
            # testpmd without --stats-period quits (printing its statistics) at stdin EOF;
            # tunnelfwd ignores stdin and stops on SIGINT. SIGINT is the fallback for both.
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(0 if self.stop_by_signal else 10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
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


def measure_tunnelfwd(ctx, row):
    pcap = ctx.pcap(row.size, row.tunnels)
    config = os.path.join(ctx.workdir, "tunnelfwd-%s-%d.yaml" % (row.key[1], row.tunnels))
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write(make_config.render(row.key[1], row.tunnels, row.tunnels, UPLINK_DEV, ACCESS_DEV,
                                       extra_mbufs=8192 + PCAP_FRAMES))
    launch = Launch(ctx, ["--config", config], pcap, "tf")
    launch.start(ctx.args.tunnelfwd)
    try:
        t = launch.telemetry()
        stats = lambda: t.query("/tunnelfwd/stats")  # noqa: E731
        wait_for_traffic(lambda: (stats() or {}).get("tx"), launch.proc)
        worker = str(ctx.worker_lcore)
        time.sleep(ctx.args.warmup)
        a, ta = stats(), time.monotonic()
        others = OtherLoad([launch.proc.pid])
        time.sleep(ctx.args.seconds)
        b, tb = stats(), time.monotonic()
        other_cores, other_names = others.finish(tb - ta)
        t.close()
    except Exception as e:  # noqa: BLE001
        launch.stop()
        raise RuntimeError("tunnelfwd %s: %s\n%s" % (row.label, e, launch.tail()))
    log = launch.stop()
    elapsed = tb - ta
    wa, wb = a["per_core"][worker], b["per_core"][worker]
    tx = b["tx"] - a["tx"]
    encapsulated = b["encapsulated"] - a["encapsulated"]
    dropped = b["dropped"]["total"] - a["dropped"]["total"]
    busy_packets = wb["busy_packets"] - wa["busy_packets"]
    sample = {
        "mpps": tx / elapsed / 1e6,
        "busy_cpp": (wb["busy_cycles"] - wa["busy_cycles"]) / busy_packets if busy_packets else None,
        "elapsed": elapsed,
        "other_cores": other_cores,
        "other_processes": other_names,
    }
    # The counters are read one after the other while packets move: allow a few bursts.
    if dropped or abs(encapsulated - tx) > max(256, tx // 100_000):
        row.problems.append("%d dropped, %d encapsulated vs %d sent in one window" % (dropped, encapsulated, tx))
    m = re.search(r"(\d+) mbuf\(s\) not returned", log)
    if m and int(m.group(1)):
        row.problems.append("%s mbufs not returned at shutdown" % m.group(1))
    return sample


def measure_testpmd(ctx, row):
    mode = row.key[1]
    pcap = ctx.pcap(row.size, 1)
    launch = Launch(ctx, [
        "--forward-mode=" + mode, "--record-core-cycles", "--no-mlockall",
        "--total-num-mbufs=%d" % (32768 + PCAP_FRAMES), "--rxd=1024", "--txd=1024", "--burst=32",
    ], pcap, "tp", stop_by_signal=False)
    launch.start(ctx.args.testpmd)
    try:
        t = launch.telemetry()
        # The ports come up after the telemetry socket: retry until the uplink is listed.
        deadline = time.monotonic() + 30
        while True:
            try:
                port = port_by_name(t, UPLINK_DEV)
                break
            except (LookupError, TypeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        opackets = lambda: (t.query("/ethdev/stats,%d" % port) or {}).get("opackets")  # noqa: E731
        wait_for_traffic(opackets, launch.proc)
        time.sleep(ctx.args.warmup)
        a, ta = opackets(), time.monotonic()
        others = OtherLoad([launch.proc.pid])
        time.sleep(ctx.args.seconds)
        b, tb = opackets(), time.monotonic()
        other_cores, other_names = others.finish(tb - ta)
        t.close()
    except Exception as e:  # noqa: BLE001
        launch.stop()
        raise RuntimeError("testpmd %s: %s\n%s" % (mode, e, launch.tail()))
    log = launch.stop()
    sample = {"mpps": (b - a) / (tb - ta) / 1e6, "busy_cpp": None, "elapsed": tb - ta,
              "other_cores": other_cores, "other_processes": other_names}
    # --record-core-cycles: busy cycles of the forwarding lcore over the whole run.
    m = re.search(r"CPU cycles/packet=([\d.]+) .* at (\d+) MHz Clock", log)
    if m:
        sample["busy_cpp"] = float(m.group(1))
        ctx.tsc_hz = int(m.group(2)) * 1_000_000
    else:
        row.problems.append("testpmd printed no cycles/packet")
    return sample


# ---------------------------------------------------------------------------------------
# Rows that need features not built yet. Fill these in when the features land: return a
# list of (label, value-text) pairs to print (e.g. [("tunnelfwd miss path", "p50 85 µs,
# p99 1.9 ms, 0 expired")]), or None while the feature is missing. `ctx`
# offers ctx.pcap(size, macs), ctx.workdir, ctx.args (runs, seconds, warmup, lcores,
# tunnelfwd) and Launch(ctx, app_args, pcap, name) + launch.telemetry() as used above.

def measure_miss_path(ctx):
    """Miss path: 1 000 tunnels whose next hops are cold (no static neighbors; they answer
    ARP), traffic to all of them from the start: every first packet is buffered, ARP goes
    out, replies flush the buffers. To report: buffered/flushed/expired counts (expect
    flushed == buffered, expired == 0) and the first-packet delay p50/p99 from
    /tunnelfwd/stats. Needs: the pending buffer (mechanism 2) and a first-packet delay
    histogram in telemetry, plus an ARP responder on the uplink (e.g. a net_ring or
    net_memif peer answering ARP, or net_tap with kernel neighbours)."""
    return None


def measure_decapsulation(ctx):
    """Decapsulation rate: uplink = net_pcap replaying VXLAN/Geneve/NVGRE packets for the
    local endpoint 10.0.0.1 (wrap make_pcaps' inner frames in outer headers with scapy),
    access port = net_null; Mpps of the access port's opackets (or `decapsulated` in
    /tunnelfwd/stats) and cycles/packet of the worker, against testpmd io on the same
    pcap. tunnelfwd wants workers+1 RX queues on the uplink and net_pcap makes one RX
    queue per rx_pcap= argument, so give the uplink the pcap twice
    (net_pcap1,rx_pcap=F,rx_pcap=F,infinite_rx=1). Needs: decapsulation (F3)."""
    return None


# (frame, tunnels, label, function) of the rows printed after the measured ones.
PENDING_ROWS = [
    ("64 B", "1 000", "tunnelfwd miss path (buffer, ARP, flush)", measure_miss_path),
    ("64 B", "1", "tunnelfwd decapsulation", measure_decapsulation),
]


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
        self.worker_lcore = lcores[1]

    def pcap(self, size, macs):
        key = (size, macs)
        if key not in self.pcaps:
            path = os.path.join(self.workdir, "inner-%dB-%dmacs.pcap" % (size, macs))
            make_pcaps.write(path, size=size, macs=macs, frames=PCAP_FRAMES)
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
    io = {r.size: median(s["mpps"] for s in r.samples) for r in rows if r.key[:2] == ("testpmd", "io")}
    hz = ctx.tsc_hz or fallback_tsc_hz()
    for r in rows:
        mpps = [s["mpps"] for s in r.samples]
        med = median(mpps)
        ratio = "%.2f" % (med / io[r.size]) if med and io.get(r.size) else "-"
        tsc = spread([hz / (m * 1e6) for m in mpps if m], "%.1f") if hz else "-"
        busy = spread([s["busy_cpp"] for s in r.samples], "%.1f")
        if not r.samples:
            lines.append(["%d B" % r.size, str(r.tunnels or "-"), r.label, "failed", "-", "-", "-"])
            continue
        label = r.label + (" ⚠" if r.problems else "")
        lines.append(["%d B" % r.size, "{:,}".format(r.tunnels).replace(",", " ") if r.tunnels else "-",
                      label, spread(mpps, "%.2f"), ratio, tsc, busy])
    for frame, tunnels, label, fn in PENDING_ROWS:
        result = fn(ctx)
        if result is None:
            lines.append([frame, tunnels, label, "not built yet", "", "", ""])
        else:
            for sub, text in result:
                lines.append([frame, tunnels, sub, text, "", "", ""])
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) for i in range(len(head))]
    fmt = lambda cells: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    out = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(l) for l in lines]
    return "\n".join(out), hz


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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tunnelfwd", required=True, help="the release tunnelfwd binary")
    p.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "dpdk-testpmd")
    p.add_argument("--runs", type=int, default=3, help="launches per row; the table shows median, min, max (default 3)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured window per launch (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic before the window (default 1)")
    p.add_argument("--lcores", default="0-1", help="EAL -l: control lcore, worker lcore (default 0-1)")
    p.add_argument("--memory", type=int, default=256, help="EAL -m in MB (default 256)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="inner frame sizes (default 64,512)")
    p.add_argument("--types", default=",".join(TYPES), help="tunnel types (default vxlan,geneve,nvgre)")
    p.add_argument("--scales", default=",".join(map(str, SCALES)), help="tunnel counts (default 1,10000)")
    p.add_argument("--baselines", default="io,macswap", help="testpmd forward modes (default io,macswap)")
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
    rows = planned_rows(sizes, types, scales, baselines)
    ctx = Context(args)
    machine = describe_machine()
    started = time.monotonic()
    load_before = os.getloadavg()
    per_launch = args.warmup + args.seconds + 2
    print("%d rows x %d runs of %g s (+%g s warm-up): about %.0f s"
          % (len(rows), args.runs, args.seconds, args.warmup, len(rows) * args.runs * per_launch), file=sys.stderr)
    failures = []
    try:
        for run in range(args.runs):
            # Interleaved: every row once per round, so that noise from other work on the
            # machine spreads over all rows instead of hitting one.
            for r in rows:
                try:
                    fn = measure_tunnelfwd if r.kind == "tunnelfwd" else measure_testpmd
                    s = fn(ctx, r)
                    r.samples.append(s)
                    busy = ("  others used %.2f cores: %s" % (s["other_cores"], " ".join(s["other_processes"]))
                            if s["other_cores"] >= 0.1 else "")
                    print("  run %d/%d  %4d B  %-8s %-18s %7.2f Mpps%s" % (
                        run + 1, args.runs, r.size, str(r.tunnels or ""), r.label, s["mpps"], busy), file=sys.stderr)
                except RuntimeError as e:
                    failures.append(str(e))
                    print("  run %d/%d  %s FAILED: %s" % (run + 1, args.runs, r.label, e), file=sys.stderr)
        text, hz = table(ctx, rows)
    finally:
        ctx.cleanup()
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()

    notes = [
        "Each figure: median (min–max) of %d launches, each measured over %g s after %g s of warm-up; "
        "rows interleaved round by round." % (args.runs, args.seconds, args.warmup),
        "Source: `net_pcap` replaying %d real Ethernet/IPv4/UDP frames (1 024 flows) with infinite_rx; "
        "sink: `net_null` (no-rx). Same vdevs, EAL arguments and lcores (`-l %s`, worker = lcore %d) "
        "for tunnelfwd and testpmd." % (PCAP_FRAMES, args.lcores, ctx.worker_lcore),
        "Frame size = DPDK data length (no FCS). 10 000 tunnels = 10 000 inner MACs, each with a "
        "static forwarding entry to its own tunnel, 10 000 remotes with static neighbors: every lookup hits.",
        "Mpps: tunnelfwd = `tx` of /tunnelfwd/stats, testpmd = `opackets` of /ethdev/stats on net_null0, "
        "both sampled over telemetry at the window's ends.",
        "TSC cycles/pkt = TSC Hz (%s) x 1 core / pps: the whole core's time per packet, fair for a "
        "busy-polling core." % ("%.0f MHz" % (hz / 1e6) if hz else "unknown"),
        "Busy cycles/pkt (own count): tunnelfwd = per_core busy_cycles / busy_packets of the worker over "
        "the window (loop iterations that moved packets); testpmd = its --record-core-cycles figure "
        "(cycles of bursts that received packets), over its whole run including warm-up.",
        "vs testpmd io = tunnelfwd median / testpmd io median for the same frame size "
        "(targets: >= 0.60 with 1 tunnel, >= 0.45 with 10 000, 64 B VXLAN).",
    ]
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
