#!/bin/bash
# Throughput benchmark of tunnelfwd's encapsulation and decapsulation against dpdk-testpmd
# on one worker core, and its miss path to 1 000 cold next hops (see bench/README.md).
# Builds release first unless --no-build; every other option goes to
# bench/tools/throughput.py (--runs, --seconds, --sizes, --types, --scales, --decap-types,
# --miss-frames, --keep, ...; --help lists them).
#
#   bench/run.sh                 # build, then the full table (about 4 to 5 minutes)
#   bench/run.sh --no-build --runs 1 --seconds 1     # a quick smoke run
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
python=/usr/bin/python3     # Debian's python3-scapy lives here, not in a pyenv python

build=1
args=()
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; echo; exec "$python" "$here/tools/throughput.py" --help ;;
        *) args+=("$a") ;;
    esac
done

fail() { echo "bench/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (DPDK needs hugepages)"
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not found: apt-get install dpdk-dev"
"$python" -c 'import scapy' 2>/dev/null || fail "$python has no scapy: apt-get install python3-scapy"
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if ! mountpoint -q /dev/hugepages || [ "${free:-0}" -lt 256 ]; then
    echo "bench/run.sh: ${free:-0} free hugepages or /dev/hugepages not mounted: running Hugepages/setup.sh" >&2
    "$root/Hugepages/setup.sh"
fi

swift="$("$root/deploy/find-swift.sh")"
[ -n "$swift" ] || fail "no 'swift' found: install a Swift 6.1+ toolchain, or set SWIFT=/path/to/swift"
cd "$root"
if [ "$build" -eq 1 ]; then
    "$swift" build -c release --product tunnelfwd
fi
bin=$("$swift" build -c release --show-bin-path)/tunnelfwd
[ -x "$bin" ] || fail "$bin is missing: run without --no-build"

exec "$python" "$here/tools/throughput.py" --tunnelfwd "$bin" "${args[@]+"${args[@]}"}"
