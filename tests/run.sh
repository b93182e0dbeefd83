#!/usr/bin/env bash
# tests/run.sh - the README's test command, also what CI runs (.ci/run).
#
# Installs the Debian packages (skip with PW_SKIP_INSTALL=1), checks formatting, builds
# the worker with the test-only tasks and runs every ctest suite (unit, integration
# against RabbitMQ + PostgreSQL that ctest starts on private ports and stops, quality),
# then rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit and
# integration suites again with the sanitized worker (LeakSanitizer on the integration
# path; tests labelled "waits", see tests/CMakeLists.txt, run in the first pass only).
# The sanitizer and Release builds with the sanitized unit tests, then the quality suite
# (compute only, no services), run niced in the background while the integration and
# reliability suites, which mostly wait on the services, run side by side, each lane on
# its own servers (tests/CMakeLists.txt, PW_SERVICES_LANE) (the background logs:
# $BUILD/background-builds.log, $BUILD/quality.log).  PW_TEST_JOBS sets ctest parallelism for unit tests
# (default 2); PW_LONG_TESTS=1 adds the long quality tests (label quality-long).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${PW_BUILD_ROOT:-$ROOT/_build}
JOBS=${PW_TEST_JOBS:-2}
step() { printf '\n==> [%s] %s\n' "$(date +%T)" "$*"; }

# The ASan+UBSan build and its unit tests (no services: they need not wait for the
# integration suite), the TSan targets, the Release build that deploy/quickstart.sh
# and the image make (-O3 finds warnings -O2 does not; -Werror makes them errors) and
# the libFuzzer targets (clang) whose corpora are replayed at the end.
background_builds() {
    cmake -S . -B "$BUILD/asan" -DCMAKE_BUILD_TYPE=Debug -DPW_SANITIZE=ON -DPW_TEST_TASKS=ON >/dev/null
    cmake --build "$BUILD/asan" -j2
    echo "==> [$(date +%T)] unit tests under ASan + UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$BUILD/asan" -L unit -j 2 --output-on-failure
    cmake -S . -B "$BUILD/tsan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" \
        -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
    cmake --build "$BUILD/tsan" -j2 --target qdrant_scroll_tool test_compute_team
    cmake -S . -B "$BUILD/release" -DCMAKE_BUILD_TYPE=Release -DPW_TEST_TASKS=OFF \
        -DPW_INTEGRATION_TESTS=OFF >/dev/null
    cmake --build "$BUILD/release" -j2
    PW_FUZZ_BUILD="$BUILD/fuzz" bash tests/fuzz/run.sh --build
}

if [ "${PW_SKIP_INSTALL:-0}" != 1 ]; then
    step "installing Debian packages"
    deploy/install-deps.sh
fi

step "checking formatting (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './_build/*')
clang-format --dry-run --Werror "${sources[@]}"

step "building (RelWithDebInfo, test tasks on)"
cmake -S . -B "$BUILD/test" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPW_TEST_TASKS=ON >/dev/null
cmake --build "$BUILD/test" -j2

step "unit tests"
ctest --test-dir "$BUILD/test" -L unit -j "$JOBS" --output-on-failure

# The quality suite (trustworthiness against sklearn / umap-learn computed in the tests)
# and the reducers on a CPU without AVX-512 (under valgrind): CPU-bound, independent of
# the services.
quality_suite() {
    if ctest --test-dir "$BUILD/test" -N -L '^(quality|fallback)$' | grep -q 'Total Tests: [1-9]'; then
        ctest --test-dir "$BUILD/test" -L '^(quality|fallback)$' --output-on-failure
    fi
}

# Each in its own session, so that a failing suite's exit stops it as a whole (trap below).
background() {
    local name=$1 log=$2
    setsid nice -n 10 bash -c "$(declare -f "$name"); BUILD='$BUILD'; set -euo pipefail; $name" \
        >"$log" 2>&1 &
}
finish_background() {
    local pid=$1 log=$2 what=$3
    if ! wait "$pid"; then
        tail -n 80 "$log"
        echo "$what failed (whole log: $log)" >&2
        exit 1
    fi
}

