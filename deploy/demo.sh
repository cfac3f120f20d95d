#!/bin/bash
# THE "try it" command, as root:   deploy/demo.sh [--duration SECONDS] [--no-install] [--no-build]
#
# Installs the dependencies, builds tunnelfwd, and runs it between two network
# namespaces on this machine (nothing leaves the machine):
#
#   tfdemo-vm      eth0 10.42.0.1/24 --veth-- tfdemo-fwd: net_tap0 (access, segment 42)
#                                                          tunnelfwd
#   tfdemo-remote  eth0 192.168.50.2/24 --veth-- tfdemo-fwd: net_tap1 (uplink 192.168.50.1)
#                  vx0  kernel VXLAN VNI 42, 10.42.0.2/24
#
# The VM pings 10.42.0.2: tunnelfwd encapsulates each echo request in VXLAN, the
# remote's kernel vxlan device decapsulates it (its RX counter goes up) and answers
# through the tunnel, and tunnelfwd decapsulates the reply back to the VM. Ctrl-C (or
# the end of --duration) stops the forwarder with SIGTERM and removes everything.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix=tfdemo
ns_fwd=tfdemo-fwd
ns_vm=tfdemo-vm
ns_remote=tfdemo-remote
statedir=/run/tunnelfwd-demo
duration=0
install=1
build=1

usage() { sed -n "2,15p" "$0" | sed "s/^# \{0,1\}//"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="${2:?--duration needs a number of seconds}"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        --no-install) install=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$duration" in ''|*[!0-9]*) echo "demo.sh: --duration needs a whole number of seconds" >&2; exit 2 ;; esac

