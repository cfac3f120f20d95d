#!/bin/bash
# Builds the libFuzzer targets of Fuzz/ (libFuzzer and AddressSanitizer, release with
# assertions on) and runs each for SECONDS (default 60):
#
#   Fuzz/run.sh [SECONDS] [TARGET...]      e.g. Fuzz/run.sh 3600 FuzzUplink
#
# Each target starts from its committed corpus, Fuzz/Corpus/TARGET/, which it only
# reads: what it finds goes to a scratch corpus under the work folder. A crash, leak,
# timeout, out-of-memory or sanitizer report fails the target; libFuzzer writes the
# input that caused it to Fuzz/Crashes/TARGET/. One line per target, then a total;
# exits non-zero when any target failed or the build did.
#
# Environment:
#   FUZZ_WORK=DIR         scratch corpora and logs (default: a new /tmp/tunnelfwd-fuzz.*);
#                         reuse one to go on from what earlier runs found
#   FUZZ_RSS_LIMIT_MB=N   memory bound per target (default 2048)
#   SWIFT=/path/to/swift  the swift driver, if it is not on PATH
set -uo pipefail

fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzUplink FuzzAccess FuzzControl FuzzConfiguration)
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "Fuzz/run.sh: SECONDS must be a positive integer, got '$seconds'" >&2
    exit 2
fi

swift="$("$fuzz/../deploy/find-swift.sh")"
if [ -z "$swift" ]; then
    echo "Fuzz/run.sh: no 'swift' found: install a Swift 6.1+ toolchain, or set SWIFT=/path/to/swift" >&2
    exit 1
fi
# --sanitize fuzzer makes SwiftPM link libFuzzer's main; -sanitize=fuzzer,address then
# instruments every module for coverage and ASan (the last -sanitize given wins).
build=("$swift" build -c release --package-path "$fuzz" --sanitize fuzzer
       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -assert-config -Xswiftc Debug)
echo "==== fuzz: building: ${build[*]}"
if ! "${build[@]}"; then
    echo "fuzz: build FAILED"
    echo "fuzz targets: 0 passed, ${#targets[@]} failed"
    exit 1
fi
bin="$("${build[@]}" --show-bin-path)"

work="${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tunnelfwd-fuzz.XXXXXX")}"
passed=0
failed=0
results=()
for target in "${targets[@]}"; do
    if [ ! -x "$bin/$target" ] || [ ! -d "$fuzz/Corpus/$target" ]; then
        results+=("fuzz $target: FAILED (no such target, or no Fuzz/Corpus/$target)")
        failed=$((failed + 1))
        continue
    fi
    scratch="$work/$target/corpus"
    crashes="$fuzz/Crashes/$target"
    log="$work/$target.log"
    mkdir -p "$scratch" "$crashes"
    echo "==== fuzz: $target for ${seconds}s (log $log)"
    # libFuzzer reports a crash itself; Swift's backtracer would only add noise under ASan.
    SWIFT_BACKTRACE=enable=no "$bin/$target" -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" -timeout=25 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$scratch" "$fuzz/Corpus/$target" >"$log" 2>&1
    rc=$?
    artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n1 | sed 's/Test unit written to //')"
    report="$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|Fatal error:|SUMMARY: ' "$log")"
    if [ "$rc" -ne 0 ] || [ -n "$report" ] || [ -n "$artifact" ]; then
        results+=("fuzz $target: FAILED (exit $rc) ${report:-see $log}${artifact:+; input: $artifact}")
        failed=$((failed + 1))
    else
        runs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')"
        done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -n1)"
        cov="$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+')"
        corp="$(grep -oE 'corp: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+')"
        results+=("fuzz $target: ok, ${runs:-?} inputs in ${seconds}s, coverage ${cov:-?} edges, corpus ${corp:-?} inputs")
        passed=$((passed + 1))
    fi
done

echo "==== fuzz: results (work folder $work)"
printf '%s\n' "${results[@]}"
echo "fuzz targets: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
