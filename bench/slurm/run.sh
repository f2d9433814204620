#!/usr/bin/env bash
# bench/slurm/run.sh: keel-gate's Slurm executor against the local one, on a Slurm cluster this
# script starts on localhost (as tests/slurm_cluster.h does: private munged, slurmctld, two
# slurmd of one CPU each, free ports, all under a temp dir; root needed) and tears down.
#
#   bench/slurm/run.sh [--jobs 20] [--changes 40] [--reps 3] [--sleep 0.2]
#                      [--executors "local slurm slurm-srun"]
#
# 1. Per-job latency of a trivial job (/bin/true), --jobs sequential runs of each way, the ways
#    alternating run by run (the machine is shared: its load drifts alike for all): fork+exec
#    (`local`), `srun` (a job of its own), `step` (`srun --jobid --overlap` in an allocation held
#    by `salloc --no-shell`, what keel-gate uses), `sbatch` then polling `scontrol show job`
#    every 10 ms until the job has ended (what a gate using sbatch would see); `runner`
#    (`keel-gate slurm-step` of a spec whose job is /bin/true without sandbox, on this machine)
#    and `step+runner` (the same runner as a step of the allocation: what a keel job costs on
#    Slurm beyond its own commands); the queue empty before the next run but for the allocation.
# 2. keel-gate's makespan: a queue of --changes good changes (each job: `sleep` --sleep seconds
#    in its sandbox), strategy speculative, max-depth 2, slots 2, through each of --executors
#    in turn, --reps times: `local`, `slurm` (slurm-launch = runner) and `slurm-srun`
#    (slurm-launch = srun); `keel-gate run --once` timed.
# Prints each figure's median and range (min-max).  KEEL_GATE=path picks the keel-gate binary
# (default build/release/keel-gate, else build/devel/keel-gate).
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
jobs=20 changes=40 reps=3 sleep_s=0.2 executors="local slurm slurm-srun"
while [ $# -gt 0 ]; do
    case $1 in
    --jobs) jobs=$2 ;; --changes) changes=$2 ;; --reps) reps=$2 ;; --sleep) sleep_s=$2 ;; --executors) executors=$2 ;;
    *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2 && exit 2 ;;
    esac
    shift 2
done
# shellcheck source=bench/slurm/cluster.sh
. "$here/cluster.sh"
gate=
bench_needs run.sh slurmctld slurmd srun sbatch squeue sinfo runuser git

cluster_start # stops the cluster on exit, ^C, TERM and HUP

# stats FILE: "median X ms (min-max)" of a column of numbers
stats() { sort -n "$1" | awk -v d="${2:-1}" '{ v[NR] = $1 / d } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "median %.1f (%.1f-%.1f), n=%d", m, v[1], v[NR], NR }'; }

echo "== per-job latency of /bin/true, $jobs runs each, alternating (ms)"
# a batch job's end: its state in scontrol (squeue can show nothing for a job just submitted)
batch_done() { scontrol show job -o "$1" 2>/dev/null | grep -qE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT)'; }
: >"$D/local.us" && : >"$D/srun.us" && : >"$D/step.us" && : >"$D/sbatch.us"
: >"$D/runner.us" && : >"$D/step+runner.us"
spec=$D/true.log.spec
printf 'version\t2\ntest\t/bin/true\ndir\t%s\nlog\t%s/true.log\ntimeout_ms\t60000\nsandbox\t0\nend\t\n' "$D" "$D" >"$spec"
alloc=$(salloc --no-shell -N1 -n1 -J bench-alloc 2>&1 | sed -n 's/.*Granted job allocation \([0-9]*\).*/\1/p')
for _ in $(seq "$jobs"); do
    t=${EPOCHREALTIME/./} && /bin/true && d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/local.us"
    t=${EPOCHREALTIME/./} && srun -Q /bin/true && d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/srun.us"
    t=${EPOCHREALTIME/./} && srun -Q --jobid="$alloc" --overlap -N1 -n1 /bin/true && d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/step.us"
    t=${EPOCHREALTIME/./} && "$gate" slurm-step "$spec" && d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/runner.us"
    grep -q '^result' "$spec.result" || { echo "run.sh: the runner gave no result" >&2 && exit 1; }
    t=${EPOCHREALTIME/./} && srun -Q --jobid="$alloc" --overlap -N1 -n1 "$gate" slurm-step "$spec" && d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/step+runner.us"
    t=${EPOCHREALTIME/./} && id=$(sbatch --parsable --no-requeue -Q -o /dev/null --wrap /bin/true)
    until batch_done "$id"; do sleep 0.01; done
    d=$((${EPOCHREALTIME/./} - t)) && echo "$d" >>"$D/sbatch.us"
    # the next srun must not queue behind a batch job still completing
    while squeue -h -o %i | grep -qvx "$alloc"; do sleep 0.01; done
