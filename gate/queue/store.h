/*
 * gate/queue/store.h - keel-gate's durable state in SQLite (WAL): the queue of
 * changes, the candidates built from them, the jobs that tested them, and an
 * event history.  Every change of state is one transaction, so a gate killed
 * at any moment (kill -9) restarts from a consistent store: no submitted
 * change is lost, and no job result is attributed to the wrong candidate.
 */
#ifndef KEEL_GATE_STORE_H
#define KEEL_GATE_STORE_H

#include "keel/keel.h"

typedef struct gate_store gate_store; /* opaque */

typedef enum gate_change_state {
    GATE_CHANGE_QUEUED,    /* waiting for a candidate */
    GATE_CHANGE_TESTING,   /* part of a candidate being tested */
    GATE_CHANGE_LANDED,    /* the target branch contains it */
    GATE_CHANGE_REJECTED,  /* a required configuration failed because of it */
    GATE_CHANGE_CONFLICT,  /* it does not merge onto the target */
    GATE_CHANGE_CANCELLED, /* withdrawn by its author */
    GATE_CHANGE_STATES     /* how many there are */
} gate_change_state;

enum { GATE_NAME_MAX = 256, GATE_OID_HEX = 41, GATE_REASON_MAX = 512 };

typedef struct gate_change {
    long long id;
    long long submitted_at; /* seconds */
    long long candidate;    /* 0 when none */
    int priority;
    gate_change_state state;
    unsigned crashes; /* the gate died this many times in a row while testing it */
    char branch[GATE_NAME_MAX];
    char head[GATE_OID_HEX]; /* the commit submitted, 40 hex digits */
    char target[GATE_NAME_MAX];
    char reason[GATE_REASON_MAX];
} gate_change;

/*
 * Open the store at `path`: a new one when there is no file (made whole under
 * another name, then linked into place, so a store file is never a half-made
 * one), else the one there, its schema upgraded.  A file that is not a
 * keel-gate store (empty, not SQLite, another program's database, a newer
 * keel-gate's) is KEEL_E_VERSION or KEEL_E_PARSE naming it, never an empty
 * queue.  A store this process may not write is opened read-only (reading
 * works; the first write is KEEL_E_STATE): gate_store_readonly tells.
 */
KEEL_MUST_USE keel_status gate_store_open(const char *path, gate_store **out);
void gate_store_close(gate_store *st);
bool gate_store_readonly(const gate_store *st);

const char *gate_change_state_name(gate_change_state s);

/*
 * Queue a change: the commit `head` of `branch` for `target`.  A branch may
 * have one active (queued or testing) change at a time: submitting it again
 * is KEEL_E_EXISTS naming the active change.
 */
KEEL_MUST_USE keel_status gate_store_submit(gate_store *st, const char *branch, const char *head,
                                            const char *target, int priority, long long now,
                                            long long *id);
/*
 * Queued from a ref pushed to refs/keel-gate/submit/ (gate/git/pushed.c): the
 * change remembers its ref is still to be removed, until
 * gate_store_pushed_taken.  A kill between the two leaves the ref: the next
 * look at the refs finds the change by gate_store_pushed_pending (whatever
 * became of it meanwhile, landed even) and removes the ref instead of
 * queueing the same commit a second time.
 */
KEEL_MUST_USE keel_status gate_store_submit_pushed(gate_store *st, const char *branch,
                                                   const char *head, const char *target,
                                                   long long now, long long *id);
/* The latest change queued from a push of `head` to `branch` whose ref is not removed (0: none). */
KEEL_MUST_USE keel_status gate_store_pushed_pending(gate_store *st, const char *branch,
                                                    const char *head, const char *target,
                                                    long long *id);
KEEL_MUST_USE keel_status gate_store_pushed_taken(gate_store *st, long long id);
/* The ref of `branch` is now at `head`: changes pushed there at other commits are past. */
KEEL_MUST_USE keel_status gate_store_pushed_moved(gate_store *st, const char *branch,
                                                  const char *head, const char *target);

