#!/usr/bin/env bash
# bench/ccache.sh - what a configuration's compiler cache saves (docs/benchmarks.md, Compiler
# cache): the build of a change that touches one file, in a fresh build tree as a gate job
# starts with, without ccache and with a cache warmed by the build before the change.
# libkeel itself (a copy of HEAD), the devel preset, gcc; 3 alternating runs of each.
# The cache is used as the gate gives it to a job of a change (docs/gate.md, Compiler cache):
# ccache's remote file storage in remote-only mode, the landed layer (warmed as a landed
# build leaves it) read-only, then a fresh layer of the job's own for what it adds.
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
export CCACHE_BASEDIR=$tmp/src CCACHE_NOHASHDIR=1 CCACHE_REMOTE_ONLY=true
layer() { # layer <name>: the cache of a job with its own layer <name> (warm: the landed one)
    if [ "$1" = warm ]; then
        export CCACHE_DIR=$tmp/warm-stats CCACHE_REMOTE_STORAGE="file:$tmp/landed|layout=subdirs"
    else
        export CCACHE_DIR=$tmp/$1/stats
        export CCACHE_REMOTE_STORAGE="file:$tmp/landed|layout=subdirs|read-only file:$tmp/$1/new|layout=subdirs"
    fi
}

build() { # build <layer|without>: a fresh build tree, configure + build; prints the seconds
    # with a layer: /usr/lib/ccache first on PATH, as the gate gives its jobs (every compile
    # through ccache, libkeel's own compiler launcher included); without: the compilers themselves
    local path=$PATH t0
    [ "$1" != without ] && path=/usr/lib/ccache:$PATH && layer "$1"
    rm -rf "$tmp/src/build/b"
    t0=$(date +%s.%N)
    PATH=$path cmake --preset devel -S "$tmp/src" -B "$tmp/src/build/b" -DCMAKE_C_COMPILER=gcc \
        -DCMAKE_CXX_COMPILER=g++ >/dev/null
    # shellcheck disable=SC2086 # a list of targets
    PATH=$path cmake --build "$tmp/src/build/b" -j "$JOBS" --target $TARGETS >/dev/null
    echo "$(date +%s.%N) - $t0" | bc
}

# the landed layer warmed by the build before the change (the target's tip, as it landed)
build warm >/dev/null
# each build: a change that touches one file, src/status.c (a declaration appended, new each
# time: the preprocessed text differs, so that file is a miss and every other one a hit)
change() { echo "extern int keel_bench_change_$1;" >>"$tmp/src/src/status.c"; }
with=() without=()
for r in $(seq "$RUNS"); do
    change "${r}_without"
    without+=("$(build without)")
    change "${r}_with"
    with+=("$(build "layer$r")")
    echo "run $r: without ccache ${without[-1]} s, with ccache ${with[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }
mw=$(median "${with[@]}") mo=$(median "${without[@]}")
echo "without ccache: median $mo s (range $(range "${without[@]}"))"
echo "with ccache:    median $mw s (range $(range "${with[@]}"))"
echo "ratio (without / with): $(echo "scale=2; $mo / $mw" | bc)"
for r in $(seq "$RUNS"); do # each run's own counters (its layer's CCACHE_DIR)
    ccache --dir "$tmp/layer$r/stats" --print-stats | awk -v r="$r" -F'\t' \
        '$1 ~ /^(direct|preprocessed)_cache_hit$/ {h += $2} $1 == "cache_miss" {m = $2}
         END {printf "run %s with ccache: %d hits, %d misses\n", r, h, m}'
done
echo "landed layer: $(find "$tmp/landed" -type f | wc -l) files; entries added by the last run's layer: $(find "$tmp/layer$RUNS/new" -type f 2>/dev/null | wc -l)"
