#!/bin/sh
# bench/run/faults.sh - the disarmed cost of keel-run's faults at libc calls, side by side with
# libfiu's fiu-run (Debian: fiu-utils) in one run, ROUNDS alternating rounds (default 7):
# native, keel-run --locks=off --heap=off (only the fault points interposed in front of glibc),
# fiu-run -x (libfiu's POSIX preload, nothing enabled).  Prints each round and the medians.
#   sh bench/run/faults.sh build/devel/keel-run
set -eu
KEEL_RUN=${1:-build/devel/keel-run}
ROUNDS=${ROUNDS:-7}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cc -O2 "$(dirname "$0")/writeloop.c" -o "$DIR/writeloop"
command -v fiu-run >/dev/null || { echo "fiu-run not found (apt-get install fiu-utils)" >&2; exit 77; }
for r in $(seq "$ROUNDS"); do
    echo "native $("$DIR/writeloop")" | tee -a "$DIR/all"
    echo "keel-run $("$KEEL_RUN" --locks=off --heap=off -- "$DIR/writeloop")" | tee -a "$DIR/all"
    echo "fiu-run $(fiu-run -x "$DIR/writeloop")" | tee -a "$DIR/all"
done
for who in native keel-run fiu-run; do
    for col in 3 6 9; do
        grep "^$who " "$DIR/all" | awk -v c=$col '{print $c}' | sort -n |
            awk -v who="$who" -v c=$col '{v[NR]=$1} END {
                name = c == 3 ? "write" : c == 6 ? "getppid" : "malloc+free";
                printf "%-9s %-12s median %8.2f ns  range %.2f..%.2f\n", who, name,
                       v[int((NR+1)/2)], v[1], v[NR]}'
    done
done
