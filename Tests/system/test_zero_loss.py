"""Zero loss and bounded memory: with no static neighbor, every tunnel's next hop
is resolved by ARP, and packets that find no MAC wait in the pending buffer and leave in
order once ARP answers: on a cold start with several tunnels, across a neighbor flush,
when the reply comes late but within the lifetime. Past the lifetime they are freed and
counted exactly; the buffer's bounds drop the arriving packet, counted; an unanswered
next hop is retried for as long as a tunnel needs it (no black hole).

The remotes are real kernel VXLAN endpoints behind a bridge; a receiver behind each
remote's vxlan device checks that every numbered datagram arrives, in order."""

import time

from tfsys import (
    block_arp_replies, drops, nonzero, remote_ip, remote_mac, tunnelctl, unblock_arp_replies, wait_until,
)


def test_cold_start_several_tunnels_loses_nothing(make_topology, start_forwarder, multi_config_for, udp_flows):
    """Three tunnels, no static neighbor: traffic to all three remotes starts as soon as
    the forwarder is up, before its uplink is even connected (so that the first packets
    of every tunnel must miss, whatever the timing of the first ARP requests). Once the
    uplink is wired, every datagram reaches its receiver, in order, the buffered ones
    first; the misses were buffered and flushed, none expired or overflowed."""
    topo = make_topology(remotes=3)
    fwd = start_forwarder(topo, multi_config_for(topo), wire=False)
    topo.wire_taps(only=[topo.access_tap(0)])
    flows = udp_flows(topo, [0, 1, 2])
    before = fwd.stats()
    flows.start(gap=0.004)
    fwd.wait_stats(before, lambda d: d["buffered"] >= 30, what="datagrams of every flow to be buffered")
    topo.wire_taps(only=[topo.uplink_tap])
    wait_until(lambda: fwd.resolved(*[remote_ip(i) for i in range(3)]), timeout=3, what="all next hops resolved")
    time.sleep(0.4)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert all(flows.sent[i] >= 80 for i in range(3)), flows.sent
    assert delta["misses"] >= 3 and delta["flushed"] >= 30, nonzero(delta)
    assert delta["buffered"] == delta["flushed"], nonzero(delta)
    assert delta["expired"] == 0 and delta["pending_full"] == 0 and not drops(delta), nonzero(delta)
    assert delta["encapsulated"] >= sum(flows.sent.values()), nonzero(delta)
    stats = fwd.stats()
    assert stats["first_packet_delay_us"]["count"] > 0, stats["first_packet_delay_us"]
    tunnels = fwd.query("/tunnelfwd/tunnels")
    assert {n: t["next_hop_mac"] for n, t in tunnels.items()} == {f"t{i}": remote_mac(i) for i in range(3)}, tunnels
    assert fwd.query("/tunnelfwd/pending")["total"] == 0


def test_neighbor_flush_mid_traffic_loses_nothing(make_topology, start_forwarder, multi_config_for, udp_flows):
    """`tunnelctl neighbor flush` while traffic runs to three remotes: the next hops lose
    their MACs and are resolved again at once; packets that miss meanwhile wait and
    leave in order. Nothing is lost. (The remotes answer within a millisecond, so for the
    last flush one remote holds its replies back for 150 ms: its packets must wait.)"""
    topo = make_topology(remotes=3)
    fwd = start_forwarder(topo, multi_config_for(topo))
    hops = [remote_ip(i) for i in range(3)]
    wait_until(lambda: fwd.resolved(*hops), timeout=5, what="all next hops resolved")
    flows = udp_flows(topo, [0, 1, 2])
    before = fwd.stats()
    flows.start(gap=0.003)
    for _ in range(2):
        time.sleep(0.25)
        p = tunnelctl(fwd.prefix, "neighbor", "flush")
        assert "resolving 3 tunnel neighbor(s) again" in p.stdout, p.stdout
    time.sleep(0.25)
    block_arp_replies(topo.remotes[1])
    mid = fwd.stats()
    tunnelctl(fwd.prefix, "neighbor", "flush")
    time.sleep(0.15)
    unblock_arp_replies(topo.remotes[1])
    wait_until(lambda: fwd.resolved(*hops), timeout=2, what="all next hops resolved again")
    time.sleep(0.25)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert all(flows.sent[i] >= 150 for i in range(3)), flows.sent
    assert delta["arp_requests"] >= 9 and delta["arp_replies"] >= 9, nonzero(delta)
    assert mid["misses"] < fwd.stats()["misses"], "no packet missed while a next hop was unresolved"
    assert delta["buffered"] >= 1 and delta["buffered"] == delta["flushed"], nonzero(delta)
    assert delta["expired"] == 0 and delta["pending_full"] == 0 and not drops(delta), nonzero(delta)


