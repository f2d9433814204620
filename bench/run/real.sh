#!/usr/bin/env bash
# bench/run/real.sh KEEL_RUN INPUT [ROUNDS [NAME-REGEX]] - real multi-threaded Debian programs, unmodified,
# natively, under keel-run with the lock checks only (--heap=off) and with locks and heap (the
# default), in alternating rounds (this machine is noisy): wall seconds per round, then the median
# and range of each and the ratios of the medians.  The outputs are compared with the native ones
# (keel-run must not change what a program does).  docs/benchmarks.md ("keel-run") records its
# figures with the command line.
#   bench/run/real.sh build/devel/keel-run /tmp/krb/data.bin 5
set -eu -o pipefail
KEEL_RUN=$1
INPUT=$2
ROUNDS=${3:-5}
ONLY=${4:-.}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# sqlite3's workload: its own script (200,000 rows, an index, a scan), not the input
cat >"$out/q.sql" <<'SQL'
create table t(a, b);
insert into t select value, printf('%08x-%d', value * 2654435761 % 4294967296, value) from generate_series(1, 200000);
select count(*), sum(length(b)) from t;
create index i on t(b);
select count(*), min(b) from t where b like 'a%';
SQL
# name|command (the input is the last argument, unless the command is sqlite3's; output to stdout)
workloads=(
    "pigz -p 4|pigz -p 4 -c"
    "zstd -T0 -3|zstd -q -T0 -3 -c"
    "xz -T0 -1|xz -q -T0 -1 -c"
    "sqlite3|sqlite3 :memory: .read_$out/q.sql"
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
    if [ "${cmd[0]}" = sqlite3 ]; then
        cmd[2]=${cmd[2]//_/ } # ".read FILE", one argument
    else
        cmd+=("$INPUT")
    fi
    : >"$out/native" && : >"$out/locks" && : >"$out/heap"
    for ((r = 0; r < ROUNDS; r++)); do
        secs "$out/n.out" "${cmd[@]}" >>"$out/native"
        secs "$out/l.out" "$KEEL_RUN" --heap=off --report "$out/reports.json" -- "${cmd[@]}" >>"$out/locks"
        secs "$out/h.out" "$KEEL_RUN" --report "$out/reports.json" -- "${cmd[@]}" >>"$out/heap"
        for k in l h; do
            cmp -s "$out/n.out" "$out/$k.out" || { echo "$name: output differs under keel-run" >&2; exit 1; }
        done
    done
    read -r nm nlo nhi < <(stats <"$out/native")
    read -r lm llo lhi < <(stats <"$out/locks")
    read -r hm hlo hhi < <(stats <"$out/heap")
    echo "$name: native $nm s ($nlo-$nhi), locks $lm s ($llo-$lhi) $(echo "scale=2; $lm / $nm" | bc)x, locks+heap $hm s ($hlo-$hhi) $(echo "scale=2; $hm / $nm" | bc)x; reports: $(cat "$out/reports.json" 2>/dev/null | wc -l)"
    if [ -s "$out/reports.json" ]; then # each kind and message once, with a count
        sed -e 's/.*"kind":"\([^"]*\)".*"message":"\([^"]*\)".*/\1: \2/' "$out/reports.json" |
            sort | uniq -c | head -10
    fi
    rm -f "$out/reports.json"
done
