/*
 * gate/exec/slurm.h - keel-gate's Slurm executor (`executor = slurm` in
 * [gate]): each slot of the pool holds one Slurm allocation, kept from job to
 * job, and each job (its build, then its test) runs as one step of it running
 * keel-gate's own job runner on the node:
 *
 *   salloc --no-shell -J keel-<gate pid>-slot<N> --comment=keel:slot=<N>,pid=<gate>,logs=<dir>
 *          -N1 -n1 [-p ...] [-C ...] [-c ...] [--mem=...]          (once per slot)
 *   srun --jobid=<allocation> --overlap -J keel-<gate pid>-slot<N> -N1 -n1 -u -Q [-c ...]
 *        -- <keel-gate> slurm-step -                 (once per allocation: the runner)
 *   srun --jobid=<allocation> --overlap -J keel-<job> -N1 -n1 [-c ...] -t <minutes>
 *        -- <keel-gate> slurm-step <spec>           (each job, with slurm-launch = srun)
 *
 * By default (slurm-launch = runner) the runner, standing as the allocation's
 * step, takes each job as a line `run <spec>` on srun's standard input and
 * answers `done <spec>` when its result is written (slurm_runner.c), so a job
 * costs a message, not a Slurm step; with slurm-launch = srun it costs a step's
 * launch, not a job's submission, scheduling and completion.  A slot whose next job's configuration asks for other nodes
 * (partition, features, CPUs, memory) ends its allocation and asks for a new
 * one; the pool's end ends them all.  The gate writes the job's spec (its
 * steps, environment, work tree, log, timeout and sandbox policy) into
 * <log>.spec; `keel-gate slurm-step` on the node reads it and runs the job
 * with gate_job_execute, exactly as the local executor does (bubblewrap,
 * limits, timeout, the log capped at the same size), and writes the outcome
 * into <log>.spec.result (renamed into place, so it is whole or absent).  The
 * gate reads the result once and removes both files.  So the gate's state
 * directory (logs, work trees) must be on a filesystem the nodes share at the
 * same path, and keel-gate at the same path on every node (docs/gate.md).
 *
 * No result means Slurm did not run the job to its end.  When the slot's
 * runner or allocation was an earlier job's (it expired, was cancelled, or slurmctld
 * forgot it), the slot asks for a new one and runs the job again at once;
 * otherwise (slurmctld unreachable, the node gone) an error of
 * gate_slurm_run_job, the gate's failure, never the change's: the job runs
 * again after a pause.  Slurm's time limit on a step is the change's timeout
 * only when the step ran for its own limit, less 5 s (else the allocation's
 * ended).
 * Allocations are interactive jobs, which Slurm never requeues (srun and
 * salloc 22.05 have no --no-requeue; sbatch has).
 */
#ifndef KEEL_GATE_SLURM_H
#define KEEL_GATE_SLURM_H

#include "keel/keel.h"

#include "config.h"
#include "pool.h"

/* A pool slot's allocation (opaque); NULL: none yet. */
typedef struct gate_slurm_slot gate_slurm_slot;

/* End the slot's allocation (scancel) and free it; *slot is NULL after. */
void gate_slurm_slot_release(gate_slurm_slot **slot);

/* argv[1] of the node's runner: `keel-gate slurm-step <spec>`. */
#define GATE_SLURM_STEP_COMMAND "slurm-step"

/*
 * Run job `j` (as gate_job_execute would, its fields reset, not cancelled) as a step of its
 * slot's allocation (j->slurm_slot; NULL: as one srun job of its own) and wait for it: its result, exit code, time, output and reason are the node's.  A job cut
 * by Slurm's time limit is GATE_EXEC_TIMEOUT; j->cancel set: the Slurm job is cancelled and the
 * result is GATE_EXEC_CANCELLED.  An error (KEEL_E_IO naming what srun said) when Slurm did not
 * run it to a result.
 */
KEEL_MUST_USE keel_status gate_slurm_run_job(gate_job_run *j);

/*
 * After a gate start: cancel every Slurm job of this gate's state directory
 * still queued or running (comment keel:...,logs=`logs`) whose gate process
 * (pid=...) is gone (on this host: the state directory is this host's),
 * which no one waits for any more;
 * their jobs are run again as the store says; then the spec, result and
 * srun files such jobs left in `logs` are removed.  `*cancelled`: how many.  An
 * error (KEEL_E_IO) when squeue cannot be asked: the cluster is unreachable.
 */
KEEL_MUST_USE keel_status gate_slurm_reconcile(const char *logs, size_t *cancelled);

/*
 * gate_slurm_reconcile of `work`/logs when `target` (the target's configuration) says executor =
 * slurm; nothing otherwise.  An error says the cluster could not be asked: run does not start.
 */
KEEL_MUST_USE keel_status gate_slurm_start(const gate_config *target, const char *work,
                                           size_t *cancelled);

/*
 * The node's side: `<program> slurm-step <spec>`, called first thing in main() (it starts keel
 * and the gate's modules itself, without their self tests: the gate ran them, and a step is
 * short).  The exit code of the process: 0 when the result file was written.
 */
int gate_slurm_step_main(int argc, char **argv);

#endif /* KEEL_GATE_SLURM_H */