def test_late_reply_within_lifetime_loses_nothing(make_topology, start_forwarder, multi_config_for, udp_flows):
    """The remote's ARP replies are held back for about 1.3 s (the lifetime is 3 s): the
    packets sent meanwhile (fewer than pending.per_neighbor) wait, and all arrive in
    order once a retry is answered."""
    topo = make_topology(remotes=1)
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=1))
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    started = time.monotonic()
    flows.start(gap=0.01)
    fwd.wait_stats(before, lambda d: d["buffered"] >= 20, what="datagrams to be buffered")
    time.sleep(max(0.0, 1.3 - (time.monotonic() - started)))
    assert not flows.received[0], "nothing can arrive while the next hop is unresolved"
    unblock_arp_replies(topo.rm)
    wait_until(lambda: fwd.resolved(remote_ip(0)), timeout=1.5, what="the next hop resolved after the unblock")
    time.sleep(0.2)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert flows.sent[0] >= 80, flows.sent
    assert delta["buffered"] >= 80 and delta["flushed"] == delta["buffered"], nonzero(delta)
    assert delta["expired"] == 0 and delta["pending_full"] == 0 and not drops(delta), nonzero(delta)
    delay = fwd.stats()["first_packet_delay_us"]
    assert delay["count"] >= 1 and delay["max"] >= 1_000_000, delay


def test_reply_later_than_lifetime_expires_exactly_what_was_not_delivered(
        make_topology, start_forwarder, multi_config_for, udp_flows):
    """lifetime_ms 1000, replies held back for 3 s while datagrams flow: the ones that
    waited longer than the lifetime are freed and counted `expired`, exactly the ones
    that never arrived; the rest arrive in order, and every mbuf goes back to the pool."""
    topo = make_topology(remotes=1)
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=1, pending={"lifetime_ms": 1000}))
    flows = udp_flows(topo, [0])
    time.sleep(0.3)
    idle = fwd.stats()["mbufs_in_use"]
    before = fwd.stats()
    started = time.monotonic()
    flows.start(gap=0.005)
    fwd.wait_stats(before, lambda d: d["expired"] > 0, timeout=3, what="the first buffered datagrams to expire")
    time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
    unblock_arp_replies(topo.rm)
    wait_until(lambda: fwd.resolved(remote_ip(0)), timeout=1.5, what="the next hop resolved after the unblock")
    time.sleep(0.2)
    flows.stop_sending()
    flows.wait_quiet(quiet=0.5)
    delta = fwd.settle(before, quiet=0.5)
    sent, got = flows.sent[0], flows.received[0]
    assert got == sorted(got) and len(set(got)) == len(got), f"out of order or duplicated: {got[:50]}"
    assert 0 < len(got) < sent, f"received {len(got)} of {sent}"
    assert delta["expired"] == sent - len(got), (
        f"sent {sent}, received {len(got)}, expired {delta['expired']}: {nonzero(delta)}")
    assert delta["pending_full"] == 0 and not drops(delta), nonzero(delta)
    assert delta["buffered"] == delta["flushed"] + delta["expired"], nonzero(delta)
    # Only the tail (sent within the lifetime before the reply, then after it) arrives.
    assert got == list(range(got[0], sent)), f"received {got[0]}..{got[-1]} with gaps"
    wait_until(lambda: fwd.stats()["mbufs_in_use"] <= idle, timeout=3,
               what=f"mbufs_in_use back to its idle value {idle}")
    assert fwd.query("/tunnelfwd/pending")["total"] == 0