/* Withdraw a queued or testing change (KEEL_E_STATE once it has landed or was rejected). */
KEEL_MUST_USE keel_status gate_store_cancel(gate_store *st, long long id, long long now);
KEEL_MUST_USE keel_status gate_store_get(gate_store *st, long long id, gate_change *out);

/*
 * The queued changes for `target`, best first: priority plus one point per
 * `aging_s` seconds waited (so nothing starves), then submission order.
 * Fills at most `max`; *n receives how many.
 */
KEEL_MUST_USE keel_status gate_store_queued(gate_store *st, const char *target, long long now,
                                            long long aging_s, gate_change *out, size_t max,
                                            size_t *n);

/*
 * Move a queued or testing change to a new state with a reason (recorded in
 * the history).  A change that has already ended (landed, rejected,
 * conflict, cancelled: a cancel may come at any moment) is KEEL_E_STATE with
 * the detail "state", and stays as it is.
 */
KEEL_MUST_USE keel_status gate_store_set_state(gate_store *st, long long id, gate_change_state s,
                                               const char *reason, long long now);

/*
 * Take a rejection back (the scheduler's REOPEN: the ending it rested on
 * turned out to be a flake's): a rejected change is queued again, `reason`
 * its new reason, and a "reopened" event with `detail` (JSON: the evidence)
 * is recorded, in one transaction.  KEEL_E_STATE (detail "change"), nothing
 * changed, when it is not rejected, or when a newer change of its branch
 * for its target exists (its author submitted it again: that one stands).
 */
KEEL_MUST_USE keel_status gate_store_reopen(gate_store *st, long long id, const char *reason,
                                            const char *detail, long long now);

/* ---- candidates and jobs ------------------------------------------------------ */

/*
 * Record a candidate: `changes` merged in order onto `base` of `target`.  The
 * changes move to TESTING, atomically with the candidate's creation.
 */
KEEL_MUST_USE keel_status gate_store_candidate_new(gate_store *st, const char *target,
                                                   const char *base, const long long *changes,
                                                   size_t n, long long now, long long *id);
/*
 * The same for a candidate rebuilt from changes already testing in another
 * (a split batch, a candidate rebuilt after a cancel): they may be queued or
 * testing, and move to this candidate.
 */
KEEL_MUST_USE keel_status gate_store_candidate_rebuild(gate_store *st, const char *target,
                                                       const char *base, const long long *changes,
                                                       size_t n, long long now, long long *id);
/* The merge commit a candidate tests (set once it is made). */
KEEL_MUST_USE keel_status gate_store_candidate_set_merge(gate_store *st, long long id,
                                                         const char *merge);
/*
 * What a candidate lands, recorded before its compare-and-swap: its merges
 * made again onto `base` (the tip) with their messages, the last `merge`
 * (gate_land_relabel), in one statement.
 */
KEEL_MUST_USE keel_status gate_store_candidate_relabel(gate_store *st, long long id,
                                                       const char *base, const char *merge);
/* Finish a candidate: "passed", "failed", "conflict" or "abandoned". */
KEEL_MUST_USE keel_status gate_store_candidate_finish(gate_store *st, long long id,
                                                      const char *result, long long now);

/* A job: one configuration of one candidate, one attempt. */
KEEL_MUST_USE keel_status gate_store_job_start(gate_store *st, long long candidate,
                                               const char *config, int attempt, long long now,
                                               long long *id);
/*
 * How a job ran: how long its steps ran (milliseconds; -1: unknown), the
 * number of jobs the executor ran meanwhile (their harmonic mean, itself
 * included; 0: unknown) and the cores other tenants used meanwhile: the
 * evidence the scheduler learns the executor's capacity from (capacity.h),
 * kept so that the next run starts from it (gate_store_job_timings).
 */
typedef struct gate_job_timing {
    long long elapsed_ms;
    double load, others;
} gate_job_timing;

/*
 * Its result: "passed", "failed", "timeout"; exit code, the path of its log
 * and how it ran (NULL: unknown).
 */