step "background: ASan + UBSan build and unit tests, TSan, Release and fuzz builds ($BUILD/background-builds.log), quality and no-AVX-512 tests ($BUILD/quality.log); nice 10"
background background_builds "$BUILD/background-builds.log"
BACKGROUND_BUILDS=$!
background quality_suite "$BUILD/quality.log"
QUALITY=$!
trap 'kill -- -"$BACKGROUND_BUILDS" -"$QUALITY" 2>/dev/null || true' EXIT

# Three lanes side by side, each on its own RabbitMQ + PostgreSQL and serial within itself
# (tests/CMakeLists.txt, PW_SERVICES_LANE): runtime and pipeline (with backfill and db),
# with the Qdrant client tests (no services) filling gaps, in one ctest call at nice 5,
# and the reliability campaign in the foreground at nice 0: its rows have time bounds
# (a hostile value must be dealt with within 20 s...) and some sections compute with 3
# replicas, so it keeps first call on the CPU, as when it ran alone; the integration
# suites mostly wait (timeouts, retries' countdowns, service restarts).
step "integration tests (runtime and pipeline lanes, nice 5, $BUILD/integration.log) beside the short reliability campaign (kills at every fault point, chaos, service/disk faults, hostile values, secrets); RabbitMQ + PostgreSQL per lane, started by ctest"
setsid nice -n 5 ctest --test-dir "$BUILD/test" -L integration -j 3 --output-on-failure \
    >"$BUILD/integration.log" 2>&1 &
INTEGRATION=$!
trap 'kill -- -"$BACKGROUND_BUILDS" -"$QUALITY" -"$INTEGRATION" 2>/dev/null || true' EXIT
ctest --test-dir "$BUILD/test" -L reliability --output-on-failure

step "waiting for the integration tests (started beside the campaign)"
finish_background "$INTEGRATION" "$BUILD/integration.log" "integration tests"
cat "$BUILD/integration.log"

step "waiting for the quality tests (started in the background)"
finish_background "$QUALITY" "$BUILD/quality.log" "quality tests"
grep -E '^(100% tests passed|[0-9]+% tests passed|Total Test time)' "$BUILD/quality.log" || true

if [ "${PW_LONG_TESTS:-0}" = 1 ]; then
    step "long quality tests (PW_LONG_TESTS=1: Fashion-MNIST structures)"
    ctest --test-dir "$BUILD/test" -L quality-long --output-on-failure
fi

step "waiting for the background builds (ASan + UBSan and its unit tests, TSan, Release, fuzz)"
finish_background "$BACKGROUND_BUILDS" "$BUILD/background-builds.log" "background builds"
grep -E '^(100% tests passed|[0-9]+% tests passed|Total Test time)' "$BUILD/background-builds.log" || true

# The runtime and pipeline lanes side by side, as in the first pass.
step "integration tests with the sanitized worker (leaks fail the test; label 'waits' left out; 2 lanes in parallel)"
PW_SANITIZED_WORKER=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$BUILD/asan" -L integration -LE waits -j 3 --output-on-failure

step "fuzz corpora replay (ASan+UBSan)"
PW_FUZZ_BUILD="$BUILD/fuzz" bash tests/fuzz/run.sh --replay

step "thread sanitizer: the Qdrant scroll pipeline (receiver + parser threads), compute's thread team"
TSAN_OPTIONS=halt_on_error=1:exitcode=66 "$BUILD/tsan/tests/unit/compute/test_compute_team"
TSAN_OPTIONS=halt_on_error=1:exitcode=66 /usr/bin/python3 tests/integration/qdrant/test_qdrant_client.py \
    --tool "$BUILD/tsan/tests/integration/qdrant/qdrant_scroll_tool"

step "all suites passed"
