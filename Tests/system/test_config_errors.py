"""Bad configuration is refused before DPDK starts: exit status 1, and the last line on
stderr is 'tunnelfwd: FILE: path.to.field: message'. No DPDK runtime folder or
hugepage file is created for the --file-prefix."""

import pytest

from tfsys import REPO, TUNNELFWD, dpdk_leftovers, remove_dpdk_leftovers, run, unique_tag

VALID = """\
uplink: { port: net_null0, address: 192.168.50.1/24 }
access: [ { port: net_null1, segment: 42 } ]
tunnels: [ { name: t1, type: vxlan, remote: 192.168.50.2, vni: 42 } ]
forwarding: [ { segment: 42, mac: "02:00:00:00:00:02", tunnel: t1 } ]
flood: [ { segment: 42, tunnels: [t1] } ]
neighbors: [ { address: 192.168.50.2, mac: "02:00:00:00:00:aa" } ]
"""

# (test id, text replaced in VALID, replacement, field path expected in the error, words expected in the message)
CASES = [
    ("vni_over_24_bits", "vni: 42 }", "vni: 16777216 }", "tunnels[0].vni", ["16777216"]),
    ("vni_not_a_number", "vni: 42 }", "vni: forty }", "tunnels[0].vni", ["integer"]),
    ("unknown_tunnel_in_forwarding", "tunnel: t1 }", "tunnel: t9 }", "forwarding[0].tunnel", ["unknown tunnel", "t9"]),
    ("unknown_tunnel_in_flood", "tunnels: [t1]", "tunnels: [t1, t7]", "flood[0].tunnels[1]", ["unknown tunnel", "t7"]),
    ("unknown_key", "vni: 42 }", "vni: 42, vnid: 42 }", "tunnels[0].vnid", ["unknown key"]),
    ("unknown_top_level_key", "uplink:", "tunel: []\nuplink:", "tunel", ["unknown key"]),
    ("bad_uplink_address", "address: 192.168.50.1/24", "address: 192.168.50.300/24", "uplink.address", ["192.168.50.300"]),
    ("bad_remote_address", "remote: 192.168.50.2,", "remote: 192.168.500.2,", "tunnels[0].remote", ["192.168.500.2"]),
    ("remote_not_on_link", "remote: 192.168.50.2,", "remote: 10.9.9.9,", "tunnels[0].remote", ["gateway"]),
    ("bad_neighbor_mac", 'mac: "02:00:00:00:00:aa"', 'mac: "02:00:00:00:00"', "neighbors[0].mac", ["MAC"]),
    ("vlan_out_of_range", "segment: 42 } ]\ntunnels", "segment: 42, vlan: 4095 } ]\ntunnels", "access[0].vlan", ["4095"]),
    ("mtu_too_small", "address: 192.168.50.1/24 }", "address: 192.168.50.1/24, mtu: 100 }", "uplink.mtu", ["100"]),
    ("unknown_tunnel_type", "type: vxlan", "type: gre", "tunnels[0].type", ["gre"]),
    ("missing_uplink", "uplink: { port: net_null0, address: 192.168.50.1/24 }\n", "", "uplink", ["missing"]),
    ("yaml_syntax", "flood: [ { segment: 42, tunnels: [t1] } ]", "flood: [ { segment: 42, tunnels: [t1] }", "(yaml)", []),
]