KEEL_MUST_USE keel_status gate_store_job_finish(gate_store *st, long long id, const char *result,
                                                int exit_code, const char *log,
                                                const gate_job_timing *timing, long long now);

/*
 * Does the target contain `merge` (a candidate's merge commit)?  The store
 * knows no git: the caller answers (the gate: the target's tip is `merge` or
 * descends from it).
 */
typedef keel_status (*gate_landed_fn)(const char *merge, void *ctx, bool *landed);

typedef struct gate_recovery {
    size_t requeued;  /* changes back in the queue */
    size_t landed;    /* changes found in the target (a kill after the compare-and-swap) */
    size_t lost_jobs; /* jobs that were running */
    size_t crashed;   /* changes whose jobs were running when the gate died */
} gate_recovery;

/*
 * Put the queue of `target` back in order, touching no other target's:
 * jobs still marked running are marked "lost"; each open candidate whose
 * merge `landed` says the target contains has landed (its changes too,
 * whatever state they were left in); the other open candidates are
 * abandoned and their changes go back to the queue.  `after_crash`: the
 * gate died (this is the recovery of a new run, not a restart within one):
 * each change of a candidate whose jobs were running counts one more crash
 * (gate_change.crashes; a job of it that ends resets the count).
 * `landed` may be NULL (nothing landed).
 */
KEEL_MUST_USE keel_status gate_store_recover(gate_store *st, const char *target,
                                             gate_landed_fn landed, void *ctx, bool after_crash,
                                             long long now, gate_recovery *out);

/*
 * The target now points at `candidate`'s merge: its changes are landed and it
 * passed, in one transaction.
 */
KEEL_MUST_USE keel_status gate_store_land(gate_store *st, long long candidate, long long now);

/* ---- reading it back (status, log) ------------------------------------------------ */

enum { GATE_JOB_CONFIG_MAX = 65, GATE_JOB_STATE_MAX = 16, GATE_LOG_PATH_MAX = 512 };

typedef struct gate_job {
    long long id;
    long long candidate;
    char config[GATE_JOB_CONFIG_MAX];
    int attempt;
    char state[GATE_JOB_STATE_MAX]; /* running, passed, failed, timeout, ..., lost */
    int exit_code;
    char log[GATE_LOG_PATH_MAX];
    long long started_at, finished_at; /* seconds */
    long long elapsed_ms;              /* how long its steps ran; -1: unknown (running, old) */
} gate_job;

/*
 * Changes of `target` (NULL: every target) in state `state` (-1: all), most
 * recently updated first; at most `max`.
 */
KEEL_MUST_USE keel_status gate_store_changes(gate_store *st, const char *target, int state,
                                             gate_change *out, size_t max, size_t *n);
/*
 * The jobs of every candidate that held `change`, oldest first; `change` 0:
 * the jobs running now for `target` (NULL: every target).
 */
KEEL_MUST_USE keel_status gate_store_jobs(gate_store *st, const char *target, long long change,
                                          gate_job *out, size_t max, size_t *n);
/*
 * The configurations of which a job of `candidate` passed (any attempt), in
 * the order their first jobs started, ", " between them, into buf (a name
 * that does not fit is left out whole).
 */
KEEL_MUST_USE keel_status gate_store_candidate_passed(gate_store *st, long long candidate,
                                                      char *buf, size_t size);
/*
 * The changes of `branch` (any target), for finding a change by its branch:
 * those of `target` first, then the active (queued, testing) ones, then the
 * newest.  At most `max`.
 */
KEEL_MUST_USE keel_status gate_store_branch_changes(gate_store *st, const char *branch,
                                                    const char *target, gate_change *out,
                                                    size_t max, size_t *n);
/* The changes a candidate holds, in merge order: the first `max` of *n. */
KEEL_MUST_USE keel_status gate_store_candidate_changes(gate_store *st, long long candidate,
                                                       long long *out, size_t max, size_t *n);
/*
 * How many changes of `target` are in each state (indexed by
 * gate_change_state): the queued and testing ones, and the others last
 * updated (decided) at `since` (seconds) or later; since 0: all.
 */
