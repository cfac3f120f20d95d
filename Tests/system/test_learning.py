"""Learning inner MACs from decapsulated traffic: a MAC that answers from behind
a tunnel is then sent to that tunnel alone, instead of to the segment's flood list, until
it falls silent for the ageing time."""

import pytest

from tfsys import (REMOTE2_IP, REMOTE2_MAC, REMOTE_IP, REMOTE_MAC, VM_IP, VNI, VX_IP, VX_MAC, drops, nonzero, run,
                   tunnel_packet, tunnelctl, tunnelctl_json, udp_frame)


def ping(topo, count: int, interval: float):
    p = run(["ping", "-c", str(count), "-i", str(interval), "-W", "2", VX_IP], ns=topo.vms[0], check=False)
    return f"{count} received" in p.stdout, p.stdout


def flooding_config(config_for, topo, learning: dict) -> dict:
    """Tunnels t1 (to the kernel peer) and t2 (to a silent remote), both in the flood
    list; no static forwarding entry."""
    return config_for(
        topo,
        tunnels=[{"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": VNI},
                 {"name": "t2", "type": "vxlan", "remote": REMOTE2_IP, "vni": VNI}],
        forwarding=[],
        flood=[{"segment": VNI, "tunnels": ["t1", "t2"]}],
        neighbors=[{"address": REMOTE_IP, "mac": REMOTE_MAC}, {"address": REMOTE2_IP, "mac": REMOTE2_MAC}],
        learning=learning)


def test_remote_mac_is_learnt_then_unicast_then_aged_out(make_topology, start_forwarder, config_for):
    """No static entry for the kernel vxlan peer's MAC and two tunnels in the flood list
    (t2's remote is silent): before learning every frame to the peer is copied to both;
    once a reply has come back through t1, frames go to t1 only."""
    topo = make_topology()
    config = flooding_config(config_for, topo, learning={"aging_s": 2})
    fwd = start_forwarder(topo, config)
    assert fwd.stats()["learned_now"] == 0

    before = fwd.stats()
    ok, out = ping(topo, 3, 0.2)
    learnt = fwd.settle(before)
    assert ok, f"{out}\ncounters {nonzero(learnt)}"
    # The VM's ARP request went to both tunnels; the peer's replies taught us its MAC.
    assert learnt["flood_copies"] >= 1, nonzero(learnt)
    assert learnt["learning_reports"] >= 1 and learnt["learned"] == 1, nonzero(learnt)
    now = fwd.stats()
    assert now["learned_now"] == 1, f"{nonzero(learnt)} {[(k, v) for k, v in now.items() if 'learn' in k]}"
    rows = tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"]
    assert [(r["segment"], r["mac"], r["tunnel"], r["origin"]) for r in rows] == [(VNI, VX_MAC, "t1", "learnt")], rows
    assert rows[0]["lastSeenMs"] < 2000, rows
    assert "learnt" in tunnelctl(fwd.prefix, "forwarding", "show", "--segment", str(VNI)).stdout
    assert tunnelctl_json(fwd.prefix, "forwarding", "show", "--segment", str(VNI + 1))["forwarding"] == []

    before = fwd.stats()
    ok, out = ping(topo, 20, 0.05)
    unicast = fwd.settle(before)
    assert ok, f"{out}\ncounters {nonzero(unicast)}"
    assert unicast["encapsulated"] >= 20 and unicast["decapsulated"] >= 20, nonzero(unicast)
    assert unicast["flood_copies"] == 0, f"frames to a learnt MAC were flooded: {nonzero(unicast)}"
    assert unicast["learned"] == 0 and unicast["learned_moves"] == 0, nonzero(unicast)
    assert not drops(unicast), nonzero(unicast)

    # Silent for longer than aging_s (2 s; checked once a second): forgotten.
    aged = fwd.wait_stats(before, lambda d: d.get("learned_aged", 0) >= 1, timeout=8, what="the learnt MAC to age out")
    assert fwd.stats()["learned_now"] == 0, nonzero(aged)
    assert tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"] == []

    before = fwd.stats()
    ok, out = ping(topo, 1, 0.2)
    flooded = fwd.settle(before)
    assert ok, f"{out}\ncounters {nonzero(flooded)}"
    assert flooded["flood_copies"] >= 1, f"a forgotten MAC must be flooded to again: {nonzero(flooded)}"


