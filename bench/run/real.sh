#!/usr/bin/env bash
# bench/run/real.sh KEEL_RUN INPUT [ROUNDS [NAME-REGEX]] - real multi-threaded Debian programs, unmodified,
# natively and under keel-run (locks only), in alternating rounds (this machine is noisy): wall
# seconds per round, then the median and range of each and the ratio of the medians.  The
# outputs are compared with the native ones (keel-run must not change what a program does).
# docs/benchmarks.md ("keel-run") records its figures with the command line.
#   bench/run/real.sh build/release/keel-run /tmp/krb/data.bin 5
set -eu -o pipefail
KEEL_RUN=$1
INPUT=$2
ROUNDS=${3:-5}
ONLY=${4:-.}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# name|command (the input is the last argument; output to stdout)
workloads=(
    "pigz -p 4|pigz -p 4 -c"
    "zstd -T0 -3|zstd -q -T0 -3 -c"
    "xz -T0 -1|xz -q -T0 -1 -c"
)
secs() { # secs OUTFILE CMD...: wall seconds of CMD, its stdout to OUTFILE
    local f=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$f"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
stats() { # median min max of the numbers on stdin
    sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.2f %.2f %.2f\n", m, a[1], a[NR]}'
}
for w in "${workloads[@]}"; do
    name=${w%%|*}
    [[ $name =~ $ONLY ]] || continue
    read -r -a cmd <<<"${w#*|}"
    : >"$out/native" && : >"$out/keel"
    for ((r = 0; r < ROUNDS; r++)); do
        secs "$out/n.out" "${cmd[@]}" "$INPUT" >>"$out/native"
        secs "$out/k.out" "$KEEL_RUN" --report "$out/reports.json" -- "${cmd[@]}" "$INPUT" >>"$out/keel"
        cmp -s "$out/n.out" "$out/k.out" || { echo "$name: output differs under keel-run" >&2; exit 1; }
    done
    read -r nm nlo nhi < <(stats <"$out/native")
    read -r km klo khi < <(stats <"$out/keel")
    echo "$name: native $nm s ($nlo-$nhi), keel-run $km s ($klo-$khi), ratio $(echo "scale=2; $km / $nm" | bc)x; reports: $(cat "$out/reports.json" 2>/dev/null | wc -l)"
    if [ -s "$out/reports.json" ]; then # each kind and message once, with a count
        sed -e 's/.*"kind":"\([^"]*\)".*"message":"\([^"]*\)".*/\1: \2/' "$out/reports.json" |
            sort | uniq -c | head -10
    fi
    rm -f "$out/reports.json"
done
