# Sourced by the bench scripts that run tunnelfwd in network namespaces, after they
# define `fail`: checks root, the release binaries, the tools named as arguments and free
# hugepages, then runs the Python tool `$1` with the remaining script arguments.
#
#   run_tool TOOL.py "TOOLS NEEDED" "$@"
run_tool() {
    local tool="$1" needed="$2"
    shift 2
    [ "$(id -u)" -eq 0 ] || fail "run as root (network namespaces, DPDK hugepages)"
    local root bin b t free
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    bin="${TUNNELFWD_BIN_DIR:-$root/.build/release}"
    for b in tunnelfwd tunnelctl; do
        [ -x "$bin/$b" ] || fail "$bin/$b is missing: build it with 'swift build -c release' (or set TUNNELFWD_BIN_DIR)"
    done
    for t in $needed; do
        command -v "$t" >/dev/null || fail "'$t' not found: run deploy/install-deps.sh"
    done
    free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    [ "${free:-0}" -ge 64 ] && mountpoint -q /dev/hugepages ||
        fail "${free:-0} free hugepages or /dev/hugepages not mounted (64 needed): run Hugepages/setup.sh"
    export TUNNELFWD_BIN_DIR="$bin"
    exec /usr/bin/python3 "$root/bench/tools/$tool" "$@"
}
