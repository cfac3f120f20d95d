"""Overlay forwarding: access-port VLANs, head-end replication of broadcast, unknown
unicast and multicast, and the uplink MTU."""

from scapy.layers.l2 import Dot1Q, Ether  # noqa: F401  (registers the layers used below)

from tfsys import (
    REMOTE2_IP, REMOTE2_MAC, REMOTE_IP, REMOTE_MAC, SILENT_IP, UPLINK_IP, VM_IP, VNI, VX_MAC, drops, nonzero,
    udp_frame, vm_mac,
)

VXLAN_FILTER = f"src host {UPLINK_IP} and udp dst port 4789"


def outer(pkt):
    """(outer destination MAC, outer destination IP, VNI, inner frame bytes) of a
    captured VXLAN packet (Ethernet/IPv4/UDP/VXLAN at fixed offsets)."""
    raw = bytes(pkt)
    assert raw[12:14] == b"\x08\x00" and raw[23] == 17 and raw[36:38] == (4789).to_bytes(2, "big"), raw[:50].hex()
    dst_ip = ".".join(str(b) for b in raw[30:34])
    vni = int.from_bytes(raw[46:49], "big")
    return raw[0:6].hex(":"), dst_ip, vni, raw[50:]


def strip_tag(frame: bytes) -> bytes:
    assert frame[12:14] == b"\x81\x00"
    return frame[:12] + frame[16:]


# ------------------------------------------------------------------------------- VLAN

def test_vlan_access_port_takes_only_its_tag_and_strips_it(make_topology, start_forwarder, config_for, capture):
    """access[0] has vlan 10: frames tagged 10 (any priority) are encapsulated without the
    tag; untagged frames and other tags are dropped as vlan_mismatch. access[1] has no
    vlan: tagged and untagged frames are carried unchanged."""
    topo = make_topology(access=2)
    cfg = config_for(topo, access=[
        {"port": topo.access_vdev(0), "segment": VNI, "vlan": 10},
        {"port": topo.access_vdev(1), "segment": VNI},
    ])
    fwd = start_forwarder(topo, cfg)
    cap = capture(topo.rm, "eth0", VXLAN_FILTER)

    def frame(i, vlan=None, src=0):
        return udp_frame(VX_MAC, vm_mac(src), VM_IP, SILENT_IP, 40000 + i, 9, payload=f"vlan test {i}".encode(),
                         vlan=vlan, size=120)

    tagged10 = [frame(i, vlan=10) for i in range(4)]
    # Priority 5 in the tag: only the VLAN id (low 12 bits of the TCI) must match.
    from scapy.layers.inet import IP, UDP
    prio = bytes(Ether(dst=VX_MAC, src=vm_mac(0)) / Dot1Q(vlan=10, prio=5) / IP(src=VM_IP, dst=SILENT_IP) /
                 UDP(sport=40100, dport=9) / (b"p" * 60))
    tagged10.append(prio)
    untagged = [frame(10 + i) for i in range(3)]
    tagged20 = [frame(20 + i, vlan=20) for i in range(2)]

    before = fwd.stats()
    # Interleaved, so that a drop does not disturb the frames around it.
    sequence = [tagged10[0], untagged[0], tagged10[1], tagged20[0], tagged10[2], untagged[1],
                tagged10[3], tagged20[1], untagged[2], tagged10[4]]
    topo.send_frames(sequence, ns=topo.vms[0])
    pkts = cap.wait_for(len(tagged10))
    delta = fwd.settle(before)
    assert delta["dropped.vlan_mismatch"] == len(untagged) + len(tagged20), nonzero(delta)
    assert delta["encapsulated"] == len(tagged10), nonzero(delta)
    assert not drops(delta, expected=("vlan_mismatch", "not_for_us")), nonzero(delta)
    inner = [outer(p)[3] for p in cap.packets()]
    assert inner == [strip_tag(f) for f in tagged10], "frames tagged 10 must arrive in order with the tag removed"

    # access[1]: no VLAN configured, frames pass as they are.
    plain = [frame(30, vlan=10, src=1), frame(31, src=1), frame(32, vlan=20, src=1), frame(33, vlan=4094, src=1)]
    before = fwd.stats()
    topo.send_frames(plain, ns=topo.vms[1])
    cap.wait_for(len(tagged10) + len(plain))
    delta = fwd.settle(before)
    assert delta["encapsulated"] == len(plain) and delta["dropped.vlan_mismatch"] == 0, nonzero(delta)
    inner = [outer(p)[3] for p in cap.packets()][len(tagged10):]
    assert inner == plain, "an access port without vlan must carry tagged frames unchanged"
    for p in cap.packets():
        assert outer(p)[2] == VNI


