"""Clean shutdown: SIGINT and SIGTERM, and the other signals whose default would end or
hang the process (SIGHUP, SIGQUIT, SIGABRT, SIGUSR1), stop the forwarder while traffic
flows, with exit status 0, every mbuf back in the pool, and the ports closed."""

import signal
import threading
import time

import pytest

from tfsys import SILENT_IP, VM_IP, VX_MAC, run, udp_frame, vm_mac


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT, signal.SIGUSR1]


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_signal_stops_cleanly_under_traffic(sig, make_topology, start_forwarder, config_for):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    frames = [udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 45000 + i, 9, size=200) for i in range(16)]
    frames += [udp_frame("ff:ff:ff:ff:ff:ff", vm_mac(0), VM_IP, SILENT_IP, 45100, 9, size=200)]  # flooded
    sock = topo.raw_socket(topo.vms[0])
    stop = threading.Event()
    sent = [0]

    def blast():
        deadline = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            for f in frames:
                try:
                    sock.send(f)
                    sent[0] += 1
                except OSError:
                    time.sleep(0.001)
            time.sleep(0.0002)

    sender = threading.Thread(target=blast, daemon=True)
    before = fwd.stats()
    sender.start()
    try:
        fwd.wait_stats(before, lambda d: d["encapsulated"] >= 500, what="traffic to flow", timeout=10)
        started = time.monotonic()
        fwd.assert_clean_stop(sig)
        took = time.monotonic() - started
    finally:
        stop.set()
        sender.join()
        sock.close()
    assert took < 5, f"stopping took {took:.1f}s"
    assert sent[0] > 500
    # Ports closed: net_tap removes its kernel interfaces when the port is closed.
    for tap in (topo.uplink_tap, topo.access_tap(0)):
        assert run(["ip", "link", "show", tap], ns=topo.dp, check=False).returncode != 0, f"{tap} still exists"
