#!/usr/bin/env bash
# Build a program against an installed keel, the two ways a user would:
# pkg-config (keel and keel-devel) and CMake's find_package(keel).
#   tests/consumer/run.sh <install-prefix>
set -eu -o pipefail
prefix=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig
export LD_LIBRARY_PATH=$prefix/lib:$prefix/lib/x86_64-linux-gnu
for pc in keel keel-devel; do
    # shellcheck disable=SC2046
    cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror "$here/consumer.c" $(pkg-config --cflags --libs $pc) -o "$work/c-$pc"
    out=$("$work/c-$pc")
    echo "pkg-config $pc: $out"
    want=release; [ $pc = keel-devel ] && want=devel
    [[ "$out" == *"variant=$want"* ]] || { echo "FAIL: $pc program says '$out'"; exit 1; }
done
cmake -S "$here" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
for v in keel keel-devel; do
    out=$("$work/cmake/consumer-$v")
    echo "find_package keel::$v: $out"
    want=release; [ $v = keel-devel ] && want=devel
    [[ "$out" == *"variant=$want"* ]] || { echo "FAIL: keel::$v program says '$out'"; exit 1; }
done
echo "consumer: ok"
