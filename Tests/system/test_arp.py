"""The control core answers ARP requests for the uplink address, and only for it."""

import json
import re

from tfsys import UPLINK_IP, run, wait_until


def test_control_core_answers_arp_for_the_uplink_address(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    uplink_mac = fwd.uplink_mac()

    # arping (raw sockets): every request answered, from the uplink's MAC.
    p = run(["arping", "-c", "3", "-w", "5", "-I", "eth0", UPLINK_IP], ns=topo.rm, check=False)
    assert "Received 3 response(s)" in p.stdout, p.stdout + p.stderr
    replies = re.findall(r"reply from (\S+) \[([0-9A-Fa-f:]+)\]", p.stdout)
    assert replies and all(ip == UPLINK_IP and mac.lower() == uplink_mac for ip, mac in replies), replies

    # The remote's kernel resolves the address itself (ping triggers ARP; the echo gets
    # no reply, since nothing above ARP is answered yet).
    run(["ping", "-c", "1", "-W", "1", UPLINK_IP], ns=topo.rm, check=False)

    def neighbor():
        entries = json.loads(run(["ip", "-j", "neigh", "show", UPLINK_IP, "dev", "eth0"], ns=topo.rm).stdout or "[]")
        return entries[0] if entries and entries[0].get("lladdr") else None
    entry = wait_until(neighbor, timeout=5, what=f"a neighbor entry for {UPLINK_IP} in the remote namespace")
    assert entry["lladdr"] == uplink_mac, entry
    assert not set(entry.get("state", [])) & {"FAILED", "INCOMPLETE"}, entry


def test_arp_for_other_addresses_is_not_answered(make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    before = fwd.stats()
    p = run(["arping", "-c", "2", "-w", "2", "-I", "eth0", "192.168.50.77"], ns=topo.rm, check=False)
    assert p.returncode != 0 and "Received 0 response(s)" in p.stdout, p.stdout + p.stderr
    delta = fwd.settle(before)
    assert delta["rx"] >= 2 and delta["tx"] == 0, delta
