"""A real VXLAN peer: the kernel's vxlan driver in the remote namespace decapsulates
what tunnelfwd sends, and a UDP socket behind it receives the VM's datagrams."""

import socket
import time

from tfsys import VM_IP, VX_IP, drops, nonzero, run


def test_udp_datagrams_reach_kernel_vxlan_peer_in_order(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    receiver = topo.udp_socket(topo.rm, bind=(VX_IP, 9000))
    receiver.settimeout(0.5)
    sender = topo.udp_socket(topo.vms[0])
    before = fwd.stats()
    count = 200
    try:
        for i in range(count):
            sender.sendto(f"seq {i:06d} ".encode() + b"x" * 64, (VX_IP, 9000))
            time.sleep(0.0005)
        received = []
        deadline = time.monotonic() + 10
        while len(received) < count and time.monotonic() < deadline:
            try:
                data, source = receiver.recvfrom(2048)
            except socket.timeout:
                continue
            assert source[0] == VM_IP, f"datagram from {source}, expected {VM_IP}"
            received.append(int(data.split()[1]))
    finally:
        sender.close()
        receiver.close()

    delta = fwd.settle(before)
    assert received == list(range(count)), (
        f"received {len(received)} of {count} datagrams; missing {sorted(set(range(count)) - set(received))[:20]}, "
        f"out of order: {received != sorted(received)}; counters {nonzero(delta)}")
    assert delta["encapsulated"] >= count, nonzero(delta)
    assert delta["rx"] >= count and delta["tx"] >= count, nonzero(delta)
    # Nothing is dropped (the remote answers nothing: the receiver is listening).
    assert not drops(delta), f"unexpected drops: {drops(delta)}"
    assert delta["misses"] == 0 and delta["flood_copies"] == 0, nonzero(delta)


def test_ping_round_trip_through_kernel_vxlan_peer(make_topology, start_forwarder, config_for):
    """Echo requests are encapsulated toward the remote; its kernel answers through its
    vxlan device, and tunnelfwd decapsulates the replies back to the VM."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    before = fwd.stats()
    p = run(["ping", "-c", "5", "-i", "0.2", "-W", "2", VX_IP], ns=topo.vms[0], check=False)
    delta = fwd.settle(before)
    assert "5 received" in p.stdout, f"{p.stdout}\ncounters {nonzero(delta)}"
    assert delta["encapsulated"] >= 5 and delta.get("decapsulated", 0) >= 5, nonzero(delta)
    assert not drops(delta), nonzero(delta)
