#!/usr/bin/env bash
# Fuzz keel's parsers with libFuzzer (clang, ASan+UBSan).
#   FUZZ_SECONDS=600 tools/fuzz.sh     (make fuzz; make check runs 10 s)
#   tools/fuzz.sh gate_config          (only the named targets)
#   FUZZ_PARALLEL=1 tools/fuzz.sh      (one target at a time; default: as many as the machine has cores)
# Each fuzz/fuzz_<name>.c is one target with its seed corpus in fuzz/corpus/<name>/ (and its
# dictionary in fuzz/<name>.dict when there is one).
# fuzz_options and fuzz_supp are built from src/*.c; the gate's (fuzz_gate_*) also from
# gate/**/*.c but main.c (and the dashboard's files, made C by cmake/embed_page.cmake), with
# libgit2, SQLite, jansson, libmicrohttpd and nettle.
# A failing input is left in build/fuzz/<name>-crash-* (or -leak-, -timeout-) and fails this
# script; build/fuzz/<name>.log has the whole run.
set -eu -o pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p $out
GATE_INC="-Igate -Igate/queue -Igate/exec -Igate/git -Igate/cli -Igate/web -Igate/levels -Igate/flows"
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DKEEL_DEVEL=1
        -DKEEL_BUILDING_LIBRARY -DKEEL_HEAP_SYSTEM=1 -D_GNU_SOURCE -Iinclude -Isrc $GATE_INC -std=c11"
# (KEEL_HEAP_SYSTEM: under a sanitizer, module heaps use its malloc, as the CMake build does)
GATE_LIBS="-lgit2 -lsqlite3 -ljansson -lmicrohttpd -lnettle -lm"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do name=$(basename "$f" .c); targets+=("${name#fuzz_}"); done
fi

# The library and the gate as objects, once, for every target (instrumented for coverage like
# the targets: -fsanitize=fuzzer-no-link); libkeel's own targets link src/'s alone.
# shellcheck disable=SC2317 # (run by xargs)
compile_object() { # compile_object <source>: into $out/obj/<path with '_'>.o
    local o
    o=$out/obj/$(echo "${1%.c}" | tr / _).o
    # shellcheck disable=SC2086
    clang ${CFLAGS/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,} -c "$1" -o "$o"
}
lib_objects() {
    rm -rf $out/obj && mkdir -p $out/obj
    export out CFLAGS
    export -f compile_object
    local src
    # the dashboard's files as C (cmake/embed_page.cmake, as the CMake build makes them)
    cmake -DOUT=$out/gate_page.c -DDIR=gate/web/page -P cmake/embed_page.cmake >&2 || return 1
    local gate="gate/*.c gate/*/*.c $out/gate_page.c"
    [[ " ${targets[*]} " == *" gate_"* ]] || gate="" # (no gate target: libkeel's alone)
    # shellcheck disable=SC2016,SC2086 # ($0: the source, expanded by the bash that xargs runs; $gate: globs)
    for src in src/*.c $gate; do
        [ "${src##*/}" = main.c ] || echo "$src"
    done | xargs -P "$(nproc)" -n 1 bash -c 'compile_object "$0"' || return 1
    ls $out/obj/*.o
}

# Build every target first, then run them PARALLEL at a time (default: the machine's cores):
# each run is one process on one core, so make check's 20 s each take 20 s per core, not per target.
PARALLEL=${FUZZ_PARALLEL:-$(nproc)}
objects=""
for name in "${targets[@]}"; do
    f=fuzz/fuzz_$name.c
    [ -f "$f" ] || { echo "fuzz: no target $f"; exit 2; }
    [ -n "$objects" ] || objects=$(lib_objects | tr '\n' ' ') || exit 1
    # shellcheck disable=SC2086
    if [[ $name == gate_* ]]; then
        clang $CFLAGS "$f" $objects $GATE_LIBS -ldw -pthread -o $out/fuzz_$name
    else # libkeel's objects alone (src/*.c: compiled once for every target, session 21)
        clang $CFLAGS "$f" $out/obj/src_*.o -ldw -pthread -o $out/fuzz_$name
    fi
    mkdir -p "$out/corpus-$name"
    rm -f "$out/$name".status
done

run_target() { # run_target <name>: the whole output in build/fuzz/<name>.log, its status in <name>.status
    local name=$1 dict=() rc=0
    [ -f "fuzz/$name.dict" ] && dict=("-dict=../../fuzz/$name.dict")
    (cd $out && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$name" -max_total_time="$SECONDS_EACH" \
        -print_final_stats=1 -artifact_prefix="$name-" "${dict[@]}" "corpus-$name" \
        "../../fuzz/corpus/$name" >"$name.log" 2>&1) || rc=1
    echo $rc >"$out/$name.status"
}

running=0
for name in "${targets[@]}"; do
    echo "fuzz: $name for ${SECONDS_EACH}s"
    run_target "$name" &
    running=$((running + 1))
    if [ $running -ge "$PARALLEL" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

# here a failed property's message and the end of each run, in the targets' order
status=0
for name in "${targets[@]}"; do
    echo "== fuzz: $name"
    if [ "$(cat "$out/$name.status" 2>/dev/null)" != 0 ]; then
        status=1
        grep -E -A 2 '^property failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
            "$out/$name.log" | head -n 12 || true
    fi
    tail -n 25 "$out/$name.log"
    if ls "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* >/dev/null 2>&1; then
        echo "fuzz: $name found a failing input:"
        ls "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* 2>/dev/null
        status=1
    fi
done
exit $status
