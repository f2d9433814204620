#!/usr/bin/env bash
# Fuzz keel's parsers with libFuzzer (clang, ASan+UBSan).
#   FUZZ_SECONDS=600 tools/fuzz.sh     (make fuzz; make check runs 30 s)
# Each fuzz/fuzz_<name>.c is one target with its seed corpus in fuzz/corpus/<name>/.
# A crash leaves its input in build/fuzz/ and fails this script.
set -eu -o pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p $out
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DKEEL_DEVEL=1
        -DKEEL_BUILDING_LIBRARY -DKEEL_HEAP_SYSTEM=1 -D_GNU_SOURCE -Iinclude -Isrc -Igate -std=c11"
# (KEEL_HEAP_SYSTEM: under a sanitizer, module heaps use its malloc, as the CMake build does)
status=0
for f in fuzz/fuzz_*.c; do
    name=$(basename "$f" .c); name=${name#fuzz_}
    # shellcheck disable=SC2086
    clang $CFLAGS "$f" src/*.c -ldw -pthread -o $out/fuzz_$name
    mkdir -p $out/corpus-$name
    echo "fuzz: $name for ${SECONDS_EACH}s"
    if ! (cd $out && ASAN_OPTIONS=detect_leaks=1 ./fuzz_$name -max_total_time="$SECONDS_EACH" \
            -print_final_stats=1 corpus-$name "../../fuzz/corpus/$name" 2>&1 | tail -n 25); then
        status=1
    fi
    if ls $out/crash-* $out/leak-* $out/timeout-* >/dev/null 2>&1; then
        echo "fuzz: $name found a failing input:"; ls $out/crash-* $out/leak-* $out/timeout-* 2>/dev/null
        status=1
    fi
done
exit $status
