#!/bin/bash
# Soak run of tunnelfwd (see bench/README.md, "bench/soak.sh"): one forwarder in network
# namespaces, numbered UDP traffic to kernel VXLAN remotes for MINUTES while tunnels come
# and go, neighbors are flushed, ARP answers late or not at all and MACs are learnt and
# aged; then a table of samples (RSS, mbufs, counters) and a PASS/FAIL line. Exits 1 on FAIL.
#
#   bench/soak.sh 1              # the CI step of Tests/run.sh (about 70 s)
#   bench/soak.sh 30             # a real soak
#   bench/soak.sh 30 --sample 5 --rss-slack-mib 8     # options: bench/soak.sh --help
#
# It tests the release binaries already built (swift build -c release), or those in
# $TUNNELFWD_BIN_DIR. Run as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3     # Debian's python3, as for the system tests

fail() { echo "bench/soak.sh: $*" >&2; exit 1; }

case "${1:-}" in
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; echo; exec "$python" "$here/tools/soak.py" --help ;;
    '') fail "usage: bench/soak.sh MINUTES [options] (--help lists them)" ;;
esac
source "$here/tools/preflight.sh"
run_tool soak.py "ip nft ping" "$@"