def test_unanswered_next_hop_is_retried_until_it_answers(make_topology, start_forwarder, multi_config_for,
                                                        udp_flows, capture):
    """No black hole: replies held back for 4 s, four times the lifetime (the packets sent
    at the start expire). The forwarder keeps asking, at most retry_max_ms apart, so once
    the replies are let through the next hop resolves within about 1.5 s without any
    traffic to prompt it, and traffic sent then arrives without a miss."""
    topo = make_topology(remotes=1)
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=1, pending={"lifetime_ms": 1000}))
    cap = capture(topo.rm, "eth0", "arp")
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.send(10, gap=0.001)
    fwd.wait_stats(before, lambda d: d["expired"] >= 10, timeout=3, what="the first datagrams to expire")
    time.sleep(2.8)
    from scapy.layers.l2 import ARP
    requests = [p for p in cap.packets() if ARP in p and p[ARP].op == 1 and p[ARP].pdst == remote_ip(0)]
    late = [p for p in requests if float(p.time) >= float(requests[0].time) + 2.0] if requests else []
    assert len(late) >= 1, f"no ARP request in the last seconds of the block: {[float(p.time) for p in requests]}"
    gaps = [float(b.time) - float(a.time) for a, b in zip(requests, requests[1:])]
    assert gaps and max(gaps) < 1.3, f"requests further apart than retry_max_ms: {gaps}"
    unblock_arp_replies(topo.rm)
    t0 = time.monotonic()
    wait_until(lambda: fwd.resolved(remote_ip(0)), timeout=1.5, what="the next hop resolved without traffic")
    resolved_after = time.monotonic() - t0
    mid = fwd.stats()
    flows.send(50, gap=0.001)
    flows.wait_all(timeout=3)
    delta = fwd.settle(mid)
    got = flows.received[0]
    assert got == list(range(10, 60)), f"received {len(got)} of the 50 sent after the unblock: {got[:20]}"
    assert delta["misses"] == 0 and delta["expired"] == 0 and not drops(delta), nonzero(delta)
    print(f"resolved {resolved_after:.2f}s after the unblock")


def test_per_neighbor_bound_drops_the_arriving_packets(make_topology, start_forwarder, multi_config_for, udp_flows):
    """pending.per_neighbor 50, next hop unresolved: of 80 datagrams the first 50 wait and
    the 30 that arrive after them are dropped (tail drop), counted `pending_full`. Once
    ARP answers (within the lifetime), the 50 arrive in order."""
    topo = make_topology(remotes=1)
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=1, pending={"per_neighbor": 50}))
    flows = udp_flows(topo, [0])
    time.sleep(0.2)
    idle = fwd.stats()["mbufs_in_use"]
    before = fwd.stats()
    flows.send(80, gap=0.001)
    delta = fwd.wait_stats(before, lambda d: d["buffered"] + d["pending_full"] >= 80, timeout=3,
                           what="80 datagrams buffered or dropped")
    pending = fwd.query("/tunnelfwd/pending")
    assert pending["total"] == 50 and pending["per_neighbor_limit"] == 50, pending
    unblock_arp_replies(topo.rm)
    wait_until(lambda: fwd.resolved(remote_ip(0)), timeout=1.5, what="the next hop resolved after the unblock")
    flows.wait_all(timeout=2)
    flows.wait_quiet(quiet=0.3)
    delta = fwd.settle(before)
    assert flows.received[0] == list(range(50)), f"received {flows.received[0]}; counters {nonzero(delta)}"
    assert delta["pending_full"] == 30 and delta["dropped.pending_full"] == 30, nonzero(delta)
    assert delta["buffered"] == 50 and delta["flushed"] == 50 and delta["expired"] == 0, nonzero(delta)
    assert not drops(delta, expected=("not_for_us", "pending_full")), nonzero(delta)
    wait_until(lambda: fwd.stats()["mbufs_in_use"] <= idle, timeout=3,
               what=f"mbufs_in_use back to its idle value {idle}")


