#!/usr/bin/python3
"""EVPN at scale (bench/evpn-scale.sh; see bench/README.md, "bench/evpn-scale.sh").

One forwarder (lcores 0-1) in the system tests' topology (Tests/system/tfsys.py: a VM
behind the access port, a kernel VXLAN peer at 192.168.50.2 behind the uplink) with an
evpn segment on vx42/tfevpn42, made in the forwarder's namespace by
deploy/evpn-host.sh --no-frr. No FRR runs: this script writes the kernel FDB itself, in
the forms FRR's zebra writes (one rtnetlink message per entry, over a raw socket):

    type-3, per VTEP   00:00:00:00:00:00 dev vx42 dst VTEP self permanent
                       (NTF_SELF, NUD_NOARP|NUD_PERMANENT, NLM_F_APPEND)
    type-2, per MAC    MAC dev vx42 dst VTEP self master extern_learn
                       (NTF_SELF|NTF_MASTER|NTF_EXT_LEARNED, NUD_REACHABLE: the kernel
                       makes a vxlan entry with the destination and a bridge entry)

1. The VTEPs' type-3 entries and the type-2 entry of the peer's overlay MAC: tunnelfwd
   makes a tunnel per VTEP (the extra VTEPs are addresses of the peer, so all resolve)
   and forwards the peer's MAC to its tunnel.
2. Numbered UDP datagrams flow from the VM to the peer through that tunnel.
3. --macs remote MACs, spread over the VTEPs, written as fast as the kernel takes them.
   Timed: from the last write to the moment /tunnelfwd/evpn says "remote_macs" holds
   them all (polled without pause). Then `tunnelctl forwarding show` must list each with
   origin evpn, toward its VTEP's tunnel.
4. The same MACs deleted (RTM_DELNEIGH, as zebra withdraws them), timed the same way.
5. The flow stops; every datagram must have arrived, once and in order.

PASS needs: both times within --target-ms, every MAC in the forwarding table, no
datagram lost, no drop counted, and a clean stop.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "system"))

from tfsys import (  # noqa: E402
    EVPN_HOST_SH, EVPN_PORT, EVPN_VXLAN, REMOTE_IP, UPLINK_IP, VNI, VX_MAC, Forwarder, Topology, UdpFlows,
    drops, in_netns, nonzero, remove_dpdk_leftovers, run, tunnelctl_json, unique_tag, wait_until,
)

RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
NLM_F_REQUEST, NLM_F_REPLACE, NLM_F_CREATE, NLM_F_APPEND = 0x1, 0x100, 0x400, 0x800
NLMSG_ERROR = 2
AF_BRIDGE = 7
NDA_DST, NDA_LLADDR = 1, 2
NUD_REACHABLE, NUD_NOARP, NUD_PERMANENT = 0x02, 0x40, 0x80
NTF_SELF, NTF_MASTER, NTF_EXT_LEARNED = 0x02, 0x04, 0x10


def vtep(i: int) -> str:
    """VTEP 0 is the peer's own address; the others are extra addresses of the peer."""
    return REMOTE_IP if i == 0 else f"192.168.50.{10 + i}"


def remote_mac(n: int) -> str:
    return "02:ee:" + ":".join(f"{b:02x}" for b in n.to_bytes(4, "big"))