# ------------------------------------------------------------------------------ flood

def test_flood_replicates_to_every_tunnel_of_the_flood_list(make_topology, start_forwarder, config_for, capture):
    """Segment 42 floods to [t1, t2]: every broadcast, multicast and unknown-unicast frame
    goes out twice (once per remote), known unicast once. Segment 43 has no flood list:
    the same frames are dropped as no_tunnel, while its known unicast is sent."""
    topo = make_topology(access=2)
    known43 = "02:00:00:00:43:99"
    cfg = config_for(
        topo,
        access=[{"port": topo.access_vdev(0), "segment": VNI}, {"port": topo.access_vdev(1), "segment": 43}],
        tunnels=[
            {"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": VNI},
            {"name": "t2", "type": "vxlan", "remote": REMOTE2_IP, "vni": VNI},
            {"name": "t3", "type": "vxlan", "remote": REMOTE_IP, "vni": 43},
        ],
        forwarding=[{"segment": VNI, "mac": VX_MAC, "tunnel": "t1"}, {"segment": 43, "mac": known43, "tunnel": "t3"}],
        flood=[{"segment": VNI, "tunnels": ["t1", "t2"]}],
        neighbors=[{"address": REMOTE_IP, "mac": REMOTE_MAC}, {"address": REMOTE2_IP, "mac": REMOTE2_MAC}],
    )
    fwd = start_forwarder(topo, cfg)
    cap = capture(topo.rm, "eth0", f"src host {UPLINK_IP} and udp dst port 4789")

    def frame(dst, i, src=0):
        return udp_frame(dst, vm_mac(src), VM_IP, SILENT_IP, 41000 + i, 9, payload=f"flood {i}".encode(), size=90)

    broadcast = [frame("ff:ff:ff:ff:ff:ff", i) for i in range(4)]
    unknown = [frame("02:00:00:00:99:99", 10 + i) for i in range(3)]
    multicast = [frame("01:00:5e:00:00:fb", 20 + i) for i in range(2)]
    known = [frame(VX_MAC, 30 + i) for i in range(3)]
    flooded = broadcast + unknown + multicast

    before = fwd.stats()
    topo.send_frames(flooded + known, ns=topo.vms[0])
    expected = 2 * len(flooded) + len(known)
    cap.wait_for(expected)
    delta = fwd.settle(before)
    assert delta["flood_copies"] == len(flooded), nonzero(delta)   # N tunnels -> N-1 copies each
    assert delta["encapsulated"] == expected, nonzero(delta)
    assert not drops(delta), nonzero(delta)

    got = [outer(p) for p in cap.packets()]
    assert len(got) == expected, f"captured {len(got)}, expected {expected}"
    for f in flooded:
        copies = sorted((mac, ip, vni) for mac, ip, vni, inner in got if inner == f)
        assert copies == sorted([(REMOTE_MAC, REMOTE_IP, VNI), (REMOTE2_MAC, REMOTE2_IP, VNI)]), (
            f"flooded frame to {Ether(f).dst} went to {copies}")
    for f in known:
        copies = [(mac, ip, vni) for mac, ip, vni, inner in got if inner == f]
        assert copies == [(REMOTE_MAC, REMOTE_IP, VNI)], f"known unicast went to {copies}"

    # Segment 43: no flood list.
    before = fwd.stats()
    no_list = [frame("ff:ff:ff:ff:ff:ff", 50, src=1), frame("02:00:00:00:99:98", 51, src=1),
               frame("01:00:5e:00:00:fb", 52, src=1)]
    known_43 = [frame(known43, 53, src=1)]
    topo.send_frames(no_list + known_43, ns=topo.vms[1])
    cap.wait_for(expected + 1)
    delta = fwd.settle(before)
    assert delta["dropped.no_tunnel"] == len(no_list), nonzero(delta)
    assert delta["encapsulated"] == 1 and delta["flood_copies"] == 0, nonzero(delta)
    last = outer(cap.packets()[-1])
    assert last == (REMOTE_MAC, REMOTE_IP, 43, known_43[0])


