#!/bin/sh
# Runs the whole test suite: the normal build, the ASan+UBSan build, the ARM
# NEON kernel test (cross-built, under qemu-user), and a short libFuzzer run
# of each fuzz target. Ends with one line
# "N passed, N failed" totalled over every Criterion test that ran, and exits
# non-zero if anything failed or if no test ran at all.
set -u
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
status=0
passed=0
failed=0

# Adds the Criterion syntheses of a meson test log to the totals.
count() {
    log="$1/meson-logs/testlog.txt"
    [ -f "$log" ] || return
    p=$(grep -h '^\[====\] Synthesis:' "$log" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(grep -h '^\[====\] Synthesis:' "$log" | sed -n 's/.*Failing: \([0-9]*\).*Crashing: \([0-9]*\).*/\1 \2/p' | awk '{s+=$1+$2} END {print s+0}')
    passed=$((passed + p))
    failed=$((failed + f))
}

run_suite() { # name builddir meson-setup-args...
    name=$1
    dir=$2
    shift 2
    echo "== $name =="
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || { status=1; failed=$((failed + 1)); return; }
    fi
    ninja -C "$dir" >/dev/null || { ninja -C "$dir"; status=1; failed=$((failed + 1)); return; }
    meson test -C "$dir" --num-processes "$JOBS" --print-errorlogs || status=1
    count "$dir"
}

run_suite "tests" build -Dwerror=true
run_suite "tests under ASan+UBSan" build-asan -Dwerror=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbuildtype=debug

# ARM: the NEON kernels (core/arch/arm/), cross-built for aarch64 into
# build-arm (tests/arm/meson.build) and run under qemu-user: once on qemu's
# default CPU (NEON and dotprod levels), once on a Cortex-A53 (no dotprod: the
# NEON level is what gets detected). Needs gcc-aarch64-linux-gnu and qemu-user.
echo "== ARM NEON kernels (aarch64 cross build, qemu-user) =="
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    if { [ -f build-arm/build.ninja ] || meson setup build-arm tests/arm -Dwerror=true \
            --cross-file scripts/cross/aarch64-linux-gnu.ini >/dev/null; } &&
        { ninja -C build-arm -j "$JOBS" >/dev/null || { ninja -C build-arm; false; }; }; then
        for cpu in max cortex-a53; do
            log=build-arm/test_neon-$cpu.log
            QEMU_CPU=$cpu qemu-aarch64 -L /usr/aarch64-linux-gnu build-arm/test_neon >"$log" 2>&1
            rc=$?
            grep -v '^PASS' "$log"
            line=$(grep '^neon: [0-9]* passed, [0-9]* failed$' "$log" | tail -n 1)
            p=$(echo "$line" | sed -n 's/^neon: \([0-9]*\) passed.*/\1/p')
            f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
            if [ -z "$line" ]; then
                echo "test_neon ($cpu): no result line (exit $rc); see $log"
                f=1
                p=0
            fi
            passed=$((passed + p))
            failed=$((failed + f))
            [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] || status=1
        done
    else
        status=1
        failed=$((failed + 1))
    fi
else
    echo "ARM NEON kernels NOT TESTED: aarch64-linux-gnu-gcc or qemu-aarch64 missing" \
        "(scripts/install-deps.sh installs gcc-aarch64-linux-gnu and qemu-user)"
fi

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    echo "== fuzz (${FUZZ_SECONDS}s per target) =="
    if [ ! -f build-fuzz/build.ninja ]; then
        CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Db_lundef=false >/dev/null || status=1
    fi
    if ninja -C build-fuzz >/tmp/hearth-fuzz-build.log 2>&1 || { tail -n 30 /tmp/hearth-fuzz-build.log; false; }; then
        for t in build-fuzz/tests/fuzz/fuzz_*; do
            [ -f "$t" ] && [ -x "$t" ] || continue
            n=$(basename "$t")
            corpus=tests/fuzz/corpus/${n#fuzz_}
            work=$(mktemp -d)
            if "$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
                -artifact_prefix="$work/" "$work" "$corpus" >"$work/log" 2>&1; then
                echo "$n: ok, $(grep -o 'Done [0-9]* runs' "$work/log" | tail -n 1 | cut -d' ' -f2) runs, no crash"
                passed=$((passed + 1))
            else
                tail -n 40 "$work/log"
                echo "$n: FAILED (artifacts in $work)"
                failed=$((failed + 1))
                status=1
            fi
        done
    else
        status=1
        failed=$((failed + 1))
    fi
fi

echo "$passed passed, $failed failed"
[ "$passed" -gt 0 ] || status=1
exit $status
