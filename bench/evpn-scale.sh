#!/bin/bash
# EVPN at scale (see bench/README.md, "bench/evpn-scale.sh"): tunnelfwd with an evpn
# segment, 10 000 remote MACs behind 4 VTEPs written into vx42's FDB at once in FRR's
# forms (no FRR runs), while a datagram flow runs through one of those VTEPs' tunnels.
# Prints how long after the last kernel write tunnelfwd holds them all (and, deleted,
# none), checks the forwarding table and the flow, and ends with PASS or FAIL (exit 1).
#
#   bench/evpn-scale.sh                    # 10 000 MACs, 4 VTEPs, target 100 ms
#   bench/evpn-scale.sh --macs 50000 --vteps 16
#
# It tests the release binaries already built (swift build -c release), or those in
# $TUNNELFWD_BIN_DIR. Run as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3     # Debian's python3, as for the system tests

fail() { echo "bench/evpn-scale.sh: $*" >&2; exit 1; }

case "${1:-}" in
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; echo
               exec "$python" "$here/tools/evpn_scale.py" --help ;;
esac
source "$here/tools/preflight.sh"
run_tool evpn_scale.py "ip bridge tc" "$@"
