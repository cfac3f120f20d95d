"""Wire format of each encapsulation, decoded independently of the forwarder: tcpdump
captures on the remote's underlay interface, scapy dissects every field (and the raw
bytes are checked against the RFCs), tshark decodes the same capture a second time."""

import subprocess

import pytest

from tfsys import (
    REMOTE_IP, REMOTE_MAC, SILENT_IP, UPLINK_IP, VM_IP, VX_MAC, arp_request, drops, ipv4_checksum, nonzero,
    udp_frame, vm_mac,
)

# A VNI that uses all three bytes, and that the remote's kernel vxlan device (VNI 42)
# ignores, so the remote sends nothing back.
FORMAT_VNI = 0x4C4B7B
FLOWS = 8
PACKETS_PER_FLOW = 4
SIZES = [60, 64, 128, 333, 512, 1024, 1400]

# type -> (IP protocol, UDP destination port or None, outer header bytes after IPv4)
FORMATS = {
    "vxlan": (17, 4789, 16),
    "geneve": (17, 6081, 16),
    "nvgre": (47, None, 8),
}


def inner_frames():
    """FLOWS flows (inner UDP source port differs) x PACKETS_PER_FLOW packets, of several
    sizes, interleaved, plus a broadcast ARP request (non-IP, flooded to the tunnel)."""
    frames, flows = [], []
    for n in range(PACKETS_PER_FLOW):
        for f in range(FLOWS):
            size = SIZES[(n * FLOWS + f) % len(SIZES)]
            frames.append(udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 20000 + f, 7, payload=f"f{f}n{n}".encode(), size=size))
            flows.append(f)
    frames.append(arp_request(vm_mac(0), VM_IP, SILENT_IP))
    flows.append("arp")
    return frames, flows


def tshark_fields(pcap, fields, decode_as=()):
    argv = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
            "-E", "occurrence=f"]  # the outer header's field, not the inner frame's
    for d in decode_as:
        argv += ["-d", d]
    for f in fields:
        argv += ["-e", f]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"tshark failed: {p.stderr}"
    return [dict(zip(fields, line.split("|"))) for line in p.stdout.splitlines() if line.strip()]


