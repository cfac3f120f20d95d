"""Kernel neighbor sync (part of mechanism 1, proactive resolution): resolved tunnel
neighbors are written to the kernel's neighbor table of `kernel_sync.interface` (in the
forwarder's network namespace, where its netlink socket lives) as externally learnt
entries; only tunnel neighbors, removed again when their tunnel goes and at a clean
stop. Nothing waits for the kernel: a refused update is logged and counted."""

import time

from tfsys import (
    UPLINK_IP, Forwarder, remote_ip, remote_mac, remove_dpdk_leftovers, run, tunnelctl,
    tunnelctl_json, wait_until,
)

IFACE = "ks0"


def _synced(topo, expected: dict):
    entries = topo.kernel_neighbors()
    macs = {dst: e.get("lladdr") for dst, e in entries.items()}
    return entries if macs == expected else None


def _underlay(fwd) -> dict:
    reply = tunnelctl_json(fwd.prefix, "neighbor", "show", "--all")
    return {row["address"]: row for row in reply["underlay"]}


def test_tunnel_neighbors_are_written_to_the_kernel_and_removed(make_topology, start_forwarder, multi_config_for):
    topo = make_topology(remotes=3, kernel_iface=IFACE)
    assert topo.kernel_neighbors() == {}
    fwd = start_forwarder(topo, multi_config_for(topo, kernel_sync={"interface": IFACE}))
    expected = {remote_ip(i): remote_mac(i) for i in range(3)}
    try:
        entries = wait_until(lambda: _synced(topo, expected), timeout=5,
                             what=f"exactly the tunnel neighbors {expected} on {IFACE}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nkernel: {topo.kernel_neighbors()}\n"
                             f"forwarder: {tunnelctl(fwd.prefix, 'neighbor', 'show').stdout}") from None
    for dst, e in entries.items():
        # ip -j shows the flag as a key ("extern_learn": null); the text output as a word.
        assert "extern_learn" in e or "extern_learn" in e.get("flags", []), f"{dst} not flagged extern_learn: {e}"
    text = run(["ip", "-4", "neigh", "show", "dev", IFACE], ns=topo.dp).stdout
    assert all("extern_learn" in line for line in text.splitlines() if line.strip()), text

    # Only tunnel neighbors are written: an address the forwarder learns from an ARP
    # request (in its underlay table) but that no tunnel uses stays out of the kernel.
    other = "192.168.50.77"
    run(["ip", "-n", topo.remotes[0], "addr", "add", f"{other}/24", "dev", "eth0"])
    run(["arping", "-c", "1", "-w", "2", "-I", "eth0", "-s", other, UPLINK_IP], ns=topo.remotes[0], check=False)
    wait_until(lambda: other in _underlay(fwd), timeout=3, what=f"{other} learnt in the underlay table")
    assert _synced(topo, expected), f"kernel table changed: {topo.kernel_neighbors()}"

    # A remote changes its MAC: after a flush the kernel holds the new one.
    moved = "02:00:00:00:01:ab"
    run(["ip", "-n", topo.remotes[1], "link", "set", "eth0", "address", moved])
    tunnelctl(fwd.prefix, "neighbor", "flush")
    expected[remote_ip(1)] = moved
    wait_until(lambda: _synced(topo, expected), timeout=3, what=f"{remote_ip(1)} at {moved} on {IFACE}")

    p = tunnelctl(fwd.prefix, "tunnel", "del", "t2")
    assert "t2 deleted" in p.stdout, p.stdout
    del expected[remote_ip(2)]
    wait_until(lambda: _synced(topo, expected), timeout=3, what=f"{remote_ip(2)} removed from {IFACE}")

    fwd.assert_clean_stop()
    left = topo.kernel_neighbors()
    assert left == {}, f"entries left on {IFACE} after a clean stop: {left}"


def test_kernel_sync_interface_must_exist(make_topology, multi_config_for, tmp_path):
    """kernel_sync names an interface absent from the forwarder's namespace: exit 1 with
    one line naming the field, last on stderr."""
    topo = make_topology(remotes=1)
    fwd = Forwarder(topo, multi_config_for(topo, remotes=1, kernel_sync={"interface": "nosuch0"}), tmp_path)
    try:
        p = run(["ip", "netns", "exec", topo.dp] + fwd.argv, check=False, timeout=60)
    finally:
        remove_dpdk_leftovers(fwd.prefix)
    own = [l for l in p.stderr.splitlines() if l.startswith("tunnelfwd:")]
    assert p.returncode == 1 and len(own) == 1 and p.stderr.strip().splitlines()[-1] == own[0], p.stderr
    assert "kernel_sync.interface" in own[0] and "nosuch0" in own[0], own[0]


def test_refused_updates_are_logged_and_counted(make_topology, start_forwarder, multi_config_for):
    """The interface goes away under the forwarder: the kernel refuses the removal that
    `tunnel del` sends, and the ones of a clean stop. Each refusal is one line with its
    reason and counted in kernel_sync_errors; nothing waits for it (tunnelctl returns, ARP
    is answered, the stop is clean and prompt)."""
    topo = make_topology(remotes=3, kernel_iface=IFACE)
    fwd = start_forwarder(topo, multi_config_for(topo, kernel_sync={"interface": IFACE}))
    expected = {remote_ip(i): remote_mac(i) for i in range(3)}
    wait_until(lambda: _synced(topo, expected), timeout=5, what=f"the tunnel neighbors on {IFACE}")
    run(["ip", "link", "del", IFACE], ns=topo.dp)
    before = fwd.stats()

    p = tunnelctl(fwd.prefix, "tunnel", "del", "t2")
    assert "t2 deleted" in p.stdout, p.stdout
    delta = fwd.wait_stats(before, lambda d: d["kernel_sync_errors"] == 1, timeout=3, what="one refusal counted")
    assert delta["kernel_sync_errors"] == 1, delta
    refusals = [line for line in fwd.stderr().splitlines() if "kernel_sync: the kernel refused" in line]
    assert refusals == [f"tunnelfwd: kernel_sync: the kernel refused to remove {remote_ip(2)} on {IFACE}: No such device"], refusals
    p = run(["arping", "-c", "1", "-w", "2", "-I", "eth0", UPLINK_IP], ns=topo.remotes[0], check=False)
    assert "Received 1 response(s)" in p.stdout, p.stdout

    stopping = time.monotonic()
    fwd.assert_clean_stop()
    took = time.monotonic() - stopping
    assert took < 5, f"the stop took {took:.1f} s"
    refusals = [line for line in fwd.stderr().splitlines() if "kernel_sync: the kernel refused" in line]
    assert sorted(refusals[1:]) == [f"tunnelfwd: kernel_sync: the kernel refused to remove {remote_ip(i)} on {IFACE}: "
                                    "No such device" for i in range(2)], refusals
