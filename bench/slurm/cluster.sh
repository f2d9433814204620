# bench/slurm/cluster.sh: sourced; cluster_start starts a Slurm cluster on localhost under a temp
# shellcheck shell=bash
# dir $D (private munged, slurmctld, slurmd n1 (feature gcc) and n2 (clang) of one CPU each, free
# ports; SLURM_CONF exported; root needed), cluster_stop kills its daemons and removes $D.
# cluster_start sets the traps itself, before the first daemon starts: on exit, on ^C (INT),
# TERM and HUP the cluster stops (cluster_stop runs once; a script that has more to stop sets
# cluster_before_stop to a function, which runs first): no slurmctld, slurmd, slurmstepd, srun
# or munged of this cluster outlives the script.
# bench_needs NAME PROGRAM...: $gate (KEEL_GATE, else build/release, else build/devel keel-gate),
# root, and the programs; exits 2 saying what is missing.
bench_needs() {
    local name=$1 top
    shift
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    gate=${KEEL_GATE:-}
    for g in "$top/build/release/keel-gate" "$top/build/devel/keel-gate"; do
        [ -z "$gate" ] && [ -x "$g" ] && gate=$g
    done
    [ -n "$gate" ] || { echo "$name: no keel-gate built (or KEEL_GATE=path)" >&2 && exit 2; }
    [ "$(id -u)" = 0 ] || { echo "$name: starts slurmctld, slurmd and munged: run it as root" >&2 && exit 2; }
    for p in "$@"; do
        command -v "$p" >/dev/null || { echo "$name: '$p' missing (make deps)" >&2 && exit 2; }
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cluster_start() {
    trap cluster_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    D=$(mktemp -d /tmp/keel-slurm-bench-XXXXXX)
    chmod 755 "$D"
    mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log"
    chown munge:munge "$D/munge" && chmod 711 "$D/munge"
    head -c 1024 /dev/urandom >"$D/munge/munge.key"
    chown munge:munge "$D/munge/munge.key" && chmod 400 "$D/munge/munge.key"
    runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" \
        --key-file="$D/munge/munge.key" --pid-file="$D/munge/munged.pid" \
        --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
    export SLURM_CONF=$D/slurm.conf
    cat >"$SLURM_CONF" <<CONF
ClusterName=keel
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=2
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=n1 NodeAddr=127.0.0.1 Port=$(free_port) CPUs=1 RealMemory=1000 Features=gcc State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.1 Port=$(free_port) CPUs=1 RealMemory=1000 Features=clang State=UNKNOWN
PartitionName=ci Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
CONF
    slurmctld && slurmd -N n1 && slurmd -N n2
    for _ in $(seq 200); do [ "$(sinfo -h -o %T | sort -u)" = idle ] && return 0; sleep 0.05; done
    echo "cluster.sh: the nodes did not become idle (logs in $D/log)" >&2
    return 1
}

# cluster_pids: the processes of this cluster by their environment (SLURM_CONF=$D/slurm.conf:
# slurmctld, slurmd, each step's slurmstepd and its tasks, srun, salloc), not this shell's own.
cluster_pids() {
    local p want="SLURM_CONF=$D/slurm.conf"
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        if [ "$p" = $$ ] || [ "$p" = "$BASHPID" ]; then continue; fi
        if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "$want"; then echo "$p"; fi
    done
}

cluster_stop() {
    trap - EXIT INT TERM HUP
    if [ -z "${D:-}" ] || [ ! -d "$D" ]; then return 0; fi
    set +e # every step below runs, whatever fails
    if [ -n "${cluster_before_stop:-}" ]; then "$cluster_before_stop"; fi
    local f pids
    # this script's own children first (srun, coprocesses, perf): they hold steps open
    pids=$(jobs -p)
    # shellcheck disable=SC2086 # a list of pids
    if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null; fi
    for f in slurmctld.pid slurmd-n1.pid slurmd-n2.pid; do
        if [ -s "$D/$f" ]; then kill -9 "$(cat "$D/$f")" 2>/dev/null; fi
    done
    pids=$(cluster_pids)
    # shellcheck disable=SC2086 # a list of pids
    if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null; fi
    if [ -s "$D/munge/munged.pid" ]; then kill -9 "$(cat "$D/munge/munged.pid")" 2>/dev/null; fi
    rm -rf "$D"
    D=
    return 0
}
