#!/usr/bin/env bash
# make check: every check keel's code must pass, one stage at a time, and a
# summary at the end.  Stage logs are in build/check/<stage>.log.
#
#   tools/check.sh              all stages
#   tools/check.sh tidy clang-format   only the named stages (or ONLY="tidy clang-format")
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/build/check
mkdir -p "$LOGS"
JOBS=${JOBS:-$(nproc)}
# Tests mostly wait (for processes, git, fsync, a gate's timers): twice as many at once as there
# are cores.  Measured on 2 cores at load 20 (gcc-devel, 631 tests): -j2 358 s, -j4 240 s.
CTEST_JOBS=${CTEST_JOBS:-$((JOBS * 2))}
FUZZ_CHECK_SECONDS=${FUZZ_CHECK_SECONDS:-10}
ONLY=${ONLY:-$*} # the stages named on the command line, or in $ONLY; none: all

# What the static analysers and the C++ checks look at: the library, the gate and tools.
LIB_SOURCES=$(ls src/*.c gate/*.c gate/*/*.c tools/*.c helper/*.c 2>/dev/null)
# keel-run's launcher and preload (run/): devel only (the preload is built from devel code)
RUN_SOURCES=$(ls run/*.c 2>/dev/null)
GATE_INC="-Igate -Igate/queue -Igate/exec -Igate/git -Igate/cli -Igate/web -Igate/levels -Igate/flows"
# The tests, their plugins, keel-run's planted programs and the consumer: cppcheck (devel, as they
# are built) and clang-tidy (tests/.clang-tidy: less what tests do on purpose) read them too; the
# planted bugs are marked where they are (cppcheck-suppress, with the reason)
TEST_SOURCES=$(ls tests/*.c tests/*/*.c 2>/dev/null)
ALL_C=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find src gate tools tests bench examples fuzz include -name '*.[ch]')

passed=()
failed=()
skipped=()

