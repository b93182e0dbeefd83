#!/usr/bin/env bash
# tests/fuzz/run.sh - build the libFuzzer targets (clang, ASan + UBSan, coverage in every
# library) and replay or grow their corpora.  docs/RELIABILITY.md, "Fuzzing", has the
# figures of the last runs.
#
#   tests/fuzz/run.sh --replay            run every file of tests/fuzz/corpus/<target>/ once
#                                         (what CI does; non-zero on any crash, leak, UB)
#   tests/fuzz/run.sh --build             only build the targets (tests/run.sh does it in
#                                         the background, before the replay)
#   tests/fuzz/run.sh --seconds N [T...]  fuzz each target (or the ones named) N seconds,
#                                         one after the other, at nice 19, starting from the
#                                         checked-in corpus and the seeds; new inputs go to
#                                         $PW_FUZZ_BUILD/work/<target>/, crashes to
#                                         $PW_FUZZ_BUILD/artifacts/<target>/
#   tests/fuzz/run.sh --long [T...]       the campaign's long mode: --seconds 600
#   tests/fuzz/run.sh --merge [T...]      minimise corpus + seeds + work/ into the checked-in
#                                         corpus (libFuzzer -merge=1, edge coverage; files
#                                         named regress-* are kept); commit the result
#
# Targets: celery_message qdrant_page metadata_hash reducer_config.  The build lives in
# $PW_FUZZ_BUILD (default _build/fuzz); seeds come from tests/fixtures through
# tests/fuzz/make_seeds.py.  Leak detection is on (ASan's default with libFuzzer).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${PW_FUZZ_BUILD:-$ROOT/_build/fuzz}
CORPUS=$ROOT/tests/fuzz/corpus
ALL_TARGETS=(celery_message qdrant_page metadata_hash reducer_config)
# export: compute/ uses one thread per the harness; OpenBLAS must not start its own pool
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mode=replay seconds=60
while [ $# -gt 0 ]; do
    case $1 in
    --replay) mode=replay ;;
    --build) mode=build ;;
    --seconds) mode=fuzz seconds=$2; shift ;;
    --long) mode=fuzz seconds=600 ;;
    --merge) mode=merge ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

# per-target options: the largest input worth trying, the dictionary
max_len() {
    case $1 in
    reducer_config) echo 2048 ;;
    qdrant_page) echo 16384 ;;
    *) echo 8192 ;;
    esac
}

echo "fuzz: building in $BUILD (clang, -fsanitize=fuzzer-no-link + ASan + UBSan)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" -DPW_SANITIZE=ON -DPW_FUZZ=ON \
    -DPW_INTEGRATION_TESTS=OFF -DPW_BENCHMARKS=OFF -DPW_TEST_TASKS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target "${targets[@]/#/fuzz_}" >/dev/null
[ "$mode" != build ] || exit 0

seeds() { # seeds/<target>/: made from the fixtures each time (not checked in)
    /usr/bin/python3 "$ROOT/tests/fuzz/make_seeds.py" "$BUILD/seeds" >/dev/null
}

status=0
for t in "${targets[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz_$t
    dict=$ROOT/tests/fuzz/json.dict
    case $mode in
    replay)
        files=("$CORPUS/$t"/*)
        start=${EPOCHREALTIME/./}
        if "$bin" -timeout=10 -rss_limit_mb=2048 "${files[@]}" >"$BUILD/replay_$t.log" 2>&1; then
            tenths=$(((${EPOCHREALTIME/./} - start) / 100000))
            printf 'fuzz: %-16s %4d corpus files replayed, no crash, leak or UB (%d.%d s)\n' \
                "$t" "${#files[@]}" $((tenths / 10)) $((tenths % 10))
        else
            echo "fuzz: $t FAILED on its corpus; log $BUILD/replay_$t.log:" >&2
            grep -m1 -B2 -A40 -E 'ERROR: |runtime error|fuzz_[a-z_]+: ' "$BUILD/replay_$t.log" >&2 ||
                tail -40 "$BUILD/replay_$t.log" >&2
            status=1
        fi
        ;;
    fuzz)
        seeds
        mkdir -p "$BUILD/work/$t" "$BUILD/artifacts/$t" "$BUILD/logs"
        log=$BUILD/logs/$t.log
        echo "fuzz: $t for $seconds s (log $log)"
        nice -n 19 "$bin" -dict="$dict" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$BUILD/artifacts/$t/" \
            "$BUILD/work/$t" "$CORPUS/$t" "$BUILD/seeds/$t" >"$log" 2>&1 || status=1
        grep -E '^#[0-9]+ +DONE|^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "$log" || true
        grep -m1 -A30 -E 'ERROR: |runtime error|fuzz_[a-z_]+: ' "$log" || true
        ;;
    merge)
        seeds
        mkdir -p "$BUILD/work/$t" "$CORPUS/$t"
        rm -rf "$BUILD/merged/$t" && mkdir -p "$BUILD/merged/$t"
        # edges only (-use_counters=0): the same coverage in a third of the files
        "$bin" -merge=1 -use_counters=0 -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
            "$BUILD/merged/$t" "$CORPUS/$t" "$BUILD/seeds/$t" "$BUILD/work/$t" \
            >"$BUILD/merge_$t.log" 2>&1 || { tail -20 "$BUILD/merge_$t.log" >&2; status=1; continue; }
        # regress-*: reproducers of fixed findings, kept whatever coverage they add
        find "$CORPUS/$t" -maxdepth 1 -name 'regress-*' -exec cp {} "$BUILD/merged/$t/" \;
        rm -rf "${CORPUS:?}/$t" && mv "$BUILD/merged/$t" "$CORPUS/$t"
        printf 'fuzz: %-16s corpus %d files, %d bytes\n' "$t" "$(ls "$CORPUS/$t" | wc -l)" \
            "$(cat "$CORPUS/$t"/* | wc -c)"
        ;;
    esac
done
exit $status
