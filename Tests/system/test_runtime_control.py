"""Runtime control with tunnelctl while traffic runs, its refusals, ARP security
(unsolicited replies create no entry), and the telemetry of the resolver and the
pending buffer."""

import time

import pytest

from tfsys import (
    REMOTE_IP, REMOTE_MAC, UPLINK_IP, VM_IP, VNI, VX_MAC, block_arp_replies, drops, nonzero, overlay_mac,
    remote_ip, remote_mac, tunnelctl, tunnelctl_json, udp_frame, unblock_arp_replies, vm_mac, wait_until,
)


# ------------------------------------------------------------------- changes under traffic

def test_tunnel_added_at_runtime_while_traffic_runs(make_topology, start_forwarder, multi_config_for, udp_flows):
    """Tunnels t0 and t1 carry traffic; t2 and its forwarding entry are added with
    tunnelctl meanwhile. Its next hop is resolved at once, its first datagrams arrive,
    all in order, and the other two flows lose nothing."""
    topo = make_topology(remotes=3)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=2))
    wait_until(lambda: fwd.resolved(remote_ip(0), remote_ip(1)), timeout=5, what="t0 and t1 resolved")
    flows = udp_flows(topo, [0, 1, 2])
    before = fwd.stats()
    flows.start(targets=[0, 1], gap=0.002)
    p = tunnelctl(fwd.prefix, "tunnel", "add", "t2", "--type", "vxlan", "--remote", remote_ip(2), "--vni", str(VNI))
    assert p.stdout.startswith(f"tunnel t2 added: vxlan to {remote_ip(2)} vni {VNI}, next hop {remote_ip(2)}"), p.stdout
    p = tunnelctl(fwd.prefix, "forwarding", "add", "--segment", str(VNI), "--mac", overlay_mac(2), "--tunnel", "t2")
    assert p.stdout.strip() == f"segment {VNI}: {overlay_mac(2)} -> tunnel t2", p.stdout
    statics = [(r["mac"], r["tunnel"]) for r in tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"] if r["origin"] == "static"]
    assert statics == [(overlay_mac(i), f"t{i}") for i in range(3)], statics
    flows.send(100, targets=[2], gap=0.002)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert flows.sent[0] >= 100 and flows.sent[1] >= 100, flows.sent
    assert delta["expired"] == 0 and delta["pending_full"] == 0 and not drops(delta), nonzero(delta)
    assert delta["buffered"] == delta["flushed"], nonzero(delta)
    t2 = fwd.query("/tunnelfwd/tunnels")["t2"]
    assert t2["remote"] == remote_ip(2) and t2["next_hop_mac"] == remote_mac(2), t2


# ---------------------------------------------------------------------------- refusals

REFUSED = [
    # (arguments, text the one-line error must contain)
    (["tunnel", "del", "nosuch"], "no tunnel named 'nosuch'"),
    (["forwarding", "add", "--segment", "42", "--mac", "02:00:00:00:42:99", "--tunnel", "nosuch"],
     "no tunnel named 'nosuch'"),
    (["tunnel", "add", "t1", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42"], "'t1' already exists"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.300", "--vni", "42"], "remote: '192.168.50.300'"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "10.9.9.9", "--vni", "42"], "10.9.9.9 is not on-link"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", UPLINK_IP, "--vni", "42"], "remote:"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "16777216"], "vni: 16777216"),
    (["tunnel", "add", "tx", "--type", "geneve", "--remote", "192.168.50.3", "--vni", "42", "--dst-port", "4789"],
     "dst_port: dst_port 4789"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", REMOTE_IP, "--vni", "42"], "duplicates tunnel 't1'"),
    (["tunnel", "add", "tx", "--type", "foo", "--remote", "192.168.50.3", "--vni", "42"], "type: unknown tunnel type 'foo'"),
    (["tunnel", "add", "bad/name", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42"], "name:"),
    (["forwarding", "add", "--segment", "43", "--mac", "02:00:00:00:42:99", "--tunnel", "t1"], "not segment 43"),
    (["forwarding", "add", "--segment", "42", "--mac", "zz", "--tunnel", "t1"], "mac: 'zz'"),
    (["forwarding", "add", "--segment", "42", "--mac", VX_MAC, "--tunnel", "t1"], "already forwards"),
    (["forwarding", "del", "--segment", "42", "--mac", "02:00:00:00:42:99"], "no forwarding entry"),
    # Values the configuration file refuses, refused in its words.
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42", "--dst-port", "0"],
     "dst_port: 0 is out of range (1..65535)"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42", "--ttl", "256"],
     "ttl: 256 is out of range (1..255)"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "-1"],
     "vni: -1 is out of range (0..16777215)"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42", "--df", "maybe"],
     "df: expected true or false, got 'maybe'"),
    (["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "42", "--flow-id", "3"],
     "flow_id: flow_id 3 is only allowed for nvgre, not vxlan"),
    (["bogus"], "unknown subcommand 'bogus' (expected one of: stats, ports, tunnel, forwarding, flood, neighbor, pending)"),
    (["tunnel", "bogus"], "unknown subcommand 'bogus' of 'tunnel' (expected one of: show, add, del)"),
]


def test_refused_commands_leave_the_forwarder_unchanged(make_topology, start_forwarder, config_for, udp_flows):
    """Each bad command: exit 1, nothing on stdout, one line 'tunnelctl: ...' on stderr
    naming what is wrong; the tunnels, the tunnel neighbors and the forwarding are as
    before (datagrams still reach the peer)."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    tunnels = fwd.query("/tunnelfwd/tunnels")
    neighbors = tunnelctl_json(fwd.prefix, "neighbor", "show")["neighbors"]
    problems = []
    for args, text in REFUSED:
        p = tunnelctl(fwd.prefix, *args, check=False)
        lines = p.stderr.splitlines()
        if not (p.returncode == 1 and p.stdout == "" and len(lines) == 1 and lines[0].startswith("tunnelctl: ")
                and text in lines[0]):
            problems.append(f"{' '.join(args)}: exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
    assert not problems, "\n".join(problems)
    assert fwd.query("/tunnelfwd/tunnels") == tunnels
    after = tunnelctl_json(fwd.prefix, "neighbor", "show")["neighbors"]
    assert [(n["address"], n["tunnels"]) for n in after] == [(n["address"], n["tunnels"]) for n in neighbors], after
    flows = udp_flows(topo, [0])
    flows.send(50, gap=0.001)
    flows.wait_all(timeout=5)
    assert not flows.problems(), flows.problems()


@pytest.mark.parametrize("args", [
    ["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "abc"],
    ["tunnel", "add", "tx", "--type", "vxlan", "--remote", "192.168.50.3", "--vni", "99999999999"],
], ids=["vni-not-a-number", "vni-over-32-bits"])
def test_unparsable_arguments_get_one_line(args, make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    p = tunnelctl(fwd.prefix, *args, check=False)
    lines = p.stderr.splitlines()
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("tunnelctl: ") and "vni" in lines[0], p.stderr


def test_tunnel_delete_takes_its_forwarding_and_flood_membership(make_topology, start_forwarder, config_for, udp_flows):
    """t1 has three forwarding entries (one from the configuration, two added) and is in
    the flood list: `tunnel del t1` reports those counts, and they are gone."""
    topo = make_topology()
    cfg = config_for(topo, tunnels=[{"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": VNI},
                                    {"name": "t2", "type": "vxlan", "remote": "192.168.50.3", "vni": VNI}],
                     neighbors=[{"address": REMOTE_IP, "mac": REMOTE_MAC},
                                {"address": "192.168.50.3", "mac": "02:00:00:00:00:bb"}])
    fwd = start_forwarder(topo, cfg)
    extra = ["02:00:00:00:42:10", "02:00:00:00:42:11"]
    for mac in extra:
        tunnelctl(fwd.prefix, "forwarding", "add", "--segment", str(VNI), "--mac", mac, "--tunnel", "t1")
    reply = tunnelctl_json(fwd.prefix, "tunnel", "del", "t1")
    assert reply["ok"] and reply["message"] == (
        f"tunnel t1 deleted with 3 forwarding entries and 1 flood-list membership(s); "
        f"next hop {REMOTE_IP} no longer tracked"), reply
    assert set(fwd.query("/tunnelfwd/tunnels")) == {"t2"}
    assert [n["address"] for n in tunnelctl_json(fwd.prefix, "neighbor", "show")["neighbors"]] == ["192.168.50.3"]
    for mac in [VX_MAC] + extra:
        p = tunnelctl(fwd.prefix, "forwarding", "del", "--segment", str(VNI), "--mac", mac, check=False)
        assert p.returncode == 1 and "no forwarding entry" in p.stderr, (mac, p.stderr)
    # VX_MAC is now unknown unicast, and the flood list is empty: dropped as no_tunnel.
    before = fwd.stats()
    topo.send_frames([udp_frame(VX_MAC, vm_mac(0), VM_IP, "10.42.0.2", 47000, 9000, size=100)] * 5)
    delta = fwd.wait_stats(before, lambda d: d["dropped.no_tunnel"] >= 5, what="5 drops as no_tunnel")
    assert delta["encapsulated"] == 0 and delta["flood_copies"] == 0, nonzero(delta)
    # The name is free again.
    p = tunnelctl(fwd.prefix, "tunnel", "add", "t1", "--type", "vxlan", "--remote", REMOTE_IP, "--vni", str(VNI))
    assert "tunnel t1 added" in p.stdout, p.stdout


# ---------------------------------------------------------------------------- security

def test_unsolicited_arp_replies_create_no_entry(make_topology, start_forwarder, config_for, capture):
    """ARP replies nobody asked for (unicast to the uplink, broadcast, gratuitous) from
    addresses that are no tunnel's next hop: received, counted, and ignored."""
    from scapy.layers.l2 import ARP, Ether
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="t1's next hop resolved")
    uplink = fwd.uplink_mac()
    spoofed = {"192.168.50.77", "192.168.50.78", "192.168.50.79"}
    frames = [
        Ether(dst=uplink, src=REMOTE_MAC) / ARP(op=2, hwsrc=REMOTE_MAC, psrc="192.168.50.77",
                                                hwdst=uplink, pdst=UPLINK_IP),
        Ether(dst="ff:ff:ff:ff:ff:ff", src=REMOTE_MAC) / ARP(op=2, hwsrc="02:00:00:00:00:78", psrc="192.168.50.78",
                                                             hwdst="ff:ff:ff:ff:ff:ff", pdst=UPLINK_IP),
        Ether(dst="ff:ff:ff:ff:ff:ff", src=REMOTE_MAC) / ARP(op=2, hwsrc="02:00:00:00:00:79", psrc="192.168.50.79",
                                                             hwdst="ff:ff:ff:ff:ff:ff", pdst="192.168.50.79"),
    ]
    before = fwd.stats()
    topo.send_frames([bytes(f) for f in frames], ns=topo.rm, gap=0.01)
    fwd.wait_stats(before, lambda d: d["arp_replies"] >= 3, what="the 3 replies received")
    fwd.settle(before)
    underlay = {row["address"] for row in tunnelctl_json(fwd.prefix, "neighbor", "show", "--all")["underlay"]}
    assert not underlay & spoofed, f"unsolicited replies created entries: {underlay & spoofed}"
    assert underlay == {REMOTE_IP}, underlay
    rows = tunnelctl_json(fwd.prefix, "neighbor", "show")["neighbors"]
    assert [(r["address"], r["mac"]) for r in rows] == [(REMOTE_IP, REMOTE_MAC)], rows
    text = tunnelctl(fwd.prefix, "neighbor", "show", "--all").stdout
    assert not any(a in text for a in spoofed), text


# ---------------------------------------------------------------------------- telemetry

STATS_KEYS = {"misses", "buffered", "flushed", "expired", "pending_full", "arp_requests", "arp_replies",
              "decapsulated", "encapsulated", "mbufs_in_use", "rx", "tx"}


def test_pending_telemetry_and_tunnelctl_reports(make_topology, start_forwarder, config_for, udp_flows):
    """While 30 datagrams wait for an unresolved next hop: /tunnelfwd/pending and
    `tunnelctl pending` (human and JSON) agree, total = sum per core; `neighbor show`
    tells the next hop is incomplete. After the reply: all delivered, pending 0, the
    first-packet delay recorded, counters consistent per core."""
    topo = make_topology()
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, config_for(topo, neighbors=[], pending={"lifetime_ms": 5000, "per_neighbor": 100}))
    stats = fwd.stats()
    missing = STATS_KEYS - set(stats) | {"count", "p50", "p99", "max"} - set(stats.get("first_packet_delay_us", {}))
    assert not missing, f"missing in /tunnelfwd/stats: {missing}"
    assert "pending_full" in stats["dropped"] and isinstance(stats["per_core"], dict)

    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.send(30, gap=0.001)
    fwd.wait_stats(before, lambda d: d["buffered"] >= 30, what="30 datagrams buffered")
    pending = fwd.query("/tunnelfwd/pending")
    assert pending["total"] == 30 == sum(pending["per_core"].values()), pending
    assert (pending["lifetime_ms"], pending["per_core_limit"], pending["per_neighbor_limit"]) == (5000, 8192, 100), pending
    assert "0" not in pending["per_core"], f"the control lcore holds no pending buffer: {pending}"
    reply = tunnelctl_json(fwd.prefix, "pending")["pending"]
    assert reply["total"] == 30 and reply["byNextHop"] == {REMOTE_IP: 30}, reply
    assert sum(reply["perCore"].values()) == 30 and reply["perNeighborLimit"] == 100, reply
    text = tunnelctl(fwd.prefix, "pending").stdout.splitlines()
    assert text[0] == "pending: 30 packet(s); lifetime 5000 ms, at most 8192 per core and 100 per next hop", text
    assert f"  next hop {REMOTE_IP}: 30" in text, text
    assert any(line.startswith("  lcore ") and line.endswith(": 30") for line in text), text
    show = tunnelctl(fwd.prefix, "neighbor", "show").stdout.splitlines()
    assert show[0].split() == ["NEXT", "HOP", "STATE", "MAC", "AGE(ms)", "TUNNELS"], show
    assert show[1].split()[0] == REMOTE_IP and show[1].split()[2] == "-" and show[1].split()[-1] == "t1", show
    assert show[1].split()[1] in ("incomplete", "failed"), show

    unblock_arp_replies(topo.rm)
    flows.wait_all(timeout=3)
    assert not flows.problems(), flows.problems()
    delta = fwd.settle(before)
    assert delta["flushed"] == 30 and delta["expired"] == 0, nonzero(delta)
    wait_until(lambda: fwd.query("/tunnelfwd/pending")["total"] == 0, timeout=2, what="pending total 0")
    assert tunnelctl_json(fwd.prefix, "pending")["pending"]["total"] == 0
    stats = fwd.stats()
    delay = stats["first_packet_delay_us"]
    assert delay["count"] >= 1 and 0 < delay["p50"] <= delay["p99"] <= delay["max"], delay
    for key in ("misses", "buffered", "flushed", "expired", "arp_requests", "arp_replies",
                "encapsulated", "decapsulated"):
        per_core = sum(core[key] for core in stats["per_core"].values())
        assert per_core == stats[key], f"{key}: total {stats[key]}, per core {per_core}"
    per_core = sum(core["dropped"]["pending_full"] for core in stats["per_core"].values())
    assert stats["dropped"]["pending_full"] == stats["pending_full"] == per_core, stats
    show = tunnelctl(fwd.prefix, "neighbor", "show", "--all").stdout.splitlines()
    row = show[1].split()
    assert row[:3] == [REMOTE_IP, "reachable", REMOTE_MAC] and row[-1] == "t1", show
    assert "UNDERLAY" in show[3] and show[4].split()[:3] == [REMOTE_IP, "reachable", REMOTE_MAC], show


def test_neighbors_telemetry_lists_tunnel_and_underlay_neighbors(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="t1's next hop resolved")
    # Telemetry keys allow only letters, digits, '_' and '/': the address is the key with
    # '_' for '.', and in full in the entry.
    key = REMOTE_IP.replace(".", "_")
    wait_until(lambda: key in fwd.query("/tunnelfwd/neighbors"), timeout=1,
               what=f"{key} in /tunnelfwd/neighbors")
    row = fwd.query("/tunnelfwd/neighbors")[key]
    assert row["address"] == REMOTE_IP, row
    assert row["state"] == "reachable" and row["mac"] == REMOTE_MAC and row["tunnels"] == "t1", row
    assert fwd.query("/tunnelfwd/neighbors,all")[key]["mac"] == REMOTE_MAC


def test_pending_telemetry_by_next_hop(make_topology, start_forwarder, config_for, udp_flows):
    topo = make_topology()
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]))
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.send(10, gap=0.001)
    fwd.wait_stats(before, lambda d: d["buffered"] >= 10, what="10 datagrams buffered")
    time.sleep(0.3)  # the per-next-hop split is the control core's, refreshed every 250 ms
    pending = fwd.query("/tunnelfwd/pending")
    unblock_arp_replies(topo.rm)
    flows.wait_all(timeout=3)
    assert pending["by_next_hop"] == {REMOTE_IP.replace(".", "_"): 10}, pending


def test_tunnels_telemetry_lists_every_valid_name(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    for name, ip in (("to-b", "192.168.50.5"), ("to.c", "192.168.50.6")):
        tunnelctl(fwd.prefix, "tunnel", "add", name, "--type", "vxlan", "--remote", ip, "--vni", str(VNI))
    # Keys allow only letters, digits, '_' and '/'; the entry holds the name as given.
    wait_until(lambda: {k: v["name"] for k, v in fwd.query("/tunnelfwd/tunnels").items()}
               == {"t1": "t1", "to_b": "to-b", "to_c": "to.c"}, timeout=1,
               what="t1, to-b and to.c in /tunnelfwd/tunnels")
