#!/usr/bin/env bash
# make demo: build keel in its devel and release variants and run the demo
# programs of examples/ on their built-in sample data, devel first.
set -eu -o pipefail
cd "$(dirname "$0")/.."
for p in devel release; do
    cmake --preset $p >/dev/null
    cmake --build build/$p --target errors_demo >/dev/null
done
echo "################ devel build (KEEL_DEVEL=1, linked with libkeel-devel) ################"
build/devel/errors_demo
echo
echo "################ release build (KEEL_DEVEL=0, linked with libkeel) ################"
build/release/errors_demo
