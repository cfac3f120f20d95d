"""Observability: DPDK's own telemetry client, tunnelctl, and the socket's permissions."""

import json
import os
import signal
import stat
import subprocess

import pytest

from tfsys import (
    DPDK_TELEMETRY_PY, REMOTE_IP, REMOTE_MAC, RUNTIME_ROOT, SILENT_IP, TUNNELCTL, TUNNELFWD, VM_IP, VX_MAC, Telemetry,
    remove_dpdk_leftovers, run, udp_frame, unique_tag, vm_mac, wait_until,
)

# The drop reasons every build reports (later ones may add more).
DROP_REASONS = {"no_neighbor", "no_tunnel", "malformed", "mtu", "tx_full", "no_mbuf", "no_headroom",
                "vlan_mismatch", "control_ring_full", "not_for_us", "pending_full", "total"}
TOTALS = {"rx", "tx", "encapsulated", "flood_copies", "misses", "cycles_per_packet", "mbufs_in_use", "mbufs_total",
          "uptime_us"}


def dpdk_telemetry(prefix, *commands):
    """Runs Debian's /usr/bin/dpdk-telemetry.py with commands on stdin; returns the
    replies (one JSON object per command)."""
    p = run(["/usr/bin/python3", DPDK_TELEMETRY_PY, "-f", prefix], input="".join(c + "\n" for c in commands))
    replies = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(replies) == len(commands), f"dpdk-telemetry.py printed:\n{p.stdout}\n{p.stderr}"
    return [r[c.split(",")[0]] for r, c in zip(replies, commands)]


def send_some(topo, n=20):
    topo.send_frames([udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 44000 + i % 4, 9, size=100) for i in range(n)] +
                     [udp_frame("02:00:00:00:77:77", vm_mac(0), VM_IP, SILENT_IP, 44100, 9, size=100)])


