"""The uplink's link going down while traffic runs, and coming back."""

import time

from tfsys import drops, flatten_delta, nonzero, run, wait_until


def link_of(fwd, role: str) -> str:
    """The link state of the port with `role`, as the control core last polled it."""
    return next(p["link"] for p in fwd.ports().values() if p["role"] == role)


def test_tx_failures_while_the_uplink_is_down_are_counted_link_down(make_topology, start_forwarder, config_for,
                                                                      udp_flows):
    """Numbered datagrams flow from the VM to the remote's socket; the uplink tap is set
    down in the forwarder's namespace (net_tap then reports the link down, and the
    kernel refuses what it writes to the tap), later up again. The forwarder stays up;
    once the control core has seen the link down (it polls every 100 ms, and
    /tunnelfwd/ports shows what it saw), every refused packet is counted link_down and
    none tx_full; packets refused in the moment before that poll are still counted
    tx_full, as a worker cannot tell them apart without asking the device itself. After
    link up traffic flows again, and every datagram sent is either received, in order,
    or counted: the lost ones are one run, the time the link was down."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    assert link_of(fwd, "uplink") == "up"
    flows = udp_flows(topo, [0])
    before = fwd.stats()
    flows.start(gap=0.002)
    wait_until(lambda: len(flows.received[0]) >= 50, timeout=10, what="traffic before the link goes down")

    run(["ip", "link", "set", topo.uplink_tap, "down"], ns=topo.dp)
    wait_until(lambda: link_of(fwd, "uplink") == "down", timeout=5, what="the control core to see the link down")
    at_down = fwd.stats()
    sent_at_down = flows.sent[0]
    wait_until(lambda: flows.sent[0] - sent_at_down >= 100, timeout=10, what="traffic while the link is down")
    during = flatten_delta(fwd.stats(), at_down)
    assert during["tx"] == 0, f"nothing can leave a down link: {nonzero(during)}"
    assert during["dropped.link_down"] >= 90 and during["dropped.tx_full"] == 0, nonzero(during)

    run(["ip", "link", "set", topo.uplink_tap, "up"], ns=topo.dp)
    wait_until(lambda: link_of(fwd, "uplink") == "up", timeout=5, what="the control core to see the link up")
    received_at_up = len(flows.received[0])
    wait_until(lambda: len(flows.received[0]) >= received_at_up + 50, timeout=10, what="traffic after link up")
    flows.stop_sending()
    flows.wait_all(timeout=2)
    flows.wait_quiet()
    delta = fwd.settle(before)

    sent, got = flows.sent[0], flows.received[0]
    lost = sorted(set(range(sent)) - set(got))
    assert got == sorted(got) and len(set(got)) == len(got), "datagrams must arrive in order, once"
    assert lost and lost == list(range(lost[0], lost[-1] + 1)), f"the lost datagrams must be one run: {lost}"
    assert delta["encapsulated"] == sent, nonzero(delta)
    assert sent == len(got) + delta["dropped.link_down"] + delta["dropped.tx_full"], (
        f"sent {sent}, received {len(got)}, counters {nonzero(delta)}")
    assert not drops(delta, expected=("link_down", "tx_full", "not_for_us")), nonzero(delta)
