/*
 * gate/levels/post.h - the post level (issue 17): every commit that reaches
 * the target, through the gate or pushed around it, is built with the
 * configurations of its .keel/gate.conf at level `post`, on the job slots the
 * queue is not using.  The I/O edge only (git, store, jobs): what to build
 * is the store's order (store_post.h: newest first, a pass superseding the
 * older commits not built yet).
 *
 * Never starving the queue: a post build starts only while the queue has
 * nothing queued or testing and a slot is free, and a post build still
 * running when the queue has work again is cancelled (its row pending
 * again, built later).
 *
 * Not an API: gate_loop.c and gate_jobs.c call it.
 */
#ifndef KEEL_GATE_POST_H
#define KEEL_GATE_POST_H

#include "gate_loop.h"

/*
 * A new run: the post builds a killed gate left running are pending again
 * (skipped when never built before and a newer commit passed their
 * configuration meanwhile).
 */
KEEL_MUST_USE keel_status gate_post_start(gate *g);

/*
 * One turn of the loop: the commits that reached the target since the last
 * turn are recorded; with `queue_busy` the post builds in flight are
 * cancelled, else post builds start on the free slots.  *busy: post builds
 * are pending or running (run --once waits for them).
 */
KEEL_MUST_USE keel_status gate_post_turn(gate *g, bool queue_busy, bool paused, bool *busy);

/* Post builds in flight. */
unsigned gate_post_running(const gate *g);

/* Is j a post build? */
bool gate_post_job(const gate_job_run *j);

/*
 * Start a culprit search's build (search.c) as a post-level job (its result
 * comes back to gate_post_job_done; cancelled as the post level's when the
 * queue needs the slot): `commit` built with its configuration `config` at
 * `level` (the search's: post or nightly), its log at `log`; search_build:
 * its build in the store.  An error before the job exists (no such
 * configuration at that level there, memory) is returned, nothing started.
 */
KEEL_MUST_USE keel_status gate_post_launch(gate *g, gate_level level, const char *commit,
                                           const char *config, const char *log,
                                           long long search_build);

/* Post build j is back (taken; out of g->inflight already): its result in the store. */
KEEL_MUST_USE keel_status gate_post_job_done(gate *g, gate_job_run *j);

#endif /* KEEL_GATE_POST_H */