KEEL_MUST_USE keel_status gate_store_count_changes(gate_store *st, const char *target,
                                                   long long since,
                                                   long long counts[GATE_CHANGE_STATES]);
/* Builds so far: distinct (candidate, attempt) pairs that ran jobs. */
KEEL_MUST_USE keel_status gate_store_count_builds(gate_store *st, long long *n);

/*
 * The target of the events that name no change ("land", "moved", "stopped",
 * ...): the gate's (an event about a change is its change's target).
 */
void gate_store_set_target(gate_store *st, const char *target);

/*
 * Append to the history: kind ("submit", "land", "reject", "flake", ...) and a
 * JSON detail (one that does not parse is recorded as {"detail_invalid":true}).
 */
KEEL_MUST_USE keel_status gate_store_event(gate_store *st, long long now, const char *kind,
                                           long long change, const char *detail_json);
/* How many events of a kind there are (tests and status). */
KEEL_MUST_USE keel_status gate_store_count_events(gate_store *st, const char *kind, long long *n);

/*
 * ---- the notify hook's feed (gate/notify.c) ----------------------------------------
 *
 * The hook hears of a target's events of kind "landed", "rejected",
 * "reopened", "conflict" and "flake" (a rejection heard after its change was
 * reopened: the reason it had then, the "reopened" event's "was"), and of the post level's "post-failed",
 * "target-red" and "target-green" (head: the commit; reason: the
 * configuration, exit and log) (written in the same transaction as the state change
 * they record) in the store's order, after a cursor per target that moves
 * only once the hook took an event: at least once across restarts, each with
 * the event's id so that a consumer can drop a duplicate.
 */
typedef struct gate_notice {
    long long id;     /* the event's: stable */
    char event[24];   /* to the hook: "land", "reject", "reopen", "conflict", "flake", ... */
    long long change; /* a flake's: the first change of its candidate */
    char branch[GATE_NAME_MAX];
    char head[GATE_OID_HEX];
    char merge[GATE_OID_HEX]; /* the landed / rejected / flaky candidate's merge; a conflict: "" */
    char reason[GATE_REASON_MAX];
    char author[128];    /* a backout event's: the culprit's author ("name <email>"); else "" */
    char committer[128]; /* and its committer (the hook gets them when not "") */
    char flow[4096];     /* a flow event's detail, JSON (flows_turn.c): names, addresses,
                            paths, the command to reproduce the merge; else "" */
} gate_notice;

/* Start target's cursor at the newest event unless it has one (what came before is no news). */
KEEL_MUST_USE keel_status gate_store_notify_start(gate_store *st, const char *target);
/* The next events for target's hook after its cursor, oldest first: at most `max`. */
KEEL_MUST_USE keel_status gate_store_notify_next(gate_store *st, const char *target,
                                                 gate_notice *out, size_t max, size_t *n);
/* The hook took `event`: the cursor moves to it. */
KEEL_MUST_USE keel_status gate_store_notify_done(gate_store *st, const char *target,
                                                 long long event);
/* The hook failed on the next event: *failures, how often now (the cursor's move forgets it). */
KEEL_MUST_USE keel_status gate_store_notify_failed(gate_store *st, const char *target,
                                                   unsigned *failures);
/*
 * Give up on `event`: a "notify-failed" event (about `change`, with
 * `detail_json`) and the cursor moved to it, in one transaction.
 */
KEEL_MUST_USE keel_status gate_store_notify_skip(gate_store *st, const char *target,
                                                 long long event, long long now, long long change,
                                                 const char *detail_json);

/*
 * What the adaptive scheduler learned of a target's queue
 * (gate_sched_memory's figures: the failure rate per change over `n`
 * changes, the flake rate per build over `flake_n` builds, both decayed
 * counts), kept across runs: written as the scheduler decides
 * (store_learned.c), read when a gate starts.
 */
typedef struct gate_learned {
    double p, n, flake, flake_n;
    long long updated_at; /* seconds */
} gate_learned;

