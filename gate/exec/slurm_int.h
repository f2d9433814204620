/*
 * gate/exec/slurm_int.h - what slurm.c (the gate's side: a job as a step, the
 * slots' allocations), slurm_files.c (the spec and result files, the node's
 * side), slurm_client.c (Slurm's clients run and waited for, reconciling) and
 * slurm_runner.c (the runner standing in an allocation) share; keel-gate's
 * Slurm executor only.
 */
#ifndef KEEL_GATE_SLURM_INT_H
#define KEEL_GATE_SLURM_INT_H

#include <signal.h>

#include "keel/keel.h"

#include "pool.h"

/* `keel-gate slurm-step -`: the runner standing as an allocation's step (slurm.h). */
#define GATE_SLURM_RUNNER_SPEC "-"

/* A job a node runs: its spec's job and the spec's text (opaque). */
typedef struct gate_slurm__node_job gate_slurm__node_job;

/* Read and parse the spec at `path`: *out the job to run (free it). */
KEEL_MUST_USE keel_status gate_slurm__spec_load(const char *path, gate_slurm__node_job **out);
gate_job_run *gate_slurm__node_job_run(gate_slurm__node_job *nj);
void gate_slurm__node_job_free(gate_slurm__node_job *nj);

/*
 * Write <path>.result (whole or absent): the job's outcome, or `s`'s message when it is an
 * error (nj may then be NULL; `s` is freed).  0, or 3 when the file could not be written.
 */
int gate_slurm__result_write(const char *path, const gate_slurm__node_job *nj, keel_status s);

/* Write job j's spec to `path` (whole or absent) for the node's keel-gate to read. */
KEEL_MUST_USE keel_status gate_slurm__spec_write(const char *path, const gate_job_run *j);

/* Read the result the node wrote at `path` into j (its outcome; an error: the node's). */
KEEL_MUST_USE keel_status gate_slurm__result_read(const char *path, gate_job_run *j);

/* The node's runner loop (slurm_runner.c): its exit code. */
int gate_slurm__runner_main(void);

/*
 * The line the gate's cancel writes to srun's input for a step per job (slurm-launch = srun):
 * srun passes its input on to the step, whose keel-gate ends every process group of its job
 * at once (SIGKILL, a group at a time, each as a whole).  Not a signal through srun:
 * slurmstepd signals every process of the step one by one, the job's own before its
 * keel-gate, and a job's shell whose foreground child died before its turn ran on (a loaded
 * node).  Slurm's own ways (srun's abort on a second SIGINT, scancel) reach the step the same
 * way, and are only the gate's fallback.
 */
#define GATE_SLURM_CANCEL_LINE "cancel"

/*
 * On SIGTERM, SIGINT, SIGHUP (Slurm ending the step) and SIGUSR1: every process group the job
 * runs killed (SIGKILL), then _exit(143), no result written.
 */
void gate_slurm__stop_on_signals(void);

/*
 * Slurm ends a step (scancel, the end of its allocation, its node's failure: slurmd's
 * terminate) with SIGCONT to every process of the step, then SIGTERM to every one, each pass a
 * process at a time, the job's own processes before the step's keel-gate.  So a job can die
 * of Slurm's SIGTERM, and the step write a result of it (failed, killed by signal 15; its
 * sandbox killed), before its own SIGTERM comes.  gate_slurm__step_watch, first thing in the
 * step's process (before any thread starts: each inherits the mask), blocks SIGCONT: one that
 * comes stays pending (stopped processes still continue).  gate_slurm__step_ending, when a job
 * has ended: true when SIGCONT is pending, i.e. Slurm began ending the step before the job's
 * end was seen, which may then be Slurm's doing: the step writes no result of it and ends
 * (gate_slurm__step_end).  The jobs themselves start with no signal blocked (exec.c).
 */
void gate_slurm__step_watch(void);
bool gate_slurm__step_ending(void);

/* What Slurm's SIGTERM does: every process group of the job killed (SIGKILL), _exit(143). */
KEEL_NORETURN void gate_slurm__step_end(void);

/* The watch of a step's input (slurm_runner.c). */
typedef struct gate_slurm__input gate_slurm__input;

/*
 * Watch standard input (srun's, from the gate) for GATE_SLURM_CANCEL_LINE in a thread of its
 * own: on it, *cancel set and every process group the job runs killed (SIGKILL), again every
 * few milliseconds (a group started meanwhile) until gate_slurm__input_stop.  The end of the
 * input (the gate gone) cancels nothing: the job runs on, as without the gate.
 */
keel_status gate_slurm__input_start(int *cancel, gate_slurm__input **out);

/* The watch ended and freed: true when it cancelled the job. */
bool gate_slurm__input_stop(gate_slurm__input *in);

/* ---- Slurm's clients (slurm_client.c) ---- */

/*
 * Start `argv` (a Slurm client) with the gate's environment, its input from `in` (-1:
 * /dev/null), its output into `out`.
 */
KEEL_MUST_USE keel_status gate_slurm__spawn(char *const *argv, int in, const char *out, pid_t *pid);
/* Sleep `ms` milliseconds (on through signals). */
void gate_slurm__nap_ms(unsigned ms);
/*
 * Wait for `pid`: its wait status; polls *cancel (then on_cancel once) when given.  A pidfd
 * wakes it when the process exits (-1 on an old kernel: a poll every few ms).
 */
int gate_slurm__wait_for(pid_t pid, const int *cancel, void (*on_cancel)(void *), void *arg);
/* Run a Slurm client to its end: its exit code (-1: it did not run), its output into `out`. */
int gate_slurm__run_client(char *const *argv, const char *out);
/* The last non-empty line of `path` (what a Slurm client said last), or "". */
void gate_slurm__last_line(const char *path, char *buf, size_t size);
/* Does `path` hold `needle`? */
bool gate_slurm__file_says(const char *path, const char *needle);

#endif /* KEEL_GATE_SLURM_INT_H */
