"""Next hops without a static neighbor entry are resolved by ARP (mechanism 1), and
packets that find no MAC wait in the pending buffer (mechanism 2): nothing is lost when
the next hop answers; packets for one that never answers expire after their lifetime."""

import socket
import time

from tfsys import (
    REMOTE_MAC, SILENT_IP, UPLINK_IP, VM_IP, VX_IP, VX_MAC, drops, nonzero, udp_frame, vm_mac, wait_until,
)


def test_cold_start_without_static_neighbor_loses_nothing(make_topology, start_forwarder, config_for):
    """No static neighbor, and the uplink not yet connected: the VM's datagrams cannot
    be sent, so they wait in the pending buffer. Once the uplink is wired the resolver's
    next ARP retry gets the remote's answer, and every datagram reaches the real peer,
    in order."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]), wire=False)
    topo.wire_taps(only=[topo.access_tap(0)])
    receiver = topo.udp_socket(topo.rm, bind=(VX_IP, 9000))
    receiver.settimeout(0.5)
    sender = topo.udp_socket(topo.vms[0])
    before = fwd.stats()
    count = 100
    received = []
    try:
        for i in range(count):
            sender.sendto(f"seq {i:06d} ".encode(), (VX_IP, 9000))
            time.sleep(0.0005)
        delta = fwd.wait_stats(before, lambda d: d["buffered"] >= count, what=f"{count} buffered datagrams")
        assert delta["misses"] >= count and delta["flushed"] == 0, nonzero(delta)
        assert fwd.query("/tunnelfwd/tunnels")["t1"]["next_hop_mac"] == "unresolved"
        topo.wire_taps(only=[topo.uplink_tap])
        deadline = time.monotonic() + 10
        while len(received) < count and time.monotonic() < deadline:
            try:
                received.append(int(receiver.recv(2048).split()[1]))
            except socket.timeout:
                continue
    finally:
        sender.close()
        receiver.close()
    delta = fwd.settle(before)
    assert received == list(range(count)), (
        f"received {len(received)} of {count}, in order: {received == sorted(received)}; counters {nonzero(delta)}")
    assert delta["flushed"] == count and delta["expired"] == 0 and not drops(delta), nonzero(delta)
    tunnels = fwd.query("/tunnelfwd/tunnels")
    assert tunnels["t1"]["next_hop_mac"] == REMOTE_MAC, tunnels


def test_next_hop_that_never_answers_expires_buffered_packets(make_topology, start_forwarder, config_for, capture):
    topo = make_topology()
    silent_remote = "192.168.50.9"
    cfg = config_for(topo, neighbors=[],
                     tunnels=[{"name": "t1", "type": "vxlan", "remote": silent_remote, "vni": 42}],
                     pending={"lifetime_ms": 300})
    fwd = start_forwarder(topo, cfg)
    cap = capture(topo.rm, "eth0", f"arp or (src host {UPLINK_IP} and udp dst port 4789)")
    before = fwd.stats()
    topo.send_frames([udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 47000 + i, 9, size=100) for i in range(5)])
    delta = fwd.wait_stats(before, lambda d: d["expired"] >= 5, what="5 buffered packets to expire", timeout=10)
    assert delta["buffered"] == 5 and delta["flushed"] == 0, nonzero(delta)
    assert fwd.query("/tunnelfwd/tunnels")["t1"]["next_hop_mac"] == "unresolved"
    wait_until(lambda: fwd.stats()["mbufs_in_use"] <= before["mbufs_in_use"], timeout=5,
               what="expired packets' mbufs to return to the pool")

    from scapy.layers.l2 import ARP
    requests = wait_until(lambda: [p for p in cap.packets() if ARP in p and p[ARP].op == 1 and p[ARP].pdst == silent_remote],
                          timeout=5, what=f"ARP requests for {silent_remote} on the uplink")
    uplink_mac = fwd.uplink_mac()
    for r in requests:
        assert r[ARP].psrc == UPLINK_IP and r[ARP].hwsrc == uplink_mac, r.summary()
    assert not [p for p in cap.packets() if ARP not in p], "nothing may be sent toward an unresolved next hop"