say() { echo "demo: $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, tc, DPDK hugepages): sudo $0"

# A demo already running owns the names: refuse rather than pull them from under it.
if [ -f "$statedir/tunnelfwd.pid" ] && kill -0 "$(cat "$statedir/tunnelfwd.pid")" 2>/dev/null; then
    die "a demo is already running (tunnelfwd pid $(cat "$statedir/tunnelfwd.pid")): stop it with Ctrl-C first"
fi

# 1. Dependencies and build.
if [ "$install" -eq 1 ]; then
    "$repo/deploy/install-deps.sh"
else
    say "skipping deploy/install-deps.sh (--no-install)"
fi
swift="$("$repo/deploy/find-swift.sh")"
if [ "$build" -eq 1 ]; then
    [ -n "$swift" ] || die "no 'swift' found: install a Swift 6.1+ toolchain or set SWIFT=/path/to/swift"
    say "building: swift build -c release (a few minutes the first time)"
    (cd "$repo" && "$swift" build -c release)
fi
bindir="$repo/.build/release"
if [ -n "$swift" ]; then bindir="$(cd "$repo" && "$swift" build -c release --show-bin-path 2>/dev/null || echo "$bindir")"; fi
tunnelfwd="$bindir/tunnelfwd"
tunnelctl="$bindir/tunnelctl"
[ -x "$tunnelfwd" ] && [ -x "$tunnelctl" ] || die "$tunnelfwd or $tunnelctl missing: run without --no-build"

# 2. Teardown, also of a demo that died without cleaning up.
fwd_pid=""
ping_pid=""
teardown() {
    trap - EXIT INT TERM
    # Ctrl-C also kills a pipe reader (`demo.sh | tee log`): messages may fail from here
    # on, the cleanup must not.
    trap '' PIPE
    set +e
    echo
    say "tearing down"
    [ -n "$ping_pid" ] && kill "$ping_pid" 2>/dev/null && wait "$ping_pid" 2>/dev/null || true
    if [ -n "$fwd_pid" ] && kill -0 "$fwd_pid" 2>/dev/null; then
        say "stopping tunnelfwd (SIGTERM)"
        kill -TERM "$fwd_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$fwd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$fwd_pid" 2>/dev/null && { say "tunnelfwd did not stop: SIGKILL"; kill -KILL "$fwd_pid" 2>/dev/null || true; }
        wait "$fwd_pid" 2>/dev/null && rc=0 || rc=$?
        say "tunnelfwd exited with status $rc: $(tail -n1 "$statedir/tunnelfwd.log" 2>/dev/null)"
    fi
    for ns in "$ns_vm" "$ns_remote" "$ns_fwd"; do ip netns del "$ns" 2>/dev/null || true; done
    # DPDK keeps the runtime folder and a hugepage file per --file-prefix after exit.
    rm -rf "/var/run/dpdk/$prefix"
    rm -f /dev/hugepages/${prefix}map_*
    rm -f "$statedir/tunnelfwd.pid"
    say "removed namespaces $ns_vm $ns_remote $ns_fwd; log kept in $statedir/tunnelfwd.log"
}
for ns in "$ns_vm" "$ns_remote" "$ns_fwd"; do ip netns del "$ns" 2>/dev/null || true; done
rm -rf "/var/run/dpdk/$prefix"; rm -f /dev/hugepages/${prefix}map_*
trap teardown EXIT
trap 'exit 130' INT TERM

# 3. Topology.
in_ns() { ip netns exec "$1" "${@:2}"; }
for ns in "$ns_fwd" "$ns_vm" "$ns_remote"; do
    ip netns add "$ns"
    # Quiet kernels: no IPv6 router solicitations or MLD reports in the overlay.
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add a0 netns "$ns_fwd" type veth peer name eth0 netns "$ns_vm"
ip link add u0 netns "$ns_fwd" type veth peer name eth0 netns "$ns_remote"
ip -n "$ns_vm" link set eth0 address 02:00:00:00:42:01 up
ip -n "$ns_vm" addr add 10.42.0.1/24 dev eth0
# A static entry, so that the first ping does not wait for ARP across the tunnel.
ip -n "$ns_vm" neigh add 10.42.0.2 lladdr 02:00:00:00:42:02 dev eth0 nud permanent
ip -n "$ns_remote" link set eth0 address 02:00:00:00:00:aa up
ip -n "$ns_remote" addr add 192.168.50.2/24 dev eth0
ip -n "$ns_remote" link add vx0 type vxlan id 42 dstport 4789 local 192.168.50.2 remote 192.168.50.1 dev eth0 nolearning
ip -n "$ns_remote" link set vx0 address 02:00:00:00:42:02 up
ip -n "$ns_remote" addr add 10.42.0.2/24 dev vx0
ip -n "$ns_fwd" link set a0 up
ip -n "$ns_fwd" link set u0 up
say "namespaces: $ns_vm (10.42.0.1), $ns_remote (192.168.50.2, vx0 10.42.0.2), $ns_fwd (tunnelfwd's taps)"

# 4. tunnelfwd, in the background, in its namespace.
mkdir -p "$statedir"
config="$repo/deploy/demo.yaml"
"$tunnelfwd" -- --config "$config" --check
cmd=("$tunnelfwd" -l 0-1 --no-pci --file-prefix "$prefix"
     --vdev net_tap0,iface=tfdemo-a --vdev net_tap1,iface=tfdemo-u -- --config "$config")
say "starting: ip netns exec $ns_fwd ${cmd[*]}"
setsid ip netns exec "$ns_fwd" "${cmd[@]}" </dev/null >"$statedir/tunnelfwd.log" 2>&1 &
fwd_pid=$!
echo "$fwd_pid" > "$statedir/tunnelfwd.pid"
for _ in $(seq 1 300); do
    kill -0 "$fwd_pid" 2>/dev/null || { cat "$statedir/tunnelfwd.log"; die "tunnelfwd exited while starting"; }
    "$tunnelctl" ports --file-prefix "$prefix" >/dev/null 2>&1 && break
    sleep 0.1
done
"$tunnelctl" ports --file-prefix "$prefix" >/dev/null 2>&1 || die "tunnelfwd did not start: see $statedir/tunnelfwd.log"
grep '^tunnelfwd:' "$statedir/tunnelfwd.log" | sed 's/^/  /'

# Each tap joined to its veth as a plain wire (tc mirred, both ways).
wire() {
    in_ns "$ns_fwd" tc qdisc replace dev "$1" clsact
    in_ns "$ns_fwd" tc filter replace dev "$1" ingress pref 1 protocol all u32 match u32 0 0 \
        action mirred egress redirect dev "$2"
}
wire tfdemo-a a0; wire a0 tfdemo-a
wire tfdemo-u u0; wire u0 tfdemo-u

# 5. Traffic: 5 pings a second from the VM to the remote's overlay address.
setsid ip netns exec "$ns_vm" ping -i 0.2 10.42.0.2 </dev/null >"$statedir/ping.log" 2>&1 &
ping_pid=$!

cat <<EOF

demo: running. tunnelfwd (pid $fwd_pid) carries the VM's pings to 10.42.0.2 through a VXLAN
tunnel to 192.168.50.2, and the replies back (ping output: $statedir/ping.log).
Watch it from another terminal:
  $tunnelctl stats --file-prefix $prefix
  $tunnelctl ports --file-prefix $prefix
  echo /tunnelfwd/stats | dpdk-telemetry.py -f $prefix
  ip netns exec $ns_remote tcpdump -ni eth0 udp port 4789
  ip -n $ns_remote -s link show vx0          # RX packets: echo requests the remote decapsulated
$( [ "$duration" -gt 0 ] && echo "Stopping after $duration s; Ctrl-C stops earlier." || echo "Ctrl-C stops the demo and removes everything." )

EOF

counters() {
    local stats vx
    stats="$("$tunnelctl" stats --file-prefix "$prefix" --json 2>/dev/null)" || { echo "(telemetry not answering)"; return; }
    vx="$(ip -n "$ns_remote" -j -s link show vx0 2>/dev/null)"
    replies="$(grep -c 'bytes from' "$statedir/ping.log" 2>/dev/null || true)"
    /usr/bin/python3 - "$stats" "$vx" "${replies:-0}" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); vx = json.loads(sys.argv[2] or "[]")
rx = vx[0]["stats64"]["rx"]["packets"] if vx else "?"
d = {k: v for k, v in s["dropped"].items() if v and k != "total"}
print(f"  encapsulated {s['encapsulated']:>5}  decapsulated {s.get('decapsulated', 0):>5}  remote vx0 rx {rx:>5}"
      f"  ping replies {sys.argv[3]:>5}  dropped {s['dropped']['total']}{' ' + str(d) if d else ''}"
      f"  mbufs in use {s['mbufs_in_use']}/{s['mbufs_total']}")
PY
}

start=$SECONDS
shown=0
while :; do
    kill -0 "$fwd_pid" 2>/dev/null || { say "tunnelfwd exited unexpectedly:"; tail -n5 "$statedir/tunnelfwd.log"; exit 1; }
    sleep 2
    elapsed=$((SECONDS - start))
    # Counters every 2 s for the first 10 s, then every 10 s.
    if [ "$shown" -lt 5 ] || [ $((elapsed % 10)) -lt 2 ]; then
        printf '[%3ss]' "$elapsed"; counters
        shown=$((shown + 1))
    fi
    if [ "$duration" -gt 0 ] && [ "$elapsed" -ge "$duration" ]; then break; fi
done
exit 0
