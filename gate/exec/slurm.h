/*
 * gate/exec/slurm.h - keel-gate's Slurm executor (`executor = slurm` in
 * [gate]): each step of a job (its build, its test) runs on a Slurm node,
 * with `srun`, as one step of keel-gate's own job runner there:
 *
 *   srun -J keel-<job> --comment=keel:job=<job>,logs=<dir> -N1 -n1 [-p ...]
 *        [-C ...] [-c ...] [--mem=...] -t <minutes> -- <keel-gate> slurm-step <spec>
 *
 * The gate writes the step's spec (its command, environment, work tree, log,
 * timeout, output cap and sandbox policy) into <log>.spec; `keel-gate
 * slurm-step` on the node reads it and runs the command with gate_exec_run,
 * exactly as the local executor does (bubblewrap, limits, timeout, the log
 * capped at the same size), and writes the outcome into <log>.spec.result
 * (renamed into place, so it is whole or absent).  The gate reads the result
 * once and removes both files.  So the gate's state directory (logs, work
 * trees) must be on a filesystem the nodes share at the same path, and
 * keel-gate at the same path on every node (docs/gate.md).
 *
 * No result means Slurm did not run the step to its end (slurmctld
 * unreachable, the job lost, the node gone): an error of gate_slurm_run,
 * the gate's failure, never the change's; the job runs again after a pause.
 */
#ifndef KEEL_GATE_SLURM_H
#define KEEL_GATE_SLURM_H

#include "keel/keel.h"

#include "config.h"
#include "exec.h"

/* argv[1] of the node's runner: `keel-gate slurm-step <spec>`. */
#define GATE_SLURM_STEP_COMMAND "slurm-step"

typedef struct gate_slurm_step {
    const gate_slurm_request *request;
    long long job_id;   /* the store's: the Slurm job is named keel-<job_id> */
    const char *runner; /* keel-gate's path on the nodes; NULL: this program's (/proc/self/exe) */
} gate_slurm_step;

/*
 * Run `spec` (as for gate_exec_run; spec->records is not used) as one srun
 * job and wait for it.  The outcome is the node's gate_exec_run's; a job cut
 * by Slurm's time limit is GATE_EXEC_TIMEOUT.  *spec->cancel set: the Slurm
 * job is cancelled (scancel) and the outcome is GATE_EXEC_CANCELLED.  An
 * error (KEEL_E_IO naming what srun said) when Slurm did not run it to an
 * outcome.
 */
KEEL_MUST_USE keel_status gate_slurm_run(const gate_exec_spec *spec, const gate_slurm_step *step,
                                         gate_exec_outcome *out);

/*
 * After a gate start: cancel every Slurm job of this gate still queued or
 * running (comment keel:...,logs=`logs`), which no one waits for any more;
 * their jobs are run again as the store says; then the spec, result and
 * srun files such jobs left in `logs` are removed.  `*cancelled`: how many.  An
 * error (KEEL_E_IO) when squeue cannot be asked: the cluster is unreachable.
 */
KEEL_MUST_USE keel_status gate_slurm_reconcile(const char *logs, size_t *cancelled);

/*
 * The node's side: `<program> slurm-step <spec>`, called first thing in main() (it starts keel
 * and the gate's modules itself, without their self tests: the gate ran them, and a step is
 * short).  The exit code of the process: 0 when the result file was written.
 */
int gate_slurm_step_main(int argc, char **argv);

#endif /* KEEL_GATE_SLURM_H */
