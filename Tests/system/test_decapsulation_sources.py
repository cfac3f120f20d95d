"""Which tunnel packets are decapsulated: only those sent to the uplink's MAC, from a
possible source other than ourselves, and (with the default `decapsulation.accept_from:
tunnels`) from the remote of a tunnel in the packet's segment. Each refusal is counted
under its reason and nothing reaches the VM; `accept_from: any` lifts only the last rule."""

import pytest

from tfsys import REMOTE_IP, UPLINK_IP, VM_IP, nonzero, tunnel_packet, udp_frame

SPOOFED_REMOTE = "192.168.50.77"


def deliveries(topo, fwd, frames, port: int) -> list[bytes]:
    """Sends `frames` from the remote namespace; returns the payloads the VM received."""
    receiver = topo.udp_socket(topo.vms[0], bind=(VM_IP, port))
    receiver.settimeout(0.5)
    got = []
    try:
        topo.send_frames(frames, ns=topo.rm, gap=0.002)
        while True:
            try:
                got.append(receiver.recvfrom(2048)[0])
            except TimeoutError:
                return got
    finally:
        receiver.close()


@pytest.mark.parametrize("accept_from", ["tunnels", "any"])
def test_tunnel_packets_are_taken_only_from_possible_sources_to_our_mac(
        accept_from, make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, decapsulation={"accept_from": accept_from}))
    uplink = fwd.uplink_mac()
    vm = topo.link_mac(topo.vms[0], "eth0")

    def packet(label: str, src: str = REMOTE_IP, dst_mac: str = uplink) -> bytes:
        inner = udp_frame(vm, "02:00:00:00:77:01", "10.42.0.77", VM_IP, 40000, 9200, label.encode())
        return tunnel_packet("vxlan", dst_mac, inner, src=src)

    cases = {
        "ok": packet("ok"),
        "spoofed remote": packet("spoofed remote", src=SPOOFED_REMOTE),
        "broadcast MAC": packet("broadcast MAC", dst_mac="ff:ff:ff:ff:ff:ff"),
        "multicast MAC": packet("multicast MAC", dst_mac="01:00:5e:00:00:01"),
        "loopback source": packet("loopback source", src="127.0.0.1"),
        "multicast source": packet("multicast source", src="224.0.0.9"),
        "our own address": packet("our own address", src=UPLINK_IP),
    }
    before = fwd.stats()
    got = sorted(p.decode() for p in deliveries(topo, fwd, list(cases.values()), 9200))
    delta = fwd.settle(before)
    taken = ["ok", "spoofed remote"] if accept_from == "any" else ["ok"]
    assert got == sorted(taken), (got, nonzero(delta))
    assert delta["decapsulated"] == len(taken), nonzero(delta)
    assert delta["dropped.unknown_source"] == (0 if accept_from == "any" else 1), nonzero(delta)
    assert delta["dropped.not_our_mac"] == 2, nonzero(delta)
    assert delta["dropped.martian_source"] == 3, nonzero(delta)
    assert delta["dropped.total"] == len(cases) - len(taken), nonzero(delta)
