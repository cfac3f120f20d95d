#!/bin/bash
# THE test command of tunnelfwd, as root:   Tests/run.sh
#
#   1. deploy/install-deps.sh    Debian packages + hugepages (skip with TUNNELFWD_SKIP_DEPS=1)
#   2. swift build -c release    tunnelfwd and tunnelctl under test, then
#      bench/check-hot-loop.sh   no retain/release, allocation or exclusivity check
#                                reachable from the worker loop
#   3. swift test --sanitize=address
#                                unit tests (Tests/TunnelCoreTests) under AddressSanitizer
#   4. Fuzz/run.sh 30            every libFuzzer target of Fuzz/ for 30 s
#                                (skip with TUNNELFWD_SKIP_FUZZ=1)
#   5. pytest Tests/system       system tests against the release binaries, as root,
#                                in network namespaces (Debian's /usr/bin/python3 -m pytest)
#   6. bench/soak.sh 1           one minute of traffic, tunnel churn and ARP faults against
#                                the release binaries: PASS/FAIL on loss, drops, RSS, mbufs
#
# Exits non-zero when any step fails; prints a summary at the end. Must run as root
# (namespaces, tc, DPDK hugepages): it fails, it never skips, when not.
#
# Environment:
#   TUNNELFWD_SKIP_DEPS=1    skip step 1 (fast local reruns; CI always runs it)
#   TUNNELFWD_SKIP_BUILD=1   skip step 2 and test whatever binaries exist
#   TUNNELFWD_SKIP_FUZZ=1    skip step 4 (fast local reruns; CI always runs it)
#   TUNNELFWD_FUZZ_SECONDS=N seconds per fuzz target in step 4 (default 30)
#   TUNNELFWD_BIN_DIR=DIR    binaries for the system tests (default: the release bin path)
#   PYTEST_ARGS="..."        extra pytest arguments, shell-quoted, e.g. PYTEST_ARGS='-k "vlan or flood" -x'
#   SWIFT=/path/to/swift     the swift driver, if it is not on PATH (sudo resets PATH)
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [ "$(id -u)" -ne 0 ]; then
    echo "Tests/run.sh: FAILED: must run as root (the system tests create network namespaces and run DPDK with hugepages): sudo $0" >&2
    exit 1
fi

logdir="$(mktemp -d "${TMPDIR:-/tmp}/tunnelfwd-tests.XXXXXX")"
steps=()
results=()
durations=()
failed=0
unit_passed=0; unit_failed=0
fuzz_passed=0; fuzz_failed=0
sys_passed=0; sys_failed=0; sys_other=""

banner() { printf '\n==== %s ====\n' "$*"; }

record() {  # name status seconds
    steps+=("$1"); results+=("$2"); durations+=("$3")
    [ "$2" = ok ] || [ "$2" = skipped ] || failed=1
}

run_step() {  # name logfile command...
    local name="$1" log="$2"; shift 2
    local start=$SECONDS rc
    banner "$name: $*"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then record "$name" ok $((SECONDS - start)); else record "$name" "FAILED (exit $rc)" $((SECONDS - start)); fi
    return "$rc"
}

