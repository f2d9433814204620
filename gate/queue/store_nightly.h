/*
 * gate/queue/store_nightly.h - the nightly level's records in keel-gate's
 * store (store_nightly.c): per (target, configuration at level nightly) when
 * it is next due, and each nightly run: the target's commit it builds and
 * its outcome.
 *
 * A run is pending (to build), running, or done (runs, fails: passed when
 * fails is 0, failed when every run failed, flaky when both).  A kill -9
 * leaves running rows: recovery makes them pending again.  A run is keyed by
 * its due time: a schedule that fires again after a kill (the due time
 * written in the same transaction as the run) never makes a second run.
 */
#ifndef KEEL_GATE_STORE_NIGHTLY_H
#define KEEL_GATE_STORE_NIGHTLY_H

#include "store.h"
#include "store_post.h"

typedef struct gate_nightly_row {
    char config[GATE_NAME_MAX];
    long long due_at; /* when it was due (its schedule's time, jitter included) */
    char commit[GATE_OID_HEX];
    char state[GATE_POST_STATE_MAX]; /* pending, running, done */
    unsigned runs, fails;
    char log[GATE_REASON_MAX]; /* the last run's */
    long long updated_at;
} gate_nightly_row;

/* "passed", "failed", "flaky", "not run" (pending), "running". */
const char *gate_nightly_outcome(const gate_nightly_row *r);

/* When `config` of `target` is next due; *found false when the gate never scheduled it. */
KEEL_MUST_USE keel_status gate_store_nightly_due(gate_store *st, const char *target,
                                                 const char *config, long long *due, bool *found);
/* `config` of `target` is next due at `due` (a new schedule, or keel-gate nightly --now). */
KEEL_MUST_USE keel_status gate_store_nightly_set_due(gate_store *st, const char *target,
                                                     const char *config, long long due);
/*
 * A run of `config` on `commit`, pending now (keel-gate nightly --now): due
 * at `now`, or just after its newest run's due time when that is not earlier
 * (a second --now within a second of the first still makes a run of its
 * own).  The schedule's next time is left as it is.
 */
KEEL_MUST_USE keel_status gate_store_nightly_run_now(gate_store *st, const char *target,
                                                     const char *config, const char *commit,
                                                     long long now);
/*
 * The run due at `due_at` of `config` fires on `commit` (pending), and the
 * configuration is next due at `next_due`: one transaction.  A run of that
 * due time already recorded is left as it is.
 */
KEEL_MUST_USE keel_status gate_store_nightly_fire(gate_store *st, const char *target,
                                                  const char *config, long long due_at,
                                                  const char *commit, long long next_due,
                                                  long long now);
/* The newest pending run of `target`; *found false when none. */
KEEL_MUST_USE keel_status gate_store_nightly_next(gate_store *st, const char *target,
                                                  gate_nightly_row *out, bool *found);
/* A pending run starts: running.  KEEL_E_STATE when it is not pending. */
KEEL_MUST_USE keel_status gate_store_nightly_start(gate_store *st, const char *target,
                                                   const char *config, long long due_at,
                                                   long long now);
/*
 * A running run ended without a result (cancelled, the gate stopped): pending
 * again, or removed when a newer run of its configuration finished while it
 * ran (superseded, as gate_store_nightly_finish drops the older pending
 * runs: *superseded).
 */
KEEL_MUST_USE keel_status gate_store_nightly_unstart(gate_store *st, const char *target,
                                                     const char *config, long long due_at,
                                                     bool *superseded);
/*
 * A running run ended: failed or passed, its log; done (one run more).  The
 * older pending runs of the configuration are superseded (removed: a nightly
 * run is of the target's head, and this one was newer).  *was: the outcome of
 * the configuration's newest done run before this one ("" when none).
 */
KEEL_MUST_USE keel_status gate_store_nightly_finish(gate_store *st, const char *target,
                                                    const char *config, long long due_at,
                                                    bool failed, const char *log, long long now,
                                                    char was[GATE_POST_STATE_MAX]);
/*
 * Is the run of `config` due at `due_at` its newest result: no run due after
 * it is done (*newest)?  Runs end in any order: an older one's result after
 * a newer one's is history.
 */
KEEL_MUST_USE keel_status gate_store_nightly_is_newest(gate_store *st, const char *target,
                                                       const char *config, long long due_at,
                                                       bool *newest);
/*
 * Running runs of `target` (a new run after a kill): pending again (*n), or
 * removed (*superseded) when a newer run of their configuration finished
 * while they ran, as gate_store_nightly_unstart says.
 */
KEEL_MUST_USE keel_status gate_store_nightly_recover(gate_store *st, const char *target, size_t *n,
                                                     size_t *superseded);
/* The runs of `target` (of `config`; NULL: all), newest first; at most max. */
KEEL_MUST_USE keel_status gate_store_nightly_history(gate_store *st, const char *target,
                                                     const char *config, gate_nightly_row *out,
                                                     size_t max, size_t *n);

#endif /* KEEL_GATE_STORE_NIGHTLY_H */
