#!/usr/bin/env bash
# bench/run/tools.sh KEEL_RUN [ROUNDS [SIZE_MB [PROGRAM]]] - keel-run side by side with Helgrind,
# DRD and ThreadSanitizer on a real multi-threaded program rebuilt from source.  PROGRAM:
#   zstd (default): `zstd -q -T2 -3 -B512KiB -c`, 8 jobs of 512 KiB for two compression workers,
#     plus the CLI's read and write threads (4 threads made);
#   pigz: `pigz -p 4 -c`, blocks of 128 KiB for 4 compression threads and a write thread.
#
# The source: $ZSTD_SRC or $PIGZ_SRC (a source tree, or a git directory whose HEAD is exported),
# else a shallow clone of github.com/facebook/zstd or github.com/madler/pigz; without either the
# script skips (exit 77) and says why.  It is built twice (at nice -n 19) in $WORK (default
# /tmp/keel-bench-PROGRAM, kept): plain (the project's own -O3, with -g) and with
# -fsanitize=thread (skipped, with the reason, when the compiler cannot).  Never committed: only
# this script is keel's.
#
# Each round runs, in this order, on SIZE_MB (default 4) of the system's shared libraries:
#   native, keel-run --heap=off (locks only), keel-run (locks and heap), valgrind --tool=helgrind,
#   valgrind --tool=drd, the TSan build.
# Then each one's median and range of wall seconds, its ratio to native's median (the same run),
# what each tool reported (its error summary; the kinds of errors and their counts and sites,
# first round), and the outputs are compared with native's (none may differ).
# docs/benchmarks.md records it.
#   bench/run/tools.sh build/devel/keel-run 5
#   bench/run/tools.sh build/devel/keel-run 5 4 pigz
set -eu -o pipefail
KEEL_RUN=$(realpath "$1")
ROUNDS=${2:-5}
SIZE_MB=${3:-4}
PROGRAM=${4:-zstd}
case $PROGRAM in
zstd) src_var=${ZSTD_SRC:-} url=https://github.com/facebook/zstd marker=lib/zstd.h ;;
pigz) src_var=${PIGZ_SRC:-} url=https://github.com/madler/pigz marker=pigz.c ;;
*) echo "bench/run/tools.sh: unknown program '$PROGRAM' (zstd or pigz)" >&2 && exit 2 ;;
esac
WORK=${WORK:-/tmp/keel-bench-$PROGRAM}
skip() {
    echo "bench/run/tools.sh: skipped: $*" >&2
    exit 77
}
command -v valgrind >/dev/null || skip "no valgrind (Helgrind and DRD)"
command -v make >/dev/null || skip "no make"
mkdir -p "$WORK"
src=$WORK/src
if [ ! -f "$src/$marker" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    if [ -n "$src_var" ] && [ -f "$src_var/$marker" ]; then
        cp -r "$src_var/." "$src/"
    elif [ -n "$src_var" ] && git --git-dir="$src_var" rev-parse HEAD >/dev/null 2>&1; then
        git --git-dir="$src_var" archive HEAD | tar -x -C "$src"
    elif ! git clone -q --depth 1 "$url" "$src" 2>/dev/null; then
        rm -rf "$src"
        skip "no $PROGRAM source: set ${PROGRAM^^}_SRC (a source tree or a git directory) or allow a clone of $url"
    fi
fi
bin() { # bin DIR: the program built in DIR
    case $PROGRAM in
    zstd) echo "$1/programs/zstd" ;;
    pigz) echo "$1/pigz" ;;
    esac
}
build() { # build DIR FLAGS: the program in DIR (a copy of the source), once
    local dir=$1 flags=$2
    [ -x "$(bin "$dir")" ] && return 0
    rm -rf "$dir" && cp -r "$src" "$dir"
    case $PROGRAM in
    zstd) nice -n 19 make -s -C "$dir/programs" -j2 zstd MOREFLAGS="$flags" ;;
    pigz) nice -n 19 make -s -C "$dir" -j2 pigz \
        CFLAGS="-O3 -Wall -Wextra -Wno-unknown-pragmas -Wcast-qual $flags" LDFLAGS="$flags" ;;
    esac >"$dir.log" 2>&1
}
build "$WORK/plain" "-g" || skip "$PROGRAM does not build (see $WORK/plain.log)"
tsan=yes
if ! echo 'int main(void){return 0;}' | cc -x c -fsanitize=thread -o "$WORK/tsan-probe" - 2>/dev/null; then
    tsan="no: the compiler cannot link -fsanitize=thread"
elif ! build "$WORK/tsan" "-g -fsanitize=thread"; then
    tsan="no: $PROGRAM does not build with -fsanitize=thread (see $WORK/tsan.log)"
