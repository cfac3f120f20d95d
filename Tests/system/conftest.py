"""Fixtures of the tunnelfwd system tests. Run as root with Debian's pytest:

    sudo /usr/bin/python3 -m pytest Tests/system

Missing prerequisites (not root, no hugepages, no binaries, no tools) make every test
fail with the reason: these tests never skip. The binaries are taken from
.build/release/, or from $TUNNELFWD_BIN_DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tfsys  # noqa: E402
from tfsys import (  # noqa: E402
    REMOTE_IP, REMOTE_MAC, UPLINK_IP, VNI, VX_MAC, Capture, FrameBlaster, Forwarder, MultiRemoteTopology, Topology,
    UdpFlows, overlay_mac, remote_ip,
)

MIN_FREE_HUGEPAGES = 64  # one forwarder with the default pool needs about 30 pages of 2 MiB


def _preflight_problems() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root: the system tests create network namespaces and run DPDK "
                        "(run: sudo Tests/run.sh, or sudo /usr/bin/python3 -m pytest Tests/system)")
    for binary in (tfsys.TUNNELFWD, tfsys.TUNNELCTL):
        if not os.access(binary, os.X_OK):
            problems.append(f"missing binary {binary}: build it with 'swift build -c release' "
                            f"(or point TUNNELFWD_BIN_DIR at the folder holding tunnelfwd and tunnelctl)")
    for tool in ("ip", "tc", "tcpdump", "tshark", "arping", "sysctl", "runuser", "ethtool"):
        if shutil.which(tool) is None:
            problems.append(f"missing tool '{tool}': run 'sudo deploy/install-deps.sh'")
    if not tfsys.DPDK_TELEMETRY_PY.exists():
        problems.append(f"missing {tfsys.DPDK_TELEMETRY_PY} (Debian package dpdk-dev): run 'sudo deploy/install-deps.sh'")
    try:
        import scapy  # noqa: F401
        from scapy.contrib.geneve import GENEVE  # noqa: F401
    except ImportError as e:
        problems.append(f"scapy is not importable by {sys.executable} ({e}): run the tests with /usr/bin/python3 "
                        "after 'sudo deploy/install-deps.sh' (python3-scapy)")
    mounts = Path("/proc/mounts").read_text()
    if not re.search(r"\s/dev/hugepages\s+hugetlbfs\s", mounts):
        problems.append("hugetlbfs is not mounted at /dev/hugepages: run 'sudo Hugepages/setup.sh'")
    meminfo = Path("/proc/meminfo").read_text()
    free = int(re.search(r"HugePages_Free:\s+(\d+)", meminfo).group(1))
    if free < MIN_FREE_HUGEPAGES:
        problems.append(f"only {free} free hugepages (need {MIN_FREE_HUGEPAGES}): run 'sudo Hugepages/setup.sh' "
                        "or stop other DPDK processes")
    return problems


def _sweep_stale():
    """Removes namespaces, FRR instances and DPDK files left by an earlier run of this
    suite that died (their names carry the pid of the pytest process that made them)."""
    def dead(pid: str) -> bool:
        return not Path(f"/proc/{pid}").exists()

    pattern = re.compile(r"^(tfs(\d+)x\d+)")
    tfsys.sweep_stale_frr(pattern, dead)
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = pattern.match(name)
        if m and dead(m.group(2)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    for folder in (tfsys.RUNTIME_ROOT, tfsys.HUGEPAGE_DIR):
        if folder.is_dir():
            for entry in folder.iterdir():
                m = pattern.match(entry.name)
                if m and dead(m.group(2)):
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def preflight():
    problems = _preflight_problems()
    if problems:
        pytest.fail("system tests cannot run:\n  - " + "\n  - ".join(problems), pytrace=False)
    _sweep_stale()
    yield


@pytest.fixture
def tag():
    return tfsys.unique_tag()


@pytest.fixture
def make_topology(tag):
    """make_topology(access=1, vm_mtu=None, ports="tap", underlay_mtu=None, vxlan_mtu=None)
    -> a built Topology; torn down after the test.
    make_topology(remotes=N, kernel_iface=None) -> a MultiRemoteTopology with N remote
    endpoints behind a bridge (and a veth for kernel_sync)."""
    made: list[Topology] = []

    def make(access: int = 1, vm_mtu: int | None = None, remotes: int | None = None,
             kernel_iface: str | None = None, **kw) -> Topology:
        name = f"{tag}" if not made else f"{tag}n{len(made)}"
        if remotes is None:
            t = Topology(name, access=access, vm_mtu=vm_mtu, **kw)
        else:
            t = MultiRemoteTopology(name, remotes=remotes, access=access, kernel_iface=kernel_iface)
        made.append(t)
        return t.build()

    yield make
    for t in made:
        t.destroy()


@pytest.fixture
def start_forwarder(tmp_path):
    """start_forwarder(topology, config, **kw) -> a running Forwarder, wired to the
    topology. After the test it is stopped with SIGTERM, and the stop must be clean
    (exit 0, every mbuf returned); its DPDK runtime files are removed."""
    started: list[Forwarder] = []

    def start(topology: Topology, config, wire: bool = True, **kw) -> Forwarder:
        f = Forwarder(topology, config, tmp_path, **kw)
        started.append(f)
        return f.start(wire=wire)

    yield start
    failures = []
    for f in started:
        try:
            if f.returncode is None:
                f.assert_clean_stop()
        except AssertionError as e:
            failures.append(str(e))
        finally:
            f.kill()
            tfsys.remove_dpdk_leftovers(f.prefix)
    if failures:
        pytest.fail("forwarder did not stop cleanly:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture
def capture(tmp_path):
    """capture(ns, iface='eth0', bpf='') -> a started tcpdump Capture; stopped after the test."""
    caps: list[Capture] = []

    def start(ns: str, iface: str = "eth0", bpf: str = "") -> Capture:
        c = Capture(ns, iface, tmp_path / f"cap{len(caps)}.pcap", bpf)
        caps.append(c)
        return c.start()

    yield start
    for c in caps:
        c.stop()


def base_config(topology: Topology, **sections) -> dict:
    """The demo configuration for `topology`: one VXLAN tunnel t1 to the remote (VNI 42),
    the remote's vxlan MAC forwarded to it, flood list [t1], static neighbor for the
    remote. Keyword arguments replace whole sections."""
    cfg = {
        "uplink": {"port": topology.uplink_vdev, "address": f"{UPLINK_IP}/24"},
        "access": [{"port": topology.access_vdev(0), "segment": VNI}],
        "tunnels": [{"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": VNI}],
        "forwarding": [{"segment": VNI, "mac": VX_MAC, "tunnel": "t1"}],
        "flood": [{"segment": VNI, "tunnels": ["t1"]}],
        "neighbors": [{"address": REMOTE_IP, "mac": REMOTE_MAC}],
    }
    for key, value in sections.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def config_for():
    return base_config


def multi_remote_config(topology: Topology, remotes: int = 3, **sections) -> dict:
    """The configuration for a MultiRemoteTopology: VXLAN tunnel t<i> (VNI 42) to every
    remote i, each remote's vxlan MAC forwarded to its tunnel, all of them in the flood
    list, and no static neighbor. Keyword arguments replace whole sections."""
    defaults = {
        "tunnels": [{"name": f"t{i}", "type": "vxlan", "remote": remote_ip(i), "vni": VNI} for i in range(remotes)],
        "forwarding": [{"segment": VNI, "mac": overlay_mac(i), "tunnel": f"t{i}"} for i in range(remotes)],
        "flood": [{"segment": VNI, "tunnels": [f"t{i}" for i in range(remotes)]}],
        "neighbors": [],
    }
    return base_config(topology, **{**defaults, **sections})


@pytest.fixture
def multi_config_for():
    return multi_remote_config


@pytest.fixture
def udp_flows():
    """udp_flows(topology, targets, port=9000) -> UdpFlows (numbered datagrams from vm0 to
    receivers behind the remotes' vxlan devices); closed after the test."""
    made: list[UdpFlows] = []

    def make(topology: Topology, targets, port: int = 9000) -> UdpFlows:
        f = UdpFlows(topology, targets, port=port)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture
def blaster():
    """blaster(topology, ns, frames, rounds=1, iface='eth0') -> a FrameBlaster, not yet
    started; killed and closed after the test."""
    made: list[FrameBlaster] = []

    def make(topology: Topology, ns: str, frames, rounds: int = 1, iface: str = "eth0") -> FrameBlaster:
        b = FrameBlaster(topology, ns, frames, rounds=rounds, iface=iface)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