def test_per_core_bound_drops_the_arriving_packets(make_topology, start_forwarder, multi_config_for, udp_flows):
    """pending.per_core 40, two next hops unresolved: 30 datagrams to each, interleaved.
    The worker holds the first 40 (20 per next hop) and drops the 20 that arrive after
    them, counted `pending_full`; once ARP answers, each flow gets its first 20, in order."""
    topo = make_topology(remotes=2)
    for ns in topo.remotes:
        block_arp_replies(ns)
    fwd = start_forwarder(topo, multi_config_for(topo, remotes=2, pending={"per_core": 40}))
    flows = udp_flows(topo, [0, 1])
    before = fwd.stats()
    flows.send(30, gap=0.001)
    fwd.wait_stats(before, lambda d: d["buffered"] + d["pending_full"] >= 60, timeout=3,
                   what="60 datagrams buffered or dropped")
    pending = fwd.query("/tunnelfwd/pending")
    assert pending["total"] == 40 and pending["per_core_limit"] == 40, pending
    for ns in topo.remotes:
        unblock_arp_replies(ns)
    wait_until(lambda: fwd.resolved(remote_ip(0), remote_ip(1)), timeout=1.5, what="both next hops resolved")
    flows.wait_quiet(quiet=0.3)
    delta = fwd.settle(before)
    assert flows.received == {0: list(range(20)), 1: list(range(20))}, f"{flows.received}; {nonzero(delta)}"
    assert delta["pending_full"] == 20 and delta["dropped.pending_full"] == 20, nonzero(delta)
    assert delta["buffered"] == 40 and delta["flushed"] == 40 and delta["expired"] == 0, nonzero(delta)


def test_traffic_just_after_an_unanswered_request_waits_one_interval_not_the_back_off(
        make_topology, start_forwarder, multi_config_for, udp_flows):
    """The first request for the next hop (sent when the forwarder starts) goes unanswered,
    and traffic begins well within min_interval_ms of it (2 s here), with a back-off
    (retry_initial_ms 20 s) longer than a packet's lifetime (6 s). The miss asks again as
    soon as the interval since the first request ends, not when the back-off would: every
    datagram arrives, the first after less than the interval plus a round trip."""
    topo = make_topology(remotes=1)
    block_arp_replies(topo.rm)
    fwd = start_forwarder(topo, multi_config_for(
        topo, remotes=1, pending={"lifetime_ms": 6000},
        resolution={"min_interval_ms": 2000, "retry_initial_ms": 20000, "retry_max_ms": 20000}))
    wait_until(lambda: fwd.stats()["arp_requests"] >= 1, timeout=2, what="the first request")
    unblock_arp_replies(topo.rm)
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.start(gap=0.01)
    started_at_us = fwd.stats()["uptime_us"]
    assert started_at_us < 1_500_000, f"traffic began {started_at_us} µs after start: not within the interval"
    wait_until(lambda: fwd.resolved(remote_ip(0)), timeout=3, what="the next hop resolved after the interval")
    time.sleep(0.3)
    flows.stop_sending()
    flows.wait_all(timeout=5)
    delta = fwd.settle(before)
    assert not flows.problems(), f"{flows.problems()}; counters {nonzero(delta)}"
    assert delta["buffered"] >= 10 and delta["flushed"] == delta["buffered"], nonzero(delta)
    assert delta["expired"] == 0 and not drops(delta), nonzero(delta)
    assert fwd.stats()["arp_requests"] == 2, "one request at start, one when the interval ended"
    delay = fwd.stats()["first_packet_delay_us"]
    assert delay["max"] < 2_300_000, delay


