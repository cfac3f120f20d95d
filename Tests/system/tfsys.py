"""Building blocks of the tunnelfwd system tests: network namespaces, the forwarder
process, its telemetry socket, packet captures and raw frames.

Topology of one test (every name is private to the test's namespaces):

    <tag>-vm0 ns                <tag>-dp ns (tunnelfwd runs here)                 <tag>-rm ns
    eth0 10.42.0.1/24 ==veth== a0 <-tc mirred-> tfa0 (net_tap1, access)
                                                tfu0 (net_tap0, uplink) <-tc mirred-> u0 ==veth== eth0 192.168.50.2/24
                                                                                      vx0 (vxlan 42) 10.42.0.2/24

The forwarder runs in a namespace of its own so that the kernel side of its tap ports
is quiet: IPv6 is disabled there (no router solicitations or MLD reports reach the
access ports) and the taps have no addresses. tc mirred joins each tap to a veth as a
plain wire; a Linux bridge would swallow frames addressed to the tap's own MAC.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("TUNNELFWD_BIN_DIR", str(REPO / ".build" / "release")))
TUNNELFWD = BIN_DIR / "tunnelfwd"
TUNNELCTL = BIN_DIR / "tunnelctl"
RUNTIME_ROOT = Path("/var/run/dpdk")
HUGEPAGE_DIR = Path("/dev/hugepages")
DPDK_TELEMETRY_PY = Path("/usr/bin/dpdk-telemetry.py")

# Addresses of the test topology (they exist only inside the test's namespaces).
UPLINK_IP = "192.168.50.1"
REMOTE_IP = "192.168.50.2"
REMOTE2_IP = "192.168.50.3"
REMOTE_MAC = "02:00:00:00:00:aa"     # the remote namespace's underlay interface
REMOTE2_MAC = "02:00:00:00:00:bb"    # a second remote endpoint (static neighbor only)
VM_IP = "10.42.0.1"
VX_IP = "10.42.0.2"
VX_MAC = "02:00:00:00:42:02"         # the remote's kernel vxlan device
VNI = 42
# Inner destination of synthetic test frames: inside the overlay subnet but nobody's, so
# the remote's kernel (which decapsulates VNI 42) drops them without answering, and no
# reply traffic disturbs the counters.
SILENT_IP = "10.42.0.99"

_counter = itertools.count()


def vm_mac(index: int) -> str:
    return f"02:00:00:00:{0x42 + index:02x}:01"


def unique_tag() -> str:
    """A name unique to this test run and test: 'tfs<pid>x<n>'."""
    return f"tfs{os.getpid()}x{next(_counter)}"


# ----------------------------------------------------------------------------- helpers

class CommandError(AssertionError):
    pass


def run(cmd, *, ns: str | None = None, check: bool = True, timeout: float = 30, input: str | None = None):
    """Runs a command (a list), optionally inside a network namespace; returns the
    CompletedProcess with text stdout/stderr."""
    argv = [str(c) for c in cmd]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns] + argv
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise CommandError(f"command failed (exit {p.returncode}): {' '.join(argv)}\n"
                           f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds
    pass (AssertionError naming `what` and the last value seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last value: {last!r})")
        time.sleep(interval)


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


@contextmanager
def in_netns(name: str):
    """Runs the body (in this thread) inside network namespace `name`: sockets created
    there stay in that namespace afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({name}): {os.strerror(e)}")
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns back: {os.strerror(e)}")
    finally:
        os.close(own)
        os.close(target)


def ipv4_checksum(header: bytes) -> int:
    """The Internet checksum of `header` (0 when a header with its checksum is valid)."""
    if len(header) % 2:
        header += b"\0"
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --------------------------------------------------------------------------- telemetry

class Telemetry:
    """A client of DPDK's telemetry socket, speaking the same protocol as
    dpdk-telemetry.py: SOCK_SEQPACKET, a JSON greeting, then one JSON reply per command."""

    def __init__(self, prefix: str):
        self.path = RUNTIME_ROOT / prefix / "dpdk_telemetry.v2"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(5)
        self.sock.connect(str(self.path))
        self.greeting = json.loads(self.sock.recv(1 << 16).decode())
        self.max_output = int(self.greeting.get("max_output_len", 16384))

    def query(self, command: str):
        """The value of the reply to `command` (None for an unknown command)."""
        self.sock.send(command.encode())
        raw = self.sock.recv(max(self.max_output, 1 << 16))
        if not raw:
            raise ConnectionError(f"{self.path}: closed by the forwarder")
        reply = json.loads(raw.decode())
        return reply[command.split(",")[0]]

    def close(self):
        self.sock.close()


def flatten_delta(after: dict, before: dict) -> dict:
    """Counter differences of two /tunnelfwd/stats replies (totals and dropped.*)."""
    d = {}
    for k, v in after.items():
        if isinstance(v, (int, float)) and isinstance(before.get(k), (int, float)):
            d[k] = v - before[k]
    for k, v in after.get("dropped", {}).items():
        d["dropped." + k] = v - before.get("dropped", {}).get(k, 0)
    return d


# -------------------------------------------------------------------------- namespaces

def _sysctl_quiet(ns: str):
    for scope in ("all", "default"):
        run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"], ns=ns)
    run(["ip", "link", "set", "lo", "up"], ns=ns)


