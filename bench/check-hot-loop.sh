#!/bin/bash
# Fails if the release worker loop (TunnelDataplane.Worker.run() in tunnelfwd) can reach
# swift_retain/release, swift_allocObject, swift_beginAccess or malloc: disassembles the
# loop with 'objdump -d -l --no-show-raw-insn', demangles with swift-demangle, follows the
# functions of the binary it calls, and prints each forbidden call with its source line.
#
#   bench/check-hot-loop.sh                 # the existing release build
#   bench/check-hot-loop.sh --build         # swift build -c release first
#   bench/check-hot-loop.sh [--build] [BINARY] [-v] [--direct-only] [--symbol REGEX]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=0
binary=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=1 ;;
        --symbol) args+=("$1" "$2"); shift ;;
        -*) args+=("$1") ;;
        *) binary=$1 ;;
    esac
    shift
done

# swift-demangle sits beside the swift driver.
swift="$("$root/deploy/find-swift.sh")"
[ -n "$swift" ] && PATH="$(dirname "$swift"):$PATH"
for tool in objdump nm swift-demangle; do
    command -v "$tool" >/dev/null || { echo "bench/check-hot-loop.sh: $tool not found (objdump, nm: apt-get install binutils; swift-demangle comes with Swift)" >&2; exit 2; }
done

cd "$root"
if [ "$build" -eq 1 ]; then
    swift build -c release --product tunnelfwd
fi
if [ -z "$binary" ]; then
    binary=$(swift build -c release --show-bin-path)/tunnelfwd
fi
[ -x "$binary" ] || { echo "bench/check-hot-loop.sh: $binary not found: build it (swift build -c release) or pass --build" >&2; exit 2; }

exec /usr/bin/python3 "$here/tools/hot_loop.py" "$binary" --source-root "$root" "${args[@]+"${args[@]}"}"
