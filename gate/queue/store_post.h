/*
 * gate/queue/store_post.h - the post level's records in keel-gate's store
 * (store_post.c): which commits reached the target, in order, and for each
 * (commit, configuration at level post) its builds' outcome.
 *
 * A row is pending (to build), running, skipped (superseded: a newer commit
 * of the same configuration was built first and nothing failed, so it is
 * not run), or done (runs, fails: passed when fails is 0, failed when every
 * run failed, flaky when both).  A kill -9 leaves running rows: recovery
 * makes them pending again, or skipped when a newer commit's pass superseded
 * them meanwhile (gate_store_post_recover).
 */
#ifndef KEEL_GATE_STORE_POST_H
#define KEEL_GATE_STORE_POST_H

#include "store.h"

enum { GATE_POST_STATE_MAX = 12, GATE_POST_SUBJECT_MAX = 120 };

typedef struct gate_post_row {
    long long
        seq; /* the commit's place in the target's history as the gate saw it: larger, newer */
    char commit[GATE_OID_HEX];
    char subject[GATE_POST_SUBJECT_MAX];
    char config[GATE_NAME_MAX];
    char state[GATE_POST_STATE_MAX]; /* pending, running, skipped, done */
    unsigned runs, fails;
    char log[GATE_REASON_MAX]; /* the last run's */
    long long updated_at;
} gate_post_row;

/*
 * A level's build outcome from its row's state, runs and failures: "passed",
 * "failed" (every run), "flaky" (both), "not run" (pending, skipped), "running".
 */
const char *gate_build_outcome(const char *state, unsigned runs, unsigned fails);
/* What a row's outcome is: "passed", "failed", "flaky", "not run" (pending, skipped), "running". */
const char *gate_post_outcome(const gate_post_row *r);

/*
 * A commit that reached `target` (after every one recorded before: callers
 * add a range oldest first, so a kill between two leaves no gap), with its
 * subject and the configurations at level post to build it with: rows
 * pending.  A commit already recorded is left as it is.  One transaction.
 */
KEEL_MUST_USE keel_status gate_store_post_add(gate_store *st, const char *target,
                                              const char *commit, const char *subject,
                                              const char *const *names, size_t nnames,
                                              long long now);
/* The newest commit recorded for `target` ("" when none). */
KEEL_MUST_USE keel_status gate_store_post_newest(gate_store *st, const char *target,
                                                 char out[GATE_OID_HEX]);
/* The newest pending row of `target` (superseding: newest first); *found false when none. */
KEEL_MUST_USE keel_status gate_store_post_next(gate_store *st, const char *target,
                                               gate_post_row *out, bool *found);
/* A pending row's build starts: running.  KEEL_E_STATE when it is not pending. */
KEEL_MUST_USE keel_status gate_store_post_start(gate_store *st, const char *target,
                                                const char *commit, const char *config,
                                                long long now);
/*
 * A running row's build ended without a result (cancelled: the queue needed
 * the slot; the gate stopped): pending again, or skipped when it never ran
 * and a newer commit passed the configuration while it ran (superseded, as a
 * pass supersedes the pending rows: *superseded).
 */
KEEL_MUST_USE keel_status gate_store_post_unstart(gate_store *st, const char *target,
                                                  const char *commit, const char *config,
                                                  long long now, bool *superseded);
/*
 * A running row's build ended: failed or passed, its log.  The row is done
 * (one run more); when it passed, the older pending rows of the same
 * configuration are skipped (superseded), in the same transaction.  *was: the
 * outcome of the newest done row of that configuration before this one
 * ("passed", "failed", "flaky", or "" when none), for red and green.
 */
KEEL_MUST_USE keel_status gate_store_post_finish(gate_store *st, const char *target,
                                                 const char *commit, const char *config,
                                                 bool failed, const char *log, long long now,
                                                 char was[GATE_POST_STATE_MAX]);
/*
 * How many configurations of `target` other than `except` are red: their
 * newest done row failed every run.
 */
KEEL_MUST_USE keel_status gate_store_post_red(gate_store *st, const char *target,
                                              const char *except, size_t *n);
/*
 * Whether `commit`'s row is the newest of `config` with a result: no done row
 * of a later commit (builds end in any order; an older one's result does not
 * change the target's state).
 */
KEEL_MUST_USE keel_status gate_store_post_is_newest(gate_store *st, const char *target,
                                                    const char *commit, const char *config,
                                                    bool *newest);
/*
 * The oldest row of `config` built so far, when it is done, failed every one
 * of its runs (fewer than max_runs) and no row up to `commit` passed any
 * run: pending again, to be built
 * once more (a failure that may be a flake, where a culprit search has no
 * passing commit to start from).  again: its commit ("" when none).
 */
KEEL_MUST_USE keel_status gate_store_post_again_base(gate_store *st, const char *target,
                                                     const char *commit, const char *config,
                                                     unsigned max_runs, long long now,
                                                     char again[GATE_OID_HEX]);
/*
 * Running rows of `target` (a new run after a kill): pending again (*n), or
 * skipped (*superseded) when, as gate_store_post_unstart says, the row never
 * ran and a newer commit passed its configuration while it ran.
 */
KEEL_MUST_USE keel_status gate_store_post_recover(gate_store *st, const char *target, long long now,
                                                  size_t *n, size_t *superseded);
/*
 * The history: rows of `target` (of configuration `config`; NULL: all),
 * newest commit first, configurations by name; at most max.
 */
KEEL_MUST_USE keel_status gate_store_post_history(gate_store *st, const char *target,
                                                  const char *config, gate_post_row *out,
                                                  size_t max, size_t *n);

#endif /* KEEL_GATE_STORE_POST_H */
