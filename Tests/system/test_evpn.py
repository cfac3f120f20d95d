"""BGP EVPN through FRR: a peer host (a kernel VTEP with FRR) and tunnelfwd's host (FRR
over vx42/tfevpn42, set up by deploy/evpn-host.sh) in an iBGP l2vpn evpn session.
tunnelfwd reads the remote VTEPs and MACs FRR installs on vx42 and makes tunnels and
forwarding entries of them, and writes the MACs of its access ports on tfevpn42 for FRR
to advertise (the topology: tfsys.EvpnTopology)."""

import json
import os
import signal
import threading
import time

import pytest

from tfsys import (
    EVPN_PORT, EVPN_VXLAN, REMOTE_IP, UPLINK_IP, VM_IP, VNI, VX_IP, VX_MAC,
    EvpnTopology, TimedUdpFlows, UdpFlows, drops, nonzero, run, tunnelctl, tunnelctl_json, vm_mac, wait_until,
)

TUNNEL = f"evpn-{VNI}-{REMOTE_IP}"
VM1_IP = "10.42.0.11"      # the second local VM's address, until it takes over a MAC
# Each EVPN hop takes about 61 ms (bgpd's fixed 50 ms hold, zebra's 10 ms); the margins
# are for a busy machine.
EVPN_TIMEOUT = 5


@pytest.fixture(scope="module", autouse=True)
def frr_installed():
    missing = [p for p in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/bin/vtysh") if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"FRR is not installed ({', '.join(missing)} missing): run 'sudo deploy/install-deps.sh'",
                    pytrace=False)


@pytest.fixture
def lab(tag):
    """The two EVPN hosts, sessions Established; FRR killed and everything removed after."""
    topo = EvpnTopology(tag)
    try:
        yield topo.build()
    finally:
        topo.destroy()


def evpn_config(topo: EvpnTopology, config_for, **sections) -> dict:
    """No tunnels of its own: every tunnel and remote MAC comes from EVPN."""
    return config_for(
        topo,
        access=[{"port": topo.access_vdev(i), "segment": VNI} for i in range(topo.access_count)],
        tunnels=[], forwarding=None, flood=None, neighbors=None,
        evpn={"segments": [{"vni": VNI, "vxlan_interface": EVPN_VXLAN, "local_port": EVPN_PORT}]},
        **sections)


def announce(ns: str, address: str):
    """One gratuitous ARP from `ns`'s eth0: its bridge (or tunnelfwd) sees the MAC."""
    p = run(["arping", "-U", "-c", "1", "-w", "1", "-I", "eth0", address], ns=ns, check=False)
    assert "Sent 1 probe" in p.stdout, p.stdout + p.stderr


def take_over(ns: str, mac: str, address: str):
    """`ns`'s VM takes `mac` and `address` (its old address goes) and announces itself."""
    run(["ip", "-n", ns, "addr", "flush", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "address", mac])
    run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
    announce(ns, address)


def silence(ns: str):
    """The VM keeps its link (its bridge entry stays, as when a VM migrates away) but
    drops its address, so that it answers nothing any more."""
    run(["ip", "-n", ns, "addr", "flush", "dev", "eth0"])


def evpn_tunnel(fwd) -> dict | None:
    for t in fwd.query("/tunnelfwd/tunnels").values():
        if t["name"] == TUNNEL:
            return t
    return None


def forwarding(fwd) -> dict[str, dict]:
    """MAC -> row of `tunnelctl forwarding show` (segment 42)."""
    rows = tunnelctl_json(fwd.prefix, "forwarding", "show", "--segment", str(VNI))["forwarding"]
    return {r["mac"]: r for r in rows}


