"""EAL and port errors: exit status 1 and one explanatory 'tunnelfwd:' line, last on
stderr (DPDK's own 'EAL:' lines may come before it)."""

import pytest

from tfsys import TUNNELFWD, remove_dpdk_leftovers, run, unique_tag

CONFIG = """\
uplink: { port: UPLINK, address: 192.168.50.1/24, mtu: MTU }
access: [ { port: ACCESS, segment: 42 } ]
tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42 } ]
flood: [ { segment: 42, tunnels: [t1] } ]
"""


def start_failing(tmp_path, *, uplink="net_null0", access="net_null1", lcores="0-1", vdevs=("net_null0", "net_null1"),
                  prefix=None, mtu=1500, ns=None):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("UPLINK", uplink).replace("ACCESS", access).replace("MTU", str(mtu)))
    prefix = prefix or unique_tag()
    argv = [TUNNELFWD, "-l", lcores, "--no-pci", "--file-prefix", prefix]
    for v in vdevs:
        argv += ["--vdev", v]
    try:
        p = run(argv + ["--", "--config", config], check=False, timeout=60, ns=ns)
    finally:
        if prefix.startswith("tfs"):
            remove_dpdk_leftovers(prefix)
    own = [l for l in p.stderr.splitlines() if l.startswith("tunnelfwd:")]
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert len(own) == 1, f"expected one 'tunnelfwd:' line on stderr:\n{p.stderr}"
    assert p.stderr.strip().splitlines()[-1] == own[0], f"the explanation must be the last line:\n{p.stderr}"
    return own[0], p


@pytest.mark.parametrize("field,kw", [("uplink.port", {"uplink": "net_tap7"}), ("access[0].port", {"access": "net_tap8"})],
                         ids=["uplink", "access"])
def test_port_that_does_not_exist(field, kw, tmp_path):
    line, _ = start_failing(tmp_path, **kw)
    name = kw.get("uplink") or kw.get("access")
    assert line.startswith(f"tunnelfwd: {field}: there is no DPDK port named '{name}'"), line
    assert "net_null0" in line and "net_null1" in line, f"the ports that do exist should be listed: {line}"
    assert "--vdev" in line, f"the fix should be suggested: {line}"


def test_port_given_by_id_that_does_not_exist(tmp_path):
    line, _ = start_failing(tmp_path, uplink="9")
    assert line.startswith("tunnelfwd: uplink.port: there is no DPDK port 9"), line


def test_no_ports_at_all(tmp_path):
    line, _ = start_failing(tmp_path, vdevs=())
    assert "no ports" in line and "--vdev" in line, line


def test_single_lcore_leaves_no_worker(tmp_path):
    line, _ = start_failing(tmp_path, lcores="0")
    assert "no worker lcore" in line and "-l 0-1" in line, line


@pytest.fixture
def netns():
    """A network namespace of its own, for the net_tap devices a test creates."""
    name = unique_tag()
    run(["ip", "netns", "add", name])
    yield name
    run(["ip", "netns", "del", name], check=False)


def test_uplink_mtu_the_device_refuses(tmp_path, netns):
    """net_tap reports a largest frame of 1522 bytes and no maximum MTU, so ethdev takes
    MTU 1504 at most, while uplink.mtu 9000 passes --check (it is within 576-9000). The
    device's range is checked before the port is configured, so the start stops with
    this line rather than inside the PMD."""
    line, _ = start_failing(tmp_path, uplink="net_tap0", vdevs=("net_tap0", "net_null1"), mtu=9000, ns=netns)
    assert line == "tunnelfwd: uplink.mtu: net_tap0 (port 0) takes an MTU of 46 to 1504, not uplink.mtu 9000", line


def test_access_port_refusing_the_uplink_mtu(tmp_path, netns):
    """Access ports are programmed with uplink.mtu too (they carry inner frames as large as
    the uplink can): net_null as uplink takes 1505, a net_tap access port does not."""
    line, _ = start_failing(tmp_path, access="net_tap1", vdevs=("net_null0", "net_tap1"), mtu=1505, ns=netns)
    assert line == "tunnelfwd: access[0].port: net_tap1 (port 1) takes an MTU of 46 to 1504, not uplink.mtu 1505", line


def test_invalid_eal_argument(tmp_path):
    line, _ = start_failing(tmp_path, lcores="0-999")
    assert "EAL initialisation failed" in line, line


def _second_instance(make_topology, start_forwarder, config_for, tmp_path):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    config = tmp_path / "second.yaml"
    config.write_text(CONFIG.replace("UPLINK", "net_null0").replace("ACCESS", "net_null1").replace("MTU", "1500"))
    argv = [TUNNELFWD, "-l", "0-1", "--no-pci", "--file-prefix", fwd.prefix, "--vdev", "net_null0",
            "--vdev", "net_null1", "--", "--config", config]
    p = run(["ip", "netns", "exec", topo.dp] + argv, check=False, timeout=60)
    return fwd, p


def test_second_instance_with_the_same_file_prefix_is_refused(make_topology, start_forwarder, config_for, tmp_path):
    """The first forwarder keeps running, unharmed (its stop is checked at teardown)."""
    from tfsys import SILENT_IP, VM_IP, VX_MAC, udp_frame, vm_mac
    fwd, p = _second_instance(make_topology, start_forwarder, config_for, tmp_path)
    own = [l for l in p.stderr.splitlines() if l.startswith("tunnelfwd:")]
    assert p.returncode == 1 and len(own) == 1 and p.stderr.strip().splitlines()[-1] == own[0], p.stderr
    before = fwd.stats()
    fwd.topology.send_frames([udp_frame(VX_MAC, vm_mac(0), VM_IP, SILENT_IP, 46000, 9, size=100)] * 5)
    fwd.wait_stats(before, lambda d: d["encapsulated"] == 5, what="the first forwarder to keep forwarding")


def test_same_file_prefix_error_names_the_cause(make_topology, start_forwarder, config_for, tmp_path):
    _, p = _second_instance(make_topology, start_forwarder, config_for, tmp_path)
    last = p.stderr.strip().splitlines()[-1]
    assert "(Success)" not in last, last
    assert "file-prefix" in last, last