class Topology:
    """Namespaces and veths around one forwarder: `access` VM namespaces (one per access
    port, vm0 with 10.42.0.1/24), the remote namespace with the underlay address
    192.168.50.2/24 and a kernel VXLAN device (VNI 42, port 4789) holding 10.42.0.2/24,
    and the forwarder's own namespace holding the veth ends that get wired to the taps.

    `vm_mtu` is the MTU of the VMs' links, `underlay_mtu` that of the link between the
    uplink and the remote, `vxlan_mtu` that of the remote's vxlan device.

    ports="pcap" gives the forwarder net_pcap ports on the veth ends themselves instead of
    net_tap ports: net_tap takes no MTU above 1504 (its largest frame is 1522 bytes), and
    net_pcap takes any. It has one queue per interface argument, so it serves one worker
    (lcores 0-1): the uplink's second RX queue, the control core's, reads a silent veth,
    and all traffic reaches the worker's. The kernel hands net_pcap what the VMs and the
    remote send before any checksum is filled in when their devices offload it, so
    checksum offload is off on their links."""

    def __init__(self, tag: str, access: int = 1, vm_mtu: int | None = None, ports: str = "tap",
                 underlay_mtu: int | None = None, vxlan_mtu: int | None = None):
        assert ports in ("tap", "pcap"), ports
        self.tag = tag
        self.dp = f"{tag}-dp"
        self.rm = f"{tag}-rm"
        self.vms = [f"{tag}-vm{i}" for i in range(access)]
        self.access_count = access
        self.vm_mtu = vm_mtu
        self.pcap = ports == "pcap"
        self.underlay_mtu = underlay_mtu
        self.vxlan_mtu = vxlan_mtu
        self.namespaces: list[str] = []

    # Port names inside the forwarder's namespace.
    uplink_tap = "tfu0"
    uplink_veth = "u0"
    # net_pcap only: the interface the control core's RX queue reads, where nothing arrives.
    silent_veth = "q0"

    @property
    def uplink_vdev(self) -> str:
        return "net_pcap0" if self.pcap else "net_tap0"

    def access_vdev(self, i: int) -> str:
        return f"net_pcap{i + 1}" if self.pcap else f"net_tap{i + 1}"

    def access_tap(self, i: int) -> str:
        return f"tfa{i}"

    def access_veth(self, i: int) -> str:
        return f"a{i}"

    def vdev_args(self) -> list[str]:
        if self.pcap:
            u = self.uplink_veth
            args = ["--vdev", f"{self.uplink_vdev},rx_iface_in={u},rx_iface_in={self.silent_veth},tx_iface={u},tx_iface={u}"]
            for i in range(self.access_count):
                a = self.access_veth(i)
                args += ["--vdev", f"{self.access_vdev(i)},rx_iface_in={a},tx_iface={a}"]
            return args
        args = ["--vdev", f"{self.uplink_vdev},iface={self.uplink_tap}"]
        for i in range(self.access_count):
            args += ["--vdev", f"{self.access_vdev(i)},iface={self.access_tap(i)}"]
        return args

    def wires(self) -> list[tuple[str, str]]:
        if self.pcap:
            return []
        pairs = [(self.uplink_tap, self.uplink_veth)]
        pairs += [(self.access_tap(i), self.access_veth(i)) for i in range(self.access_count)]
        return pairs

    def build(self):
        for ns in [self.dp, self.rm] + self.vms:
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            _sysctl_quiet(ns)
        self._build_access()
        self._build_remote()
        if self.pcap:
            run(["ip", "-n", self.dp, "link", "add", self.silent_veth, "type", "veth", "peer", "name", f"{self.silent_veth}p"])
            for iface in (self.silent_veth, f"{self.silent_veth}p"):
                run(["ip", "-n", self.dp, "link", "set", iface, "up"])
            for ns in self.vms:
                run(["ethtool", "-K", "eth0", "tx", "off"], ns=ns)
            for iface in ("eth0", "vx0"):
                run(["ethtool", "-K", iface, "tx", "off"], ns=self.rm)
        return self

    def _build_access(self):
        # Access side: one VM namespace per access port.
        for i, vm in enumerate(self.vms):
            run(["ip", "link", "add", self.access_veth(i), "netns", self.dp, "type", "veth",
                 "peer", "name", "eth0", "netns", vm])
            if self.vm_mtu:
                run(["ip", "-n", vm, "link", "set", "eth0", "mtu", self.vm_mtu])
                run(["ip", "-n", self.dp, "link", "set", self.access_veth(i), "mtu", self.vm_mtu])
            run(["ip", "-n", vm, "link", "set", "eth0", "address", vm_mac(i), "up"])
            run(["ip", "-n", self.dp, "link", "set", self.access_veth(i), "up"])
        vm0 = self.vms[0]
        run(["ip", "-n", vm0, "addr", "add", f"{VM_IP}/24", "dev", "eth0"])
        # Static, so that no test depends on ARP across the tunnel for the overlay peer.
        run(["ip", "-n", vm0, "neigh", "add", VX_IP, "lladdr", VX_MAC, "dev", "eth0", "nud", "permanent"])

    def _build_remote(self):
        # Uplink side: the remote endpoint with a real VXLAN device.
        run(["ip", "link", "add", self.uplink_veth, "netns", self.dp, "type", "veth",
             "peer", "name", "eth0", "netns", self.rm])
        if self.underlay_mtu:
            run(["ip", "-n", self.rm, "link", "set", "eth0", "mtu", self.underlay_mtu])
            run(["ip", "-n", self.dp, "link", "set", self.uplink_veth, "mtu", self.underlay_mtu])
        run(["ip", "-n", self.rm, "link", "set", "eth0", "address", REMOTE_MAC, "up"])
        run(["ip", "-n", self.rm, "addr", "add", f"{REMOTE_IP}/24", "dev", "eth0"])
        run(["ip", "-n", self.rm, "link", "add", "vx0", "type", "vxlan", "id", VNI, "dstport", 4789,
             "local", REMOTE_IP, "remote", UPLINK_IP, "dev", "eth0", "nolearning"])
        if self.vxlan_mtu:
            run(["ip", "-n", self.rm, "link", "set", "vx0", "mtu", self.vxlan_mtu])
        run(["ip", "-n", self.rm, "link", "set", "vx0", "address", VX_MAC, "up"])
        run(["ip", "-n", self.rm, "addr", "add", f"{VX_IP}/24", "dev", "vx0"])
        run(["ip", "-n", self.dp, "link", "set", self.uplink_veth, "up"])

    def wire_taps(self, only: list[str] | None = None):
        """Joins each tap (created by the forwarder; or the taps in `only`) to its veth,
        both ways."""
        for tap, veth in self.wires():
            if only is not None and tap not in only:
                continue
            for a, b in ((tap, veth), (veth, tap)):
                run(["tc", "qdisc", "replace", "dev", a, "clsact"], ns=self.dp)
                run(["tc", "filter", "replace", "dev", a, "ingress", "pref", "1", "protocol", "all",
                     "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", b],
                    ns=self.dp)

    def link_mac(self, ns: str, iface: str) -> str:
        out = run(["ip", "-j", "link", "show", iface], ns=ns).stdout
        return json.loads(out)[0]["address"]

    def destroy(self):
        errors = []
        for ns in reversed(self.namespaces):
            p = run(["ip", "netns", "del", ns], check=False)
            if p.returncode != 0 and "No such file" not in p.stderr:
                errors.append(p.stderr.strip())
        self.namespaces.clear()
        return errors

    # Sockets inside the namespaces.

    def raw_socket(self, ns: str, iface: str = "eth0") -> socket.socket:
        with in_netns(ns):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((iface, 0))
        return s

    def udp_socket(self, ns: str, bind: tuple[str, int] | None = None) -> socket.socket:
        with in_netns(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if bind:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                s.bind(bind)
        return s

    def send_frames(self, frames, ns: str | None = None, iface: str = "eth0", gap: float = 0.0005):
        """Sends raw Ethernet frames (bytes) out of `iface` in namespace `ns` (vm0)."""
        s = self.raw_socket(ns or self.vms[0], iface)
        try:
            for f in frames:
                s.send(bytes(f))
                if gap:
                    time.sleep(gap)
        finally:
            s.close()


# --------------------------------------------------------------------------- forwarder

STOPPED_RE = re.compile(r"^tunnelfwd: stopped: workers joined, ports closed, (\d+) mbuf\(s\) not returned to the pool$")


def dpdk_leftovers(prefix: str) -> list[str]:
    found = []
    if (RUNTIME_ROOT / prefix).exists():
        found.append(str(RUNTIME_ROOT / prefix))
    if HUGEPAGE_DIR.is_dir():
        found += [str(p) for p in HUGEPAGE_DIR.glob(f"{prefix}map_*")]
    return found


def remove_dpdk_leftovers(prefix: str):
    """DPDK keeps the runtime folder and the first hugepage file of a prefix after a
    clean exit (a later run with the same prefix reuses them): tests use a new prefix
    each time, so they remove them, or the reserved hugepages would run out."""
    shutil.rmtree(RUNTIME_ROOT / prefix, ignore_errors=True)
    if HUGEPAGE_DIR.is_dir():
        for p in HUGEPAGE_DIR.glob(f"{prefix}map_*"):
            p.unlink(missing_ok=True)


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists and scalars (strings double-quoted)."""
    pad = "  " * indent

    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        return json.dumps(str(v))

    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{pad}{k}: {scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines += body[1:]
            else:
                lines.append(f"{pad}- {scalar(item)}")
        return "\n".join(lines)
    return pad + scalar(value)


class Forwarder:
    """One tunnelfwd process in the topology's forwarder namespace."""

    def __init__(self, topology: Topology, config: dict | str, workdir: Path, *,
                 prefix: str | None = None, lcores: str = "0-1", extra_eal=()):
        self.topology = topology
        self.prefix = prefix or topology.tag
        self.workdir = workdir
        self.config_path = workdir / f"{self.prefix}.yaml"
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        self.config_path.write_text(text)
        self.stdout_path = workdir / f"{self.prefix}.stdout"
        self.stderr_path = workdir / f"{self.prefix}.stderr"
        self.argv = [str(TUNNELFWD), "-l", lcores, "--no-pci", "--file-prefix", self.prefix,
                     *topology.vdev_args(), *extra_eal, "--", "--config", str(self.config_path)]
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._telemetry: Telemetry | None = None

    def start(self, timeout: float = 30, wire: bool = True):
        remove_dpdk_leftovers(self.prefix)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.topology.dp] + self.argv,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        # /tunnelfwd/ports is registered once every port has started.
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"tunnelfwd exited with {self.proc.returncode} while starting\n{self.logs()}")
            try:
                return isinstance(self.telemetry().query("/tunnelfwd/ports"), dict)
            except (OSError, ValueError):
                self._drop_telemetry()
                return False
        wait_until(ready, timeout=timeout, what=f"tunnelfwd {self.prefix} to start", interval=0.1)
        if wire:
            self.topology.wire_taps()
        return self

    # Telemetry.

    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            self._telemetry = Telemetry(self.prefix)
        return self._telemetry

    def _drop_telemetry(self):
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None

    def query(self, command: str):
        return self.telemetry().query(command)

    def resolved(self, *addresses) -> bool:
        """Whether the tunnels' next hops at `addresses` all have a MAC."""
        macs = {t["next_hop"]: t["next_hop_mac"] for t in self.query("/tunnelfwd/tunnels").values()}
        return all(macs.get(a, "unresolved") != "unresolved" for a in addresses)

    def stats(self) -> dict:
        return self.query("/tunnelfwd/stats")

    def ports(self) -> dict:
        return self.query("/tunnelfwd/ports")

    def uplink_mac(self) -> str:
        for p in self.ports().values():
            if p["role"] == "uplink":
                return p["mac"]
        raise AssertionError("no uplink in /tunnelfwd/ports")

    def wait_stats(self, before: dict, condition, *, timeout: float = 10, what: str) -> dict:
        """Polls /tunnelfwd/stats until condition(delta) holds; returns the delta."""
        box = {}

        def check():
            box["delta"] = flatten_delta(self.stats(), before)
            return condition(box["delta"])
        try:
            wait_until(check, timeout=timeout, what=what, interval=0.05)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncounter changes: {nonzero(box.get('delta', {}))}") from None
        return box["delta"]

    def settle(self, before: dict, quiet: float = 0.3, timeout: float = 10) -> dict:
        """Waits until the counters stop moving for `quiet` seconds; returns the delta."""
        last = None
        stable_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delta = flatten_delta(self.stats(), before)
            # Clocks and gauges of the machine, not traffic: they never stop moving.
            key = {k: v for k, v in delta.items() if not k.startswith(("busy_", "cycles", "mbufs", "uptime"))}
            if key != last:
                last = key
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return delta
            time.sleep(0.05)
        return flatten_delta(self.stats(), before)

    # Stopping.

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        self._drop_telemetry()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"tunnelfwd did not stop within {timeout}s of {sig.name}\n{self.logs()}")
        self.returncode = self.proc.returncode
        return self.returncode

    def assert_clean_stop(self, sig=signal.SIGTERM):
        rc = self.stop(sig)
        assert rc == 0, f"tunnelfwd exited with {rc} after {sig.name}\n{self.logs()}"
        lines = [l for l in self.stdout().splitlines() if l.strip()]
        assert lines, f"no output\n{self.logs()}"
        m = STOPPED_RE.match(lines[-1])
        assert m, f"last line is not the 'stopped' line: {lines[-1]!r}\n{self.logs()}"
        assert m.group(1) == "0", f"{m.group(1)} mbuf(s) not returned to the pool\n{self.logs()}"

    def kill(self):
        self._drop_telemetry()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def logs(self) -> str:
        return (f"--- tunnelfwd {' '.join(self.argv)}\n--- config:\n{self.config_path.read_text()}"
                f"--- stdout:\n{self.stdout()}--- stderr:\n{self.stderr()}")


