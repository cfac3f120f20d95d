#!/bin/bash
# Micro-benchmarks of tunnelfwd's per-packet functions (package-benchmark), then the
# zero-allocation check: every benchmark has a static threshold of 0 mallocs
# (Thresholds/HotPath.<name>.p90.json) and the run fails if one allocates.
#
#   bench/micro/run.sh                  # tables grouped by metric, then the check
#   bench/micro/run.sh --filter 'Hit.*' # extra arguments go to 'swift package benchmark'
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "bench/micro/run.sh: $*" >&2; exit 1; }

swift="$(../../deploy/find-swift.sh)"
[ -n "$swift" ] || fail "no 'swift' found: install a Swift 6.1+ toolchain, or set SWIFT=/path/to/swift"
PATH="$(dirname "$swift"):$PATH"

# Every benchmark must have its zero-malloc threshold; a new one without it would
# silently go unchecked.
names=$(swift package benchmark list 2>/dev/null | sed -n '/available benchmarks:/,$p' | tail -n +2 | sed '/^$/d')
[ -n "$names" ] || fail "'swift package benchmark list' found no benchmarks (build error? run 'swift build -c release' here)"
missing=0
while IFS= read -r name; do
    if [ ! -f "Thresholds/HotPath.$name.p90.json" ]; then
        echo "bench/micro/run.sh: no zero-malloc threshold for '$name': add Thresholds/HotPath.$name.p90.json containing {\"mallocCountTotal\" : 0}" >&2
        missing=1
    fi
done <<< "$names"
[ "$missing" -eq 0 ] || exit 1

swift package benchmark --no-progress --grouping metric "$@"

echo
echo "== zero-malloc check (static thresholds in bench/micro/Thresholds) =="
if swift package benchmark thresholds check --no-progress "$@"; then
    echo "OK: no benchmark allocates"
else
    fail "a per-packet function allocates (see 'Deviations worse than threshold' above)"
fi
