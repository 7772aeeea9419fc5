#!/usr/bin/env bash
# Runs tether's fuzz targets on nightly with cargo-fuzz (installed if missing).
#
#   fuzz/run.sh [SECONDS] [TARGET...]   fuzz each target (default: all) for SECONDS (default 60)
#   fuzz/run.sh --merge [TARGET...]     fold the working corpora into the checked-in seed corpora,
#                                       keeping only inputs that add edge coverage (libFuzzer -merge=1 -use_counters=0)
#
# Fuzzing grows a working corpus in fuzz/target/work-corpus/<target> (not checked in), seeded from
# the checked-in fuzz/corpus/<target>. A crash is minimised (cargo fuzz tmin) and saved to
# fuzz/regressions/<target>/, which the stable replay test (`cargo test -p tether-fuzz-targets`)
# runs from then on. Each run's final libFuzzer statistics are appended to fuzz/target/stats.tsv
# (date, target, seconds, executions, executions/s, coverage, features, result).
#
# Open core bugs (fuzz/FOUND.md) are tolerated while fuzzing so the fuzzer goes past them; the
# replay test still reproduces each one from its regression input. Keep this list in step with
# KNOWN_CORE_BUGS in fuzz/targets/tests/replay.rs.
export TETHER_FUZZ_TOLERATE="${TETHER_FUZZ_TOLERATE-}"
#
# Environment: FUZZ_JOBS (default 1) parallel fuzzing jobs per target; FUZZ_MAX_LEN (default 4096);
# FUZZ_SANITIZER (default none; address, memory, thread as cargo-fuzz knows them);
# FUZZ_TRACE_COMPARES=1 to build with libFuzzer's comparison tracing (off by default).
set -euo pipefail
cd "$(dirname "$0")"

ALL_TARGETS=(frame_decode session endpoint pair)
merge=false
if [[ "${1:-}" == "--merge" ]]; then
    merge=true
    shift
    secs=0
else
    secs="${1:-60}"
    shift || true
fi
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${ALL_TARGETS[@]}")

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Release build with debug assertions: overflow checks and debug_assert! are part of what we test.
# No sanitizer by default: tether forbids `unsafe`, so AddressSanitizer would only watch the
# dependencies' unsafe code, at half the speed. FUZZ_SANITIZER=address brings it back.
# No comparison tracing by default: every input is decoded by `arbitrary` and its frames are
# built from anchors (observed ids, secrets, positions), so there are no magic values for
# libFuzzer to lift out of comparisons; the hooks on every comparison cost more than half the
# executions, and equal-time runs reach as much coverage without them (docs/TESTING.md).
# FUZZ_TRACE_COMPARES=1 brings them back.
FLAGS=(-O --debug-assertions --sanitizer "${FUZZ_SANITIZER:-none}")
[[ "${FUZZ_TRACE_COMPARES:-0}" == 1 ]] || FLAGS+=(--no-trace-compares)
cargo +nightly fuzz build "${FLAGS[@]}"

jobs="${FUZZ_JOBS:-1}"
max_len="${FUZZ_MAX_LEN:-4096}"
mkdir -p target/logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t" "target/work-corpus/$t"
    if $merge; then
        echo "=== merge $t: target/work-corpus/$t into corpus/$t"
        cargo +nightly fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "target/work-corpus/$t" -- \
            -merge=1 -use_counters=0 -max_len="$max_len" -timeout=20 2>&1 | tail -n 1
        continue
    fi
    log="target/logs/$t.log"
    echo "=== fuzz $t for ${secs}s (log: fuzz/$log)"
    set +e
    # With -jobs (even 1) libFuzzer forks jobs writing fuzz-N.log here: only ask for them if > 1.
    parallel=()
    [[ "$jobs" != 1 ]] && parallel=(-jobs="$jobs" -workers="$jobs")
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "target/work-corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" "${parallel[@]}" -print_final_stats=1 \
        -max_len="$max_len" -timeout=20 -rss_limit_mb=2048 >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer's -jobs mode already echoes each job's log into its own output: drop the copies
    # (appending them too counted every execution twice).
    rm -f fuzz-*.log
    execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
    rate=$(grep -h 'stat::average_exec_per_sec' "$log" | awk '{s+=$2} END {print s+0}')
    cov=$(grep -hoE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 | awk '{print $2, $4}')
    result=ok
    crashes=$(ls "artifacts/$t" 2>/dev/null | grep -E '^(crash|timeout|oom|leak)-' || true)
    if [[ $rc -ne 0 || -n "$crashes" ]]; then
        result=crash
        status=1
        for c in $crashes; do
            [[ "$c" == minimized-from-* ]] && continue
            echo "--- $t: minimising artifacts/$t/$c"
            cargo +nightly fuzz tmin "${FLAGS[@]}" "$t" "artifacts/$t/$c" -- -runs=20000 \
                >"target/logs/$t-tmin-$c.log" 2>&1 || true
            min=$(ls -t "artifacts/$t" | grep "^minimized-from-" | head -n 1 || true)
            cp "artifacts/$t/${min:-$c}" "regressions/$t/$c"
            rm -f "artifacts/$t/$c" "artifacts/$t"/minimized-from-*
            echo "--- saved regressions/$t/$c; reproduce: cargo test -p tether-fuzz-targets --test replay $t"
        done
        grep -A 12 -m 1 -E "panicked at|ERROR: libFuzzer" "$log" || true
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "$execs" "$rate" \
        "${cov:-? ?}" "$result" | tee -a target/stats.tsv
done
exit $status
