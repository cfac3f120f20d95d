#!/bin/bash
# Installs everything needed to build and test tunnelfwd on Debian 12 (bookworm), then
# reserves and mounts hugepages. Idempotent: a second run installs nothing and changes
# nothing. Must run as root.
#
#   usage: sudo deploy/install-deps.sh
#
# Not installed here: the Swift toolchain (Swift 6.1 or later, from swift.org; Debian 12
# does not package it). The script checks for it and says so when it is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

say() { echo "install-deps: $*"; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs Debian packages and reserves hugepages): sudo $0"

if [ -r /etc/os-release ]; then
    . /etc/os-release
    if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
        say "warning: written for Debian 12, this is ${PRETTY_NAME:-unknown}; continuing"
    fi
fi

# Package -> why it is needed.
packages=(
    dpdk              # DPDK 22.11 runtime libraries, PMDs (net_tap, net_null)
    dpdk-dev          # DPDK's tools: dpdk-testpmd, dpdk-telemetry.py
    libdpdk-dev       # DPDK headers and static libraries for building
    libnuma-dev       # DPDK's EAL links libnuma
    pkg-config
    python3           # Debian's python3 at /usr/bin/python3 runs the system tests
    python3-pytest    # the system test runner (/usr/bin/python3 -m pytest)
    python3-scapy     # decoding captured tunnel packets, crafting VLAN-tagged frames
    tshark            # second, independent decoder of captures (Geneve, NVGRE)
    tcpdump           # captures in the test namespaces
    iproute2          # ip netns, veth, vxlan, tc mirred
    nftables
    ethtool
    iputils-ping      # ping for the demo
    iputils-arping    # ARP requests toward the uplink address
    procps            # pgrep/ps used by the demo and the tests' diagnostics
    binutils          # objdump and nm for bench/check-hot-loop.sh
    git
    ca-certificates
)

missing=()
for p in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    say "all ${#packages[@]} Debian packages already installed: ${packages[*]}"
else
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture: answer "no" without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    say "missing: ${missing[*]}"
    say "running: apt-get update"
    apt-get update -q
    say "running: apt-get install -y --no-install-recommends ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    say "installed: ${missing[*]}"
fi

# FRR (zebra + bgpd) is the BGP EVPN control plane of deploy/evpn-host.sh and the EVPN
# tests. Debian's package enables and starts frr.service, which would run zebra in the
# root namespace; the tests and evpn-host.sh start their own instances with explicit
# paths instead. While it installs, a policy-rc.d refuses every service start (exit 101);
# a policy-rc.d that was already there is put back afterwards.
if [ "$(dpkg-query -W -f='${Status}' frr 2>/dev/null || true)" = "install ok installed" ]; then
    say "frr already installed: $(dpkg-query -W -f='${Version}' frr)"
else
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then saved="$(mktemp)"; cp -p "$policy" "$saved"; fi
    restore_policy() {
        if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# deploy/install-deps.sh: no service starts while frr installs\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    say "running: apt-get install -y --no-install-recommends frr (service starts refused)"
    apt-get install -y -q --no-install-recommends frr || { apt-get update -q && apt-get install -y -q --no-install-recommends frr; }
    restore_policy
    trap - EXIT
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now frr.service >/dev/null 2>&1 || true
    fi
    say "installed frr $(dpkg-query -W -f='${Version}' frr); frr.service not started"
fi

# The kernel's vxlan driver is the tests' real VXLAN peer. It is built in or loaded on
# demand by `ip link add ... type vxlan`; modprobe only where the tool exists.
if [ ! -d /sys/module/vxlan ] && command -v modprobe >/dev/null 2>&1; then
    if modprobe vxlan 2>/dev/null; then say "loaded kernel module vxlan"; fi
fi

if command -v swift >/dev/null 2>&1; then
    say "swift: $(swift --version 2>&1 | head -n1)"
else
    say "warning: no 'swift' on PATH: install a Swift 6.1+ toolchain for Linux from swift.org (Debian does not package it)"
fi

say "running: $repo/Hugepages/setup.sh"
sh "$repo/Hugepages/setup.sh"
say "done"