done
scancel "$alloc"
while [ -n "$(squeue -h -o %i)" ]; do sleep 0.01; done
for w in local srun step sbatch runner step+runner; do echo "$w: $(stats "$D/$w.us" 1000)"; done

echo "== keel-gate: $changes changes, each job sleep $sleep_s s, speculative, max-depth 2, slots 2 (s)"
repo=$D/origin.git
git init -q --bare "$repo" && git --git-dir="$repo" symbolic-ref HEAD refs/heads/main
src=$D/src
git init -q -b main "$src"
git -C "$src" config user.email bench@keel.invalid && git -C "$src" config user.name bench
mkdir -p "$src/.keel"
make_conf() { # local, slurm (the runner) or slurm-srun (a step per job)
    local launch=runner
    [ "$1" = slurm-srun ] && launch=srun
    printf '[gate]\ntarget = main\nslots = 2\nstrategy = speculative\nmax-depth = 2\nretries = 0\nexecutor = %s\nslurm-launch = %s\n[config unit]\ntest = sleep %s\ntimeout = 60\n' "${1%-srun}" "$launch" "$sleep_s"
}
make_conf local >"$src/.keel/gate.conf"
git -C "$src" add -A && git -C "$src" commit -qm base && git -C "$src" push -q "$repo" main
for i in $(seq "$changes"); do
    git -C "$src" checkout -q -b "c$i" main
    echo "$i" >"$src/f$i.txt" && git -C "$src" add -A && git -C "$src" commit -qm "change $i"
    git -C "$src" push -q "$repo" "c$i"
    git -C "$src" checkout -q main
done
: >"$D/gate-local.s" && : >"$D/gate-slurm.s"
for rep in $(seq "$reps"); do
    for ex in $executors; do
        run=$D/run-$ex-$rep && rm -rf "$run" && cp -a "$repo" "$run.git" && mkdir -p "$run"
        w=$D/w-$ex-$rep && rm -rf "$w" && git clone -q "$run.git" "$w"
        git -C "$w" config user.email bench@keel.invalid && git -C "$w" config user.name bench
        make_conf "$ex" >"$w/.keel/gate.conf" && git -C "$w" commit -q --allow-empty -am "executor $ex" && git -C "$w" push -q origin main
        kg=(env XDG_STATE_HOME="$run/state" XDG_CACHE_HOME="$run/cache" "$gate" --repo "$run.git")
        for i in $(seq "$changes"); do "${kg[@]}" --quiet submit "c$i"; done
        t=${EPOCHREALTIME/./}
        "${kg[@]}" run --once --work "$run/work" >"$run/run.txt" 2>&1 || { tail -5 "$run/run.txt" >&2; exit 1; }
        ms=$(((${EPOCHREALTIME/./} - t) / 1000))
        landed=$(grep -c '^landed' "$run/run.txt" || true)
        echo "  $ex rep $rep: $((ms / 1000)).$(printf %03d $((ms % 1000))) s, $(grep -c 'job [0-9]*:' "$run/run.txt") jobs, landed lines $landed"
        echo "$ms" >>"$D/gate-$ex.s"
    done
done
for ex in $executors; do echo "$ex makespan ms: $(stats "$D/gate-$ex.s")"; done