# The static checks beside the build-and-test stages.  The test stages keep CI's 2 cores busy
# only part of the time (they wait for processes, git, fsync and the gate's timers: processor
# time over wall time 1.4 for gcc-devel, 1.6 for gcc-release, 1.8 under the sanitizers, session
# 18), while the static checks (about 630 s of processor time in all, scan-build 430 of it) need
# no test to run.  So they run in a second lane, this script again at nice 19 and SCHED_IDLE: it
# takes the processor when the tests leave it and yields it at once when they want it back; it
# gets little under the sanitizers, which use nearly both cores (session 20).  Each lane
# prints its stages as they end; the lane's lines, and any failure's log, come at the end.
# CHECK_LANES=1: one stage after another, as before (each stage's wall time then means what it
# says; in the lane a stage's wall time is stretched by the tests beside it, its processor time
# is not).
LANE_STAGES="cppcheck clang-tidy gcc-fanalyzer scan-build clang-format cxx"
CHECK_LANES=${CHECK_LANES:-2}
IN_LANE=${CHECK_IN_LANE:-0}
selected() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
lane_pid=
if [ "$CHECK_LANES" != 1 ] && [ "$IN_LANE" = 0 ]; then
    lane=()
    for s in $LANE_STAGES; do selected "$s" && lane+=("$s"); done
    rm -f "$LOGS/lane.out" "$LOGS/lane.status" "$LOGS/gcc-devel.done"
    # cxx links a C++ program against gcc-devel's libkeel: it waits for that stage
    selected gcc-devel || touch "$LOGS/gcc-devel.done"
    if [ ${#lane[@]} -gt 0 ]; then
        echo "== beside the builds and tests, at the lowest priority: ${lane[*]} (their lines come at the end)"
        # SCHED_IDLE where the system allows it: a test waking up takes the core back at once
        # (nice 19 alone leaves it to the scheduler's wake-up granularity)
        lane_cmd=(nice -n 19)
        chrt --idle 0 true 2>/dev/null && lane_cmd+=(chrt --idle 0)
        CHECK_IN_LANE=1 CHECK_PARENT=$$ ONLY="${lane[*]}" JOBS=$JOBS "${lane_cmd[@]}" "$ROOT/tools/check.sh" >"$LOGS/lane.out" 2>&1 &
        lane_pid=$!
        trap 'kill -- $lane_pid 2>/dev/null; exit 130' INT TERM
    fi
fi

stage() { # stage <name> <function>
    local name=$1 fn=$2 t0=$SECONDS
    selected "$name" || return
    # the second lane runs these
    if [ -n "$lane_pid" ] && [[ " $LANE_STAGES " == *" $name "* ]]; then return; fi
    printf '== %-16s ' "$name"
    # the stage's processor time (user + system, of every process it ran), beside its wall time:
    # on a shared or loaded machine the processor time is the figure that compares across runs
    local TIMEFORMAT='%U %S' cpu
    cpu=$({ time "$fn" >"$LOGS/$name.log" 2>&1; } 2>&1)
    local rc=$?
    cpu=$(awk '{printf "%d", $1 + $2}' <<<"$cpu")
    [ "$IN_LANE" = 1 ] && echo "$name $rc" >>"$LOGS/lane.status"
    if [ $rc -eq 0 ]; then
        printf 'ok      (%ds, cpu %ss)\n' $((SECONDS - t0)) "$cpu"
        passed+=("$name")
    elif [ $rc -eq 77 ]; then # the stage could not run here: skipped, never passed
        printf 'SKIPPED (%ds, cpu %ss) — %s\n' $((SECONDS - t0)) "$cpu" "$(grep -m1 -o 'SKIPPED: .*' "$LOGS/$name.log" | cut -c10-)"
        grep 'SKIPPED: ' "$LOGS/$name.log" | sed 's/^/   | /'
        skipped+=("$name")
    else
        printf 'FAILED  (%ds, cpu %ss) — last lines of build/check/%s.log:\n' $((SECONDS - t0)) "$cpu" "$name"
        tail -n 40 "$LOGS/$name.log" | sed 's/^/   | /'
        failed+=("$name")
    fi
}

# configure + build + test one preset with one compiler
preset() { # preset <preset> <cc> <cxx> [test: yes|no]
    local p=$1 cc=$2 cxx=$3 dir=build/$2-$1
    cmake --preset "$p" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" || return 1
    cmake --build "$dir" -j "$JOBS" || return 1
    if [ "${4:-yes}" = yes ]; then
        ctest --test-dir "$dir" -j "$CTEST_JOBS" --output-on-failure --no-tests=error || return 1
    fi
}

gcc_devel()     { preset devel gcc g++; }
gcc_release()   { preset release gcc g++; }
# clang's devel code is compiled with -Werror twice elsewhere: by the tsan stage (every target,
# tests included, under ThreadSanitizer) and by scan-build (the libraries, the gate and the tools,
# no sanitizer).  A third clang devel build only for clang-tidy's compile database took a minute
# of CI's 2 cores (session 15): clang-tidy now reads the database cmake writes when it configures
# build/clang-devel, with nothing built.  clang's release code is built here, with -Werror, and
# not tested (gcc-release runs every test on a release build).  Each variant's code (devel,
# release, ASan+UBSan, TSan) runs the whole suite once, each compiler's code at least once.
clang_release() { preset release clang clang++ no; }
gcc_asan()      { ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 preset asan gcc g++; }
# TSan's own deadlock detector is off: test_lock makes lock-order inversions on purpose to
# show that keel reports them.  Data races still fail the run.
# die_after_fork=0: the gate crash test forks a child that starts threads while the parent has
# the watchdog thread running (fine with glibc; TSan refuses it by default).
clang_tsan()    { TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0 die_after_fork=0" preset tsan clang clang++; }

# Every public header on its own, as C++17 and C++20, with g++ and clang++, in
# both variants; then the library sources themselves as C++20 (stricter type
# checks).  Exceptions: none today — every file of src/, gate/, tools/ and helper/
# compiles as C++.  A file that cannot would be listed here with the reason.
CXX_EXCEPTIONS=""
cxx() {
    local rc=0 tmp=build/check/cxx
    mkdir -p $tmp
    for cxx in g++ clang++; do
        for std in c++17 c++20; do
            for devel in 0 1; do
                for h in include/keel/*.h; do
                    printf '#include "keel/%s"\n#include "keel/%s"\nint main() { return 0; }\n' \
                        "$(basename "$h")" "$(basename "$h")" >$tmp/h.cpp
                    $cxx -std=$std -DKEEL_DEVEL=$devel -Iinclude -Wall -Wextra -Wpedantic -Werror \
                        -c $tmp/h.cpp -o $tmp/h.o || { echo "FAIL: $cxx -std=$std KEEL_DEVEL=$devel $h"; rc=1; }
                done
            done
        done
    done
    # the sources, $JOBS compilations at a time
    local f devel
    for cxx in g++ clang++; do
        for f in $LIB_SOURCES $RUN_SOURCES; do
            [[ " $CXX_EXCEPTIONS " == *" $f "* ]] && continue
            for devel in 0 1; do
                [[ $f == run/* && $devel == 0 ]] && continue
                echo "$cxx $devel $f"
            done
        done
    done | xargs -P "$JOBS" -L 1 sh -c '$0 -x c++ -std=c++20 -fsyntax-only -DKEEL_DEVEL=$1 -DKEEL_BUILDING_LIBRARY \
            -D_GNU_SOURCE -Iinclude -Isrc -Irun '"$GATE_INC"' -Wall -Wextra -Werror "$2" \
            || { echo "FAIL: $0 as C++20 KEEL_DEVEL=$1 $2"; exit 1; }' || rc=1
    # a C++ program using keel links and runs against both libraries (gcc-devel's: in the second
    # lane, once the first has built them)
    while [ "$IN_LANE" = 1 ] && [ ! -e "$LOGS/gcc-devel.done" ]; do
        kill -0 "${CHECK_PARENT:-$$}" 2>/dev/null || return 1
        sleep 2
    done
    printf '%s\n' '#include "keel/keel.h"' '#include <cstdio>' \
        'int main() { keel_status s = KEEL_ERR(KEEL_E_INVAL, "from C++ %d", 17);' \
        '  char buf[256]; keel_status_format(s, buf, sizeof buf); std::puts(buf);' \
        '  bool is = KEEL_IS(s, KEEL_E_INVAL); keel_status_free(s); return is ? 0 : 1; }' >$tmp/use.cpp
    for devel in 0 1; do
        lib=build/gcc-devel/libkeel.a; [ $devel = 1 ] && lib=build/gcc-devel/libkeel-devel.a
        [ -f $lib ] || { cmake --preset devel -B build/gcc-devel -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ && cmake --build build/gcc-devel; } || return 1
        g++ -std=c++20 -DKEEL_DEVEL=$devel -Iinclude -Wall -Wextra -Werror $tmp/use.cpp $lib -ldw -ljemalloc -pthread -o $tmp/use \
            && $tmp/use | grep -q "from C++ 17" || { echo "FAIL: C++ program with KEEL_DEVEL=$devel"; rc=1; }
    done
    return $rc
}

cppcheck_stage() {
    cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
        --inline-suppr --std=c11 -D__GNUC__ -DKEEL_DEVEL=1 -DKEEL_BUILDING_LIBRARY -D_GNU_SOURCE -D_POSIX_C_SOURCE=200809L \
        -Iinclude -Isrc -Irun $GATE_INC --suppress=missingIncludeSystem \
        --suppress=unusedStructMember --suppress=unmatchedSuppression $LIB_SOURCES $RUN_SOURCES || return 1
    cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
        --inline-suppr --std=c11 -D__GNUC__ -DKEEL_DEVEL=1 -DKEEL_BUILDING_LIBRARY -D_GNU_SOURCE -D_POSIX_C_SOURCE=200809L \
        -DKEEL_RUN_CLI='"keel-run"' -DKEEL_STRESS_CLI='"keel-stress"' -DKEEL_RUN_PROGS='"."' \
        -Iinclude -Isrc -Irun $GATE_INC -Itests --suppress=missingIncludeSystem \
        --suppress=unusedStructMember --suppress=unmatchedSuppression $TEST_SOURCES || return 1
    cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
        --inline-suppr --std=c11 -D__GNUC__ -DKEEL_DEVEL=0 -DKEEL_BUILDING_LIBRARY -D_GNU_SOURCE -D_POSIX_C_SOURCE=200809L \
        -Iinclude -Isrc $GATE_INC --suppress=missingIncludeSystem \
        --suppress=unusedStructMember --suppress=unmatchedSuppression $LIB_SOURCES
}

tidy() {
    # the devel flags with clang: configured, not built (nothing clang-tidy reads is generated)
    cmake --preset devel -B build/clang-devel -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        >/dev/null || return 1
    # -p: the devel build's flags; the checks are in .clang-tidy
    printf '%s\n' $LIB_SOURCES $RUN_SOURCES $TEST_SOURCES | xargs -P "$JOBS" -n 4 clang-tidy -p build/clang-devel --quiet \
        --warnings-as-errors='*'
}

analyzer() {
    cmake --preset devel -B build/gcc-analyzer -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
        -DKEEL_ANALYZER=ON -DBUILD_TESTING=OFF || return 1
    cmake --build build/gcc-analyzer -j "$JOBS" --target keel_devel_objects keel_release_objects keel_gate_lib
}

# The clang static analyzer over everything clang-tidy reads (the libraries, the gate, the tools,
# keel-stack, keel-run and its preload), with the checks clang-tidy's clang-analyzer-* used to add
# to scan-build's defaults (.clang-tidy leaves the analyzer to this stage: running it twice took
# 4 of make check's minutes on CI's 2 cores).  The devel variant of libkeel only: its release
# variant is the same sources with the checks compiled out (a few blocks of heap.c and lock.c are
# release-only), and gcc -fanalyzer reads both variants; a second clang pass over src/ took about
# a fifth of this stage (session 15: 287 s on 2 cores).
SCAN_CHECKERS="optin.performance.Padding optin.portability.UnixAPI security.FloatLoopCounter
    security.insecureAPI.bcmp security.insecureAPI.bcopy security.insecureAPI.bzero
    security.insecureAPI.rand security.insecureAPI.strcpy valist.CopyToSelf valist.Unterminated
    nullability.NullableDereferenced nullability.NullablePassedToNonnull
    nullability.NullableReturnedFromNonnull"
# keel_run_objects: the heap's two files over the C library's malloc and the interposer (the rest
# of libkeel-run.so is keel_devel_objects' own objects: CMakeLists.txt)
SCAN_TARGETS="keel_devel_objects keel_gate_lib keel-gate keel-stress keel-stack
    keel_run_objects keel-run"
scan() {
    local enable=() c t targets=()
    for c in $SCAN_CHECKERS; do enable+=(-enable-checker "$c"); done
    rm -rf build/scan build/scan-report
    scan-build --use-cc=clang --use-c++=clang++ cmake --preset devel -B build/scan -DBUILD_TESTING=OFF || return 1
    for t in $SCAN_TARGETS; do targets+=(--target "$t"); done
    scan-build --status-bugs -o build/scan-report "${enable[@]}" --use-cc=clang --use-c++=clang++ \
        cmake --build build/scan -j "$JOBS" "${targets[@]}"
}

format() {
    clang-format --dry-run --Werror $ALL_C
}

fuzz() {
    FUZZ_SECONDS=$FUZZ_CHECK_SECONDS tools/fuzz.sh
}

# libkeel cross-built for aarch64 and big-endian s390x, its tests under qemu-user (make
# check-platforms); exit 77 (skipped, with the reason) where the cross tools are missing
platforms() {
    JOBS=$JOBS tools/platforms.sh
}

install_consumer() {
    local stage=$ROOT/build/stage
    rm -rf "$stage"
    preset release gcc g++ no || return 1
    cmake --install build/gcc-release --prefix "$stage" || return 1
    tests/consumer/run.sh "$stage"
}

stage gcc-devel gcc_devel
[ "$IN_LANE" = 1 ] || touch "$LOGS/gcc-devel.done"
stage gcc-release gcc_release
stage clang-release clang_release
stage asan gcc_asan
stage tsan clang_tsan
stage cppcheck cppcheck_stage
stage clang-tidy tidy
stage gcc-fanalyzer analyzer
stage scan-build scan
stage clang-format format
# last: in the second lane it waits for gcc-devel's libraries (first, it held the lane idle for
# all of gcc-devel's 290 s)
stage cxx cxx
stage fuzz fuzz
stage install install_consumer
stage platforms platforms

[ "$IN_LANE" = 1 ] && exit 0 # its results are in lane.status
if [ -n "$lane_pid" ]; then
    wait "$lane_pid"
    trap - INT TERM
    cat "$LOGS/lane.out"
    declare -A ran=()
    while read -r name rc; do
        ran[$name]=1
        case $rc in
        0) passed+=("$name") ;;
        77) skipped+=("$name") ;;
        *) failed+=("$name") ;;
        esac
    done <"$LOGS/lane.status"
    for s in "${lane[@]}"; do # a lane that died before a stage ended
        [ -n "${ran[$s]:-}" ] || { echo "== $s: the second lane ended without its result"; failed+=("$s"); }
    done
fi

echo
echo "make check: ${#passed[@]} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}, ${#skipped[@]} skipped${skipped:+ (${skipped[*]})} in ${SECONDS}s"
[ ${#failed[@]} -eq 0 ]