def run_tunnelfwd(config_path, prefix, *app_args):
    argv = [TUNNELFWD, "-l", "0-1", "--no-pci", "--file-prefix", prefix,
            "--vdev", "net_null0", "--vdev", "net_null1", "--", "--config", config_path, *app_args]
    return run(argv, check=False, timeout=60)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_configuration_is_refused_naming_the_field(case, tmp_path):
    name, old, new, field, words = case
    assert old in VALID, f"test case {name}: {old!r} not in the valid configuration"
    config = tmp_path / f"{name}.yaml"
    config.write_text(VALID.replace(old, new, 1))
    prefix = unique_tag()
    try:
        p = run_tunnelfwd(config, prefix)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert p.returncode == 1, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        assert lines, "no error printed"
        assert lines == lines[-1:], f"expected exactly one line on stderr, got:\n{p.stderr}"
        expected = f"tunnelfwd: {config}: {field}: "
        assert lines[-1].startswith(expected), f"expected a line starting {expected!r}, got {lines[-1]!r}"
        for w in words:
            assert w in lines[-1], f"{w!r} not in {lines[-1]!r}"
        assert p.stdout == "", f"nothing should reach stdout: {p.stdout!r}"
        assert not dpdk_leftovers(prefix), f"DPDK started anyway: {dpdk_leftovers(prefix)}"
    finally:
        remove_dpdk_leftovers(prefix)


def test_missing_configuration_file(tmp_path):
    prefix = unique_tag()
    missing = tmp_path / "nope.yaml"
    try:
        p = run_tunnelfwd(missing, prefix)
        assert p.returncode == 1
        last = p.stderr.strip().splitlines()[-1]
        assert last.startswith(f"tunnelfwd: {missing}: cannot read configuration file"), last
        assert "No such file or directory" in last, last
        assert not dpdk_leftovers(prefix)
    finally:
        remove_dpdk_leftovers(prefix)


def many_tunnels(n: int) -> str:
    """A configuration with `n` VXLAN tunnels, each to a remote (next hop) of its own."""
    items = [f"  - {{ name: t{i}, type: vxlan, remote: 10.0.{1 + i // 250}.{1 + i % 250}, vni: 42 }}" for i in range(n)]
    return "uplink: { port: net_null0, address: 10.0.0.1/16 }\ntunnels:\n" + "\n".join(items) + "\n"


# (test id, the configuration, the line's field path and message start)
CHECK_REFUSALS = [
    ("nested_5000_deep", VALID.replace("flood: [ { segment: 42, tunnels: [t1] } ]", "flood: " + "[" * 5000),
     "(yaml)", "nesting deeper than 64 levels"),
    ("more_tunnels_than_the_default_table", many_tunnels(16385),
     "tunnels", "16385 tunnels are more than dataplane.max_tunnels (default 16384)"),
]


@pytest.mark.parametrize("case", CHECK_REFUSALS, ids=[c[0] for c in CHECK_REFUSALS])
def test_check_refuses_what_crashed_it_or_failed_after_eal(case, tmp_path):
    """--check refuses, in one line naming the field, a file nested 5 000 deep (which
    crashed the parser with SIGSEGV) and more tunnels than the default table holds (which
    passed --check and failed only after EAL had started)."""
    name, text, field, message = case
    config = tmp_path / f"{name}.yaml"
    config.write_text(text)
    prefix = unique_tag()
    try:
        p = run_tunnelfwd(config, prefix, "--check")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert p.returncode == 1, f"exit {p.returncode}\nstderr: {p.stderr[-2000:]}"
        assert len(lines) == 1 and lines[0].startswith(f"tunnelfwd: {config}: {field}: {message}"), p.stderr[-2000:]
        assert p.stdout == "" and not dpdk_leftovers(prefix)
    finally:
        remove_dpdk_leftovers(prefix)


@pytest.mark.parametrize("path", ["deploy/demo.yaml", "deploy/pci-nic.yaml", "TEST_VALID"])
def test_check_accepts_valid_configurations_without_starting_dpdk(path, tmp_path):
    """--check validates and exits 0 without touching DPDK; the shipped examples pass."""
    if path == "TEST_VALID":
        config = tmp_path / "valid.yaml"
        config.write_text(VALID)
    else:
        config = REPO / path
    prefix = unique_tag()
    try:
        p = run_tunnelfwd(config, prefix, "--check")
        assert p.returncode == 0, p.stderr
        assert f"tunnelfwd: {config}: configuration is valid" in p.stdout, p.stdout
        assert not dpdk_leftovers(prefix)
    finally:
        remove_dpdk_leftovers(prefix)
