"""EAL and port errors: exit status 1 and one explanatory 'tunnelfwd:' line, last on
stderr (DPDK's own 'EAL:' lines may come before it)."""

import pytest

from tfsys import TUNNELFWD, remove_dpdk_leftovers, run, unique_tag

CONFIG = """\
uplink: { port: UPLINK, address: 192.168.50.1/24 }
access: [ { port: ACCESS, segment: 42 } ]
tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42 } ]
flood: [ { segment: 42, tunnels: [t1] } ]
"""


def start_failing(tmp_path, *, uplink="net_null0", access="net_null1", lcores="0-1", vdevs=("net_null0", "net_null1"),
                  prefix=None):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("UPLINK", uplink).replace("ACCESS", access))
    prefix = prefix or unique_tag()
    argv = [TUNNELFWD, "-l", lcores, "--no-pci", "--file-prefix", prefix]
    for v in vdevs:
        argv += ["--vdev", v]
    try:
        p = run(argv + ["--", "--config", config], check=False, timeout=60)
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


def test_invalid_eal_argument(tmp_path):
    line, _ = start_failing(tmp_path, lcores="0-999")
    assert "EAL initialisation failed" in line, line


def _second_instance(make_topology, start_forwarder, config_for, tmp_path):
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    config = tmp_path / "second.yaml"
    config.write_text(CONFIG.replace("UPLINK", "net_null0").replace("ACCESS", "net_null1"))
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