# 1. Dependencies.
if [ "${TUNNELFWD_SKIP_DEPS:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    banner "dependencies: skipped (TUNNELFWD_SKIP_DEPS=1)"
    record dependencies skipped 0
else
    run_step dependencies "$logdir/deps.log" "$repo/deploy/install-deps.sh"
fi

swift="$("$repo/deploy/find-swift.sh")"
if [ -z "$swift" ]; then
    echo "Tests/run.sh: no 'swift' found on PATH or in /opt/swift: install a Swift 6.1+ toolchain, or set SWIFT=/path/to/swift" >&2
    record "swift toolchain" "FAILED (not found)" 0
    build_ok=0
else
    export PATH="$(dirname "$swift"):$PATH"
    # 2. Release build (SwiftPM waits by itself while another build holds .build's lock).
    build_ok=1
    if [ "${TUNNELFWD_SKIP_BUILD:-0}" = 1 ]; then
        banner "release build: skipped (TUNNELFWD_SKIP_BUILD=1)"
        record "release build" skipped 0
    else
        run_step "release build" "$logdir/build.log" "$swift" build -c release || build_ok=0
    fi
    if [ "$build_ok" -eq 1 ]; then
        run_step "hot loop (check-hot-loop.sh)" "$logdir/hot-loop.log" "$repo/bench/check-hot-loop.sh"
    fi

    # 3. Unit tests, under AddressSanitizer (one run: it costs little more than a plain
    # one). Leak checking is off there: XCTest itself leaves its test cases allocated at
    # exit; the fuzz targets check for leaks.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        run_step "unit tests (ASan)" "$logdir/unit.log" "$swift" test --sanitize=address
    # XCTest: "Executed N tests, with M failures"; the last such line is the total.
    line="$(grep -E 'Executed [0-9]+ tests?, with [0-9]+ failures?' "$logdir/unit.log" | tail -n1)"
    if [ -n "$line" ]; then
        n=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$line")
        f=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$line")
        unit_passed=$((n - f)); unit_failed=$f
    fi
    # Swift Testing: "Test run with N tests ... passed" / "... failed ... with K issues".
    line="$(grep -E 'Test run with [0-9]+ tests?' "$logdir/unit.log" | tail -n1)"
    if [ -n "$line" ]; then
        n=$(sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/' <<<"$line")
        if grep -q 'passed after' <<<"$line"; then unit_passed=$((unit_passed + n)); else
            k=$(sed -nE 's/.*with ([0-9]+) issues?.*/\1/p' <<<"$line"); unit_failed=$((unit_failed + ${k:-1})); fi
    fi

    # 4. Fuzzing: each target for a short while from its committed corpus (Fuzz/run.sh).
    if [ "${TUNNELFWD_SKIP_FUZZ:-0}" = 1 ] && [ "${CI:-}" != true ]; then
        banner "fuzzing: skipped (TUNNELFWD_SKIP_FUZZ=1)"
        record fuzzing skipped 0
    else
        SWIFT="$swift" run_step fuzzing "$logdir/fuzz.log" "$repo/Fuzz/run.sh" "${TUNNELFWD_FUZZ_SECONDS:-30}"
        line="$(grep -E '^fuzz targets: [0-9]+ passed, [0-9]+ failed' "$logdir/fuzz.log" | tail -n1)"
        if [ -n "$line" ]; then
            fuzz_passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
            fuzz_failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
        fi
    fi
fi

# 5. System tests.
if [ "$build_ok" -ne 1 ]; then
    banner "system tests: not run (the release build failed; a stale binary would prove nothing)"
    record "system tests (pytest)" "FAILED (not run: build failed)" 0
else
    if [ -z "${TUNNELFWD_BIN_DIR:-}" ] && [ -n "$swift" ]; then
        TUNNELFWD_BIN_DIR="$("$swift" build -c release --show-bin-path 2>/dev/null || echo "$repo/.build/release")"
    fi
    export TUNNELFWD_BIN_DIR="${TUNNELFWD_BIN_DIR:-$repo/.build/release}"
    # Split as the shell splits words, so that PYTEST_ARGS='-k "vlan or flood"' works.
    eval "pytest_args=(${PYTEST_ARGS:-})"
    run_step "system tests (pytest)" "$logdir/system.log" \
        /usr/bin/python3 -m pytest "$repo/Tests/system" -v --junitxml="$logdir/system.xml" "${pytest_args[@]+"${pytest_args[@]}"}"
    rc=$?
    if [ "$rc" -eq 5 ]; then
        results[${#results[@]}-1]="FAILED (pytest collected no tests)"; failed=1
    fi
    summary="$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$logdir/system.log" | tail -n1)"
    p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+'); sys_passed=${p:-0}
    f=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+'); e=$(grep -oE '[0-9]+ errors?' <<<"$summary" | grep -oE '[0-9]+')
    sys_failed=$(( ${f:-0} + ${e:-0} ))
    sys_other="$(grep -oE '[0-9]+ (xfailed|xpassed|skipped)' <<<"$summary" | paste -sd, - | sed 's/,/, /g')"
fi

# 6. Soak.
if [ "$build_ok" -ne 1 ]; then
    banner "soak: not run (the release build failed)"
    record "soak (bench/soak.sh 1)" "FAILED (not run: build failed)" 0
else
    run_step "soak (bench/soak.sh 1)" "$logdir/soak.log" "$repo/bench/soak.sh" 1
fi

banner "summary"
for i in "${!steps[@]}"; do
    printf '  %-28s %-36s %5ss\n' "${steps[$i]}" "${results[$i]}" "${durations[$i]}"
done
printf '  unit tests:   %d passed, %d failed\n' "$unit_passed" "$unit_failed"
printf '  fuzz targets: %d passed, %d failed\n' "$fuzz_passed" "$fuzz_failed"
[ -f "$logdir/fuzz.log" ] && grep -E '^fuzz [A-Za-z]+: (ok|FAILED)' "$logdir/fuzz.log" | sed 's/^/    /'
printf '  system tests: %d passed, %d failed%s\n' "$sys_passed" "$sys_failed" "${sys_other:+ ($sys_other)}"
echo "  logs: $logdir"
total_passed=$((unit_passed + fuzz_passed + sys_passed))
total_failed=$((unit_failed + fuzz_failed + sys_failed))
if [ "$failed" -ne 0 ] && [ "$total_failed" -eq 0 ]; then total_failed=1; fi  # a step failed without a test count
if [ "$failed" -ne 0 ]; then
    echo "Tests/run.sh: FAILED"
else
    echo "Tests/run.sh: all steps passed"
fi
echo "Tests: $total_passed passed, $total_failed failed"
exit "$failed"
