"""Jumbo frames end to end, frames that arrive in more than one mbuf, and decapsulated
frames larger than the access ports can send.

net_tap takes no MTU above 1504 (it reports a largest frame of 1522 bytes), so the jumbo
tests give the forwarder net_pcap ports on the veths themselves (Topology ports="pcap"),
which take any MTU."""

import random
import socket
import threading
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from tfsys import (
    REMOTE_IP, REMOTE_MAC, SILENT_IP, UPLINK_IP, VM_IP, VX_IP, VX_MAC, drops, nonzero, run, udp_frame, vm_mac,
)

UNDERLAY_MTU = 9000
# The VXLAN overhead (outer IPv4, UDP, VXLAN and inner Ethernet headers) is 50 bytes.
OVERLAY_MTU = UNDERLAY_MTU - 50
# ICMP echo payload of the largest packet the overlay carries (IPv4 20 + ICMP 8 bytes).
LARGEST_PING = OVERLAY_MTU - 28
PORT = 9000
# Linux's SO_RCVBUFFORCE (Python has no name for it): root may pass net.core.rmem_max,
# which holds only about twenty 9 KiB datagrams.
SO_RCVBUFFORCE = 33


def small_pool(**sections) -> dict:
    """Sections that shrink the mbuf pool: a jumbo mbuf is 9.5 KiB and the machine's
    hugepages are shared by parallel test runs (about 60 MiB instead of 230)."""
    return {"dataplane": {"rx_descriptors": 256, "tx_descriptors": 256, "extra_mbufs": 1024},
            "pending": {"per_core": 1024}, **sections}


def payload(n: int) -> bytes:
    """Datagram n: its number, then bytes that differ from one datagram to the next, up
    to the largest UDP payload of the overlay MTU."""
    head = f"seq {n:06d} ".encode()
    return head + random.Random(n).randbytes(OVERLAY_MTU - 28 - len(head))


