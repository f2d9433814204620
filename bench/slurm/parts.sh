#!/usr/bin/env bash
# bench/slurm/parts.sh: where a keel job's time goes on Slurm, part by part, on a Slurm cluster
# this script starts on localhost (bench/slurm/cluster.sh; root needed) and tears down.
#
#   bench/slurm/parts.sh [--runs 20]
#
# Each part --runs times, the parts alternating run by run (the machine is shared: its load
# drifts alike for all), in milliseconds:
#   local      fork+exec of /bin/true on this machine (the floor)
#   munge      one credential made and decoded (munge -n | unmunge): what each Slurm RPC pays
#   salloc     an allocation granted (salloc --no-shell), then cancelled (scancel) and gone
#   step       a step of /bin/true in a standing allocation (srun --jobid --overlap)
#   runner     keel-gate's runner alone here (keel-gate slurm-step, a spec of /bin/true,
#              sandbox none): keel's start, the spec read, the job, the result written
#   sandbox    the same spec with the sandbox (bubblewrap), less `runner`'s median: bwrap's start
#   step+runner  the runner as a step: what a keel job cost per job with `slurm-launch = srun`
#   message    a job handed to a runner already standing as a step of the allocation
#              (keel-gate slurm-step -, `slurm-launch = runner`): a line to it through srun's
#              stdin, the job, the result file, a line back; what a job costs with the runner
# Prints each part's median and range (min-max).  KEEL_GATE=path picks the keel-gate binary
# (default build/release/keel-gate, else build/devel/keel-gate).
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=20
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2 ;;
    *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2 && exit 2 ;;
    esac
    shift 2
done
# shellcheck source=bench/slurm/cluster.sh
. "$here/cluster.sh"
gate=
bench_needs parts.sh slurmctld slurmd srun salloc scancel squeue sinfo munge unmunge runuser

runner_pid=
stop_runner() { if [ -n "$runner_pid" ]; then kill "$runner_pid" 2>/dev/null; fi; }
cluster_before_stop=stop_runner
cluster_start # stops the runner and the cluster on exit, ^C, TERM and HUP

stats() { sort -n "$1" | awk -v d="${2:-1}" '{ v[NR] = $1 / d } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "median %.1f (%.1f-%.1f), n=%d", m, v[1], v[NR], NR }'; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

parts="local munge salloc step runner sandbox step+runner message"
for w in $parts; do : >"$D/$w.us"; done
mkdir -p "$D/work"
spec_of() { # spec_of FILE SANDBOX
    printf 'version\t2\ntest\t/bin/true\ndir\t%s/work\nlog\t%s/true.log\ntimeout_ms\t60000\nsandbox\t%s\nend\t\n' "$D" "$D" "$2" >"$1"
}
spec_of "$D/true.log.spec" 0
spec_of "$D/bwrap.log.spec" 1
alloc=$(salloc --no-shell -N1 -n1 -J bench-alloc 2>&1 | sed -n 's/.*Granted job allocation \([0-9]*\).*/\1/p')
[ -n "$alloc" ] || { echo "parts.sh: no allocation" >&2 && exit 1; }
# the standing runner: its stdin and stdout are this script's pipes
coproc RUNNER { exec srun -Q -u --jobid="$alloc" --overlap -N1 -n1 "$gate" slurm-step -; }
# shellcheck disable=SC2153 # set by coproc
runner_pid=$RUNNER_PID
read -r -t 30 hello <&"${RUNNER[0]}" || { echo "parts.sh: the runner did not start" >&2 && exit 1; }
[ "$hello" = ready ] || { echo "parts.sh: the runner said '$hello'" >&2 && exit 1; }
sock=$D/munge/munge.socket
us() { echo $((${EPOCHREALTIME/./} - t)) >>"$D/$1.us"; }
for _ in $(seq "$runs"); do
    t=${EPOCHREALTIME/./} && /bin/true && us local
    t=${EPOCHREALTIME/./} && munge -S "$sock" -n | unmunge -S "$sock" >/dev/null && us munge
    t=${EPOCHREALTIME/./}
    id=$(salloc --no-shell -N1 -n1 -J bench-salloc 2>&1 | sed -n 's/.*Granted job allocation \([0-9]*\).*/\1/p')
    scancel "$id" && while squeue -h -j "$id" -o %i 2>/dev/null | grep -q .; do sleep 0.005; done
    us salloc
    t=${EPOCHREALTIME/./} && srun -Q --jobid="$alloc" --overlap -N1 -n1 /bin/true && us step
    t=${EPOCHREALTIME/./} && "$gate" slurm-step "$D/true.log.spec" && us runner
    grep -q '^result' "$D/true.log.spec.result" || { echo "parts.sh: the runner gave no result" >&2 && exit 1; }
    t=${EPOCHREALTIME/./} && "$gate" slurm-step "$D/bwrap.log.spec" && us sandbox
    grep -q '^result	0' "$D/bwrap.log.spec.result" || { echo "parts.sh: the sandboxed job did not pass" >&2 && exit 1; }
    t=${EPOCHREALTIME/./} && srun -Q --jobid="$alloc" --overlap -N1 -n1 "$gate" slurm-step "$D/true.log.spec" && us step+runner
    rm -f "$D/true.log.spec.result"
    t=${EPOCHREALTIME/./}
    echo "run $D/true.log.spec" >&"${RUNNER[1]}"
    read -r -t 30 done_line <&"${RUNNER[0]}"
    us message
    [ "$done_line" = "done $D/true.log.spec" ] || { echo "parts.sh: the runner said '$done_line'" >&2 && exit 1; }
    grep -q '^result' "$D/true.log.spec.result" || { echo "parts.sh: the runner gave no result" >&2 && exit 1; }
done
base=$(median "$D/runner.us")
awk -v b="$base" '{ print $1 - b }' "$D/sandbox.us" >"$D/sandbox.d" && mv "$D/sandbox.d" "$D/sandbox.us"
for w in $parts; do echo "$w: $(stats "$D/$w.us" 1000)"; done