def check_outer(pkt, *, encap, uplink_mac, sent, ttl=64, df=True, dst_port=None, vni=FORMAT_VNI, flow_id=0):
    """Checks every outer field of one captured packet and returns (udp source port or
    None, inner frame bytes)."""
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import GRE, Ether
    # Layers are dissected explicitly from the offsets the RFCs give, whatever port the
    # tunnel uses.
    from scapy.layers.vxlan import VXLAN

    proto, default_port, encap_len = FORMATS[encap]
    dst_port = dst_port or default_port
    raw = bytes(pkt)
    eth = pkt[Ether]
    assert eth.src == uplink_mac, f"outer source MAC {eth.src}, expected the uplink's {uplink_mac}"
    assert eth.dst == REMOTE_MAC, f"outer destination MAC {eth.dst}, expected the static neighbor {REMOTE_MAC}"
    assert eth.type == 0x0800
    ip = pkt[IP]
    iph = raw[14:34]
    assert ip.version == 4 and ip.ihl == 5, (ip.version, ip.ihl)
    assert ip.ttl == ttl, f"TTL {ip.ttl}, expected {ttl}"
    assert bool(ip.flags.DF) == df, f"DF {ip.flags}, expected DF={'set' if df else 'clear'}"
    assert not ip.flags.MF and ip.frag == 0
    assert ip.proto == proto
    assert ip.src == UPLINK_IP and ip.dst == REMOTE_IP, (ip.src, ip.dst)
    assert ipv4_checksum(iph) == 0, f"bad IPv4 header checksum {ip.chksum:#06x} in {iph.hex()}"
    assert ip.len == len(raw) - 14, f"IPv4 total length {ip.len}, frame carries {len(raw) - 14}"
    assert ip.tos == 0

    inner_start = 14 + 20 + encap_len
    inner = raw[inner_start:]
    assert inner == sent, "inner frame differs from what the VM sent"
    sport = None
    if proto == 17:
        udp = pkt[UDP]
        assert udp.dport == dst_port, f"UDP destination port {udp.dport}, expected {dst_port}"
        assert 49152 <= udp.sport <= 65535, f"UDP source port {udp.sport} outside 49152-65535"
        assert udp.chksum == 0, f"UDP checksum {udp.chksum:#06x}, expected 0"
        assert udp.len == len(raw) - 34, f"UDP length {udp.len}, expected {len(raw) - 34}"
        sport = udp.sport
        hdr = raw[42:50]
        if encap == "vxlan":
            v = VXLAN(raw[42:])
            assert hdr[0] == 0x08 and hdr[1:4] == b"\0\0\0" and hdr[7] == 0, f"VXLAN header {hdr.hex()}"
            assert v.vni == vni, f"VNI {v.vni}, expected {vni}"
            assert int.from_bytes(hdr[4:7], "big") == vni
        else:
            g = GENEVE(raw[42:])
            assert g.version == 0 and g.optionlen == 0 and g.oam == 0 and g.critical == 0, g.show(dump=True)
            assert g.proto == 0x6558, f"Geneve protocol {g.proto:#06x}"
            assert g.vni == vni, f"VNI {g.vni}, expected {vni}"
            assert hdr[0] == 0 and hdr[1] == 0 and hdr[2:4] == b"\x65\x58" and hdr[7] == 0, f"Geneve header {hdr.hex()}"
            assert int.from_bytes(hdr[4:7], "big") == vni
    else:
        gre = GRE(raw[34:])
        hdr = raw[34:42]
        assert hdr[0:2] == b"\x20\x00", f"GRE flags/version {hdr[0:2].hex()}, expected 2000 (K only, version 0)"
        assert gre.key_present == 1 and gre.chksum_present == 0 and gre.seqnum_present == 0 and gre.version == 0
        assert gre.proto == 0x6558, f"GRE protocol {gre.proto:#06x}"
        expected_key = vni << 8 | flow_id
        assert gre.key == expected_key, f"GRE key {gre.key:#010x}, expected VSID<<8|FlowID = {expected_key:#010x}"
    return sport, inner


