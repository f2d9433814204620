#!/usr/bin/env bash
# make demo: build keel in its devel and release variants and run the demo
# programs of examples/ on their built-in sample data, devel first.
set -eu -o pipefail
cd "$(dirname "$0")/.."
for p in devel release; do
    cmake --preset $p >/dev/null
    cmake --build build/$p --target errors_demo >/dev/null
done
cmake --build build/devel --target storage_stress keel-stress >/dev/null
echo "################ devel build (KEEL_DEVEL=1, linked with libkeel-devel) ################"
build/devel/errors_demo
echo
echo "################ release build (KEEL_DEVEL=0, linked with libkeel) ################"
build/release/errors_demo

echo
echo "################ stress options: a mirrored block store (examples/storage_stress.c) ################"
echo "\$ build/devel/storage_stress                      # a clean run: no error path taken"
build/devel/storage_stress
echo
echo "\$ KEEL_OPTIONS='stress=storage.disk_error:1/5,storage.read_error:1/10;stress.seed=3;stress.summary' build/devel/storage_stress"
KEEL_OPTIONS='stress=storage.disk_error:1/5,storage.read_error:1/10;stress.seed=3;stress.summary' \
    build/devel/storage_stress
echo
echo "\$ keel-stress sweep -- build/devel/storage_stress   # fail every point at its 1st, 2nd, ... evaluation"
rc=0
build/devel/keel-stress sweep --quiet -- build/devel/storage_stress || rc=$?
echo "(exit $rc: the sweep found the planted unrecovered path in store_commit())"
echo
echo "\$ keel-stress sweep -- build/devel/storage_stress --fixed"
build/devel/keel-stress sweep --quiet -- build/devel/storage_stress --fixed

# the flows first: the queue's demo ends with its dashboard, served until Ctrl-C in a terminal
echo
echo "################ keel-gate branch flows: a component and a product branch (tools/gate-flows-demo.sh) ################"
tools/gate-flows-demo.sh

echo
echo "################ keel-gate: a merge queue that keeps main green (tools/gate-demo.sh) ################"
tools/gate-demo.sh