def wait_forwarding(fwd, topo, mac: str, origin: str, tunnel: str | None = None):
    def there():
        row = forwarding(fwd).get(mac)
        return row if row and row.get("origin") == origin and (tunnel is None or row.get("tunnel") == tunnel) else None
    try:
        return wait_until(there, timeout=EVPN_TIMEOUT, what=f"{mac} in tunnelfwd's forwarding with origin {origin}"
                          + (f" toward {tunnel}" if tunnel else ""), interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{tunnelctl(fwd.prefix, 'forwarding', 'show').stdout}\n{topo.frr_report()}") from None


def wait_kernel(topo, what: str, predicate):
    try:
        return wait_until(predicate, timeout=EVPN_TIMEOUT, what=what, interval=0.05)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{topo.frr_report()}") from None


def start_evpn_forwarder(topo, start_forwarder, config_for) -> object:
    """tunnelfwd with the evpn segment; returns once the peer's VTEP is its resolved tunnel."""
    fwd = start_forwarder(topo, evpn_config(topo, config_for))
    try:
        wait_until(lambda: (evpn_tunnel(fwd) or {}).get("next_hop_mac", "unresolved") != "unresolved",
                   timeout=EVPN_TIMEOUT, what=f"tunnel {TUNNEL} resolved")
    except AssertionError as e:
        raise AssertionError(f"{e}\ntunnels: {fwd.query('/tunnelfwd/tunnels')}\nevpn: {fwd.query('/tunnelfwd/evpn')}\n"
                             f"{topo.frr_report()}") from None
    return fwd


def ping(ns: str, address: str, count: int = 5) -> str:
    p = run(["ping", "-c", count, "-i", "0.2", "-W", "2", address], ns=ns, check=False, timeout=30)
    return p.stdout if f"{count} received" in p.stdout else None


def test_evpn_host_script_builds_two_peering_hosts(lab):
    """deploy/evpn-host.sh on both sides, without tunnelfwd: the sessions come up, each
    side floods to the other's VTEP, a MAC written `static` on tfevpn42 (as tunnelfwd
    writes its local MACs) reaches the peer's vx42, and a peer VM's MAC reaches ours."""
    topo = lab
    assert topo.bgp_state(topo.dp) == {"10.255.0.2": "Established"}
    assert topo.flood_vteps(topo.dp) == {REMOTE_IP} and topo.flood_vteps(topo.rm) == {UPLINK_IP}
    vxlan = json.loads(run(["ip", "-d", "-j", "link", "show", EVPN_VXLAN], ns=topo.dp).stdout)[0]
    info = vxlan["linkinfo"]["info_data"]
    assert (info["id"], info["local"], info["port"], "UP" in vxlan["flags"]) == (VNI, UPLINK_IP, 4789, True), vxlan
    port = json.loads(run(["bridge", "-d", "-j", "link", "show", "dev", EVPN_VXLAN], ns=topo.dp).stdout)[0]
    assert (port["master"], port["learning"]) == ("br42", False), port
    routes = run(["ip", "route", "show", "type", "blackhole"], ns=topo.dp).stdout
    assert "192.168.50.0/24" in routes, routes

    mac = "02:00:00:00:77:01"
    run(["bridge", "fdb", "replace", mac, "dev", EVPN_PORT, "master", "static"], ns=topo.dp)
    wait_kernel(topo, f"{mac} on the peer's {EVPN_VXLAN} toward {UPLINK_IP}",
                lambda: topo.remote_macs(topo.rm).get(mac) == UPLINK_IP)
    run(["bridge", "fdb", "del", mac, "dev", EVPN_PORT, "master"], ns=topo.dp)
    wait_kernel(topo, f"{mac} withdrawn from the peer", lambda: mac not in topo.remote_macs(topo.rm))

    announce(topo.pvs[0], VX_IP)
    wait_kernel(topo, f"the peer VM's {VX_MAC} on our {EVPN_VXLAN} toward {REMOTE_IP}",
                lambda: topo.remote_macs(topo.dp).get(VX_MAC) == REMOTE_IP)
    entries = [e for e in topo.fdb(topo.dp, EVPN_VXLAN) if e["mac"] == VX_MAC]
    assert any(e.get("master") == "br42" and "extern_learn" in e.get("flags", []) for e in entries), entries
    assert any(e.get("dst") == REMOTE_IP and "self" in e.get("flags", []) for e in entries), entries

    topo.restart_frr(topo.dp)
    topo.wait_established()


def test_remote_vtep_and_macs_become_tunnel_and_forwarding(lab, start_forwarder, config_for):
    topo = lab
    fwd = start_evpn_forwarder(topo, start_forwarder, config_for)
    tunnel = evpn_tunnel(fwd)
    assert (tunnel["type"], tunnel["remote"], tunnel["vni"]) == ("vxlan", REMOTE_IP, VNI), tunnel
    stats = fwd.stats()
    # Resolved ahead of the overlay's first frame.
    assert stats["encapsulated"] == 0 and stats["misses"] == 0, nonzero(stats)

    announce(topo.pvs[0], VX_IP)
    wait_forwarding(fwd, topo, VX_MAC, "evpn", TUNNEL)
    announce(topo.vms[0], VM_IP)
    wait_forwarding(fwd, topo, vm_mac(0), "local")
    wait_kernel(topo, f"our VM's {vm_mac(0)} static on {EVPN_PORT}", lambda: topo.written_macs().get(vm_mac(0)) == "static")
    wait_kernel(topo, f"our VM's {vm_mac(0)} on the peer's {EVPN_VXLAN} toward {UPLINK_IP}",
                lambda: topo.remote_macs(topo.rm).get(vm_mac(0)) == UPLINK_IP)

    before = fwd.stats()
    assert ping(topo.vms[0], VX_IP), f"ping from our VM to the peer's failed; counters {nonzero(fwd.settle(before))}"
    assert ping(topo.pvs[0], VM_IP), f"ping from the peer's VM to ours failed; counters {nonzero(fwd.settle(before))}"

    out = UdpFlows(topo, [0], remote_ns=lambda i: topo.pvs[0])
    back = UdpFlows(topo, [0], port=9001, remote_ns=lambda i: topo.vms[0], sender_ns=topo.pvs[0],
                    address=lambda i: VM_IP, source_ip=VX_IP)
    try:
        before = fwd.stats()
        for _ in range(300):
            out.send_one(0)
            back.send_one(0)
            time.sleep(0.001)
        arrived = out.wait_all() and back.wait_all()
        delta = fwd.settle(before)
        assert arrived and not out.problems() and not back.problems(), (out.problems(), back.problems(), nonzero(delta))
    finally:
        out.close()
        back.close()
    assert delta["encapsulated"] >= 300 and delta["decapsulated"] >= 300, nonzero(delta)
    # Nothing waits for a next hop. The only copies are of decapsulated frames, one for
    # each access port of the segment beyond the first (tunnelfwd delivers a segment's
    # frames to all its access ports); none is flooded toward the tunnel.
    assert delta["misses"] == 0, nonzero(delta)
    assert delta["flood_copies"] == delta["decapsulated"] * (topo.access_count - 1), nonzero(delta)
    assert not drops(delta), nonzero(delta)
    evpn = fwd.query("/tunnelfwd/evpn")
    assert (evpn["vteps"], evpn["remote_macs"], evpn["local_macs"]) == (1, 1, 1), evpn


def test_mac_mobility_both_ways(lab, start_forwarder, config_for):
    """A local VM's MAC and address move to a VM behind the peer, and the peer VM's to a
    local VM: FRR's MAC mobility sequence numbers decide, and tunnelfwd's forwarding
    follows (traffic to the moved addresses finds them)."""
    topo = lab
    fwd = start_evpn_forwarder(topo, start_forwarder, config_for)
    run(["ip", "-n", topo.vms[1], "addr", "add", f"{VM1_IP}/24", "dev", "eth0"])
    announce(topo.pvs[0], VX_IP)
    announce(topo.vms[0], VM_IP)
    wait_forwarding(fwd, topo, VX_MAC, "evpn", TUNNEL)
    wait_kernel(topo, f"{vm_mac(0)} on the peer", lambda: topo.remote_macs(topo.rm).get(vm_mac(0)) == UPLINK_IP)

    # Local to remote: vm0's MAC and address go to the peer's silent VM.
    silence(topo.vms[0])
    take_over(topo.pvs[1], vm_mac(0), VM_IP)
    wait_forwarding(fwd, topo, vm_mac(0), "evpn", TUNNEL)
    wait_kernel(topo, f"{vm_mac(0)} no longer written on {EVPN_PORT}", lambda: vm_mac(0) not in topo.written_macs())
    wait_kernel(topo, f"{vm_mac(0)} local on the peer", lambda: vm_mac(0) not in topo.remote_macs(topo.rm))
    assert ping(topo.vms[1], VM_IP), f"{VM_IP} not reachable at the peer after the move\n{topo.frr_report()}"

    # Remote to local: the peer VM's MAC and address go to vm1.
    silence(topo.pvs[0])
    take_over(topo.vms[1], VX_MAC, VX_IP)
    wait_forwarding(fwd, topo, VX_MAC, "local")
    wait_kernel(topo, f"{VX_MAC} static on {EVPN_PORT}", lambda: topo.written_macs().get(VX_MAC) == "static")
    wait_kernel(topo, f"{VX_MAC} on the peer toward {UPLINK_IP}", lambda: topo.remote_macs(topo.rm).get(VX_MAC) == UPLINK_IP)
    assert ping(topo.pvs[1], VX_IP), f"{VX_IP} not reachable behind tunnelfwd after the move\n{topo.frr_report()}"
    rows = forwarding(fwd)
    assert rows[vm_mac(0)]["origin"] == "evpn" and rows[VX_MAC]["origin"] == "local", rows


def test_frr_restart_keeps_the_tunnel_and_the_flow(lab, start_forwarder, config_for):
    """FRR on tunnelfwd's host stops and starts again (a service restart): it withdraws
    every remote entry for 4-5 s. The VTEP's tunnel is held, never deleted and added
    again, and a datagram flow through it goes on."""
    topo = lab
    fwd = start_evpn_forwarder(topo, start_forwarder, config_for)
    announce(topo.pvs[0], VX_IP)
    wait_forwarding(fwd, topo, VX_MAC, "evpn", TUNNEL)
    assert ping(topo.vms[0], VX_IP, count=2)

    samples, kernel_flood = [], []
    sampling = threading.Event()
    sampling.set()

    def sample():
        while sampling.is_set():
            t = evpn_tunnel(fwd)
            samples.append((time.monotonic(), t and t["next_hop_mac"], fwd.stats()["tunnels_now"],
                            fwd.query("/tunnelfwd/evpn")["held_vteps"]))
            kernel_flood.append(REMOTE_IP in topo.flood_vteps(topo.dp))
            time.sleep(0.05)

    flows = TimedUdpFlows(topo, [0], remote_ns=lambda i: topo.pvs[0])
    sampler = threading.Thread(target=sample, daemon=True)
    try:
        before = fwd.stats()
        flows.start(gap=0.01)
        sampler.start()
        time.sleep(0.5)
        topo.restart_frr(topo.dp)
        topo.wait_established()
        wait_forwarding(fwd, topo, VX_MAC, "evpn", TUNNEL)
        time.sleep(1)
        flows.stop_sending()
        sampling.clear()
        sampler.join(5)
        arrived = flows.wait_all()
        delta = fwd.settle(before)
    finally:
        sampling.clear()
        flows.close()
    assert not all(kernel_flood), "the restart never withdrew the peer's VTEP from vx42: it tested nothing"
    gone = [s for s in samples if s[1] in (None, "unresolved") or s[2] != 1]
    assert not gone, f"{TUNNEL} went away or unresolved during the restart: {gone[:5]}"
    assert max(s[3] for s in samples) == 1, f"the withdrawn VTEP was never held: {samples[:3]}...{samples[-3:]}"
    assert arrived and not flows.problems(), (flows.problems(), nonzero(delta))
    gap = flows.largest_gap(0)
    assert gap < 2, f"the flow stopped for {gap:.2f} s during the restart; counters {nonzero(delta)}"
    assert delta["misses"] == 0 and not drops(delta), nonzero(delta)


def test_sigterm_withdraws_local_macs(lab, start_forwarder, config_for):
    """Leftovers on the local port are removed at start-up; what tunnelfwd wrote there is
    removed at a clean stop, and FRR withdraws it from the peer."""
    topo = lab
    stale = "02:00:00:00:77:02"
    run(["bridge", "fdb", "replace", stale, "dev", EVPN_PORT, "master", "static"], ns=topo.dp)
    wait_kernel(topo, f"{stale} on the peer", lambda: topo.remote_macs(topo.rm).get(stale) == UPLINK_IP)
    fwd = start_evpn_forwarder(topo, start_forwarder, config_for)
    wait_kernel(topo, f"the leftover {stale} removed from {EVPN_PORT}", lambda: stale not in topo.written_macs())

    run(["ip", "-n", topo.vms[1], "addr", "add", f"{VM1_IP}/24", "dev", "eth0"])
    announce(topo.vms[0], VM_IP)
    announce(topo.vms[1], VM1_IP)
    ours = {vm_mac(0), vm_mac(1)}
    wait_kernel(topo, f"{sorted(ours)} on the peer toward {UPLINK_IP}",
                lambda: all(topo.remote_macs(topo.rm).get(m) == UPLINK_IP for m in ours))
    assert set(topo.written_macs()) == ours, topo.written_macs()

    fwd.assert_clean_stop(signal.SIGTERM)
    assert topo.written_macs() == {}, f"left on {EVPN_PORT} after the stop: {topo.written_macs()}"
    wait_kernel(topo, "our MACs withdrawn from the peer", lambda: not ours & set(topo.remote_macs(topo.rm)))
    assert topo.flood_vteps(topo.rm) == {UPLINK_IP}, "the stop took our VTEP away from the peer: FRR's, not ours"
