/*
 * gate/exec/pool.h - keel-gate's executor: `slots` keel threads that run jobs
 * (a configuration's build, then its test, with gate_exec_run) and hand the
 * finished ones back to the gatekeeper.  A job may be cancelled at any time
 * by setting its `cancel` flag (atomically): a waiting job is not started, a
 * running one has its process group killed.
 */
#ifndef KEEL_GATE_POOL_H
#define KEEL_GATE_POOL_H

#include "keel/keel.h"

#include "config.h"
#include "exec.h"
#include "sandbox.h"

typedef struct gate_job_run {
    /* in: set by the gatekeeper */
    long long job_id;
    long long cand; /* the scheduler's candidate */
    unsigned attempt;
    unsigned gen; /* the gatekeeper's generation when it was started */
    char config[65];
    char post_commit[41]; /* a post-level build's commit (gate/levels/post.c); "": a candidate's */
    bool nightly;         /* a nightly build's (gate/levels/nightly.c) */
    bool required;
    char *const *build; /* NULL or empty: no build step */
    char *const *test;
    char *const *env;
    char dir[GATE_PATH_MAX];
    size_t tree; /* the gatekeeper's: which of its work trees dir is (gate_loop.c) */
    char log[GATE_PATH_MAX];
    unsigned timeout_ms;
    gate_slurm_request slurm;  /* its configuration's, for executor = slurm (policy.executor) */
    gate_job_policy policy;    /* sandbox, network, writable, limits: the target's (sandbox.h) */
    const gate_hidden *hidden; /* the gate's: what no job sees */
    const char *records;       /* the gate's: where running jobs leave a record, or NULL */
    /* the worker's: its Slurm allocation (executor = slurm; slurm.h), NULL: one srun job each */
    struct gate_slurm_slot **slurm_slot;
    unsigned slot_index; /* the worker's: which of the pool's slots runs it */
    int cancel;          /* set with __atomic_store_n by any thread */
    /* out: set by the worker */
    gate_exec_result result;
    int exit_code;
    unsigned long long elapsed_ms;
    double load; /* the pool's jobs executing while it ran, itself included: their harmonic mean */
    /*
     * the cores the machine's other tenants used meanwhile on average: the
     * machine's busy CPU less the gate's process tree's (resources.h); 0 for
     * a job that ran elsewhere (executor = slurm)
     */
    double others;
    unsigned long long output;     /* bytes of output it wrote, all steps */
    char reason[GATE_REASON_TEXT]; /* GATE_EXEC_LIMIT and GATE_EXEC_TIMEOUT: which limit */
    char error[1024]; /* the gate could not run it ("" when it could): never the change's fault */
    struct gate_pool *share; /* the pool's: which pool or share it was submitted to */
    struct gate_job_run *next;
} gate_job_run;

typedef struct gate_pool gate_pool; /* opaque */

KEEL_MUST_USE keel_status gate_pool_new(unsigned slots, gate_pool **out);
/*
 * Stop the workers (after the jobs they run); jobs still waiting are marked
 * cancelled.  Jobs belong to the caller: collect them all with gate_pool_wait
 * (gate_pool_outstanding() == 0) before, as the pool frees none.
 */
void gate_pool_delete(gate_pool *p);
void gate_pool_submit(gate_pool *p, gate_job_run *j);
/* The next finished job (oldest first), waiting at most timeout_ms; NULL when none. */
gate_job_run *gate_pool_wait(gate_pool *p, unsigned timeout_ms);
/* Jobs submitted and not yet returned by gate_pool_wait. */
unsigned gate_pool_outstanding(gate_pool *p);

/*
 * A share of `core`'s slots (one gate, several targets: a share per
 * target): a pool of its own for gate_pool_submit, _wait, _outstanding and
 * _delete (which cancels its waiting jobs and leaves the core running; delete
 * every share before the core), whose jobs run on the core's workers.  A
 * free slot takes the oldest waiting job of the share with the fewest jobs
 * running: shares with work split the slots evenly, none starves another.
 */
KEEL_MUST_USE keel_status gate_pool_share(gate_pool *core, gate_pool **out);
/* Wait at most timeout_ms for a finished job in any share of `core`: whether there is one. */
bool gate_pool_wait_any(gate_pool *core, unsigned timeout_ms);

/* Take a job's name, steps, environment, timeout and required flag from its configuration. */
void gate_job_from_config(gate_job_run *j, const gate_matrix_config *m);

/*
 * Remove job logs (job-*.log, try-*.log) in `dir` older than `days` (0: any
 * age), then the oldest beyond `max_bytes` in all (0: no cap), never one of
 * `keep` (the logs of running jobs).  How many were removed.
 */
size_t gate_logs_prune(const char *dir, unsigned days, unsigned long long max_bytes,
                       const char *const *keep, size_t nkeep);

/* Run one job in the calling thread (what a worker does). */
void gate_job_execute(gate_job_run *j);

#endif /* KEEL_GATE_POOL_H */