def nonzero(delta: dict) -> dict:
    return {k: v for k, v in delta.items() if v and not k.startswith(("busy_", "cycles", "mbufs"))}


def drops(delta: dict, *, expected=("not_for_us",)) -> dict:
    """Drop counters that moved, except `expected` reasons. By default 'not_for_us' is
    expected: the remote's kernel answers Geneve and NVGRE packets (it has no such
    devices) with ICMP unreachables, which are not tunnel traffic for tunnelfwd."""
    return {k: v for k, v in delta.items()
            if k.startswith("dropped.") and k != "dropped.total" and v and k[len("dropped."):] not in expected}


# ---------------------------------------------------------------------------- captures

class Capture:
    """tcpdump writing a pcap in a namespace; packets are read back with scapy."""

    def __init__(self, ns: str, iface: str, path: Path, bpf: str = ""):
        self.ns, self.iface, self.path, self.bpf = ns, iface, path, bpf
        self.proc: subprocess.Popen | None = None
        self.stderr_text = ""

    def start(self, timeout: float = 10):
        argv = ["ip", "netns", "exec", self.ns, "tcpdump", "-i", self.iface, "-n", "-U",
                "--immediate-mode", "-s", "0", "-Z", "root", "-w", str(self.path)]
        if self.bpf:
            argv += self.bpf.split()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        buf = b""
        while b"listening on" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"tcpdump did not start in {self.ns}: {buf.decode(errors='replace')}")
            r, _, _ = select.select([self.proc.stderr], [], [], remaining)
            if r:
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
        self.stderr_text = buf.decode(errors="replace")
        return self

    def packets(self):
        from scapy.utils import PcapReader
        pkts = []
        try:
            with PcapReader(str(self.path)) as r:
                for p in r:
                    pkts.append(p)
        except (EOFError, OSError, struct.error):
            pass  # a packet still being written: it is read next time
        except Exception as e:  # scapy raises Scapy_Exception on a truncated header
            if "No data could be read" not in str(e) and "truncated" not in str(e).lower():
                raise
        return pkts

    def wait_for(self, count: int, timeout: float = 10, match=None):
        def enough():
            pkts = [p for p in self.packets() if match is None or match(p)]
            return pkts if len(pkts) >= count else None
        try:
            return wait_until(enough, timeout=timeout, what=f"{count} captured packet(s)", interval=0.1)
        except AssertionError:
            got = [p for p in self.packets() if match is None or match(p)]
            raise AssertionError(f"captured {len(got)} matching packet(s), expected {count}: "
                                 f"{[p.summary() for p in got[:10]]}") from None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            try:
                self.stderr_text += self.proc.stderr.read().decode(errors="replace")
            except (OSError, ValueError):
                pass
            self.proc.stderr.close()


