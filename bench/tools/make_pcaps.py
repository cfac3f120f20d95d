#!/usr/bin/python3
"""Writes the pcaps that the throughput benchmark replays: inner frames for the access
port (`write`), and the same frames in VXLAN/Geneve/NVGRE for the uplink (`write_tunnel`,
the decapsulation row), with ARP requests for the control core's uplink queue
(`write_arp`).

Every frame is a real inner Ethernet/IPv4/UDP frame built by scapy (valid IPv4 and UDP
checksums). Frame i goes to destination MAC inner_mac(i % macs) and carries flow
i % flows: flows differ in source and destination IPv4 address and UDP ports, so the
outer UDP source port hash sees many flows. The MAC is not covered by any checksum, so
scapy builds each flow once and the MAC is patched in per frame (scapy needs ~0.5 ms
per packet; this keeps a 10 000-frame file to about a second).

`size` is the frame as DPDK sees it (mbuf data length, no FCS).

Needs Debian's python3-scapy: run it with /usr/bin/python3.

    /usr/bin/python3 make_pcaps.py OUT.pcap --size 64 --macs 10000 --frames 10000
"""
import argparse
import struct
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

SOURCE_MAC = "02:42:ff:00:00:01"


def inner_mac(n: int) -> str:
    """The n-th inner MAC: locally administered unicast 02:42:00:xx:xx:xx. The n-th
    static forwarding entry of the benchmark configuration uses it."""
    return "02:42:00:%02x:%02x:%02x" % ((n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)


def flow_frame(j: int, size: int) -> bytes:
    """Flow j as a `size`-byte Ethernet/IPv4/UDP frame (destination MAC to be patched)."""
    spread = j * 2654435761 & 0xFFFFFFFF   # Knuth's multiplicative spread of the index
    pkt = (
        Ether(dst=inner_mac(0), src=SOURCE_MAC)
        / IP(src="10.%d.%d.%d" % (1 + (spread >> 24) % 250, (spread >> 16) & 0xFF, 1 + (spread >> 8) % 254),
             dst="10.200.%d.%d" % ((j >> 8) & 0xFF, 1 + j % 254), ttl=64)
        / UDP(sport=1024 + spread % 60000, dport=1024 + (j * 7919) % 60000)
    )
    pad = size - len(pkt)
    if pad < 0:
        raise ValueError("size %d is below the %d bytes of the headers" % (size, len(pkt)))
    data = bytes(pkt / Raw(bytes((j + k) & 0xFF for k in range(pad))))
    assert len(data) == size, (len(data), size)
    return data


def mac_bytes(n: int) -> bytes:
    return bytes(int(x, 16) for x in inner_mac(n).split(":"))


def write(path: str, size: int, macs: int, frames: int, flows: int = 1024) -> None:
    """Writes a classic little-endian pcap (Ethernet link type) of `frames` frames."""
    templates = [flow_frame(j, size) for j in range(min(flows, frames))]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(frames):
            data = mac_bytes(i % macs) + templates[i % len(templates)][6:]
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(data), len(data)))
            f.write(data)


def tunnel_frame(kind: str, inner: bytes, flow: int, local: str, remote: str, vni: int, uplink_mac: str) -> bytes:
    """`inner` wrapped as the remote endpoint `remote` would send it to `local`: outer
    Ethernet (to the uplink's MAC), IPv4 (DF, valid checksum), then UDP 4789/VXLAN,
    UDP 6081/Geneve or GRE/NVGRE (key = VNI << 8); the outer UDP source port varies per
    flow as a real VTEP's does, the UDP checksum is 0."""
    from scapy.layers.l2 import GRE
    sport = 49152 + (flow * 2654435761 & 0xFFFFFFFF) % 16384
    outer = Ether(dst=uplink_mac, src=REMOTE_MAC) / IP(src=remote, dst=local, ttl=64, flags="DF", id=0)
    if kind == "vxlan":
        from scapy.layers.vxlan import VXLAN
        pkt = outer / UDP(sport=sport, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=vni) / Raw(inner)
    elif kind == "geneve":
        from scapy.contrib.geneve import GENEVE
        pkt = outer / UDP(sport=sport, dport=6081, chksum=0) / GENEVE(proto=0x6558, vni=vni) / Raw(inner)
    elif kind == "nvgre":
        pkt = outer / GRE(key_present=1, proto=0x6558, key=vni << 8) / Raw(inner)
    else:
        raise ValueError("unknown tunnel type %r" % kind)
    data = bytes(pkt)
    if kind != "nvgre":
        # scapy computes a UDP checksum when chksum is left alone; 0 is what VTEPs send.
        assert data[40:42] == b"\0\0", "UDP checksum not 0"
    return data


REMOTE_MAC = "02:42:ee:00:00:02"


def write_tunnel(path: str, kind: str, size: int, frames: int, local: str, remote: str, vni: int,
                 uplink_mac: str, flows: int = 1024) -> None:
    """A pcap of `frames` tunnel packets for the local endpoint: flow i % flows of
    `size`-byte inner frames (to inner_mac(0)), each wrapped by tunnel_frame."""
    templates = [tunnel_frame(kind, flow_frame(j, size), j, local, remote, vni, uplink_mac)
                 for j in range(min(flows, frames))]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(frames):
            data = templates[i % len(templates)]
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(data), len(data)))
            f.write(data)


def write_arp(path: str, frames: int, sender: str, target: str) -> None:
    """A pcap of `frames` identical broadcast ARP requests from `sender` for `target`:
    traffic the control core reads and ignores (the target is not the local endpoint)."""
    data = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=SOURCE_MAC) /
                 ARP(op=1, hwsrc=SOURCE_MAC, psrc=sender, pdst=target))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(frames):
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(data), len(data)))
            f.write(data)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--size", type=int, default=64, help="frame length in bytes, without FCS (default 64)")
    p.add_argument("--macs", type=int, default=1, help="distinct destination MACs (default 1)")
    p.add_argument("--frames", type=int, default=10000, help="frames in the file (default 10000)")
    p.add_argument("--flows", type=int, default=1024, help="distinct inner IPv4/UDP flows (default 1024)")
    a = p.parse_args()
    write(a.out, a.size, a.macs, a.frames, a.flows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