def attribute(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def neigh_message(kind: int, flags: int, seq: int, ifindex: int, state: int, ntf: int, mac: str, dst: str) -> bytes:
    body = (struct.pack("=BBHiHBB", AF_BRIDGE, 0, 0, ifindex, state, ntf, 0)
            + attribute(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
            + attribute(NDA_DST, socket.inet_aton(dst)))
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body


class FdbWriter:
    """A NETLINK_ROUTE socket in the forwarder's namespace that writes FDB entries in
    batches of messages per sendto; the kernel handles each message within the call,
    so when the last sendto returns the last entry is in the FDB. No acks are asked
    for: the kernel answers only failures, read after each batch."""

    def __init__(self, ns: str, batch_bytes: int = 1 << 16):
        with in_netns(ns):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            self.ifindex = socket.if_nametoindex(EVPN_VXLAN)
        self.sock.bind((0, 0))
        self.sock.setblocking(False)
        self.batch_bytes = batch_bytes
        self.seq = 0

    def write(self, messages) -> float:
        """Sends the messages; returns time.monotonic() when the last one was handled."""
        batch = bytearray()
        for m in messages:
            if len(batch) + len(m) > self.batch_bytes:
                self._send(batch)
                batch = bytearray()
            batch += m
        if batch:
            self._send(batch)
        done = time.monotonic()
        self._check()
        return done

    def _send(self, batch: bytes):
        self.sock.send(bytes(batch))
        self._check()

    def _check(self):
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", data, offset + 16)[0]
                    if error:
                        raise OSError(error, f"the kernel refused an FDB write on {EVPN_VXLAN}")
                offset += (length + 3) & ~3

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def type3(self, address: str) -> bytes:
        return neigh_message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, self.next_seq(), self.ifindex,
                             NUD_NOARP | NUD_PERMANENT, NTF_SELF, "00:00:00:00:00:00", address)

    def type2(self, kind: int, mac: str, address: str) -> bytes:
        flags = NLM_F_CREATE | NLM_F_REPLACE if kind == RTM_NEWNEIGH else 0
        return neigh_message(kind, flags, self.next_seq(), self.ifindex, NUD_REACHABLE,
                             NTF_SELF | NTF_MASTER | NTF_EXT_LEARNED, mac, address)

    def close(self):
        self.sock.close()


def wait_remote_macs(fwd: Forwarder, count: int, timeout: float) -> tuple[float, int]:
    """Polls /tunnelfwd/evpn without pause until remote_macs == count; returns
    (time.monotonic() then, polls made)."""
    polls = 0
    deadline = time.monotonic() + timeout
    while True:
        n = fwd.query("/tunnelfwd/evpn")["remote_macs"]
        now = time.monotonic()
        polls += 1
        if n == count:
            return now, polls
        if now > deadline:
            raise AssertionError(f"/tunnelfwd/evpn remote_macs is {n} {timeout:g} s after the last write, not {count}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--macs", type=int, default=10_000, help="remote MACs written at once (10000)")
    ap.add_argument("--vteps", type=int, default=4, help="VTEPs they are spread over (4)")
    ap.add_argument("--target-ms", type=float, default=100, help="PASS bound on each time (100)")
    ap.add_argument("--flow-gap", type=float, default=0.002, help="seconds between datagrams of the flow (0.002)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "evpn-scale-latest.json",
                    help="where the results go")
    args = ap.parse_args()
    if not 1 <= args.vteps <= 200:
        ap.error("--vteps: 1 to 200")

    workdir = Path(tempfile.mkdtemp(prefix="tunnelfwd-evpn-scale."))
    topo = Topology(unique_tag()).build()
    fwd = flows = writer = None
    vteps = [vtep(i) for i in range(args.vteps)]
    checks: list[tuple[str, bool]] = []
    results: dict = {"macs": args.macs, "vteps": args.vteps, "target_ms": args.target_ms}
    try:
        for address in vteps[1:]:
            run(["ip", "-n", topo.rm, "addr", "add", f"{address}/24", "dev", "eth0"])
        run([EVPN_HOST_SH, "up", "--netns", topo.dp, "--vni", VNI, "--local", UPLINK_IP, "--no-frr",
             "--dir", workdir / "evpn-host"])
        config = {
            "uplink": {"port": topo.uplink_vdev, "address": f"{UPLINK_IP}/24"},
            "access": [{"port": topo.access_vdev(0), "segment": VNI}],
            "tunnels": [],
            "evpn": {"segments": [{"vni": VNI, "vxlan_interface": EVPN_VXLAN, "local_port": EVPN_PORT}]},
        }
        fwd = Forwarder(topo, config, workdir).start()
        writer = FdbWriter(topo.dp)

        # 1. The VTEPs and the peer's MAC, as FRR installs them before any traffic.
        writer.write([writer.type3(a) for a in vteps] + [writer.type2(RTM_NEWNEIGH, VX_MAC, REMOTE_IP)])
        names = {f"evpn-{VNI}-{a}" for a in vteps}
        wait_until(lambda: {t["name"] for t in fwd.query("/tunnelfwd/tunnels").values()
                            if t["next_hop_mac"] != "unresolved"} >= names,
                   timeout=10, what=f"tunnels {sorted(names)} resolved")
        wait_remote_macs(fwd, 1, timeout=10)

        # 2. The flow.
        flows = UdpFlows(topo, [0])
        before = fwd.stats()
        flows.start(gap=args.flow_gap)
        time.sleep(1)

        # 3. The burst.
        macs = {remote_mac(n): vteps[n % len(vteps)] for n in range(args.macs)}
        messages = [writer.type2(RTM_NEWNEIGH, mac, dst) for mac, dst in macs.items()]
        started = time.monotonic()
        last_write = writer.write(messages)
        seen, polls = wait_remote_macs(fwd, args.macs + 1, timeout=30)
        results["add"] = {"write_ms": (last_write - started) * 1e3, "after_last_write_ms": (seen - last_write) * 1e3,
                          "polls": polls}
        rows = tunnelctl_json(fwd.prefix, "forwarding", "show", "--segment", str(VNI))["forwarding"]
        wrong = [r for r in rows if r["mac"] in macs and (r.get("origin"), r["tunnel"]) != ("evpn", f"evpn-{VNI}-{macs[r['mac']]}")]
        listed = sum(1 for r in rows if r["mac"] in macs)
        checks.append((f"all {args.macs} MACs in the forwarding table with origin evpn toward their VTEP's tunnel "
                       f"({listed} listed, {len(wrong)} wrong{': ' + str(wrong[:3]) if wrong else ''})",
                       listed == args.macs and not wrong))

        # 4. The withdrawal.
        messages = [writer.type2(RTM_DELNEIGH, mac, dst) for mac, dst in macs.items()]
        started = time.monotonic()
        last_write = writer.write(messages)
        seen, polls = wait_remote_macs(fwd, 1, timeout=30)
        results["delete"] = {"write_ms": (last_write - started) * 1e3, "after_last_write_ms": (seen - last_write) * 1e3,
                             "polls": polls}

        # 5. The flow's account.
        time.sleep(1)
        flows.stop_sending()
        arrived = flows.wait_all(timeout=10)
        delta = fwd.settle(before)
        results["flow"] = {"sent": flows.sent[0], "received": flows.arrived(0), "problems": flows.problems()}
        results["counters"] = nonzero(delta)
        checks.append((f"flow: {flows.arrived(0)} of {flows.sent[0]} datagrams arrived in order",
                       arrived and not flows.problems()))
        checks.append((f"no drops counted {drops(delta) or ''}", not drops(delta)))
        for what in ("add", "delete"):
            ms = results[what]["after_last_write_ms"]
            checks.append((f"{what}: last MAC {'in' if what == 'add' else 'out of'} tunnelfwd {ms:.1f} ms after the "
                           f"last kernel write (target {args.target_ms:g} ms)", ms <= args.target_ms))
        flows.close()
        flows = None
        rc = fwd.stop()
        checks.append((f"clean stop (exit {rc})", rc == 0))
    finally:
        if flows is not None:
            flows.close()
        if writer is not None:
            writer.close()
        if fwd is not None:
            fwd.kill()
            remove_dpdk_leftovers(fwd.prefix)
        run([EVPN_HOST_SH, "down", "--netns", topo.dp, "--dir", workdir / "evpn-host"], check=False)
        topo.destroy()

    for what in ("add", "delete"):
        r = results[what]
        print(f"evpn-scale: {what:6} {args.macs} MACs over {args.vteps} VTEPs: written in {r['write_ms']:.1f} ms, "
              f"all {'in' if what == 'add' else 'out of'} tunnelfwd {r['after_last_write_ms']:.1f} ms after the last write "
              f"({r['polls']} polls)")
    for line, ok in checks:
        print(f"evpn-scale: {'ok  ' if ok else 'FAIL'} {line}")
    passed = all(ok for _, ok in checks)
    results["pass"] = passed
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"evpn-scale: {'PASS' if passed else 'FAIL'} (results in {args.json}; logs in {workdir})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