# ------------------------------------------------------------------------------ frames

def udp_frame(dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int,
              payload: bytes = b"", vlan: int | None = None, size: int | None = None) -> bytes:
    """An Ethernet/IPv4/UDP frame built with scapy; `size` pads the payload so that the
    frame (without FCS) is exactly `size` bytes."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    l2 = Ether(dst=dst_mac, src=src_mac)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    pkt = l2 / IP(src=src_ip, dst=dst_ip, ttl=64) / UDP(sport=sport, dport=dport) / payload
    raw = bytes(pkt)
    if size is not None:
        assert size >= len(raw), f"frame of {size} bytes cannot hold {len(raw)}"
        pkt = l2 / IP(src=src_ip, dst=dst_ip, ttl=64) / UDP(sport=sport, dport=dport) / (
            payload + b"\xa5" * (size - len(raw)))
        raw = bytes(pkt)
        assert len(raw) == size
    return raw


def tunnel_packet(kind: str, uplink_mac: str, inner: bytes, src: str = REMOTE_IP, vni: int = VNI) -> bytes:
    """`inner` as a remote at `src` sends it to the uplink address in a Geneve (UDP 6081,
    no options, protocol 0x6558), VXLAN (UDP 4789) or NVGRE (GRE with key = VNI << 8,
    protocol 0x6558) packet, from the remote namespace's MAC to `uplink_mac`."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    outer = Ether(dst=uplink_mac, src=REMOTE_MAC) / IP(src=src, dst=UPLINK_IP, flags="DF", ttl=64)
    if kind == "nvgre":
        outer[IP].proto = 47
        return bytes(outer / (struct.pack("!HHI", 0x2000, 0x6558, vni << 8) + inner))
    port, header = {"vxlan": (4789, struct.pack("!II", 0x0800_0000, vni << 8)),
                    "geneve": (6081, struct.pack("!BBHI", 0, 0, 0x6558, vni << 8))}[kind]
    return bytes(outer / UDP(sport=50000, dport=port, chksum=0) / (header + inner))


def arp_frame(op: int, sender_mac: str, sender_ip: str, target_ip: str, *, target_mac: str = "00:00:00:00:00:00",
              eth_src: str | None = None, eth_dst: str = "ff:ff:ff:ff:ff:ff") -> bytes:
    """An Ethernet/ARP frame (op 1 request, 2 reply) packed directly: storms build tens of
    thousands, which scapy takes seconds to. The Ethernet source is the sender MAC unless
    `eth_src` says otherwise (a multicast sender MAC on the wire would be refused by
    bridges before it tested anything)."""
    def mac(text: str) -> bytes:
        return bytes.fromhex(text.replace(":", "").replace("-", ""))
    return (mac(eth_dst) + mac(eth_src or sender_mac) + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, op)
            + mac(sender_mac) + socket.inet_aton(sender_ip) + mac(target_mac) + socket.inet_aton(target_ip))


# What a packet socket's recvfrom() says of a frame this host sent (sll_pkttype).
PACKET_OUTGOING = 4


def parse_arp(frame: bytes) -> tuple[int, str, str, str] | None:
    """(op, sender MAC, sender IP, target IP) of an untagged Ethernet/ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    return op, frame[22:28].hex(":"), socket.inet_ntoa(frame[28:32]), socket.inet_ntoa(frame[38:42])


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    return arp_frame(1, src_mac, src_ip, target_ip)


# ------------------------------------------------------------- several remote endpoints

def remote_ip(i: int) -> str:
    """The underlay address of remote endpoint i (remote_ip(0) == REMOTE_IP)."""
    return f"192.168.50.{2 + i}"


def remote_mac(i: int) -> str:
    """The MAC of remote endpoint i's underlay interface (remote_mac(0) == REMOTE_MAC)."""
    return f"02:00:00:00:00:{0xaa + i:02x}"


def overlay_ip(i: int) -> str:
    """The overlay address of remote i's kernel vxlan device (overlay_ip(0) == VX_IP)."""
    return f"10.42.0.{2 + i}"


