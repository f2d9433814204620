/*
 * gate/gate_loop.h - what the gatekeeper loop's three files share (not an
 * API): gate_loop.c (the loop, recovery, the queue, candidates' bookkeeping),
 * gate_jobs.c (builds and their jobs) and gate_decide.c (decisions).
 */
#ifndef KEEL_GATE_GATE_LOOP_H
#define KEEL_GATE_GATE_LOOP_H

#include "gate_int.h"

/* gate_loop.c */

/*
 * gate_run in three parts, for gate_run_targets (gate_multi.c): begin (the
 * lock, recovery, the levels; `own_pool`: the executor's pool too, else the
 * caller gives g->pool and g->pool_core), a step of the loop (a turn; after
 * the gate's own failure a pause and a restart: in a shared pool's gate the
 * pause is g->restart_at_ms, not a sleep), `s` the last step's status, *over:
 * run must end with the status returned), end (stop what runs, requeue or
 * close what is open, release; returns the status run returns).
 */
KEEL_MUST_USE keel_status gate_run_begin(gate *g, bool own_pool);
KEEL_MUST_USE keel_status gate_run_step(gate *g, bool once, keel_status s, bool *done, bool *over);
KEEL_MUST_USE keel_status gate_run_end(gate *g, keel_status s, gate_run_stats *stats);

/* Wall-clock seconds. */
long long gate_now_s(void);
/* *arr holds at least `need` elements of `elem` bytes (grown on module gate's heap). */
KEEL_MUST_USE keel_status gate_grow(void **arr, size_t *cap, size_t need, size_t elem);
/* A stop was asked for (gate_request_stop). */
bool gate_stop_requested(const gate *g);
/* The candidate of scheduler id `sid` in this generation, NULL when none. */
gate_cand *gate_find_cand(gate *g, long long sid);
/* A queued `change` goes to the scheduler (built alone: gate_sched_enqueue_alone). */
KEEL_MUST_USE keel_status gate_take_change(gate *g, long long change, bool alone);
/* `change` is no longer held by the scheduler. */
void gate_drop_active(gate *g, long long change);
/* Kill candidate c's jobs in flight (their results say nothing about it). */
void gate_cancel_jobs(gate *g, const gate_cand *c);
/* Candidate c finished with `result` in the store (once). */
KEEL_MUST_USE keel_status gate_close_cand(gate *g, gate_cand *c, const char *result);
/* Which configuration text `commit` has (gate_config_text_id; 0: none). */
KEEL_MUST_USE keel_status gate_config_id(gate *g, const char *commit, unsigned long long *id);
/* Start again from what the store and the repository say (a new generation). */
KEEL_MUST_USE keel_status gate_restart(gate *g);
/* `change` was cancelled: out of the scheduler and of the builds that hold it. */
KEEL_MUST_USE keel_status gate_withdraw(gate *g, long long change);
/*
 * The gate's own failure `why` (owned), blaming no change: KEEL_OK to go on
 * after a pause, or, after GATE_ERRORS_MAX in a row, the error that stops run.
 */
KEEL_MUST_USE keel_status gate_failed(gate *g, unsigned *in_a_row, keel_status why,
                                      const char *what);

/* gate_jobs.c */

/* A work tree no job in flight has (a new one when all are taken): g->trees[*out], busy. */
KEEL_MUST_USE keel_status gate_take_tree(gate *g, size_t *out);
/* Start the scheduler's build b: its candidate's merges, then its jobs. */
KEEL_MUST_USE keel_status gate_start_build(gate *g, const gate_sched_build *b);
/* Start the jobs the gate failed to run, once their pause is over. */
KEEL_MUST_USE keel_status gate_start_again(gate *g);
/* Job j is back (taken): its result to its candidate and the scheduler. */
KEEL_MUST_USE keel_status gate_job_done(gate *g, gate_job_run *j);
/* Remove the jobs' work trees. */
void gate_drop_trees(gate *g);

/* gate_decide.c */

/* Carry out the scheduler's decision d. */
KEEL_MUST_USE keel_status gate_decide(gate *g, const gate_sched_decision *d);
/* Candidate c does not merge (err, taken): the change is isolated or decided as a conflict. */
KEEL_MUST_USE keel_status gate_merge_conflict(gate *g, gate_cand *c, keel_status err);
/* A change of c is bad by itself (err, taken): rejected without a build. */
KEEL_MUST_USE keel_status gate_reject_bad_change(gate *g, gate_cand *c, keel_status err);
/* Is a configuration's failure to load the gate's own (not the change's)? */
bool gate_config_fault_is_gates(keel_status s);
/* c's merged tree has no configuration that loads (err, taken). */
KEEL_MUST_USE keel_status gate_config_failed(gate *g, gate_cand *c, keel_status err);

#endif /* KEEL_GATE_GATE_LOOP_H */
