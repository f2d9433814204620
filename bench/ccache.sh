#!/usr/bin/env bash
# bench/ccache.sh - what a configuration's compiler cache saves (docs/benchmarks.md, Compiler
# cache): the build of a change that touches one file, in a fresh build tree as a gate job
# starts with, without ccache and with a cache warmed by the build before the change.
# libkeel itself (a copy of HEAD), the devel preset, gcc; 3 alternating runs of each.
#
#   bench/ccache.sh              (RUNS=3 JOBS=2 TARGETS="keel-gate" KEEP=1 keeps the temp dir)
set -eu -o pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
JOBS=${JOBS:-2}
TARGETS=${TARGETS:-keel-gate}
[ -x /usr/lib/ccache/gcc ] || { echo "bench/ccache.sh: SKIPPED: no ccache (/usr/lib/ccache/gcc; make deps)"; exit 77; }
tmp=$(mktemp -d /tmp/keel-bench-ccache-XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf -- "$tmp"' EXIT
git worktree add -q --detach "$tmp/src" HEAD
trap 'git worktree remove --force "$tmp/src"; [ "${KEEP:-0}" = 1 ] || rm -rf -- "$tmp"' EXIT
export CCACHE_DIR=$tmp/cache CCACHE_BASEDIR=$tmp/src CCACHE_NOHASHDIR=1
ccache -M 2G >/dev/null

build() { # build <with|without>: a fresh build tree, configure + build; prints the seconds
    # with: /usr/lib/ccache first on PATH, as the gate gives its jobs (every compile through
    # ccache, libkeel's own compiler launcher included); without: the compilers themselves
    local path=$PATH t0
    [ "$1" = with ] && path=/usr/lib/ccache:$PATH
    rm -rf "$tmp/src/build/b"
    t0=$(date +%s.%N)
    PATH=$path cmake --preset devel -S "$tmp/src" -B "$tmp/src/build/b" -DCMAKE_C_COMPILER=gcc \
        -DCMAKE_CXX_COMPILER=g++ >/dev/null
    # shellcheck disable=SC2086 # a list of targets
    PATH=$path cmake --build "$tmp/src/build/b" -j "$JOBS" --target $TARGETS >/dev/null
    echo "$(date +%s.%N) - $t0" | bc
}

# the cache warmed by the build before the change (the target's tip, as the previous job built it)
build with >/dev/null
ccache -z >/dev/null
# each build: a change that touches one file, src/status.c (a declaration appended, new each
# time: the preprocessed text differs, so that file is a miss and every other one a hit)
change() { echo "extern int keel_bench_change_$1;" >>"$tmp/src/src/status.c"; }
with=() without=()
for r in $(seq "$RUNS"); do
    change "${r}_without"
    without+=("$(build without)")
    change "${r}_with"
    with+=("$(build with)")
    echo "run $r: without ccache ${without[-1]} s, with ccache ${with[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }
mw=$(median "${with[@]}") mo=$(median "${without[@]}")
echo "without ccache: median $mo s (range $(range "${without[@]}"))"
echo "with ccache:    median $mw s (range $(range "${with[@]}"))"
echo "ratio (without / with): $(echo "scale=2; $mo / $mw" | bc)"
ccache -s | grep -E "Hits|Misses" || true