fi
prog=$(bin "$WORK/plain")
input=$WORK/input-$SIZE_MB.bin
if [ ! -s "$input" ]; then # the system's shared libraries, in name order
    find /usr/lib /lib -maxdepth 2 -name 'lib*.so.*' -type f 2>/dev/null | sort | xargs cat 2>/dev/null |
        head -c $((SIZE_MB << 20)) >"$input" || true
fi
[ "$(stat -c %s "$input")" -eq $((SIZE_MB << 20)) ] || skip "cannot make a $SIZE_MB MB input"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
case $PROGRAM in
zstd) args=(-q -T2 -3 -B512KiB -c "$input") ;;
pigz) args=(-p 4 -c "$input") ;;
esac
names=(native locks locks+heap helgrind drd)
[ "$tsan" = yes ] && names+=(tsan)
run() { # run NAME ROUND: the tool's command on the workload; its output to $out/NAME.out
    local name=$1 round=$2 log=$out/later.log # (only the first round's is read)
    [ "$round" -eq 0 ] && log=$out/$name.log
    case $name in
    native) "$prog" "${args[@]}" ;;
    locks) "$KEEL_RUN" --heap=off --report "$log" -- "$prog" "${args[@]}" ;;
    locks+heap) "$KEEL_RUN" --report "$log" -- "$prog" "${args[@]}" ;;
    helgrind | drd) valgrind --tool="$name" --log-file="$log" "$prog" "${args[@]}" ;;
    tsan) TSAN_OPTIONS="exitcode=0 log_path=$log" "$(bin "$WORK/tsan")" "${args[@]}" ;;
    esac >"$out/$name.out"
}
for ((r = 0; r < ROUNDS; r++)); do
    for name in "${names[@]}"; do
        t0=$(date +%s.%N)
        run "$name" "$r"
        t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc >>"$out/$name.secs"
        cmp -s "$out/native.out" "$out/$name.out" || { echo "$name: output differs from native" >&2; exit 1; }
    done
done
stats() { # median min max of the numbers on stdin
    sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}'
}
read -r native _ < <(stats <"$out/native.secs")
echo "$PROGRAM $("$prog" -V 2>&1 | grep -oE '[0-9]+\.[0-9.]+' | head -1) ${args[*]:0:${#args[@]}-1} on $SIZE_MB MB, $ROUNDS rounds (seconds: median (min-max), vs native's median); TSan: $tsan"
for name in "${names[@]}"; do
    read -r m lo hi < <(stats <"$out/$name.secs")
    case $name in
    native) what="-" ;;
    locks | locks+heap) what="$(cat "$out/$name.log" 2>/dev/null | grep -c . || true) reports" ;;
    helgrind | drd) what=$(grep -o 'ERROR SUMMARY: [0-9]* errors from [0-9]* contexts' "$out/$name.log" | tail -1) ;;
    tsan) what="$(cat "$out/$name.log"* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer' || true) warnings" ;;
    esac
    printf '%-11s %8s s (%s-%s) %7sx  %s\n' "$name" "$m" "$lo" "$hi" "$(echo "scale=2; $m / $native" | bc)" "$what"
done
# the kinds of what each reported (first round)
for name in locks locks+heap; do
    [ ! -s "$out/$name.log" ] || sed -e 's/.*"kind":"\([^"]*\)".*"message":"\([^"]*\)".*/  '"$name"': \1: \2/' "$out/$name.log" | sort | uniq -c | head -10
done
for name in helgrind drd; do
    grep -E '^==[0-9]+== (Thread #[0-9]+: |Possible data race|Conflicting|Lock order|Probably a race|[A-Z][a-z]+ .*(error|race|lock|violat))' "$out/$name.log" |
        grep -v 'rerun with' |
        sed -e 's/^==[0-9]*== /  '"$name"': /' -e 's/Thread #[0-9]*/Thread #N/' -e 's/0x[0-9A-Fa-f]*/0x.../g' -e 's/ size [0-9]*/ size N/' |
        sort | uniq -c | sort -rn | head -8 || true
    # where (the first program frame of each)
    grep -A3 -E '^==[0-9]+== (Thread #[0-9]+: |Possible data race|Conflicting|Lock order|Probably a race)' "$out/$name.log" |
        grep -oE 'by 0x[0-9A-F]+: [A-Za-z_0-9.]+ \([a-z_]+\.c:[0-9]+\)' | sed 's/by 0x[0-9A-F]*: /    at /' | sort | uniq -c | head -6 || true
done
if [ "$tsan" = yes ]; then
    cat "$out/tsan.log"* 2>/dev/null | grep 'WARNING: ThreadSanitizer' | sed 's/ (pid=[0-9]*)//; s/^/  tsan: /' | sort | uniq -c | head -5 || true
fi
exit 0