def overlay_mac(i: int) -> str:
    """The MAC of remote i's kernel vxlan device (overlay_mac(0) == VX_MAC)."""
    return f"02:00:00:00:42:{2 + i:02x}"


class MultiRemoteTopology(Topology):
    """Like Topology, but with `remotes` remote endpoints behind the uplink, each in a
    namespace of its own (<tag>-r<i>: eth0 with remote_ip(i) and remote_mac(i), a kernel
    vxlan device vx0 of VNI 42 with overlay_ip(i) and overlay_mac(i)). A Linux bridge in
    a switch namespace (<tag>-sw) joins the peer of the uplink veth and the remotes' veths;
    the tap itself is still joined to its veth by tc mirred. vm0 has a permanent neighbor
    entry for every remote's overlay address.

    With `kernel_iface`, a veth pair <kernel_iface>/<kernel_iface>p is made, up, in the
    forwarder's namespace, for kernel_sync (some kernels, sandboxes among them, have no dummy module)."""

    def __init__(self, tag: str, remotes: int = 3, access: int = 1, kernel_iface: str | None = None):
        super().__init__(tag, access=access)
        self.sw = f"{tag}-sw"
        self.remotes = [f"{tag}-r{i}" for i in range(remotes)]
        self.rm = self.remotes[0]
        self.kernel_iface = kernel_iface

    def build(self):
        for ns in [self.dp, self.sw] + self.remotes + self.vms:
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            _sysctl_quiet(ns)
        self._build_access()
        for i in range(1, len(self.remotes)):
            run(["ip", "-n", self.vms[0], "neigh", "replace", overlay_ip(i), "lladdr", overlay_mac(i),
                 "dev", "eth0", "nud", "permanent"])
        run(["ip", "-n", self.sw, "link", "add", "br0", "type", "bridge", "stp_state", "0"])
        run(["ip", "-n", self.sw, "link", "set", "br0", "up"])
        run(["ip", "link", "add", self.uplink_veth, "netns", self.dp, "type", "veth",
             "peer", "name", "uplink", "netns", self.sw])
        run(["ip", "-n", self.sw, "link", "set", "dev", "uplink", "master", "br0", "up"])
        for i, ns in enumerate(self.remotes):
            run(["ip", "link", "add", f"p{i}", "netns", self.sw, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "-n", self.sw, "link", "set", f"p{i}", "master", "br0", "up"])
            run(["ip", "-n", ns, "link", "set", "eth0", "address", remote_mac(i), "up"])
            run(["ip", "-n", ns, "addr", "add", f"{remote_ip(i)}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", VNI, "dstport", 4789,
                 "local", remote_ip(i), "remote", UPLINK_IP, "dev", "eth0", "nolearning"])
            run(["ip", "-n", ns, "link", "set", "vx0", "address", overlay_mac(i), "up"])
            run(["ip", "-n", ns, "addr", "add", f"{overlay_ip(i)}/24", "dev", "vx0"])
        run(["ip", "-n", self.dp, "link", "set", self.uplink_veth, "up"])
        if self.kernel_iface:
            run(["ip", "-n", self.dp, "link", "add", self.kernel_iface, "type", "veth",
                 "peer", "name", f"{self.kernel_iface}p"])
            run(["ip", "-n", self.dp, "link", "set", f"{self.kernel_iface}p", "up"])
            run(["ip", "-n", self.dp, "link", "set", self.kernel_iface, "up"])
        return self

    def kernel_neighbors(self) -> dict[str, dict]:
        """The IPv4 neighbor entries of `kernel_iface` (forwarder's namespace), by address."""
        out = run(["ip", "-4", "-j", "neigh", "show", "dev", self.kernel_iface], ns=self.dp).stdout
        return {e["dst"]: e for e in json.loads(out or "[]")}


# ---------------------------------------------------------------- ARP replies blocked

def block_arp_replies(ns: str):
    """Makes namespace `ns` drop the ARP replies it sends (nftables, arp family)."""
    run(["nft", "add table arp tfblock"], ns=ns)
    run(["nft", "add chain arp tfblock out { type filter hook output priority 0 ; }"], ns=ns)
    run(["nft", "add rule arp tfblock out arp operation reply drop"], ns=ns)


def unblock_arp_replies(ns: str):
    run(["nft", "delete table arp tfblock"], ns=ns)


class ArpReplyGate:
    """Blocks and unblocks the ARP replies that namespace `ns` sends within a millisecond
    or so: one `nft -i` kept running, so that no process has to start in between."""

    def __init__(self, ns: str):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "-i"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._do("add table arp tfgate", "add chain arp tfgate out { type filter hook output priority 0 ; }")

    def _do(self, *commands: str):
        for c in commands:
            self.proc.stdin.write(c + "\n")
        # nft answers the listing after the commands before it: its closing brace means
        # they are in force.
        self.proc.stdin.write("list table arp tfgate\n")
        self.proc.stdin.flush()
        seen = []
        while (line := self.proc.stdout.readline()) != "}\n":
            if not line:
                raise AssertionError(f"nft -i ended: {''.join(seen)}")
            seen.append(line)

    def block(self):
        self._do("add rule arp tfgate out arp operation reply drop")

    def unblock(self):
        self._do("flush chain arp tfgate out")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------- tunnelctl

def tunnelctl(prefix: str, *args, check: bool = True):
    """Runs `tunnelctl --file-prefix PREFIX ARGS...`; returns the CompletedProcess."""
    return run([TUNNELCTL, "--file-prefix", prefix, *args], check=check)


def tunnelctl_json(prefix: str, *args):
    return json.loads(tunnelctl(prefix, *args, "--json").stdout)


