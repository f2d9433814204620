/*
 * gate/levels/level_job.h - what the levels after the gate (post.c,
 * nightly.c) share to build a commit of the target with one of its
 * configurations: the job started on a free work tree of the gate, and
 * taken back.  Not an API: the levels call it.
 */
#ifndef KEEL_GATE_LEVEL_JOB_H
#define KEEL_GATE_LEVEL_JOB_H

#include "gate_loop.h"

/* A level's job: the pool's job first (its pointer is this), the configuration its steps use. */
typedef struct gate_level_job {
    gate_job_run run;
    gate_config *cfg; /* the commit's own .keel/gate.conf */
} gate_level_job;

typedef struct gate_level_build {
    gate_level level;   /* the configuration is looked up at this level */
    const char *commit; /* 40 hex digits */
    const char *config;
    const char *what; /* "post", "nightly": for messages */
    size_t size;      /* of the caller's job struct, a gate_level_job first */
    /* before the job is submitted: the caller's marks and log (j->log) */
    void (*init)(gate_job_run *j, void *ctx);
    void *ctx;
} gate_level_build;

/*
 * Start b's build: the commit's configuration read, the job from its
 * configuration `config` at `level` with the TARGET's sandbox policy, a free
 * work tree checked out at the commit, submitted to the pool, in g->inflight.
 * *out: the job (the caller's struct).  A checkout that fails makes a job
 * the worker hands straight back with j->error set (no result).  An error
 * before the job exists (no such configuration at that level, memory) is
 * returned, nothing started.
 */
KEEL_MUST_USE keel_status gate_level_job_start(gate *g, const gate_level_build *b,
                                               gate_job_run **out);

/* Job j of a level is back: its work tree free again, its configuration and itself freed. */
void gate_level_job_free(gate *g, gate_job_run *j);

/* Cancel the jobs in flight for which `is` is true (the queue needs their slots). */
void gate_level_jobs_cancel(gate *g, bool (*is)(const gate_job_run *j));

/* How many jobs in flight `is` is true for. */
unsigned gate_level_jobs_running(const gate *g, bool (*is)(const gate_job_run *j));

#endif /* KEEL_GATE_LEVEL_JOB_H */