KEEL_MUST_USE keel_status gate_store_learned_put(gate_store *st, const char *target,
                                                 const gate_learned *l, long long now);
/* *found false (and *out zeroes) when nothing was learned of `target` yet. */
KEEL_MUST_USE keel_status gate_store_learned_get(gate_store *st, const char *target,
                                                 gate_learned *out, bool *found);

/*
 * The timings of the newest `max` jobs of `target` that ran their course
 * (passed or failed) with their load recorded, oldest first, each given to
 * `fn` with its configuration and whether it passed: what the scheduler
 * learns the executor's capacity from, so that a gate started again (a new
 * `run`, an upgrade, kill -9) starts from its jobs instead of the prior.
 * fn's failure stops the visit and is returned.
 */
typedef keel_status (*gate_store_timing_fn)(void *arg, const char *config, bool passed,
                                            const gate_job_timing *timing);
KEEL_MUST_USE keel_status gate_store_job_timings(gate_store *st, const char *target, size_t max,
                                                 gate_store_timing_fn fn, void *arg);

/*
 * The endings of a target's flakes (a configuration failed with failure
 * signature `signature`, then passed on the same tree: the scheduler's
 * gate_sched_flaky), kept across runs so that a gate started again knows
 * them (store_flaky.c): a row per target, configuration and signature.
 * `config` is only meaningful with `signature`; a configuration that no
 * longer exists keeps its rows until newer ones push them out.
 */
typedef struct gate_flaky_ending {
    const char *config;           /* the configuration's name */
    unsigned long long signature; /* all 64 bits kept */
    long long seen_at;            /* seconds: when it was last written (put's `now`) */
} gate_flaky_ending;

/*
 * Endings seen at `now`, the oldest first (`seen_at` is not read): each
 * becomes the target's newest (one the store holds moves there), then only
 * the newest `keep` of the target stay.  One transaction: all or nothing.
 */
KEEL_MUST_USE keel_status gate_store_flaky_put(gate_store *st, const char *target,
                                               const gate_flaky_ending *e, size_t n, size_t keep,
                                               long long now);
/*
 * The newest `max` endings of `target`, the oldest first, each given to `fn`
 * (its strings valid during the call).  fn's failure stops the visit and is
 * returned.
 */
typedef keel_status (*gate_store_flaky_fn)(void *arg, const gate_flaky_ending *e);
KEEL_MUST_USE keel_status gate_store_flaky_endings(gate_store *st, const char *target, size_t max,
                                                   gate_store_flaky_fn fn, void *arg);

/*
 * The rejections a target's scheduler watches for their ending to turn out
 * a flake's (scheduler.h, Rejections taken back), kept across runs so that
 * a rejection made by one `run` is taken back by a later one
 * (store_flaky.c): a row per change.  What the scheduler's REJECT decision
 * said: the configuration that decided, the ending it failed with twice, its
 * last failing job, its runs and failures there.
 */
typedef struct gate_watched_rejection {
    long long change;
    const char *config;
    unsigned long long signature; /* all 64 bits kept; not 0 */
    long long job;
    unsigned runs, failures;
} gate_watched_rejection;

/*
 * A rejection watched from `now` on: the target's newest (a row of the same
 * change is replaced), then only the newest `keep` of the target stay.
 */
KEEL_MUST_USE keel_status gate_store_watch_put(gate_store *st, const char *target,
                                               const gate_watched_rejection *w, size_t keep,
                                               long long now);
/*
 * The newest `max` watched rejections of `target` whose change is still
 * rejected and whose branch was not submitted again for it since (what
 * gate_store_reopen would refuse), the oldest first, each given to `fn` (its strings valid during
 * the call).  fn's failure stops the visit and is returned.  (A reopened
 * change's row goes in gate_store_reopen's transaction.)
 */
typedef keel_status (*gate_store_watched_fn)(void *arg, const gate_watched_rejection *w);
KEEL_MUST_USE keel_status gate_store_watched(gate_store *st, const char *target, size_t max,
                                             gate_store_watched_fn fn, void *arg);

#endif /* KEEL_GATE_STORE_H */
