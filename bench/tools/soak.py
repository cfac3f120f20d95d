#!/usr/bin/python3
"""Soak run of tunnelfwd (bench/soak.sh MINUTES; see bench/README.md, "bench/soak.sh").

One forwarder (lcores 0-1: the control core and one worker) in network namespaces built
with the system tests' building blocks (Tests/system/tfsys.py): four remote tunnel
endpoints with kernel VXLAN devices behind a bridge, a VM behind the access port, 204
tunnels. For MINUTES, numbered UDP datagrams flow from the VM to receivers behind
remotes 0, 1 and 2 while a 20-second cycle of churn and faults repeats:

    +0 s   10 tunnels added with tunnelctl (5 to absent hosts, 5 to the remotes in other
           segments, sharing the flows' next hops)
    +2 s   tunnelctl neighbor flush
    +4 s   remote 1 answers ARP 300 ms late (its kernel's replies dropped, a thread
           answering instead), and a flush makes its next hop wait for that answer
    +7 s   remote 1 answers at once again
    +8 s   pings to remote 3, which has no static forwarding entry: its MAC is learnt
           behind its tunnel, then ages out (learning.aging_s 4) before the next cycle
    +10 s  the 10 tunnels deleted
    +11 s  remote 0's ARP replies lost and its next hop flushed, for 1 s (every other
           cycle for 4 s, longer than the pending lifetime: datagrams expire)

Every --sample seconds (2) it samples the forwarder's RSS (/proc/PID/status VmRSS), its
counters and mbufs_in_use (telemetry), and the size of its underlay neighbor table.

PASS needs all of: the forwarder ran throughout and stopped cleanly (exit 0, every mbuf
returned); every tunnelctl command succeeded; every datagram sent either arrived (once,
in order) or is counted: by the forwarder (a drop reason, or expired) or by the kernel
(interface drops, UDP datagrams undelivered, in every namespace); no drop under a reason
the scenario cannot cause (allowed: pending_full); the scenario happened (flushes,
expiries, delayed answers, learnt and aged MACs); RSS flat (the last quarter's maximum
within --rss-slack-mib of the first quarter's, after warm-up); mbufs_in_use back to its
idle value and the pending buffer empty at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "system"))

import tfsys  # noqa: E402
from tfsys import (  # noqa: E402
    UPLINK_IP, VNI, DelayedArpReplies, Forwarder, MultiRemoteTopology, UdpFlows, block_arp_replies, kernel_drops,
    overlay_ip, overlay_mac, remote_ip, remote_mac, run, tunnelctl, unblock_arp_replies,
)

REMOTES = 4
FLOWS = (0, 1, 2)          # remotes with a receiver and a static forwarding entry
LOSSY, LATE, LEARNT = 0, 1, 3
OTHER_SEGMENTS = 200       # tunnels in segments without access ports, besides t0-t3
CHURN = 5                  # tunnels to absent hosts, and as many to the remotes, per cycle
CYCLE = 20.0
AGING_S = 4
ARP_LATE = 0.3
SHORT_LOSS, LONG_LOSS = 1.0, 4.0
FLOW_GAP = 0.005           # one datagram per flow every 5 ms: 200 per second each
ALLOWED_DROPS = {"pending_full": "remote 0's next hop unresolved while its buffer is full (ARP replies lost)"}


class CountingFlows(UdpFlows):
    """UdpFlows that keep, per flow, counts instead of every number received (a long run
    sends millions): a byte per number seen, how many arrived twice, how many after a
    higher number."""

    def __init__(self, topology, targets, port: int = 9000):
        self.seen = {i: bytearray() for i in targets}
        self.distinct = {i: 0 for i in targets}
        self.duplicates = {i: 0 for i in targets}
        self.reordered = {i: 0 for i in targets}
        self.highest = {i: -1 for i in targets}
        super().__init__(topology, targets, port=port)

    def _arrived(self, i: int, n: int):
        seen = self.seen[i]
        if n >= len(seen):
            seen.extend(bytes(n + 1 - len(seen) + 4096))
        if seen[n]:
            self.duplicates[i] += 1
            return
        seen[n] = 1
        self.distinct[i] += 1
        if n < self.highest[i]:
            self.reordered[i] += 1
        self.highest[i] = max(self.highest[i], n)

    def arrived(self, i: int) -> int:
        return self.distinct[i]


def soak_config(topo) -> dict:
    tunnels = [{"name": f"t{i}", "type": "vxlan", "remote": remote_ip(i), "vni": VNI} for i in range(REMOTES)]
    tunnels += [{"name": f"s{k}", "type": ("vxlan", "geneve", "nvgre")[k % 3], "remote": remote_ip(k % REMOTES),
                 "vni": 1000 + k} for k in range(OTHER_SEGMENTS)]
    return {
        "uplink": {"port": topo.uplink_vdev, "address": f"{UPLINK_IP}/24"},
        "access": [{"port": topo.access_vdev(0), "segment": VNI}],
        "tunnels": tunnels,
        "forwarding": [{"segment": VNI, "mac": overlay_mac(i), "tunnel": f"t{i}"} for i in FLOWS],
        # Remote 0 stays out: its losses must hit the accounted flow only.
        "flood": [{"segment": VNI, "tunnels": [f"t{i}" for i in range(1, REMOTES)]}],
        "neighbors": [],
        "learning": {"aging_s": AGING_S},
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Soak:
    def __init__(self, minutes: float, sample_s: float, rss_slack_mib: float, workdir: Path):
        self.duration = minutes * 60
        self.sample_s = sample_s
        self.rss_slack_kib = rss_slack_mib * 1024
        self.workdir = workdir
        self.samples: list[dict] = []
        self.events: dict[str, int] = {}
        self.command_failures: list[str] = []
        self.alive_throughout = True
        self.late_answers = 0
        self.topo: MultiRemoteTopology | None = None
        self.fwd: Forwarder | None = None
        self.flows: CountingFlows | None = None
        self.late: DelayedArpReplies | None = None

    # ------------------------------------------------------------------ the scenario

    def ctl(self, *args) -> str:
        p = tunnelctl(self.fwd.prefix, *args, check=False)
        if p.returncode != 0:
            self.command_failures.append(f"tunnelctl {' '.join(args)}: {(p.stdout + p.stderr).strip()}")
        return p.stdout

    def note(self, event: str):
        self.events[event] = self.events.get(event, 0) + 1

    def churn_tunnels(self, cycle: int) -> list[str]:
        names = []
        for k in range(CHURN):
            n = cycle * CHURN + k
            names.append(f"c{n}a")
            self.ctl("tunnel", "add", f"c{n}a", "--type", "vxlan", "--remote", f"192.168.50.{200 + n % 50}",
                     "--vni", str(2000 + n % 1000))
            names.append(f"c{n}b")
            self.ctl("tunnel", "add", f"c{n}b", "--type", "vxlan", "--remote", remote_ip(n % REMOTES),
                     "--vni", str(3000 + n % 1000))
        self.note("tunnels added")
        return names

    def cycle_events(self, cycle: int):
        """(offset in the cycle, what, action) of one cycle."""
        added: list[str] = []
        loss = LONG_LOSS if cycle % 2 else SHORT_LOSS

        def add():
            added.extend(self.churn_tunnels(cycle))

        def delete():
            for name in added:
                self.ctl("tunnel", "del", name)
            self.note("tunnels deleted")

        def flush(event: str = "neighbor flush"):
            self.ctl("neighbor", "flush")
            self.note(event)

        def late_on():
            self.late = DelayedArpReplies(self.topo, self.topo.remotes[LATE], remote_ip(LATE), remote_mac(LATE),
                                          ARP_LATE).start()
            flush("flush with late ARP")

        def late_off():
            self.late_answers += self.late.answered
            self.late.stop()
            self.late = None

        def learn():
            p = run(["ping", "-c", "3", "-i", "0.2", "-W", "1", overlay_ip(LEARNT)], ns=self.topo.vms[0], check=False)
            self.note("pings answered" if p.returncode == 0 else "pings unanswered")

        def loss_on():
            block_arp_replies(self.topo.remotes[LOSSY])
            flush(f"ARP lost {loss:g} s")

        def loss_off():
            unblock_arp_replies(self.topo.remotes[LOSSY])

        return [(0, add), (2, flush), (4, late_on), (7, late_off), (8, learn), (10, delete), (11, loss_on),
                (11 + loss, loss_off)]

    # ------------------------------------------------------------------- sampling

    def sample(self, started: float):
        fwd = self.fwd
        if fwd.proc.poll() is not None:
            self.alive_throughout = False
            raise RuntimeError(f"tunnelfwd exited with {fwd.proc.returncode} during the run\n{fwd.logs()}")
        stats = fwd.stats()
        underlay = json.loads(tunnelctl(fwd.prefix, "neighbor", "show", "--all", "--json").stdout)["underlay"]
        self.samples.append({
            "t": round(time.monotonic() - started, 1),
            "rss_kib": rss_kib(fwd.proc.pid),
            "mbufs_in_use": stats["mbufs_in_use"],
            "pending_now": stats["pending_now"],
            "sent": sum(self.flows.sent.values()),
            "received": sum(self.flows.distinct.values()),
            "underlay": len(underlay),
            "stats": stats,
        })

    # ------------------------------------------------------------------------ run

    def run(self) -> bool:
        tag = tfsys.unique_tag()
        self.topo = MultiRemoteTopology(tag, remotes=REMOTES).build()
        try:
            return self._run()
        finally:
            if self.late is not None:
                self.late.stop()
            if self.flows is not None:
                self.flows.close()
            if self.fwd is not None:
                self.fwd.kill()
                tfsys.remove_dpdk_leftovers(self.fwd.prefix)
            self.topo.destroy()

    def _run(self) -> bool:
        topo = self.topo
        self.fwd = fwd = Forwarder(topo, soak_config(topo), self.workdir).start()
        tfsys.wait_until(lambda: fwd.resolved(*[remote_ip(i) for i in range(REMOTES)]), timeout=10,
                         what="every remote's next hop resolved")
        namespaces = [topo.vms[0], topo.dp, topo.sw] + topo.remotes
        kernel_before = {ns: kernel_drops(ns) for ns in namespaces}
        self.flows = CountingFlows(topo, FLOWS)
        time.sleep(1)
        idle_mbufs = fwd.stats()["mbufs_in_use"]
        before = fwd.stats()
        started = time.monotonic()
        self.flows.start(gap=FLOW_GAP)

        # Whole cycles only: the run ends with every fault undone.
        schedule = sorted(((cycle * CYCLE + offset, action) for cycle in range(int(self.duration // CYCLE))
                           for offset, action in self.cycle_events(cycle)), key=lambda e: e[0])
        next_sample = 0.0
        progress = 60.0
        while True:
            now = time.monotonic() - started
            if now >= self.duration:
                break
            if schedule and schedule[0][0] <= now:
                schedule.pop(0)[1]()
                continue
            if now >= next_sample:
                self.sample(started)
                next_sample += self.sample_s
            if now >= progress:
                s = self.samples[-1]
                print(f"  {now / 60:.0f} min: {s['sent']} sent, {s['received']} received, "
                      f"RSS {s['rss_kib'] / 1024:.1f} MiB, {s['mbufs_in_use']} mbufs in use", flush=True)
                progress += 60
            wake = min([next_sample, self.duration] + ([schedule[0][0]] if schedule else []))
            time.sleep(max(0.0, min(wake - now, 0.5)))

        self.flows.stop_sending()
        self.flows.wait_all(timeout=5)
        self.flows.wait_quiet(quiet=0.5)
        delta = fwd.settle(before, quiet=0.5)
        deadline = time.monotonic() + 5
        while fwd.stats()["mbufs_in_use"] > idle_mbufs and time.monotonic() < deadline:
            time.sleep(0.1)
        self.sample(started)
        end = fwd.stats()
        pending = fwd.query("/tunnelfwd/pending")["total"]
        kernel = {}
        for ns in namespaces:
            for k, v in kernel_drops(ns).items():
                if v - kernel_before[ns].get(k, 0):
                    kernel[f"{ns}:{k}"] = v - kernel_before[ns].get(k, 0)
        stop_problem = None
        try:
            fwd.assert_clean_stop()
        except AssertionError as e:
            stop_problem = str(e).splitlines()[0]
        return self.verdict(delta, kernel, idle_mbufs, end["mbufs_in_use"], pending, stop_problem)

    # -------------------------------------------------------------------- verdict

    def verdict(self, delta: dict, kernel: dict, idle: int, mbufs: int, pending: int, stop_problem) -> bool:
        flows = self.flows
        sent = sum(flows.sent.values())
        received = sum(flows.distinct.values())
        missing = sent - received
        dropped = {k[len("dropped."):]: v for k, v in delta.items()
                   if k.startswith("dropped.") and k != "dropped.total" and v}
        counted = sum(dropped.values()) + delta["expired"]
        unexplained = missing - counted
        kernel_total = sum(kernel.values())

        warm = [s for s in self.samples if s["t"] >= max(10.0, self.duration * 0.1)]
        quarter = max(1, len(warm) // 4)
        first_q = max(s["rss_kib"] for s in warm[:quarter]) if warm else 0
        last_q = max(s["rss_kib"] for s in warm[-quarter:]) if warm else 0

        checks = [
            ("forwarder ran throughout, stopped cleanly (exit 0, every mbuf back)",
             self.alive_throughout and stop_problem is None, stop_problem or "yes"),
            ("every tunnelctl command succeeded", not self.command_failures,
             "; ".join(self.command_failures[:3]) or f"{sum(self.events.values())} events"),
            ("sent = delivered + counted drops",
             0 <= unexplained <= kernel_total,
             f"sent {sent}, delivered {received}, missing {missing}; forwarder counted {counted} "
             f"({dropped or 'no drop'}, expired {delta['expired']}); kernel counted {kernel_total}"
             + (f" {kernel}" if kernel else "")),
            ("none twice, none out of order", not any(flows.duplicates.values()) and not any(flows.reordered.values())
             and flows.sources_ok, f"duplicates {flows.duplicates}, out of order {flows.reordered}"),
            ("drops only under allowed reasons", set(dropped) <= set(ALLOWED_DROPS),
             f"{dropped}; allowed: " + "; ".join(f"{k} ({why})" for k, why in ALLOWED_DROPS.items())),
            ("the faults happened",
             delta["expired"] > 0 and self.late_answers > 0 and delta["learned"] > 0 and delta["learned_aged"] > 0
             and delta["flushed"] > 0 and self.events.get("tunnels added", 0) > 0,
             f"events {self.events}; late ARP answers {self.late_answers}; misses {delta['misses']}, "
             f"flushed {delta['flushed']}, expired {delta['expired']}; learned {delta['learned']}, "
             f"aged {delta['learned_aged']}"),
            ("RSS flat", warm and last_q - first_q <= self.rss_slack_kib,
             f"max {first_q / 1024:.1f} MiB in the first quarter after warm-up, {last_q / 1024:.1f} MiB in the last "
             f"(slack {self.rss_slack_kib / 1024:g} MiB)"),
            ("mbufs back to idle, pending buffer empty", mbufs <= idle and pending == 0,
             f"mbufs_in_use {mbufs} (idle {idle}), pending {pending}"),
        ]
        self.print_table()
        ok = all(passed for _, passed, _ in checks)
        for name, passed, detail in checks:
            print(f"  {'ok  ' if passed else 'FAIL'} {name}: {detail}")
        return ok

    def print_table(self):
        rows = self.samples
        if len(rows) > 14:
            step = (len(rows) - 1) / 13
            rows = [rows[round(k * step)] for k in range(14)]
        print(f"\n{'s':>7} {'RSS MiB':>8} {'mbufs':>6} {'pending':>7} {'sent':>9} {'received':>9} {'misses':>7} "
              f"{'flushed':>8} {'expired':>7} {'dropped':>7} {'learnt':>6} {'underlay':>8}")
        for s in rows:
            st = s["stats"]
            print(f"{s['t']:>7.1f} {s['rss_kib'] / 1024:>8.1f} {s['mbufs_in_use']:>6} {s['pending_now']:>7} "
                  f"{s['sent']:>9} {s['received']:>9} {st['misses']:>7} {st['flushed']:>8} {st['expired']:>7} "
                  f"{st['dropped']['total']:>7} {st['learned_now']:>6} {s['underlay']:>8}")
        print()


def main() -> int:
    parser = argparse.ArgumentParser(description="Soak run of tunnelfwd: traffic, churn and faults for MINUTES.")
    parser.add_argument("minutes", type=float, help="how long traffic runs (at least 1)")
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between samples (default 2)")
    parser.add_argument("--rss-slack-mib", type=float, default=4.0,
                        help="how much the last quarter's RSS may exceed the first quarter's (default 4)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "soak-latest.json",
                        help="where to write every sample (default bench/results/soak-latest.json)")
    args = parser.parse_args()
    if args.minutes < 1:
        parser.error("MINUTES must be at least 1: a cycle of faults takes 20 s, and the long ARP outage "
                     "comes every second cycle")

    def interrupted(*_):
        raise KeyboardInterrupt
    # SIGTERM (a CI timeout) tears the namespaces down as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="tunnelfwd-soak."))
    soak = Soak(args.minutes, args.sample, args.rss_slack_mib, workdir)
    print(f"soak: {args.minutes:g} min, {REMOTES} remotes, {REMOTES + OTHER_SEGMENTS} tunnels, "
          f"flows to remotes {', '.join(map(str, FLOWS))} at {1 / FLOW_GAP:.0f}/s each; logs in {workdir}", flush=True)
    ok = False
    try:
        ok = soak.run()
    except KeyboardInterrupt:
        print("  FAIL interrupted")
    except Exception as e:  # the verdict of a run that could not finish
        print(f"  FAIL the run did not finish: {e}")
    finally:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"minutes": args.minutes, "events": soak.events, "samples": soak.samples}))
    print(f"soak: {'PASS' if ok else 'FAIL'} ({args.minutes:g} min; samples in {args.json})")
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"soak: forwarder configuration and logs kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