def control_request(prefix: str, request: dict, timeout: float = 5) -> dict:
    """Sends one request to the control socket as tunnelctl does, without starting a
    process (milliseconds count in some tests); returns the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(RUNTIME_ROOT / prefix / "tunnelfwd.sock"))
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


# ------------------------------------------------------------- numbered UDP datagrams

class UdpFlows:
    """Numbered UDP datagrams ('seq N') from vm0 to a socket behind the kernel vxlan device
    of each remote in `targets` (indexes for overlay_ip), one flow per target, numbered
    from 0 per flow. A thread per receiver collects what arrives. `sender_ns`, `address`
    (target index -> receiver address) and `source_ip` turn the direction around."""

    def __init__(self, topology: Topology, targets, port: int = 9000, remote_ns=None, *,
                 sender_ns: str | None = None, address=overlay_ip, source_ip: str = VM_IP):
        self.topology = topology
        self.port = port
        self.address = address
        self.source_ip = source_ip
        self.targets = list(targets)
        self.sent = {i: 0 for i in self.targets}
        self.received = {i: [] for i in self.targets}
        self.sources_ok = True
        self._stop = threading.Event()
        self._sending = threading.Event()
        self._sender_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sender = topology.udp_socket(sender_ns or topology.vms[0])
        self.receivers = {}
        self._threads = []
        for i in self.targets:
            ns = remote_ns(i) if remote_ns else getattr(topology, "remotes", [topology.rm])[i]
            s = topology.udp_socket(ns, bind=(address(i), port))
            s.settimeout(0.1)
            self.receivers[i] = s
            t = threading.Thread(target=self._receive, args=(i, s), daemon=True)
            t.start()
            self._threads.append(t)

    def _receive(self, i: int, s: socket.socket):
        while not self._stop.is_set():
            try:
                data, source = s.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if source[0] != self.source_ip:
                self.sources_ok = False
            self._arrived(i, int(data.split()[1]))

    def _arrived(self, i: int, n: int):
        """Datagram number `n` of flow `i` arrived (called by that flow's receiver thread)."""
        self.received[i].append(n)

    def arrived(self, i: int) -> int:
        """How many datagrams of flow `i` have arrived."""
        return len(self.received[i])

    def send_one(self, i: int):
        with self._lock:
            n = self.sent[i]
            self.sender.sendto(f"seq {n:06d} ".encode() + b"x" * 32, (self.address(i), self.port))
            self.sent[i] = n + 1

    def send(self, count: int, targets=None, gap: float = 0.0005):
        """Sends `count` datagrams to each of `targets` (default all), interleaved."""
        for _ in range(count):
            for i in (targets if targets is not None else self.targets):
                self.send_one(i)
            if gap:
                time.sleep(gap)

    def start(self, targets=None, gap: float = 0.001):
        """Sends continuously (one datagram per target every `gap` seconds) until stop_sending()."""
        assert self._sender_thread is None
        chosen = list(targets if targets is not None else self.targets)
        self._sending.set()

        def loop():
            while self._sending.is_set():
                for i in chosen:
                    self.send_one(i)
                time.sleep(gap)
        self._sender_thread = threading.Thread(target=loop, daemon=True)
        self._sender_thread.start()

    def stop_sending(self):
        self._sending.clear()
        if self._sender_thread is not None:
            self._sender_thread.join(5)
            self._sender_thread = None

    def wait_all(self, timeout: float = 10) -> bool:
        """Waits until every flow received as many datagrams as were sent (or timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.arrived(i) >= self.sent[i] for i in self.targets):
                return True
            time.sleep(0.05)
        return False

    def wait_quiet(self, quiet: float = 0.5, timeout: float = 10):
        """Waits until nothing arrives for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now_counts = tuple(self.arrived(i) for i in self.targets)
            if now_counts != last:
                last, since = now_counts, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)

    def problems(self) -> list[str]:
        """Per flow: what is missing, duplicated or out of order (empty when all arrived in order)."""
        out = []
        for i in self.targets:
            got, n = self.received[i], self.sent[i]
            if got != list(range(n)):
                missing = sorted(set(range(n)) - set(got))
                out.append(f"flow to {self.address(i)}: received {len(got)} of {n}, missing {len(missing)} "
                           f"{missing[:10]}{'...' if len(missing) > 10 else ''}, in order: {got == sorted(got)}, "
                           f"duplicates: {len(got) - len(set(got))}")
        if not self.sources_ok:
            out.append(f"a datagram came from another source than {self.source_ip}")
        return out

    def close(self):
        self.stop_sending()
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sender.close()
        for s in self.receivers.values():
            s.close()


# ------------------------------------------------------------------ storms of raw frames