@pytest.mark.parametrize("encap", ["vxlan", "geneve", "nvgre"])
def test_encapsulation_wire_format(encap, make_topology, start_forwarder, config_for, capture):
    topo = make_topology()
    tunnel = {"name": "t1", "type": encap, "remote": REMOTE_IP, "vni": FORMAT_VNI}
    flow_id = 0
    if encap == "nvgre":
        flow_id = 0xA7
        tunnel["flow_id"] = flow_id
    cfg = config_for(topo, access=[{"port": topo.access_vdev(0), "segment": FORMAT_VNI}], tunnels=[tunnel],
                     forwarding=[{"segment": FORMAT_VNI, "mac": VX_MAC, "tunnel": "t1"}],
                     flood=[{"segment": FORMAT_VNI, "tunnels": ["t1"]}])
    fwd = start_forwarder(topo, cfg)
    uplink_mac = fwd.uplink_mac()
    assert uplink_mac == topo.link_mac(topo.dp, topo.uplink_tap), "telemetry's uplink MAC is not the tap's"

    proto, port, _ = FORMATS[encap]
    bpf = f"src host {UPLINK_IP} and " + (f"udp dst port {port}" if port else "ip proto 47")
    cap = capture(topo.rm, "eth0", bpf)
    frames, flows = inner_frames()
    before = fwd.stats()
    topo.send_frames(frames)
    pkts = cap.wait_for(len(frames))
    delta = fwd.settle(before)
    cap.stop()
    pkts = cap.packets()
    assert len(pkts) == len(frames), f"captured {len(pkts)}, sent {len(frames)}; counters {nonzero(delta)}"
    # The remote answers Geneve and GRE with ICMP unreachables (it has no such device).
    assert delta["encapsulated"] == len(frames) and not drops(delta), nonzero(delta)

    ports_by_flow = {}
    for i, (pkt, sent, flow) in enumerate(zip(pkts, frames, flows)):
        try:
            sport, _ = check_outer(pkt, encap=encap, uplink_mac=uplink_mac, sent=sent, flow_id=flow_id)
        except AssertionError as e:
            raise AssertionError(f"packet {i} (flow {flow}): {e}\n{pkt.show(dump=True)}") from None
        ports_by_flow.setdefault(flow, set()).add(sport)

    if port:
        for flow, sports in ports_by_flow.items():
            assert len(sports) == 1, f"flow {flow} used several UDP source ports: {sports}"
        distinct = {next(iter(ports_by_flow[f])) for f in range(FLOWS)}
        assert len(distinct) >= FLOWS - 2, f"{FLOWS} inner flows share only {len(distinct)} UDP source ports: {distinct}"

    # Second, independent decoder.
    if encap == "vxlan":
        fields = ["eth.src", "eth.dst", "ip.ttl", "ip.flags.df", "ip.checksum.status", "udp.dstport",
                  "udp.checksum", "vxlan.flag_i", "vxlan.vni", "eth.type"]
        rows = tshark_fields(cap.path, fields)
        for r in rows:
            assert r["vxlan.vni"] == str(FORMAT_VNI) and r["vxlan.flag_i"] in ("1", "True"), r
    elif encap == "geneve":
        fields = ["eth.src", "eth.dst", "ip.ttl", "ip.flags.df", "ip.checksum.status", "udp.dstport",
                  "udp.checksum", "geneve.version", "geneve.proto_type", "geneve.vni"]
        rows = tshark_fields(cap.path, fields)
        for r in rows:
            assert r["geneve.version"] == "0" and int(r["geneve.proto_type"], 0) == 0x6558, r
            assert int(r["geneve.vni"], 0) == FORMAT_VNI, r
    else:
        fields = ["eth.src", "eth.dst", "ip.ttl", "ip.flags.df", "ip.checksum.status", "ip.proto",
                  "gre.flags.key", "gre.proto", "gre.key"]
        rows = tshark_fields(cap.path, fields)
        for r in rows:
            assert r["gre.flags.key"] in ("1", "True") and int(r["gre.proto"], 0) == 0x6558, r
            assert int(r["gre.key"], 0) == FORMAT_VNI << 8 | flow_id, r
    assert len(rows) == len(frames)
    for r in rows:
        assert r["eth.src"] == uplink_mac and r["eth.dst"] == REMOTE_MAC, r
        assert r["ip.ttl"] == "64" and r["ip.flags.df"] in ("1", "True"), r
        assert r["ip.checksum.status"] == "1", f"tshark: IPv4 checksum status {r['ip.checksum.status']} (1 = good)"
        if port:
            assert r["udp.dstport"] == str(port) and int(r["udp.checksum"], 0) == 0, r


def test_tunnel_options_ttl_df_dst_port(make_topology, start_forwarder, config_for, capture):
    """ttl, df: false and dst_port are written as configured; without DF the IPv4
    identification changes from packet to packet."""
    topo = make_topology()
    tunnel = {"name": "t1", "type": "vxlan", "remote": REMOTE_IP, "vni": FORMAT_VNI,
              "dst_port": 8472, "ttl": 17, "df": False}
    cfg = config_for(topo, access=[{"port": topo.access_vdev(0), "segment": FORMAT_VNI}], tunnels=[tunnel],
                     forwarding=[{"segment": FORMAT_VNI, "mac": VX_MAC, "tunnel": "t1"}],
                     flood=[{"segment": FORMAT_VNI, "tunnels": ["t1"]}])
    fwd = start_forwarder(topo, cfg)
    cap = capture(topo.rm, "eth0", f"src host {UPLINK_IP} and udp dst port 8472")
    frames = [udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 30000, 7, payload=bytes([i]) * 10, size=100) for i in range(10)]
    topo.send_frames(frames)
    pkts = cap.wait_for(len(frames))
    uplink_mac = fwd.uplink_mac()
    ids = []
    for pkt, sent in zip(pkts, frames):
        check_outer(pkt, encap="vxlan", uplink_mac=uplink_mac, sent=sent, ttl=17, df=False, dst_port=8472)
        ids.append(pkt["IP"].id)
    assert len(set(ids)) == len(ids), f"IPv4 identification repeats without DF: {ids}"