class Echo:
    """A UDP socket in the remote namespace, behind its kernel vxlan device, that sends
    every datagram back to where it came from, and keeps what it received."""

    def __init__(self, topo):
        self.sock = topo.udp_socket(topo.rm, bind=(VX_IP, PORT))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.settimeout(0.1)
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.received.append(data)
            self.sock.sendto(data, source)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_jumbo_datagrams_and_pings_cross_both_ways(make_topology, start_forwarder, config_for):
    """uplink.mtu 9000, the remote's underlay 9000 and its vxlan device 8950, the VM's
    link 8950: the largest datagrams the VM can send (inner frames of 8964 bytes, outer
    IPv4 packets of exactly 9000) reach a socket behind the remote's kernel vxlan device
    and come back, decapsulated by tunnelfwd, every one, byte-exact and in order; pings of
    the largest size with DF go both ways. One byte more than fits is dropped as mtu."""
    topo = make_topology(vm_mtu=OVERLAY_MTU, ports="pcap", underlay_mtu=UNDERLAY_MTU, vxlan_mtu=OVERLAY_MTU)
    cfg = config_for(topo, uplink={"port": topo.uplink_vdev, "address": f"{UPLINK_IP}/24", "mtu": UNDERLAY_MTU},
                     **small_pool())
    fwd = start_forwarder(topo, cfg)
    ports = fwd.ports()
    assert sorted(p["mtu"] for p in ports.values()) == [UNDERLAY_MTU, UNDERLAY_MTU], (
        f"every port must be programmed with uplink.mtu: {ports}")
    # The remote answers pings through the tunnel without asking ARP first.
    run(["ip", "neigh", "add", VM_IP, "lladdr", vm_mac(0), "dev", "vx0", "nud", "permanent"], ns=topo.rm)

    echo = Echo(topo)
    vm = topo.udp_socket(topo.vms[0], bind=(VM_IP, PORT))
    vm.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    vm.settimeout(0.2)
    count = 100
    # At most `window` datagrams on their way: net_pcap reads through the kernel's packet
    # ring, which a worker descheduled on a busy machine could let overflow.
    window = 8
    sent = [payload(n) for n in range(count)]
    back: list[bytes] = []
    before = fwd.stats()
    try:
        deadline = time.monotonic() + 30
        next_to_send = 0
        while len(back) < count and time.monotonic() < deadline:
            while next_to_send < count and next_to_send - len(back) < window:
                assert vm.sendto(sent[next_to_send], (VX_IP, PORT)) == len(sent[next_to_send])
                next_to_send += 1
            try:
                back.append(vm.recv(65536))
            except socket.timeout:
                continue
    finally:
        vm.close()
        echo.close()
    delta = fwd.settle(before)
    # What the devices lost before tunnelfwd saw it (net_pcap counts the kernel ring's drops as imissed).
    port_stats = {p["role"]: {k: v for k, v in fwd.query(f"/ethdev/stats,{i}").items()
                              if k in ("ipackets", "imissed", "ierrors", "oerrors")} for i, p in ports.items()}

    def numbers(datagrams):
        return [int(d.split()[1]) for d in datagrams]
    assert numbers(echo.received) == list(range(count)), (
        f"the remote received {numbers(echo.received)[:20]}... of {count}; counters {nonzero(delta)}; ports {port_stats}")
    assert echo.received == sent, "datagrams must reach the remote byte for byte"
    assert numbers(back) == list(range(count)), f"the VM got back {numbers(back)[:20]}...; counters {nonzero(delta)}"
    assert back == sent, "datagrams must come back byte for byte"
    assert delta["encapsulated"] == count and delta["decapsulated"] == count, nonzero(delta)
    assert not drops(delta), nonzero(delta)

    # Pings of the largest size, DF set, both ways.
    before = fwd.stats()
    for ns, target in ((topo.vms[0], VX_IP), (topo.rm, VM_IP)):
        p = run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", LARGEST_PING, target], ns=ns, check=False)
        assert "3 received" in p.stdout, f"ping -s {LARGEST_PING} to {target}:\n{p.stdout}{p.stderr}"
    delta = fwd.settle(before)
    assert delta["encapsulated"] == 6 and delta["decapsulated"] == 6, nonzero(delta)
    assert not drops(delta), nonzero(delta)

    # One byte more: the VM's link must let it out, tunnelfwd must not.
    for ns, iface in ((topo.vms[0], "eth0"), (topo.dp, topo.access_veth(0))):
        run(["ip", "link", "set", iface, "mtu", UNDERLAY_MTU], ns=ns)
    before = fwd.stats()
    p = run(["ping", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", LARGEST_PING + 1, VX_IP], ns=topo.vms[0],
            check=False)
    assert "2 packets transmitted, 0 received" in p.stdout, p.stdout + p.stderr
    delta = fwd.settle(before)
    assert delta["dropped.mtu"] == 2 and delta["encapsulated"] == 0, nonzero(delta)
    assert not drops(delta, expected=("mtu",)), nonzero(delta)


def test_frames_received_in_several_mbufs_are_dropped_as_chained(make_topology, start_forwarder, config_for):
    """uplink.mtu 1500 keeps the 2 KiB data room. net_pcap copies a larger frame into a
    chain of mbufs (other devices scatter too when told to, or when their buffers are
    smaller than the frame): a 3000-byte frame from the VM, and a 3000-byte tunnel packet
    from the remote, are dropped as chained, not read as malformed, while frames that fit
    one mbuf pass."""
    topo = make_topology(vm_mtu=4000, ports="pcap", underlay_mtu=4000)
    fwd = start_forwarder(topo, config_for(topo))
    uplink_mac = fwd.uplink_mac()

    def tunnel_packet(size):
        inner = udp_frame(vm_mac(0), VX_MAC, VX_IP, SILENT_IP, 47000, 9, size=size)
        return bytes(Ether(dst=uplink_mac, src=REMOTE_MAC) / IP(src=REMOTE_IP, dst=UPLINK_IP) /
                     UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=42) / inner)

    before = fwd.stats()
    # To an address nobody has, so that no kernel answers and the counts stay exact.
    topo.send_frames([udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 47000, 9, size=3000),
                      udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 47000, 9, size=1400)])
    topo.send_frames([tunnel_packet(3000), tunnel_packet(1400)], ns=topo.rm)
    delta = fwd.wait_stats(before, lambda d: d["dropped.chained"] == 2 and d["encapsulated"] == 1
                           and d.get("decapsulated", 0) == 1, what="two chained drops, one frame each way")
    delta = fwd.settle(before)
    assert delta["dropped.chained"] == 2 and delta["encapsulated"] == 1 and delta["decapsulated"] == 1, nonzero(delta)
    assert not drops(delta, expected=("chained", "not_for_us")), nonzero(delta)


def test_decapsulated_frame_larger_than_the_access_port_takes_is_dropped_as_mtu(make_topology, start_forwarder,
                                                                                 config_for):
    """Default uplink.mtu 1500, but the remote's underlay link is 2000 and its vxlan device
    1950: the remote sends outer packets over our MTU, which net_tap still receives into a
    2 KiB mbuf. An inner frame larger than the access port can send (its MTU 1500 with an
    Ethernet header and a VLAN tag, 1518 bytes) is dropped as mtu before it reaches the TX
    queue (which used to refuse it as tx_full); one that fits is delivered."""
    topo = make_topology(underlay_mtu=2000, vxlan_mtu=1950)
    fwd = start_forwarder(topo, config_for(topo))
    run(["ip", "neigh", "add", VM_IP, "lladdr", vm_mac(0), "dev", "vx0", "nud", "permanent"], ns=topo.rm)
    before = fwd.stats()
    # 1422 bytes of ICMP payload: the reply's outer packet is exactly uplink.mtu.
    p = run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", 1422, VM_IP], ns=topo.rm, check=False)
    assert "2 received" in p.stdout, p.stdout + p.stderr
    delta = fwd.settle(before)
    assert delta["decapsulated"] == 2 and delta["encapsulated"] == 2 and not drops(delta), nonzero(delta)

    before = fwd.stats()
    # An inner frame of 1942 bytes.
    p = run(["ping", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", 1900, VM_IP], ns=topo.rm, check=False)
    assert "2 packets transmitted, 0 received" in p.stdout, p.stdout + p.stderr
    delta = fwd.settle(before)
    assert delta["dropped.mtu"] == 2, nonzero(delta)
    assert delta.get("decapsulated", 0) == 0 and delta["tx"] == 0, nonzero(delta)
    assert not drops(delta, expected=("mtu",)), nonzero(delta)
