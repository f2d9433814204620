/*
 * gate/exec/exec.h - run one build or test command for keel-gate: in a bubblewrap
 * sandbox (sandbox.h) or, with `sandbox = none`, in its own process group;
 * in its work tree, with an environment built from an allow-list, resource
 * limits (resources.h), a timeout that kills everything it started, and its
 * output captured to a log file that cannot grow past a limit.
 *
 * Commands are argument vectors: no shell is involved.  The gate's own
 * failures (no pipe, no log, no process, a sandbox that could not be set up)
 * are errors of gate_exec_run, never an outcome: an outcome is a verdict on
 * the command (passed, failed, crashed, timeout, a limit reached, not found).
 */
#ifndef KEEL_GATE_EXEC_H
#define KEEL_GATE_EXEC_H

#include "keel/keel.h"

#include "sandbox.h"

typedef enum gate_exec_result {
    GATE_EXEC_PASSED,    /* exited 0 */
    GATE_EXEC_FAILED,    /* exited non-zero */
    GATE_EXEC_CRASHED,   /* killed by a signal it did not get from us */
    GATE_EXEC_TIMEOUT,   /* ran past its timeout; its process group was killed */
    GATE_EXEC_NOT_FOUND, /* the program could not be started */
    GATE_EXEC_CANCELLED, /* *cancel became nonzero; its process group was killed */
    GATE_EXEC_LIMIT      /* it reached a resource limit (outcome.reason names it) */
} gate_exec_result;

typedef struct gate_exec_spec {
    char *const *argv;            /* NULL-terminated */
    char *const *env;             /* the configuration's NAME=value, NULL-terminated, or NULL */
    const char *dir;              /* working directory (the work tree) */
    const char *log;              /* output (stdout and stderr) goes here, appended */
    unsigned timeout_ms;          /* 0: none */
    unsigned long long log_limit; /* bytes; past it the job is stopped: GATE_EXEC_LIMIT */
    const int *cancel;            /* NULL, or a flag another thread sets to stop the job */
    /* NULL: no sandbox and no limits (the module's self test); the gate always gives one */
    const gate_job_policy *policy;
    const gate_hidden *hidden; /* what the sandbox hides (gate_hidden_paths) */
    const char *records;       /* a directory for records of running jobs, or NULL */
} gate_exec_spec;

enum { GATE_REASON_TEXT = 256 };

typedef struct gate_exec_outcome {
    gate_exec_result result;
    int exit_code; /* when it exited */
    int signal;    /* when it was killed */
    unsigned long long elapsed_ms;
    unsigned long long log_bytes; /* output it wrote to the log */
    bool log_truncated;
    char reason
        [GATE_REASON_TEXT]; /* GATE_EXEC_LIMIT: which limit ("memory limit 2 GiB reached ...") */
} gate_exec_outcome;

/*
 * Run the command and wait for it and everything it started.  The status is
 * an error only when the gate could not run it (no log, no pipe, no process,
 * no cgroup, the sandbox not set up, bwrap missing): the gate's failure,
 * never the command's.  A failing, crashing, timing-out, limit-reaching or
 * missing program is a successful run with that outcome.
 *
 * Stress points (module gate_exec): log_fail (the log: ENOSPC), pipe_fail
 * (EMFILE), spawn_fail (EAGAIN), cgroup_fail (EACCES), sandbox_fail (bwrap
 * given a bind whose source does not exist: it fails to set the sandbox up).
 * Not failures: cgroup_none (as a machine with no cgroup to use), pidfd_none
 * (as a kernel before 5.3: the end of a sandboxed job does not wait for its
 * namespace to empty), gone_late (the log says its processes were still
 * exiting, as when that wait runs out).
 */
KEEL_MUST_USE keel_status gate_exec_run(const gate_exec_spec *spec, gate_exec_outcome *out);

const char *gate_exec_result_name(gate_exec_result r);

/* Milliseconds on the monotonic clock (for timeouts and intervals). */
unsigned long long gate_now_ms(void);

/*
 * Send `sig` to the process group of every command gate_exec_run is running
 * (in any thread); how many were sent.  Only atomic loads and kill(): a
 * process may call it on its way out at once, from a signal handler even.
 */
unsigned gate_exec_kill_all(int sig);

/*
 * For a process exiting at once: from now on gate_exec_run never returns
 * (its caller would take a job killed on the way out for one that failed).
 * Call it before gate_exec_kill_all.  One atomic store.
 */
void gate_exec_freeze(void);

/*
 * After a killed gate: every record in `dir` left by a gate process that is
 * no longer running names a job that may still run (sandbox = none, or a
 * sandbox whose die-with-parent was missed): its process group and its
 * cgroups are killed (a reused pid is recognised by its start time and left
 * alone) and the record removed.  KEEL_E_BUSY when a process of one could
 * not be killed within a few seconds: no job may run alongside it.
 * `*reaped`: how many records were cleaned up.
 */
KEEL_MUST_USE keel_status gate_exec_reap_orphans(const char *dir, size_t *reaped);

#endif /* KEEL_GATE_EXEC_H */
