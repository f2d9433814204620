/*
 * gate/levels/nightly.h - the nightly level (issue 17): each configuration
 * at level `nightly` of the target's .keel/gate.conf builds the target's
 * head on its schedule (`schedule`, cron's five fields in UTC, and `jitter`:
 * gate/levels/cron.h), on the job slots the queue and the post level leave
 * free.  The I/O edge only (store, jobs); when is cron.c's.
 *
 * A schedule's time that passed while no gate ran fires once when a gate
 * runs again (not once per missed time).  Never starving the queue: as the
 * post level (post.h), a nightly build starts only while the queue has
 * nothing queued or testing and a slot is free, and one still running when
 * the queue has work again is cancelled (pending again, built later, unless
 * a newer run of its configuration ended meanwhile: then it is dropped).
 * Runs end in any order: an older run's result after a newer one's is
 * history (no event, no culprit search).
 *
 * Not an API: gate_loop.c and gate_jobs.c call it; `keel-gate nightly --now`
 * calls gate_nightly_now.
 */
#ifndef KEEL_GATE_NIGHTLY_H
#define KEEL_GATE_NIGHTLY_H

#include "gate_loop.h"

/*
 * A new run: the nightly builds a killed gate left running are pending again
 * (dropped when a newer run of their configuration ended meanwhile).
 */
KEEL_MUST_USE keel_status gate_nightly_start(gate *g);

/*
 * One turn of the loop at time `now` (seconds): the configurations due fire
 * (a run of the target's head each, pending), then as gate_post_turn: with
 * `queue_busy` the nightly builds in flight are cancelled, else pending ones
 * start on the free slots.  *busy: nightly builds are pending or running.
 */
KEEL_MUST_USE keel_status gate_nightly_turn(gate *g, long long now, bool queue_busy, bool paused,
                                            bool *busy);

/* Nightly builds in flight. */
unsigned gate_nightly_running(const gate *g);

/* Is j a nightly build? */
bool gate_nightly_job(const gate_job_run *j);

/* Nightly build j is back (out of g->inflight already): its result in the store. */
KEEL_MUST_USE keel_status gate_nightly_job_done(gate *g, gate_job_run *j);

/*
 * keel-gate nightly --now: a run of `commit` (the target's head) for every
 * configuration at level nightly of `cfg` (the target's), pending: the
 * running gate, or the next `run`, builds them; their schedules are left as
 * they are.  *n: how many.  None at level nightly: KEEL_E_NOTFOUND saying so.
 */
KEEL_MUST_USE keel_status gate_nightly_now(gate *g, const gate_config *cfg, const char *commit,
                                           long long now, size_t *n);

#endif /* KEEL_GATE_NIGHTLY_H */