# -------------------------------------------------------------------------------- MTU

def test_frames_over_uplink_mtu_after_encapsulation_are_dropped(make_topology, start_forwarder, config_for, capture):
    """uplink.mtu 1400: the largest inner frame that fits is 1400 - 20 (IPv4) - 16
    (UDP + VXLAN or Geneve header) = 1364 bytes, or 1400 - 20 - 8 (GRE with key) = 1372
    for NVGRE. One byte more is dropped as mtu, and so are jumbo frames from a VM whose
    link MTU allows them."""
    topo = make_topology(vm_mtu=9000)
    macs = {"vxlan": VX_MAC, "geneve": "02:00:00:00:42:03", "nvgre": "02:00:00:00:42:04"}
    limits = {"vxlan": 1364, "geneve": 1364, "nvgre": 1372}
    cfg = config_for(
        topo,
        uplink={"port": topo.uplink_vdev, "address": f"{UPLINK_IP}/24", "mtu": 1400},
        tunnels=[{"name": t, "type": t, "remote": REMOTE_IP, "vni": VNI} for t in macs],
        forwarding=[{"segment": VNI, "mac": mac, "tunnel": t} for t, mac in macs.items()],
        flood=[{"segment": VNI, "tunnels": ["vxlan"]}],
    )
    fwd = start_forwarder(topo, cfg)
    assert topo.link_mac(topo.dp, topo.uplink_tap) == fwd.uplink_mac()
    cap = capture(topo.rm, "eth0", f"src host {UPLINK_IP} and (udp dst port 4789 or udp dst port 6081 or ip proto 47)")

    passing, failing, jumbo = [], [], []
    for i, (t, mac) in enumerate(macs.items()):
        limit = limits[t]
        for size in (limit - 1, limit):
            passing.append(udp_frame(mac, vm_mac(0), VM_IP, SILENT_IP, 42000 + i, 9, size=size))
        for size in (limit + 1, 1514, 2000):
            failing.append(udp_frame(mac, vm_mac(0), VM_IP, SILENT_IP, 42100 + i, 9, size=size))
        # Larger than one mbuf: net_tap without RX scatter drops these itself (port
        # ierrors); either way they must not leave, and must be counted.
        for size in (4000, 8000):
            jumbo.append(udp_frame(mac, vm_mac(0), VM_IP, SILENT_IP, 42200 + i, 9, size=size))
    access_id = next(k for k, v in fwd.ports().items() if v["role"] == "access")
    before = fwd.stats()
    port_before = fwd.query(f"/ethdev/stats,{access_id}")
    topo.send_frames(failing[:3] + jumbo[:2] + passing + failing[3:] + jumbo[2:])
    cap.wait_for(len(passing))
    delta = fwd.settle(before)
    port_errors = fwd.query(f"/ethdev/stats,{access_id}")["ierrors"] - port_before["ierrors"]
    assert delta["dropped.mtu"] + port_errors == len(failing) + len(jumbo), (nonzero(delta), port_errors)
    assert delta["dropped.mtu"] >= len(failing), nonzero(delta)
    assert delta["encapsulated"] == len(passing), nonzero(delta)
    assert not drops(delta, expected=("mtu", "not_for_us")), nonzero(delta)
    pkts = cap.packets()
    assert len(pkts) == len(passing)
    lengths = sorted(int.from_bytes(bytes(p)[16:18], "big") for p in pkts)
    assert max(lengths) == 1400, f"outer IPv4 total lengths {lengths}: the largest must be exactly the MTU"
    inner = [bytes(p)[34 + (8 if bytes(p)[23] == 47 else 16):] for p in pkts]
    assert inner == passing, "the frames that fit must arrive whole, in order"
