#!/usr/bin/env bash
# make bench: build the benchmarks of bench/ optimised and run each.  Every
# benchmark prints its figures as ratios against an anchor measured in the same
# run; docs/benchmarks.md records them with this command.
set -eu -o pipefail
cd "$(dirname "$0")/.."
for p in release devel; do
    cmake --preset $p >/dev/null
    cmake --build build/$p >/dev/null
done
# The anchor of the lock figures under ThreadSanitizer: the same pthread loop, built with TSan.
cmake --preset tsan >/dev/null
cmake --build build/tsan --target bench_lock >/dev/null
KEEL_BENCH_TSAN_NS=$(build/tsan/bench_lock --pthread-only)
export KEEL_BENCH_TSAN_NS
for b in bench/bench_*.c; do
    name=$(basename "$b" .c)
    for p in release devel; do
        echo "==== $name ($p build) ===="
        build/$p/$name
        echo
    done
done