class FrameBlaster:
    """Sends prebuilt raw Ethernet frames out of `iface` in namespace `ns` as fast as one
    Python process can: the frames in order, `rounds` times over (0: until stop()). The
    sending runs in a child process (this file run as a script), so that it has a core
    and a GIL of its own and the test's threads (receivers, counters) keep theirs; the
    raw socket is opened here, in the namespace, and handed to the child."""

    def __init__(self, topology: Topology, ns: str, frames, *, rounds: int = 1, iface: str = "eth0"):
        self.sock = topology.raw_socket(ns, iface)
        self.rounds = rounds
        with tempfile.NamedTemporaryFile(prefix="tfblast", delete=False) as f:
            for frame in frames:
                f.write(struct.pack("!H", len(frame)) + bytes(frame))
            self.path = f.name
        self.proc: subprocess.Popen | None = None
        self.report: dict | None = None

    def start(self) -> "FrameBlaster":
        fd = self.sock.fileno()
        self.proc = subprocess.Popen([sys.executable, __file__, "blast", str(fd), self.path, str(self.rounds)],
                                     pass_fds=[fd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        return self

    def _collect(self, timeout: float):
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0 or not out.strip():
            raise AssertionError(f"frame blaster failed (exit {self.proc.returncode}): {err.strip()}")
        self.report = json.loads(out)

    def wait(self, timeout: float = 60) -> dict:
        """Waits for the last round; returns {'sent', 'failed', 'seconds'}."""
        if self.report is None:
            self._collect(timeout)
        return self.report

    def stop(self) -> dict:
        """Stops sending now; returns what was sent, as wait() does."""
        if self.report is None and self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self._collect(10)
        return self.report

    @property
    def rate(self) -> float:
        """Frames per second the child sent."""
        r = self.report
        return r["sent"] / r["seconds"] if r and r["seconds"] > 0 else 0.0

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        Path(self.path).unlink(missing_ok=True)


def _blast(fd: int, path: str, rounds: int):
    """The child of FrameBlaster: sends the length-prefixed frames of `path` on socket
    `fd` until `rounds` are done or SIGTERM; prints {'sent', 'failed', 'seconds'}. A send
    the device refuses (ENOBUFS) is counted as failed, not retried."""
    data = Path(path).read_bytes()
    frames, i = [], 0
    while i < len(data):
        n = struct.unpack_from("!H", data, i)[0]
        frames.append(data[i + 2:i + 2 + n])
        i += 2 + n
    sock = socket.socket(fileno=fd)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    sent = failed = done = 0
    started = time.monotonic()
    send = sock.send
    while not stopping.is_set() and (rounds == 0 or done < rounds):
        for frame in frames:
            try:
                send(frame)
                sent += 1
            except OSError:
                failed += 1
            if stopping.is_set():
                break
        done += 1
    print(json.dumps({"sent": sent, "failed": failed, "seconds": time.monotonic() - started}))


# -------------------------------------------------------------------- ARP replies late

class DelayedArpReplies:
    """Makes namespace `ns` answer ARP requests for `address` `delay` seconds late: its
    kernel's own replies are dropped (block_arp_replies) and a thread sends each reply,
    from `mac`, when it is due. tc netem would delay them in the kernel, but not every
    kernel has sch_netem (the development VM's has not)."""

    def __init__(self, topology: Topology, ns: str, address: str, mac: str, delay: float, iface: str = "eth0"):
        self.ns, self.address, self.mac, self.delay = ns, address, mac, delay
        self.sock = topology.raw_socket(ns, iface)
        self.answered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "DelayedArpReplies":
        block_arp_replies(self.ns)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        due: list[tuple[float, int, bytes]] = []
        order = itertools.count()
        while not self._stop.is_set():
            timeout = min(0.05, max(0.0, due[0][0] - time.monotonic())) if due else 0.05
            if select.select([self.sock], [], [], timeout)[0]:
                frame, source = self.sock.recvfrom(2048)
                arp = parse_arp(frame) if source[2] != PACKET_OUTGOING else None
                if arp and arp[0] == 1 and arp[3] == self.address:
                    _, asker_mac, asker_ip, _ = arp
                    reply = arp_frame(2, self.mac, self.address, asker_ip, target_mac=asker_mac, eth_dst=asker_mac)
                    heapq.heappush(due, (time.monotonic() + self.delay, next(order), reply))
            while due and due[0][0] <= time.monotonic():
                self.sock.send(heapq.heappop(due)[2])
                self.answered += 1

    def stop(self):
        """Back to the kernel's own, immediate replies (requests still waiting are dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
            unblock_arp_replies(self.ns)
        self.sock.close()


# ----------------------------------------------------------------------- kernel drops

def kernel_drops(ns: str) -> dict[str, int]:
    """What the kernel of namespace `ns` counted as dropped, by counter: every interface's
    rx and tx drops, and the UDP datagrams it could not deliver, to a full receive buffer
    or for a bad checksum (InErrors counts both; /proc/net/snmp is per namespace)."""
    found = {}
    for link in json.loads(run(["ip", "-s", "-j", "link", "show"], ns=ns).stdout or "[]"):
        stats = link.get("stats64", {})
        for direction in ("rx", "tx"):
            n = stats.get(direction, {}).get("dropped", 0)
            if n:
                found[f"{link['ifname']}.{direction}_dropped"] = n
    lines = [l.split() for l in run(["cat", "/proc/net/snmp"], ns=ns).stdout.splitlines() if l.startswith("Udp:")]
    if len(lines) == 2:
        udp = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))
        if udp.get("InErrors"):
            found["udp.InErrors"] = udp["InErrors"]
    return found


# ------------------------------------------------------------------------- BGP EVPN lab

EVPN_HOST_SH = REPO / "deploy" / "evpn-host.sh"
FRR_ROOT = Path("/run/tunnelfwd-evpn")     # evpn-host.sh's FRR directories, one per namespace
EVPN_VXLAN = f"vx{VNI}"
EVPN_PORT = f"tfevpn{VNI}"
EVPN_BRIDGE = f"br{VNI}"
UNDERLAY_PREFIX = "192.168.50.0/24"
BGP_DP_IP = "10.255.0.1"                  # the BGP link between the two FRR instances
BGP_RM_IP = "10.255.0.2"
ZERO_MAC = "00:00:00:00:00:00"
PEER_VM2_MAC = "02:00:00:00:42:03"         # the peer's silent VM, for MAC moves
PEER_VM2_IP = "10.42.0.3"


class EvpnTopology(Topology):
    """Two EVPN hosts. The forwarder's namespace <tag>-dp is Topology's (net_tap uplink and
    access ports wired to VM namespaces vm0, vm1, ...) plus what deploy/evpn-host.sh makes
    for tunnelfwd's evpn section: br42 with vx42 (local UPLINK_IP) and the local port
    tfevpn42, a blackhole route for the underlay, and FRR. The peer host <tag>-rm is a
    kernel VTEP: eth0 REMOTE_IP on the wire to the uplink, br42 with vx42 (local
    REMOTE_IP), FRR, and two VM namespaces behind access veths: <tag>-pv1 (VX_IP, VX_MAC)
    and <tag>-pv2 (PEER_VM2_IP, PEER_VM2_MAC, silent until a test moves a MAC there).
    The two FRR instances speak iBGP l2vpn evpn over a veth bgp0 of their own
    (BGP_DP_IP, BGP_RM_IP). vm0 resolves the peer's VMs by ARP across the overlay, as a
    VM of a fleet does.

    FRR's daemons are killed and their directories removed by destroy(), whatever
    happened before."""

    def __init__(self, tag: str, access: int = 2):
        super().__init__(tag, access=access)
        self.pvs = [f"{tag}-pv1", f"{tag}-pv2"]

    def build(self):
        for ns in [self.dp, self.rm] + self.vms + self.pvs:
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            _sysctl_quiet(ns)
        self._build_access()
        run(["ip", "-n", self.vms[0], "neigh", "del", VX_IP, "dev", "eth0"])
        run(["ip", "link", "add", self.uplink_veth, "netns", self.dp, "type", "veth",
             "peer", "name", "eth0", "netns", self.rm])
        run(["ip", "-n", self.rm, "link", "set", "eth0", "address", REMOTE_MAC, "up"])
        run(["ip", "-n", self.rm, "addr", "add", f"{REMOTE_IP}/24", "dev", "eth0"])
        run(["ip", "-n", self.dp, "link", "set", self.uplink_veth, "up"])
        run(["ip", "link", "add", "bgp0", "netns", self.dp, "type", "veth", "peer", "name", "bgp0", "netns", self.rm])
        for ns, address in ((self.dp, BGP_DP_IP), (self.rm, BGP_RM_IP)):
            run(["ip", "-n", ns, "addr", "add", f"{address}/30", "dev", "bgp0"])
            run(["ip", "-n", ns, "link", "set", "bgp0", "up"])
        self.evpn_host(self.dp, "up", "--vni", VNI, "--local", UPLINK_IP, "--underlay", UNDERLAY_PREFIX,
                       "--peer", BGP_RM_IP)
        self.evpn_host(self.rm, "up", "--vni", VNI, "--local", REMOTE_IP, "--peer", BGP_DP_IP)
        for i, (pv, mac, address) in enumerate(zip(self.pvs, (VX_MAC, PEER_VM2_MAC), (VX_IP, PEER_VM2_IP))):
            port = f"acc{i + 1}"
            run(["ip", "link", "add", port, "netns", self.rm, "type", "veth", "peer", "name", "eth0", "netns", pv])
            run(["ip", "-n", self.rm, "link", "set", port, "master", EVPN_BRIDGE, "up"])
            run(["ip", "-n", pv, "link", "set", "eth0", "address", mac, "up"])
            run(["ip", "-n", pv, "addr", "add", f"{address}/24", "dev", "eth0"])
        self.wait_established()
        return self

    def frr_dir(self, ns: str) -> Path:
        return FRR_ROOT / ns

    def evpn_host(self, ns: str, action: str, *args, timeout: float = 60):
        return run([EVPN_HOST_SH, action, "--netns", ns, *args], timeout=timeout)

    def restart_frr(self, ns: str):
        """Stops bgpd and zebra of `ns` (SIGTERM, as a service stop) and starts them again."""
        return self.evpn_host(ns, "restart")

    def vtysh(self, ns: str, command: str):
        out = run(["vtysh", "--vty_socket", self.frr_dir(ns), "-c", command]).stdout
        return json.loads(out) if command.endswith(" json") else out

    def bgp_state(self, ns: str) -> dict[str, str]:
        """Peer address -> BGP state of the l2vpn evpn sessions of `ns`'s FRR."""
        peers = self.vtysh(ns, "show bgp l2vpn evpn summary json").get("peers", {})
        return {address: p.get("state", "?") for address, p in peers.items()}

    def fdb(self, ns: str, dev: str) -> list[dict]:
        """The FDB entries on `dev` in `ns` (`bridge -j fdb show`)."""
        return json.loads(run(["bridge", "-j", "fdb", "show", "dev", dev], ns=ns).stdout or "[]")

    def flood_vteps(self, ns: str) -> set[str]:
        """The VTEPs of vx42's flood list in `ns`: zero-MAC `self` entries (EVPN type-3)."""
        return {e["dst"] for e in self.fdb(ns, EVPN_VXLAN) if e["mac"] == ZERO_MAC and "dst" in e}

    def remote_macs(self, ns: str) -> dict[str, str]:
        """MAC -> VTEP of the remote MACs FRR installed on vx42 in `ns` (EVPN type-2): an
        `extern_learn` bridge entry on vx42 and a `self` entry with the destination. A
        `self` entry alone is no remote MAC (FRR leaves stale ones behind)."""
        entries = self.fdb(ns, EVPN_VXLAN)
        bridged = {e["mac"] for e in entries if e.get("master") == EVPN_BRIDGE and "extern_learn" in e.get("flags", [])}
        return {e["mac"]: e["dst"] for e in entries
                if e["mac"] in bridged and "dst" in e and "extern_learn" in e.get("flags", [])}

    def written_macs(self, ns: str = None) -> dict[str, str]:
        """MAC -> state of the non-permanent bridge entries on the local port tfevpn42
        (tunnelfwd's local MACs are `static`)."""
        return {e["mac"]: e.get("state", "") for e in self.fdb(ns or self.dp, EVPN_PORT)
                if e.get("master") == EVPN_BRIDGE and e.get("state") != "permanent"}

    def wait_established(self, timeout: float = 30):
        """Both sessions Established and each side's vx42 flooding to the other's VTEP."""
        def ready():
            states = (self.bgp_state(self.dp), self.bgp_state(self.rm))
            if states != ({BGP_RM_IP: "Established"}, {BGP_DP_IP: "Established"}):
                return None
            return self.flood_vteps(self.dp) == {REMOTE_IP} and self.flood_vteps(self.rm) == {UPLINK_IP}
        try:
            wait_until(ready, timeout=timeout, what="both EVPN sessions Established and the type-3 entries installed",
                       interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.frr_report()}") from None

    def frr_report(self) -> str:
        """What FRR and the kernels hold on both hosts, for failure messages."""
        lines = []
        for ns in (self.dp, self.rm):
            for command in ("show bgp l2vpn evpn summary", "show evpn vni", f"show evpn mac vni {VNI}"):
                p = run(["vtysh", "--vty_socket", self.frr_dir(ns), "-c", command], check=False)
                lines.append(f"--- {ns}: {command}\n{p.stdout}{p.stderr}")
            for dev in (EVPN_VXLAN, EVPN_PORT):
                p = run(["bridge", "fdb", "show", "dev", dev], ns=ns, check=False)
                lines.append(f"--- {ns}: bridge fdb show dev {dev}\n{p.stdout}{p.stderr}")
        return "\n".join(lines)

    def destroy(self):
        errors = [e for ns in (self.dp, self.rm) for e in kill_frr(self.frr_dir(ns))]
        return errors + super().destroy()


def kill_frr(folder: Path) -> list[str]:
    """SIGKILLs the FRR daemons whose pid files are in `folder`, waits for them to go,
    and removes the folder; returns what went wrong."""
    errors = []
    for name in ("bgpd", "zebra"):
        try:
            pid = int((folder / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        try:
            wait_until(lambda: process_gone(pid), timeout=5, what=f"{name} (pid {pid}) to exit")
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(folder, ignore_errors=True)
    return errors


def process_gone(pid: int) -> bool:
    """Whether process `pid` has exited: gone, or a zombie (the daemons are orphans, and
    whoever adopts them may take seconds to reap them)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def sweep_stale_frr(pattern: re.Pattern, dead) -> None:
    """Kills the FRR instances of earlier test runs that died (folders under FRR_ROOT
    named after their namespaces, whose pytest pid `dead` says is gone)."""
    if FRR_ROOT.is_dir():
        for folder in FRR_ROOT.iterdir():
            m = pattern.match(folder.name)
            if m and dead(m.group(2)):
                kill_frr(folder)


class TimedUdpFlows(UdpFlows):
    """UdpFlows that also note when each datagram arrived, for the largest gap in a flow."""

    def __init__(self, topology: Topology, targets, *args, **kw):
        targets = list(targets)
        # Before the receiver threads start.
        self.arrival_times: dict[int, list[float]] = {i: [] for i in targets}
        super().__init__(topology, targets, *args, **kw)

    def _arrived(self, i: int, n: int):
        self.arrival_times[i].append(time.monotonic())
        super()._arrived(i, n)

    def largest_gap(self, i: int) -> float:
        times = self.arrival_times[i]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "blast":
    _blast(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