def test_dpdk_telemetry_client_reads_forwarder_commands(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    before = fwd.stats()
    send_some(topo)
    fwd.wait_stats(before, lambda d: d["encapsulated"] >= 21, what="21 encapsulated packets")

    stats, tunnels, ports = dpdk_telemetry(fwd.prefix, "/tunnelfwd/stats", "/tunnelfwd/tunnels", "/tunnelfwd/ports")
    assert TOTALS <= stats.keys(), sorted(stats)
    assert DROP_REASONS <= set(stats["dropped"]), f"missing drop reasons: {DROP_REASONS - set(stats['dropped'])}"
    assert stats["encapsulated"] >= 21 and stats["mbufs_total"] > stats["mbufs_in_use"] > 0, stats
    assert set(stats["per_core"]) == {"0", "1"}, "per_core must be keyed by lcore id (control 0, worker 1)"
    # Microseconds since the workers started: it runs between two replies.
    assert 0 < before["uptime_us"] < stats["uptime_us"], (before["uptime_us"], stats["uptime_us"])
    for counter in ("rx", "tx", "encapsulated", "flood_copies"):
        assert sum(c[counter] for c in stats["per_core"].values()) == stats[counter], counter
    for reason in stats["dropped"]:
        assert sum(c["dropped"][reason] for c in stats["per_core"].values()) == stats["dropped"][reason], reason
    assert stats["per_core"]["1"]["encapsulated"] == stats["encapsulated"], "the worker (lcore 1) encapsulates"
    assert stats["dropped"]["total"] == sum(v for k, v in stats["dropped"].items() if k != "total")

    assert tunnels == {"t1": {"name": "t1", "origin": "static", "type": "vxlan", "remote": REMOTE_IP, "vni": 42,
                              "dst_port": 4789, "next_hop": REMOTE_IP, "next_hop_mac": REMOTE_MAC}}, tunnels
    roles = {p["name"]: p for p in ports.values()}
    assert roles[topo.uplink_vdev]["role"] == "uplink" and roles[topo.access_vdev(0)]["role"] == "access"
    assert roles[topo.access_vdev(0)]["segment"] == 42
    assert roles[topo.uplink_vdev]["mac"] == topo.link_mac(topo.dp, topo.uplink_tap)
    assert roles[topo.access_vdev(0)]["mac"] == topo.link_mac(topo.dp, topo.access_tap(0))

    # DPDK's standard per-port commands answer beside the forwarder's.
    access_id = next(k for k, v in ports.items() if v["role"] == "access")
    (ethstats,) = dpdk_telemetry(fwd.prefix, f"/ethdev/stats,{access_id}")
    assert ethstats["ipackets"] >= 21, ethstats


def test_tunnelctl_stats_and_ports(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    before = fwd.stats()
    send_some(topo)
    fwd.wait_stats(before, lambda d: d["encapsulated"] >= 21, what="21 encapsulated packets")

    text = run([TUNNELCTL, "stats", "--file-prefix", fwd.prefix]).stdout
    for needle in ("total:", "lcore 0:", "lcore 1:", "encapsulated", "dropped:", "no_neighbor"):
        assert needle in text, f"{needle!r} missing from 'tunnelctl stats':\n{text}"
    stats = json.loads(run([TUNNELCTL, "stats", "--file-prefix", fwd.prefix, "--json"]).stdout)
    assert stats["encapsulated"] >= 21 and set(stats["per_core"]) == {"0", "1"}
    assert DROP_REASONS <= set(stats["dropped"])

    text = run([TUNNELCTL, "ports", "--file-prefix", fwd.prefix]).stdout
    assert "uplink" in text and "access" in text and "ipackets" in text, text
    ports = json.loads(run([TUNNELCTL, "ports", "--file-prefix", fwd.prefix, "--json"]).stdout)
    by_role = {p["role"]: p for p in ports.values()}
    assert by_role["access"]["stats"]["ipackets"] >= 21, by_role
    assert by_role["uplink"]["stats"]["opackets"] >= 21, by_role
    assert by_role["uplink"]["mac"] == fwd.uplink_mac()

    # A prefix with no forwarder: non-zero exit and an error that names the socket.
    p = run([TUNNELCTL, "stats", "--file-prefix", fwd.prefix + "-none"], check=False)
    assert p.returncode != 0
    assert "cannot connect" in p.stderr and fwd.prefix + "-none" in p.stderr, p.stderr


def test_tunnelctl_accepts_file_prefix_before_the_subcommand(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    p = run([TUNNELCTL, "--file-prefix", fwd.prefix, "stats", "--json"], check=False)
    assert p.returncode == 0, p.stderr
    assert "encapsulated" in json.loads(p.stdout)


def test_telemetry_socket_is_owner_only(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    folder = RUNTIME_ROOT / fwd.prefix
    sock = folder / "dpdk_telemetry.v2"
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    # DPDK creates the socket itself with the umask's mode (0755 here); what keeps
    # others out is the runtime folder (and /var/run/dpdk) being 0700 and root's.
    for path in (RUNTIME_ROOT, folder):
        st = os.stat(path)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) & 0o077 == 0, (
            f"{path} is {oct(stat.S_IMODE(st.st_mode))} owned by uid {st.st_uid}: other users can reach the socket")

    # And for real: an unprivileged user cannot connect.
    probe = ("import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
             "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n print('denied')\n"
             "else:\n print('connected')\n")
    p = run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, str(sock)], check=False)
    assert p.stdout.strip() == "denied", f"user nobody: {p.stdout} {p.stderr}"


def test_many_lcores_stats_name_them_and_each_has_its_own_command(tmp_path):
    """With 20 workers (all on one CPU: --lcores maps them) the per-core counters would
    overflow DPDK's 16 KiB reply, which would silently drop them: /tunnelfwd/stats then
    lists the lcores without per_core, /tunnelfwd/core,N gives each one's counters, and
    tunnelctl stats prints all of them. net_null ports, no namespace needed."""
    prefix = "tfmany" + unique_tag()
    config = tmp_path / "many.yaml"
    config.write_text(
        "uplink: { port: net_null0, address: 10.0.0.1/16 }\n"
        "access: [ { port: net_null1, segment: 100 } ]\n"
        "pending: { per_core: 256 }\n"
        "dataplane: { rx_descriptors: 64, tx_descriptors: 64, extra_mbufs: 0 }\n")
    argv = [str(TUNNELFWD), "--lcores", "0@0,(1-20)@1", "--no-pci", "-m", "512", "--file-prefix", prefix,
            "--vdev", "net_null0,no-rx=1", "--vdev", "net_null1,no-rx=1", "--", "--config", str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: (RUNTIME_ROOT / prefix / "dpdk_telemetry.v2").exists() or proc.poll() is not None,
                   timeout=30, what="the telemetry socket")
        assert proc.poll() is None, proc.stdout.read().decode()
        t = Telemetry(prefix)
        try:
            wait_until(lambda: t.query("/tunnelfwd/ports") is not None, timeout=30, what="ports started")
            stats = t.query("/tunnelfwd/stats")
            assert stats["lcores"] == list(range(21)) and "per_core" not in stats, sorted(stats)
            core = t.query("/tunnelfwd/core,20")
            assert core["rx"] == 0 and core["dropped"]["total"] == 0 and "busy_cycles" in core, core
            assert t.query("/tunnelfwd/core,21") is None
        finally:
            t.close()
        out = run([str(TUNNELCTL), "stats", "--file-prefix", prefix]).stdout
        assert all(f"lcore {i}:" in out for i in range(21)), out
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
        remove_dpdk_leftovers(prefix)
    assert proc.returncode == 0 and output.rstrip().endswith("0 mbuf(s) not returned to the pool"), output
