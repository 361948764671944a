#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 60) on its checked-in
# seed corpus, prints each target's coverage and whether it crashed, and
# exits non-zero if any target crashed (or timed out, ran out of memory, or
# did not build).
#
# Usage: fuzz/run.sh [SECONDS [TARGET...]]   (from the repo root or fuzz/)
#        every target from `cargo fuzz list`, or only the TARGETs named
#
# Per target it prints libFuzzer's `cov:`/`ft:` at start (the seeds plus what
# earlier runs kept) and at the end, and ok or CRASHED. The seeds in
# fuzz/corpus/<target>/ are only read: what the fuzzer finds goes to
# $FUZZ_WORK/<target>/ (default fuzz/target/run-corpus), kept between runs.
# Crash inputs land in fuzz/artifacts/<target>/, logs in $FUZZ_WORK/logs/.
# Extra libFuzzer flags go in FUZZ_FLAGS (e.g. FUZZ_FLAGS="-rss_limit_mb=4096");
# the toolchain is FUZZ_TOOLCHAIN (default +nightly).
set -uo pipefail

secs=${1:-60}
# A positive whole number: -max_total_time=0 would mean "forever".
if ! [[ $secs =~ ^[0-9]+$ ]] || [ $((10#$secs)) -eq 0 ]; then
    echo "usage: $0 [SECONDS [TARGET...]]  (SECONDS per target, a positive whole number)" >&2
    exit 2
fi
secs=$((10#$secs))
shift $(($# > 0 ? 1 : 0))

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir" || exit 2
toolchain=${FUZZ_TOOLCHAIN-+nightly}
work=${FUZZ_WORK:-$fuzz_dir/target/run-corpus}
logs=$work/logs
mkdir -p "$logs"

# Word splitting of $toolchain is wanted: it may be empty.
# shellcheck disable=SC2086
cargo_fuzz() { cargo $toolchain fuzz "$@"; }

if ! targets=$(cargo_fuzz list) || [ -z "$targets" ]; then
    echo "cargo fuzz list failed (is cargo-fuzz installed, and the $toolchain toolchain?)" >&2
    exit 2
fi
if [ $# -gt 0 ]; then
    for t in "$@"; do
        if ! grep -qx -- "$t" <<<"$targets"; then
            echo "no fuzz target $t; there are: $(echo $targets)" >&2
            exit 2
        fi
    done
    targets="$*"
fi
echo "building $(wc -w <<<"$targets") targets..."
if ! cargo_fuzz build -O >"$logs/build.log" 2>&1; then
    tail -n 30 "$logs/build.log" >&2
    echo "build failed (log: $logs/build.log)" >&2
    exit 2
fi

failed=0
results=()
for t in $targets; do
    seeds=$fuzz_dir/corpus/$t
    mkdir -p "$work/$t" "$seeds"
    log=$logs/$t.log
    echo "== $t: ${secs}s, seeds $(find "$seeds" -type f | wc -l), corpus $work/$t"
    # The first corpus dir receives new inputs; the seed dir is only read.
    # The outer timeout only guards against a hang libFuzzer does not catch.
    # shellcheck disable=SC2086
    timeout --kill-after=10 $((secs + 300)) \
        cargo $toolchain fuzz run -O "$t" "$work/$t" "$seeds" -- \
        -max_total_time="$secs" -timeout=25 -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1
    rc=$?
    inited=$(grep -m1 -o 'INITED cov: [0-9]* ft: [0-9]*' "$log" | sed 's/INITED //')
    final=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 | grep -o 'cov: [0-9]* ft: [0-9]* corp: [^ ]*' )
    if [ $rc -eq 0 ]; then
        status=ok
    else
        failed=1
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
        kind=$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+[^: ]|ERROR: AddressSanitizer: [a-z-]+' "$log")
        status="CRASHED (exit $rc${kind:+, $kind}${artifact:+, input $artifact})"
        grep -m1 -A3 'panicked at' "$log" | sed 's/^/    /'
    fi
    line=$(printf '%-14s start %-22s end %-40s %s' "$t" "${inited:-?}" "${final:-?}" "$status")
    echo "$line"
    results+=("$line")
done

echo
echo "== summary (${secs}s per target; logs in $logs)"
printf '%s\n' "${results[@]}"
if [ $failed -ne 0 ]; then
    echo "at least one target failed" >&2
    exit 1
fi
