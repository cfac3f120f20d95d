"""ARP and underlay hygiene: a resolved next hop's MAC changes only on a reply to our own
request (a claim of another MAC is answered with a probe of the MAC we hold), replies
never go to a multicast or zero MAC, and the underlay table keeps only hosts of the
uplink's prefix, at most `resolution.max_neighbors` of those no tunnel needs."""

import time

from tfsys import REMOTE_IP, REMOTE_MAC, UPLINK_IP, arp_frame, nonzero, tunnelctl_json, wait_until

EVIL_MAC = "02:66:66:66:66:66"


def arp(op: int, eth_dst: str, hwsrc: str, psrc: str, pdst: str, hwdst: str = "00:00:00:00:00:00") -> bytes:
    """An ARP frame from the remote namespace's MAC, whatever MAC it claims inside."""
    return arp_frame(op, hwsrc, psrc, pdst, target_mac=hwdst, eth_src=REMOTE_MAC, eth_dst=eth_dst)


def test_claims_of_another_mac_for_a_resolved_next_hop_are_probed_not_taken(
        make_topology, start_forwarder, config_for, udp_flows, capture):
    """The tunnel's next hop is learnt by ARP. While datagrams flow to it, someone on the
    link claims its address with another MAC, 30 times each way: unsolicited replies,
    gratuitous ARP (request and reply), requests for our address. None is taken: the
    tunnel keeps the real MAC, every datagram arrives in order, no tunnel packet goes to
    the claimed MAC (only the answer to its request for our address), and each claim is counted and answered by a unicast probe of the real
    MAC (at most one per min_interval_ms)."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="the next hop resolved")
    uplink = fwd.uplink_mac()
    claims = [
        arp(2, uplink, EVIL_MAC, REMOTE_IP, UPLINK_IP, uplink),                    # unsolicited reply
        arp(2, "ff:ff:ff:ff:ff:ff", EVIL_MAC, REMOTE_IP, REMOTE_IP, "ff:ff:ff:ff:ff:ff"),  # gratuitous reply
        arp(1, "ff:ff:ff:ff:ff:ff", EVIL_MAC, REMOTE_IP, REMOTE_IP),                # gratuitous request
        arp(1, "ff:ff:ff:ff:ff:ff", EVIL_MAC, REMOTE_IP, UPLINK_IP),                # request for our address
    ]
    spied = capture(topo.rm, bpf=f"ether dst {EVIL_MAC} and not arp")
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.start(gap=0.005)
    time.sleep(0.2)
    topo.send_frames(claims * 30, ns=topo.rm, gap=0.004)
    macs = {fwd.query("/tunnelfwd/tunnels")["t1"]["next_hop_mac"] for _ in range(5)}
    time.sleep(0.3)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert macs == {REMOTE_MAC}, macs
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert flows.sent[0] >= 80, flows.sent
    assert delta["arp_conflicts"] == len(claims) * 30, nonzero(delta)
    # The probes: one per claim at most, one per 10 ms at least over the 0.5 s of claims.
    assert 10 <= delta["arp_requests"] <= len(claims) * 30, nonzero(delta)
    assert delta["buffered"] == 0 and delta["dropped.total"] == 0, nonzero(delta)
    rows = tunnelctl_json(fwd.prefix, "neighbor", "show")["neighbors"]
    assert [(r["address"], r["mac"], r["state"]) for r in rows] == [(REMOTE_IP, REMOTE_MAC, "reachable")], rows
    assert spied.packets() == [], [p.summary() for p in spied.packets()[:5]]


def test_requests_naming_a_multicast_or_zero_mac_or_a_martian_sender_get_no_reply(
        make_topology, start_forwarder, config_for, capture):
    """Requests for the uplink address whose sender MAC is broadcast, multicast or zero, or
    whose sender address is loopback, multicast or broadcast, are not answered (a reply
    would go to everyone, or to nobody that asked) and teach nothing; a proper request in
    the same burst is answered."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    uplink = fwd.uplink_mac()
    bad = [
        arp(1, "ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff", "192.168.50.70", UPLINK_IP),
        arp(1, "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "192.168.50.71", UPLINK_IP),
        arp(1, "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "192.168.50.72", UPLINK_IP),
        arp(1, "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:73", "127.0.0.1", UPLINK_IP),
        arp(1, "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:74", "224.0.0.5", UPLINK_IP),
        arp(1, "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:75", "255.255.255.255", UPLINK_IP),
    ]
    good = arp(1, "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:76", "192.168.50.76", UPLINK_IP)
    replies = capture(topo.rm, bpf=f"arp and ether src {uplink}")
    before = fwd.stats()
    topo.send_frames(bad + [good], ns=topo.rm, gap=0.005)
    got = replies.wait_for(1, timeout=5)
    delta = fwd.settle(before)
    time.sleep(0.2)
    got = replies.packets()
    assert [(p.dst, p.pdst) for p in got] == [("02:00:00:00:00:76", "192.168.50.76")], [p.summary() for p in got]
    assert delta["arp_answered"] == 1 and delta["arp_invalid_senders"] == len(bad), nonzero(delta)
    underlay = {r["address"] for r in tunnelctl_json(fwd.prefix, "neighbor", "show", "--all")["underlay"]}
    assert underlay == {REMOTE_IP, "192.168.50.76"}, underlay


def test_the_underlay_table_keeps_only_hosts_of_the_prefix_and_is_bounded(make_topology, start_forwarder, config_for):
    """240 hosts of the prefix ask for our address, plus senders outside the prefix or not
    hosts of it: every one is answered (as Linux does), only `max_neighbors` (100) hosts
    are kept besides the tunnel's next hop, the other hosts are counted `underlay_full`,
    the rest `arp_invalid_senders`; the tunnel's next hop stays resolved."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[], resolution={"max_neighbors": 100}))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="the next hop resolved")
    hosts = [f"192.168.50.{h}" for h in range(10, 250)]
    outsiders = ["10.0.0.1", "192.168.51.7", "192.168.50.0", "192.168.50.255", "0.0.0.0"]
    frames = [arp(1, "ff:ff:ff:ff:ff:ff", f"02:00:00:01:00:{i:02x}", ip, UPLINK_IP) for i, ip in enumerate(hosts)]
    frames += [arp(1, "ff:ff:ff:ff:ff:ff", "02:00:00:02:00:01", ip, UPLINK_IP) for ip in outsiders]
    before = fwd.stats()
    topo.send_frames(frames, ns=topo.rm, gap=0.001)
    fwd.wait_stats(before, lambda d: d["arp_answered"] >= len(frames), what="every request answered")
    delta = fwd.settle(before)
    assert delta["arp_answered"] == len(frames), nonzero(delta)
    assert delta["arp_invalid_senders"] == len(outsiders), nonzero(delta)
    assert delta["underlay_full"] == len(hosts) - 100, nonzero(delta)
    stats = fwd.stats()
    assert stats["underlay_neighbors"] == 101, stats["underlay_neighbors"]
    underlay = {r["address"] for r in tunnelctl_json(fwd.prefix, "neighbor", "show", "--all")["underlay"]}
    assert len(underlay) == 101 and REMOTE_IP in underlay and not underlay & set(outsiders), sorted(underlay)
    assert fwd.resolved(REMOTE_IP)