def test_learning_off_keeps_flooding(make_topology, start_forwarder, config_for):
    topo = make_topology()
    config = flooding_config(config_for, topo, learning={"enabled": False})
    fwd = start_forwarder(topo, config)
    before = fwd.stats()
    ok, out = ping(topo, 5, 0.1)
    delta = fwd.settle(before)
    assert ok, f"{out}\ncounters {nonzero(delta)}"
    assert delta["learned"] == 0 and delta["learning_reports"] == 0, nonzero(delta)
    # Every frame to the peer (ARP request, five echo requests) is copied to t2 as well.
    assert delta["flood_copies"] >= 6, nonzero(delta)


@pytest.mark.parametrize("kind", ["geneve", "nvgre"])
def test_geneve_and_nvgre_packets_are_decapsulated_and_teach_their_source(kind, make_topology, start_forwarder,
                                                                         config_for):
    """The kernel here has no geneve or gretap device, so the remote namespace sends
    scapy-built tunnel packets: each reaches the VM's socket, and its inner source MAC is
    learnt behind the tunnel of that format (not behind t1, the VXLAN tunnel to the same
    remote)."""
    topo = make_topology()
    config = config_for(
        topo,
        tunnels=[{"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": VNI},
                 {"name": "t-" + kind, "type": kind, "remote": REMOTE_IP, "vni": VNI}],
        forwarding=[], flood=[{"segment": VNI, "tunnels": ["t1"]}])
    fwd = start_forwarder(topo, config)
    receiver = topo.udp_socket(topo.vms[0], bind=(VM_IP, 9100))
    receiver.settimeout(2)
    inner_mac = "02:00:00:00:77:01"
    frames = [tunnel_packet(kind, fwd.uplink_mac(), udp_frame(topo.link_mac(topo.vms[0], "eth0"), inner_mac,
                                                              "10.42.0.77", VM_IP, 40000 + i, 9100, f"{kind} {i}".encode()))
              for i in range(5)]
    before = fwd.stats()
    try:
        topo.send_frames(frames, ns=topo.rm)
        received = sorted(receiver.recvfrom(2048)[0].decode() for _ in frames)
    finally:
        receiver.close()
    delta = fwd.settle(before)
    assert received == [f"{kind} {i}" for i in range(5)], nonzero(delta)
    assert delta["decapsulated"] == 5 and delta["learned"] == 1 and not drops(delta), nonzero(delta)
    rows = tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"]
    assert [(r["mac"], r["tunnel"], r["origin"]) for r in rows] == [(inner_mac, "t-" + kind, "learnt")], rows


def test_learnt_table_is_bounded(make_topology, start_forwarder, config_for):
    """A remote that sends from 1 500 inner MACs into a table of 1 000: 1 000 are learnt,
    the rest counted as learned_table_full, every frame still delivered, all of them gone
    with their tunnel, and the stop is clean (the fixture checks every mbuf came back)."""
    topo = make_topology()
    config = config_for(topo, forwarding=[], learning={"max_entries": 1000})
    fwd = start_forwarder(topo, config)
    vm_mac = topo.link_mac(topo.vms[0], "eth0")
    inner = udp_frame(vm_mac, "02:00:00:00:00:00", "10.42.0.77", VM_IP, 40000, 9, b"x")
    count = 1500
    # The inner source MAC is bytes 6..11 of the inner frame: patched per frame.
    frames = [tunnel_packet("vxlan", fwd.uplink_mac(), inner[:6] + bytes([2, 0x55, 0, 0, i >> 8, i & 0xFF]) + inner[12:])
              for i in range(count)]
    before = fwd.stats()
    topo.send_frames(frames, ns=topo.rm, gap=0.0002)
    delta = fwd.settle(before)
    assert delta["decapsulated"] == count and not drops(delta), nonzero(delta)
    assert delta["learned"] == 1000, nonzero(delta)
    assert delta["learned_table_full"] >= count - 1000, nonzero(delta)
    assert fwd.stats()["learned_now"] == 1000
    rows = tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"]
    assert len(rows) == 1000 and all(r["origin"] == "learnt" and r["tunnel"] == "t1" for r in rows), rows[:3]
    # Deleting the tunnel forgets what was learnt behind it, and the gauge follows.
    assert "with 1000 forwarding entries" in tunnelctl(fwd.prefix, "tunnel", "del", "t1").stdout
    assert fwd.stats()["learned_now"] == 0
    assert tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"] == []
