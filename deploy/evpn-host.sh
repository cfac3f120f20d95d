#!/bin/bash
# Sets up a host (or one network namespace) for tunnelfwd's BGP EVPN, and undoes it.
#
# usage: deploy/evpn-host.sh up   --vni N[,N...] --local ADDRESS --peer ADDRESS[,ADDRESS...]
#                                 [--underlay PREFIX] [--asn N] [--router-id ADDRESS]
#                                 [--netns NAME] [--dir DIR] [--no-frr]
#        deploy/evpn-host.sh restart|down [--netns NAME] [--dir DIR]
#
#   up    per VNI N: bridge brN; vxlan device vxN (id N, local ADDRESS, dstport 4789,
#         nolearning, bridge learning off, UP) in brN; a silent port tfevpnN (a veth
#         pair, tfevpnN/tfevpnNp) in brN, for tunnelfwd's evpn.segments[].local_port.
#         --underlay: a blackhole route for the prefix holding every VTEP, so that FRR
#         accepts their routes (the kernel has no leg in tunnelfwd's underlay; the vxlan
#         devices never send anything). Leave it out where the kernel routes the VTEPs.
#         Then FRR: zebra and bgpd with their files in DIR (config from deploy/frr/),
#         iBGP (--asn, default 65000) `l2vpn evpn` with `advertise-all-vni` to every
#         --peer. BGP runs over a kernel interface with an address of its own: the
#         router id defaults to the source address the kernel uses toward the first peer.
#         --no-frr: the devices only.
#   restart  stops FRR and starts it again from DIR, as a service restart does.
#   down  stops FRR (bgpd, then zebra), removes what `up` made and DIR.
#
#   --local    tunnelfwd's uplink.address (the VTEP address; a /length is ignored)
#   --netns    the network namespace (default: the current one)
#   --dir      FRR's directory (default /run/tunnelfwd-evpn/NAME, or .../host)
#   vtysh:     vtysh --vty_socket DIR -c 'show evpn vni'
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
frr_bin=/usr/lib/frr

say() { echo "evpn-host: $*"; }
die() { echo "evpn-host: error: $*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
action="$1"; shift
case "$action" in
    up|restart|down) ;;
    -h|--help) usage; exit 0 ;;
    *) echo "evpn-host: unknown action '$action': up, restart or down (see -h)" >&2; exit 2 ;;
esac

netns="" dir="" local_ip="" underlay="" asn=65000 router_id="" frr=1
vnis=() peers=()
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "evpn-host: $1 needs a value (see -h)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --vni) need "$@"; IFS=, read -ra more <<<"$2"; vnis+=("${more[@]}"); shift 2 ;;
        --peer) need "$@"; IFS=, read -ra more <<<"$2"; peers+=("${more[@]}"); shift 2 ;;
        --local) need "$@"; local_ip="${2%%/*}"; shift 2 ;;
        --underlay) need "$@"; underlay="$2"; shift 2 ;;
        --asn) need "$@"; asn="$2"; shift 2 ;;
        --router-id) need "$@"; router_id="$2"; shift 2 ;;
        --netns) need "$@"; netns="$2"; shift 2 ;;
        --dir) need "$@"; dir="$2"; shift 2 ;;
        --no-frr) frr=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "evpn-host: unknown option '$1' (see -h)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (it makes devices and routes and starts FRR): sudo $0 $action ..."
dir="${dir:-/run/tunnelfwd-evpn/${netns:-host}}"
state="$dir/evpn-host.state"

# Commands in the chosen namespace.
in_ns() { if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi; }
ipn() { if [ -n "$netns" ]; then ip -n "$netns" "$@"; else ip "$@"; fi; }
bridgen() { if [ -n "$netns" ]; then bridge -n "$netns" "$@"; else bridge "$@"; fi; }

