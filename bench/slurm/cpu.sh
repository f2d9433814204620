#!/usr/bin/env bash
# bench/slurm/cpu.sh: the CPU time a job step costs the Slurm daemons and client, on a cluster
# on localhost (bench/slurm/cluster.sh; root): slurmctld and slurmd n1 run again in the
# foreground under `perf stat -e task-clock` (which counts every descendant: each step's
# slurmstepd), munged under `perf stat -p`; N steps of /bin/true (`srun --jobid --overlap`)
# in one allocation on n1, srun's own CPU by /usr/bin/time.  Run it with N=0 too: the
# daemons' start and idle CPU, to subtract.
#
#   N=40 bench/slurm/cpu.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/slurm/cluster.sh
. "$here/cluster.sh"
cluster_start # stops the cluster (and perf) on exit, ^C, TERM and HUP
N=${N:-40}
kill "$(cat "$D/slurmctld.pid")" "$(cat "$D/slurmd-n1.pid")"; sleep 1
perf stat -e task-clock -x, -o "$D/ctld.perf" -- slurmctld -D >/dev/null 2>&1 &
sleep 1
perf stat -e task-clock -x, -o "$D/n1.perf" -- slurmd -D -N n1 >/dev/null 2>&1 &
for _ in $(seq 200); do sinfo -h -n n1 -o %T | grep -qx idle && break; sleep 0.1; done
sinfo
perf stat -e task-clock -x, -o "$D/munge.perf" -p "$(cat "$D/munge/munged.pid")" &
mp=$!
alloc=$(salloc --no-shell -w n1 -N1 -n1 -J cpu 2>&1 | sed -n 's/.*Granted job allocation \([0-9]*\).*/\1/p')
echo "allocation $alloc"
sleep 1
t=${EPOCHREALTIME/./}
/usr/bin/time -f "srun-total user %U sys %S" bash -c "for i in \$(seq $N); do srun -Q --jobid=$alloc --overlap -N1 -n1 /bin/true; done" 2>"$D/srun.time"
wall=$(( (${EPOCHREALTIME/./} - t) / 1000 ))
scancel "$alloc"; sleep 1
kill -INT "$mp"; sleep 0.5
kill -TERM "$(cat "$D/slurmd-n1.pid")" 2>/dev/null; sleep 1; kill -TERM "$(cat "$D/slurmctld.pid")" 2>/dev/null
sleep 2
echo "steps $N wall $wall ms"
cat "$D/srun.time"
for f in ctld n1 munge; do echo "$f: $(grep task-clock "$D/$f.perf")"; done
