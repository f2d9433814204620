/*
 * gate/exec.h - run one build or test command for keel-gate: in its own
 * directory and process group, with extra environment, a timeout that kills
 * the whole group (children a job forked and left behind included), and its
 * output captured to a log file that cannot grow past a limit.
 *
 * Commands are argument vectors passed to execvp: no shell is involved.
 */
#ifndef KEEL_GATE_EXEC_H
#define KEEL_GATE_EXEC_H

#include "keel/keel.h"

typedef enum gate_exec_result {
    GATE_EXEC_PASSED,    /* exited 0 */
    GATE_EXEC_FAILED,    /* exited non-zero */
    GATE_EXEC_CRASHED,   /* killed by a signal it did not get from us */
    GATE_EXEC_TIMEOUT,   /* ran past its timeout; its process group was killed */
    GATE_EXEC_NOT_FOUND, /* the program could not be started */
    GATE_EXEC_CANCELLED  /* *cancel became nonzero; its process group was killed */
} gate_exec_result;

typedef struct gate_exec_spec {
    char *const *argv;       /* NULL-terminated */
    char *const *env;        /* NAME=value additions, NULL-terminated, or NULL */
    const char *dir;         /* working directory */
    const char *log;         /* output (stdout and stderr) goes here, appended */
    unsigned timeout_ms;     /* 0: none */
    unsigned long log_limit; /* bytes; past it output is dropped and the log says so */
    const int *cancel;       /* NULL, or a flag another thread sets to stop the job */
} gate_exec_spec;

typedef struct gate_exec_outcome {
    gate_exec_result result;
    int exit_code; /* when it exited */
    int signal;    /* when it was killed */
    unsigned long long elapsed_ms;
    bool log_truncated;
} gate_exec_outcome;

/*
 * Run the command and wait for it (and its process group).  The status is an
 * error only when the job could not be run at all (no log file, no fork); a
 * failing, crashing or timing-out job is a successful run with that outcome.
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

#endif /* KEEL_GATE_EXEC_H */