def test_a_resolved_next_hop_never_stays_behind_its_backlog(make_topology, start_forwarder, config_for):
    """Twenty tunnels behind one gateway (the remote namespace), all in the segment's
    flood list, and bursts of 4 frames: every broadcast frame from the VM becomes 20
    packets for one next hop, up to 80 per loop of the worker, while one walk of the
    pending buffer used to send at most 4 bursts (16 packets). Twice: a `neighbor flush`
    while the gateway holds its ARP replies back, for half a second of slow traffic
    (a thousand packets wait); then the VM sends faster than the worker can send, and the
    gateway's replies go through, so that every loop brings more than a walk used to
    drain. None is
    dropped for the buffer's bounds or expires: the waiting packets leave at once, every
    packet encapsulated is sent, and the buffer is empty again."""
    import threading
    from tfsys import REMOTE_IP, UPLINK_IP, VNI, ArpReplyGate, control_request, udp_frame, vm_mac
    topo = make_topology()
    tunnels = [{"name": f"g{i}", "type": "vxlan", "remote": f"10.77.0.{1 + i}", "vni": VNI} for i in range(20)]
    fwd = start_forwarder(topo, config_for(
        topo, uplink={"port": topo.uplink_vdev, "address": f"{UPLINK_IP}/24", "gateway": REMOTE_IP},
        tunnels=tunnels, forwarding=[], neighbors=[], flood=[{"segment": VNI, "tunnels": [t["name"] for t in tunnels]}],
        dataplane={"burst": 4}, pending={"per_core": 65536, "per_neighbor": 65536},
        resolution={"retry_initial_ms": 5, "retry_max_ms": 10}, learning={"enabled": False}))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="the gateway resolved")
    frame = udp_frame("ff:ff:ff:ff:ff:ff", vm_mac(0), "10.42.0.1", "10.42.0.255", 40000, 9, size=100)
    sock = topo.raw_socket(topo.vms[0])
    stop = threading.Event()
    fast = threading.Event()

    def send():
        # Slow: 100 frames a second. Fast: as fast as Python goes, more than the worker
        # can send 20 copies of.
        while not stop.is_set():
            try:
                sock.send(frame)
            except OSError:
                pass
            if not fast.is_set():
                time.sleep(0.01)

    sender = threading.Thread(target=send, daemon=True)
    gate = ArpReplyGate(topo.rm)
    before = fwd.stats()
    sender.start()
    try:
        for _ in range(2):
            gate.block()
            assert control_request(fwd.prefix, {"neighborFlush": {}})["ok"]
            time.sleep(0.5)
            fast.set()
            gate.unblock()
            time.sleep(0.7)
            fast.clear()
            # What the fast phase left queued goes out before the next flush.
            time.sleep(0.5)
    finally:
        stop.set()
        sender.join()
        sock.close()
        gate.close()
    wait_until(lambda: fwd.query("/tunnelfwd/pending")["total"] == 0, timeout=3, what="the pending buffer empty")
    delta = fwd.settle(before)
    assert delta["buffered"] > 1000, f"too little waited: {nonzero(delta)}"
    assert delta["rx"] > 2000, f"the fast phases were not fast: {nonzero(delta)}"
    assert delta["pending_full"] == 0 and delta["expired"] == 0, nonzero(delta)
    assert delta["flushed"] == delta["buffered"], nonzero(delta)
    # Everything encapsulated was sent (besides, the control core sent its ARP requests).
    assert delta["tx"] == delta["encapsulated"] + delta["arp_requests"], nonzero(delta)
    assert delta["dropped.total"] == 0, nonzero(delta)