ipv4() { [[ "$1" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] &&
         (( BASH_REMATCH[1] < 256 && BASH_REMATCH[2] < 256 && BASH_REMATCH[3] < 256 && BASH_REMATCH[4] < 256 )); }

# Stops the daemon whose pid file is DIR/NAME.pid: SIGTERM, then SIGKILL after 15 s (an
# orderly bgpd stop withdraws everything first and takes up to a few seconds).
stop_daemon() {
    local name="$1" pidfile="$dir/$1.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) still running 15 s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

# Starts zebra and bgpd from the files in DIR.
start_frr() {
    local common=(-d -u frr -g frr -z "$dir/zserv.api" --vty_socket "$dir" -P 0)
    in_ns "$frr_bin/zebra" "${common[@]}" -f "$dir/zebra.conf" -i "$dir/zebra.pid" --log "file:$dir/zebra.log"
    # bgpd connects to zebra's socket: it must be there first.
    for _ in $(seq 100); do [ -S "$dir/zserv.api" ] && break; sleep 0.05; done
    [ -S "$dir/zserv.api" ] || die "zebra did not open $dir/zserv.api (see $dir/zebra.log)"
    in_ns "$frr_bin/bgpd" "${common[@]}" -f "$dir/bgpd.conf" -i "$dir/bgpd.pid" --log "file:$dir/bgpd.log"
    say "started zebra (pid $(cat "$dir/zebra.pid")) and bgpd (pid $(cat "$dir/bgpd.pid")) from $dir"
}

down() {
    if [ -f "$state" ]; then
        # shellcheck disable=SC1090
        . "$state"
    fi
    stop_daemon bgpd
    stop_daemon zebra
    for n in "${vnis[@]}"; do
        for dev in "tfevpn$n" "vx$n" "br$n"; do
            if ipn link show "$dev" >/dev/null 2>&1; then ipn link del "$dev"; say "removed $dev"; fi
        done
    done
    if [ -n "$underlay" ] && ipn route show type blackhole "$underlay" | grep -q .; then
        ipn route del blackhole "$underlay"
        say "removed blackhole route $underlay"
    fi
    rm -rf "$dir"
}

if [ "$action" = restart ]; then
    [ -f "$dir/bgpd.conf" ] && [ -f "$dir/zebra.conf" ] || die "no FRR configuration in $dir (give --dir, or --netns, as for up)"
    stop_daemon bgpd
    stop_daemon zebra
    start_frr
    say "restarted${netns:+ in $netns}"
    exit 0
fi

if [ "$action" = down ]; then
    [ -f "$state" ] || [ ${#vnis[@]} -gt 0 ] ||
        die "nothing to undo: no $state (give --dir, or --netns, as for up; or --vni N to remove its devices)"
    down
    say "down${netns:+ in $netns}"
    exit 0
fi

# up: everything is checked before anything changes.
[ ${#vnis[@]} -gt 0 ] || die "--vni: at least one VNI is needed"
for n in "${vnis[@]}"; do
    [[ "$n" =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 16777215 )) || die "--vni: '$n' is not a VNI (1-16777215)"
    [ ${#n} -le 7 ] || die "--vni: $n makes the device name tfevpn$n longer than 15 characters"
done
[ -n "$local_ip" ] || die "--local: tunnelfwd's uplink address is needed (the vxlan devices' local address)"
ipv4 "$local_ip" || die "--local: '$local_ip' is not an IPv4 address"
if [ -n "$underlay" ]; then
    [[ "$underlay" =~ ^[0-9.]+/([0-9]+)$ ]] && (( BASH_REMATCH[1] <= 32 )) && ipv4 "${underlay%/*}" ||
        die "--underlay: '$underlay' is not an IPv4 prefix (ADDRESS/LENGTH)"
fi
[[ "$asn" =~ ^[0-9]+$ ]] && (( asn >= 1 && asn <= 4294967295 )) || die "--asn: '$asn' is not an AS number"
if [ -n "$netns" ]; then
    [ -e "/run/netns/$netns" ] || die "--netns: no network namespace '$netns' (ip netns list)"
fi
if [ -n "$underlay" ] && ipn route show exact "$underlay" | grep -q .; then
    die "--underlay: a route for $underlay already exists${netns:+ in $netns}; leave --underlay out if it covers the VTEPs"
fi
for n in "${vnis[@]}"; do
    for dev in "br$n" "vx$n" "tfevpn$n" "tfevpn${n}p"; do
        if ipn link show "$dev" >/dev/null 2>&1; then
            die "$dev already exists${netns:+ in $netns}: run '$0 down${netns:+ --netns $netns}' first"
        fi
    done
done
if [ "$frr" -eq 1 ]; then
    [ -x "$frr_bin/zebra" ] && [ -x "$frr_bin/bgpd" ] || die "no $frr_bin/zebra or bgpd: install Debian's frr (deploy/install-deps.sh)"
    getent passwd frr >/dev/null || die "no user 'frr': install Debian's frr (deploy/install-deps.sh)"
    [ ${#peers[@]} -gt 0 ] || die "--peer: FRR needs at least one BGP peer (or --no-frr for the devices only)"
    for p in "${peers[@]}"; do
        ipv4 "$p" || die "--peer: '$p' is not an IPv4 address"
        # BGP must reach each peer over a kernel interface: not the underlay's blackhole.
        ipn route get "$p" >/dev/null 2>&1 || die "--peer: no route to $p${netns:+ in $netns}: BGP needs a kernel interface with an address toward it"
    done
    if [ -z "$router_id" ]; then
        router_id="$(ipn -o route get "${peers[0]}" | sed -n 's/.* src \([0-9.]*\).*/\1/p')"
        [ -n "$router_id" ] || die "--router-id: no source address toward ${peers[0]}; give --router-id"
    fi
    ipv4 "$router_id" || die "--router-id: '$router_id' is not an IPv4 address"
    for d in zebra bgpd; do
        if [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null; then
            die "$d already runs from $dir (pid $(cat "$dir/$d.pid")): run '$0 down' first"
        fi
    done
fi

mkdir -p "$dir"
# What down removes: the route only once it is ours.
printf 'vnis=(%s)\nunderlay=""\n' "${vnis[*]}" >"$state"
undo_on_failure() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then echo "evpn-host: error: up failed; undoing what it did" >&2; down; fi
    exit "$rc"
}
trap undo_on_failure EXIT

for n in "${vnis[@]}"; do
    ipn link add "br$n" type bridge
    ipn link add "vx$n" type vxlan id "$n" local "$local_ip" dstport 4789 nolearning
    ipn link set "vx$n" master "br$n"
    # Remote MACs come from FRR only, never from the bridge seeing frames.
    bridgen link set dev "vx$n" learning off
    # The kernel has no dummy driver everywhere: one end of a veth pair is the silent port.
    ipn link add "tfevpn$n" type veth peer name "tfevpn${n}p"
    ipn link set "tfevpn$n" master "br$n"
    # vxN must be UP: FRR withdraws the whole VNI while it is down.
    for dev in "br$n" "vx$n" "tfevpn$n" "tfevpn${n}p"; do ipn link set "$dev" up; done
    say "VNI $n: br$n, vx$n (local $local_ip, dstport 4789), local port tfevpn$n"
done
if [ -n "$underlay" ]; then
    ipn route add blackhole "$underlay"
    printf 'underlay=%q\n' "$underlay" >>"$state"
    say "blackhole route $underlay (FRR resolves the VTEPs' next hops through it)"
fi

if [ "$frr" -eq 1 ]; then
    hostname="evpn-${netns:-$(hostname -s)}"
    peer_lines="$(printf ' neighbor %s peer-group fleet\n' "${peers[@]}")"
    sed -e "s/@HOSTNAME@/$hostname/" "$here/frr/zebra.conf.in" >"$dir/zebra.conf"
    awk -v asn="$asn" -v rid="$router_id" -v host="$hostname" -v peers="$peer_lines" '
        { gsub(/@ASN@/, asn); gsub(/@ROUTER_ID@/, rid); gsub(/@HOSTNAME@/, host) }
        /^@PEERS@$/ { print peers; next }
        { print }' "$here/frr/bgpd.conf.in" >"$dir/bgpd.conf"
    chown -R frr:frr "$dir"
    chmod 750 "$dir"
    start_frr
    say "FRR: AS $asn, router id $router_id, peers ${peers[*]}; vtysh --vty_socket $dir"
fi
trap - EXIT
say "up${netns:+ in $netns}"
