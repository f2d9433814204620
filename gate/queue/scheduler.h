/*
 * gate/queue/scheduler.h - keel-gate's scheduler: pure logic (no I/O, no git, no clock,
 * no threads) that turns the queue of changes and the results of builds into
 * builds to start and decisions (land, reject, flaky, cancel a build).
 *
 *   gate_sched *s;
 *   gate_sched_params p;
 *   gate_sched_params_default(&p);          // adaptive, batch 8, depth 4, 4 slots, 1 retry
 *   keel_status st = gate_sched_new(&p, &s);
 *   st = gate_sched_enqueue(s, change_id);  // in queue order
 *   bool have;
 *   gate_sched_build b;
 *   while (keel_ok(st = gate_sched_next(s, &b, &have)) && have)
 *       start b.changes merged onto b.base (0: the target's tip) as candidate b.candidate
 *   ... when a build ends:  st = gate_sched_results(s, b.candidate, runs, n);
 *       a gate_sched_run per configuration that ran: its name, passed or not,
 *       its failure signature, the caller's id of the run (its log)
 *       (or gate_sched_result(s, b.candidate, passed): one anonymous configuration;
 *       gate_sched_result_final(s, b.candidate): failed, and a retry would too)
 *   gate_sched_decision d;
 *   while (gate_sched_poll(s, &d))
 *       act on d (land, reject, report a flake, kill a build)
 *   gate_sched_delete(s);
 *
 * A candidate is an ordered list of changes built on a base: the target's tip
 * or another candidate still being tested (speculation).  Its tree is the
 * base's tree with its changes merged in order.  Every change ends landed,
 * rejected or cancelled; a change lands only in a candidate that passed and
 * whose base is the current tip, so the target never holds an untested state.
 *
 * Capacity: builds that run at once share the executor.  The scheduler
 * learns how many jobs it runs at once without slowing them (capacity.h)
 * from job timings the gate feeds it (gate_sched_timed), starting from the
 * parallelism it is told (gate_sched_params.parallel, gate_sched_capacity);
 * adaptive speculates only as far as that capacity makes it pay, and `slots`
 * is an upper bound, not a promise of free parallelism.
 *
 * Strategies (gate_strategy in config.h):
 *   serial             one change per candidate, one candidate at a time
 *   batch              up to max_batch changes per candidate, one at a time;
 *                      a failing batch is bisected on the same base
 *   speculative        a window of up to max_depth single-change candidates,
 *                      each stacked on the one before it
 *   speculative-batch  the same window, each candidate a batch
 *   adaptive           batch size and depth from the recent failure rate p
 *                      (a posterior with a weak prior) and the executor's
 *                      capacity, chosen by the expected time over that
 *                      posterior; the fixed strategies are its anchors
 *
 * Culprit isolation: a batch that fails at the front (its base is the tip) is
 * split; its first half is built alone on the same base.  If that passes it
 * lands, and the second half, now known to fail on the new tip, is split in
 * turn; a single change known to fail is built alone once more, and rejected
 * when that build fails too (below).  Candidates stacked on a failed one are
 * cancelled and rebuilt without it.
 *
 * Flakes: verdicts are per configuration, on one tree (one candidate): a
 * configuration that failed and then passed there is flaky (the tree passes
 * it); a candidate fails only by a configuration that failed on every run it
 * had there.  A retry (same candidate, attempt + 1, once everything below it
 * has landed) runs only the configurations that failed (the build's
 * `configs`).  A configuration has `retries` reruns on a tree, except that
 * two failures with the same signature end it at once (not a flake: a retry
 * would repeat it) — `flaky_alike` of them on a configuration seen to flake
 * lately (an ending of it among gate_sched_flaky_endings; 3: two alike may
 * be two flakes, so one more run, whatever `retries` is left) — and failures that all end differently (suspect flakes)
 * earn up to GATE_SCHED_SUSPECT_EXTRA more runs, until two agree; a repeat
 * of an ending the configuration flaked with lately (gate_sched_flaky_endings)
 * counts as a different one, and so does any repeat on a configuration that
 * passed on a tree holding the candidate's changes (a candidate stacked on it,
 * or on the batch it was split from, whatever its other configurations did: a
 * broken change fails every tree that holds it).  Fail-then-pass is a FLAKY decision and never
 * rejects a change.
 *
 * Rejections taken back: a change rejected because a configuration failed
 * alone on the tip twice with the same signature (GATE_SCHED_WHY_SAME, no
 * other configuration failing for good there) is watched, the newest
 * GATE_SCHED_REOPEN_WATCH of them, until it is queued again
 * (gate_sched_enqueue: a rejection the caller never carried out, say, when a
 * restart dropped its REJECT).  When that signature later turns out to
 * be a flake's (a configuration, any, fails with it and then passes on one
 * tree), the scheduler takes the rejection back: a REOPEN decision names the
 * change, the flake's evidence and the rejection's.  It does not queue the
 * change itself: the caller queues it again (gate_sched_enqueue) when it may
 * (the change was not submitted anew meanwhile, say).  A change is reopened
 * at most once per rejection; its new failure with that ending, now known as
 * a flake's (of the rejected configuration too: the REOPEN teaches it), earns
 * the extra runs of suspect flakes (above) before it can be rejected again.
 * A REOPEN follows the FLAKY of the tree that showed the flake when that
 * tree passed, and comes alone when another configuration fails it.  A watched REJECT carries its ending (`signature`) so that
 * the caller can keep it for the next scheduler of the queue
 * (gate_sched_recall_watched); gate_sched_inherit passes the watch on.
 *
 * A change is rejected only when a candidate of that change alone, at the
 * front (on the target's tip), failed for good: a change that bisection
 * isolates from a failed batch is built alone once more (its failure must
 * repeat there), and the decision carries both verdicts.  A verdict names
 * the configuration that decided (never a flake on the way), its runs and
 * failures there, why it ended, and the caller's id of its last failing run.
 * Fixed strategies stack nothing new while a failure waits for its retry.
 * Adaptive weighs a failed single change: when bad is likelier than flaky
 * (the estimated p against (1 - p) f^k, f the flake rate it sees, k the
 * failures) and the candidates built on it failed too, the window goes on
 * without it during the retry; a retry that passes lands it and rebuilds
 * what went on without it.
 *
 * Pointers in a gate_sched_build or gate_sched_decision stay valid until the
 * next call on the scheduler; copy what you keep.
 *
 * (The header is scheduler.h, not sched.h: gate/ is on the include path and
 * a gate/sched.h would hide the system's <sched.h> from <pthread.h>.)
 */
#ifndef KEEL_GATE_SCHEDULER_H
#define KEEL_GATE_SCHEDULER_H

#include "keel/keel.h"

#include "config.h"

typedef struct gate_sched gate_sched; /* opaque */

/* The ranges .keel/gate.conf accepts. */
enum {
    GATE_SCHED_MAX_BATCH = 1024,
    GATE_SCHED_MAX_DEPTH = 256,
    GATE_SCHED_MAX_SLOTS = 256,
    GATE_SCHED_MAX_RETRIES = 10
};

/* The depths whose pace (gate_sched_clock) is measured apart: deeper ones share the last. */
enum { GATE_SCHED_PACE_DEPTHS = 8 };

typedef struct gate_sched_params {
    gate_strategy strategy;
    unsigned max_batch; /* most changes in one candidate (>= 1) */
    unsigned max_depth; /* most candidates tested ahead of the tip (>= 1) */
    unsigned slots;     /* builds running at once (>= 1) */
    unsigned retries;   /* reruns of a failed build before anything is blamed */
    /*
     * The failures alike that end a tree of a configuration seen to flake
     * lately (an ending of it among gate_sched_flaky_endings): 2 (the
     * default: two alike are not a flake) or 3 (two alike may be two
     * flakes: one more run, whatever `retries` is left).  Elsewhere 2.
     */
    unsigned flaky_alike;
    double prior_p; /* adaptive: the failure rate assumed before any outcome, (0, 1) */
    /*
     * The executor's parallelism, in jobs (a configuration's run is a job):
     * how many run at once without slowing each other (local: the cores, at
     * most the slots; a cluster: its free slots).  0: not limited (every
     * build takes its time however many run).  A prior: the scheduler learns
     * the real figure from gate_sched_timed.
     */
    double parallel;
    /*
     * The jobs a build runs (its configurations at level gate), as the
     * configuration says before any build ran: 1 .. GATE_MAX_CONFIGS; 0: not
     * known (1 until a first build's result tells).  A build's result tells
     * it again (gate_sched_result).  With it the first window is sized for
     * builds of that many jobs: on 2 cores, builds of 2 configurations one
     * at a time, not two that halve each other's speed.
     */
    unsigned jobs;
} gate_sched_params;

/*
 * A configuration's name, as config.h's GATE_CONFIG_NAME_MAX; the extra runs
 * a configuration whose failures on one tree all end differently earns.
 */
enum { GATE_SCHED_NAME_MAX = 65, GATE_SCHED_SUSPECT_EXTRA = 5 };

/* The rejections a scheduler watches for a flake's ending (Rejections taken back, above). */
enum { GATE_SCHED_REOPEN_WATCH = 32 };

/* A build to start: `changes` merged in order onto `base`. */
typedef struct gate_sched_build {
    long long candidate;      /* > 0, chosen by the scheduler */
    long long base;           /* 0: the target's tip; else the candidate stacked on */
    const long long *changes; /* in queue order */
    size_t n;
    unsigned attempt; /* 1 for the first build of a candidate, 2.. for retries */
    /* a retry: only these configurations run again (nconfigs 0: all of them) */
    const char *const *configs;
    size_t nconfigs;
} gate_sched_build;

/* One configuration's run in a build (gate_sched_results). */
typedef struct gate_sched_run {
    const char *config; /* its name (copied; "" for gate_sched_result's) */
    bool passed;
    /* a failure's signature (gate_log_signature: its log's last lines, normalised); 0: unknown */
    unsigned long long signature;
    long long job; /* the caller's id of this run (its log), kept as evidence */
} gate_sched_run;

/* Why a configuration failed a tree for good. */
typedef enum gate_sched_why {
    GATE_SCHED_WHY_NONE,
    GATE_SCHED_WHY_RUNS, /* failed on every run it had (`retries` spent; a signature unknown) */
    GATE_SCHED_WHY_SAME, /* failed twice with the same signature: not a flake, no more runs */
    /* failed on every run, each differently or as it flaked before, its extra runs spent too */
    GATE_SCHED_WHY_DIFFERENT,
    GATE_SCHED_WHY_FINAL, /* failed in a way a retry repeats (gate_sched_result_final) */
    /*
     * failed alike on every run though a tree holding its changes passed that
     * configuration (a candidate stacked on it), its extra runs spent too
     */
    GATE_SCHED_WHY_HELD
} gate_sched_why;

/* A configuration's verdict on one candidate's tree: the evidence of a decision. */
typedef struct gate_sched_verdict {
    char config[GATE_SCHED_NAME_MAX]; /* "" when none (or gate_sched_result's) */
    long long candidate;              /* the tree */
    unsigned runs, failures;          /* its runs there, and how many failed */
    long long job;                    /* the caller's id of its last failing run (0: none) */
    gate_sched_why why;               /* REJECT: why it failed for good */
} gate_sched_verdict;

typedef enum gate_sched_kind {
    GATE_SCHED_LAND,         /* `changes` land; `candidate`'s tree becomes the tip */
    GATE_SCHED_REJECT,       /* `change` is rejected; `candidate`'s failing logs blame it */
    GATE_SCHED_FLAKY,        /* `candidate` failed, then passed on the same tree */
    GATE_SCHED_CANCEL_BUILD, /* `candidate`'s running build no longer matters: stop it */
    /* `change`, rejected before, was a flake's victim: `candidate` flaked with its ending */
    GATE_SCHED_REOPEN
} gate_sched_kind;

typedef struct gate_sched_decision {
    gate_sched_kind kind;
    long long candidate;
    long long change;         /* REJECT */
    const long long *changes; /* LAND, in queue order */
    size_t n;
    /*
     * REJECT: the configuration that failed `candidate` (the change alone on
     * the tip) for good.  FLAKY: the first configuration that failed, then
     * passed, on `candidate`.
     */
    gate_sched_verdict decided;
    /*
     * REJECT of a change that bisection isolated: the size of the batch whose
     * failure blamed it (0: it was built alone from the start) and that
     * batch's verdict.
     */
    size_t batch_n;
    gate_sched_verdict batch;
    /*
     * REOPEN: `decided` is the flake's verdict (the configuration that
     * failed on `candidate` with the rejection's ending, then passed there;
     * `job` its failing run), `rejected` the rejection's (as its REJECT
     * decision's `decided`), `signature` the ending both share.  REJECT:
     * `signature` is the ending the rejection is watched for (0: not
     * watched), what a caller keeps for gate_sched_recall_watched.
     */
    gate_sched_verdict rejected;
    unsigned long long signature;
} gate_sched_decision;

typedef struct gate_sched_stats {
    unsigned long long builds;           /* builds started, retries included */
    unsigned long long retries;          /* of which reruns of a failed build */
    unsigned long long cancelled_builds; /* CANCEL_BUILD decisions */
    unsigned long long candidates;       /* distinct candidates built */
    unsigned long long landed;           /* changes */
    unsigned long long rejected;         /* changes */
    unsigned long long cancelled;        /* changes withdrawn */
    unsigned long long flaky;            /* FLAKY decisions */
    unsigned long long reopened;         /* REOPEN decisions (rejections taken back) */
    size_t queued;                       /* changes waiting */
    size_t testing;                      /* changes in the window */
    unsigned running;                    /* builds running */
    double p;                            /* estimated failure rate per change */
    unsigned batch;                      /* batch size the strategy uses now */
    unsigned depth;                      /* speculation depth the strategy uses now */
    double parallel;   /* jobs the executor runs at once without slowing them (learned), now */
    double machine;    /* the same with no other tenant (parallel: this less the others') */
    double others;     /* the cores other tenants used lately (the newest timings' mean) */
    unsigned jobs;     /* jobs in a build (configurations: told, params.jobs, or learned) */
    double width;      /* a build's work in units of its longest job (gate_cap_width) */
    double fail_time;  /* a failed build's time over a pass's (gate_cap_fail_cost) */
    double fail_work;  /* and its work over a pass's */
    double retry_time; /* its retry's time over a pass's (gate_cap_retry_cost) */
    double retry_work; /* and its work */
    double flake;      /* the part of builds that failed spuriously (flake_rate) */
    unsigned timed;    /* job timings in the estimate's window */
    /*
     * Per depth 1 .. GATE_SCHED_PACE_DEPTHS (deeper windows share the last):
     * the gate's measured time per change decided over the model's (1: none
     * measured, the prior), what adaptive multiplies the model's time by.
     */
    double pace[GATE_SCHED_PACE_DEPTHS];
} gate_sched_stats;

/*
 * Adaptive, max_batch 8, max_depth 4, 4 slots, 1 retry, flaky_alike 2, prior
 * 0.1 (worth 2 changes), not limited, a build's jobs not known.
 */
void gate_sched_params_default(gate_sched_params *p);

/* KEEL_E_INVAL when a parameter is out of range (the message names it). */
KEEL_MUST_USE keel_status gate_sched_new(const gate_sched_params *p, gate_sched **out);
void gate_sched_delete(gate_sched *s);

/* Queue a change (ids > 0, unique among active changes: KEEL_E_EXISTS otherwise). */
KEEL_MUST_USE keel_status gate_sched_enqueue(gate_sched *s, long long change);
/*
 * Queue a change that is built alone, never in a batch with others (a
 * suspect: the gate died while testing it, so that a crash it causes again
 * is its own and no other change shares the blame).  Speculation may still
 * stack other candidates on it.
 */
KEEL_MUST_USE keel_status gate_sched_enqueue_alone(gate_sched *s, long long change);
/*
 * Withdraw a queued or testing change.  Candidates containing it, and those
 * stacked on them, are dropped (CANCEL_BUILD for running ones) and rebuilt
 * without it.  KEEL_E_NOTFOUND when the change is not active.
 */
KEEL_MUST_USE keel_status gate_sched_cancel(gate_sched *s, long long change);

/*
 * The next build to start: *have is false when no slot is free or there is
 * nothing useful to build now.  Retries come before new candidates.
 */
KEEL_MUST_USE keel_status gate_sched_next(gate_sched *s, gate_sched_build *out, bool *have);

/*
 * A build of `candidate` ended: `runs` holds a result per configuration that
 * ran (those the build named; n 0: nothing required ran, it passed).
 * Results of builds the scheduler cancelled are ignored; KEEL_E_NOTFOUND for
 * an id it never gave, KEEL_E_STATE for a candidate that is not running,
 * KEEL_E_INVAL for a name of GATE_SCHED_NAME_MAX bytes or more.
 */
KEEL_MUST_USE keel_status gate_sched_results(gate_sched *s, long long candidate,
                                             const gate_sched_run *runs, size_t n);

/* gate_sched_results with one configuration "" whose signature is unknown. */
KEEL_MUST_USE keel_status gate_sched_result(gate_sched *s, long long candidate, bool passed);

/*
 * A build of `candidate` failed in a way a retry would repeat (the same tree
 * gives the same failure: its configuration does not parse): as
 * gate_sched_result(s, candidate, false), and no retry, as if every retry
 * had failed.  A candidate at the front is then known bad at once (split, or
 * its single change rejected).
 */
KEEL_MUST_USE keel_status gate_sched_result_final(gate_sched *s, long long candidate);

/*
 * The executor's parallelism changed (as gate_sched_params.parallel; a
 * cluster's free slots, say): the new prior of the capacity estimate.
 */
void gate_sched_capacity(gate_sched *s, double parallel);

/*
 * A job passed: its configuration, its wall time and the harmonic mean of
 * the number of jobs the executor ran meanwhile, itself included (the gate
 * measures both; the scheduler keeps no clock).  The capacity estimate
 * (capacity.h) learns from the last GATE_CAP_OBS of them.
 */
void gate_sched_timed(gate_sched *s, const char *config, double elapsed_ms, double load);
/*
 * A job the gate timed, as gate_sched_job_timed takes it.  `others`: the
 * cores the machine's other tenants (processes not the gate's) used
 * meanwhile on average (gate_others_cores; 0 when unknown): the estimate
 * learns the machine's parallelism apart from them and plans for what they
 * leave now (capacity.h).
 */
typedef struct gate_sched_job_time {
    const char *config;
    double elapsed_ms, load, others;
    bool passed; /* false: it failed, and may have stopped at its first error */
} gate_sched_job_time;

/*
 * A job ran to a result (not cancelled).  A job that passed is learned
 * from; a failed one only when it took at least GATE_CAP_RAN_COURSE (0.75)
 * of the time the estimate gives a pass of its configuration at its load (it
 * ran its course: a test
 * that failed at the end).  A failure may stop at its first error (a broken
 * change's build fails in a tenth of a second where it passes in seconds),
 * and such times read as jobs that do not slow down when many run at once.
 * gate_sched_timed is this for a job that passed, `others` 0.
 */
void gate_sched_job_timed(gate_sched *s, const gate_sched_job_time *t);
/*
 * How many job timings the capacity estimate remembers (GATE_CAP_OBS): a new
 * scheduler fed the newest this many of an earlier run's knows what its
 * predecessor knew of the executor.
 */
size_t gate_sched_timings_kept(void);

/*
 * The gate's clock (ms, any origin, never going back): the time since the
 * last call passed with the builds now running, at the depth in use.  With
 * the decisions made meanwhile it measures how fast each depth really
 * decides changes against what the model expects (the pace: gate_sched_stats),
 * which adaptive's choice then counts (gate_sched_shape).  Calls that find
 * nothing running only move the clock.  Fed at every event: a job's end and
 * before builds start (gate_sched_next), so that the time since the last
 * reading was spent with the builds running then.  Decisions count once a job
 * was timed (gate_sched_timed: the unit of time), the time whenever it ran.
 */
void gate_sched_clock(gate_sched *s, double now_ms);

/*
 * What `from` learned of the executor (its capacity, a build's jobs unless
 * to's parameters say them) and of its configurations' flakes (the endings
 * they flaked with, and gate_sched_flaky_seen's count) goes to `to`.
 */
void gate_sched_inherit(gate_sched *to, const gate_sched *from);

/*
 * What adaptive learned of its queue, for the next scheduler of the same
 * queue (a gate started again: gate_sched_recall).  Both rates are the
 * decayed counts' own, without the priors: `p` over `n` changes decided (each
 * outcome's weight decays by 0.98 per change decided after it, so n stays
 * below 50), `flake` the share of the builds of candidates that passed in the
 * end that failed, over `flake_n` such builds (decayed alike per candidate).
 */
typedef struct gate_sched_memory {
    double p, n;           /* the failure rate per change, [0, 1]; its changes, >= 0 */
    double flake, flake_n; /* the spurious failures per build, [0, 1]; its builds, >= 0 */
} gate_sched_memory;

/*
 * The most a memory counts for when recalled: changes for p, builds for the
 * flake rate (about half of what decay keeps), so that the first outcomes of
 * a queue that changed since move the estimate at once, and those of the
 * next GATE_SCHED_RECALL_CHANGES changes or so outweigh it.
 */
enum { GATE_SCHED_RECALL_CHANGES = 25, GATE_SCHED_RECALL_BUILDS = 25 };

void gate_sched_remember(const gate_sched *s, gate_sched_memory *out);
/*
 * A memory carried in (gate_sched_remember's of an earlier scheduler of the
 * queue, at most GATE_SCHED_RECALL_CHANGES and GATE_SCHED_RECALL_BUILDS of
 * weight): its counts join the estimates' as if the scheduler had seen them,
 * and fade as they do.  Meant before the first build; values out of range
 * (a damaged store's) are ignored.
 */
void gate_sched_recall(gate_sched *s, const gate_sched_memory *m);

/*
 * The endings of flakes a scheduler knows (Flakes, above: a configuration
 * failed with that signature, then passed on the same tree; a failure that
 * repeats one is no evidence of a real failure): the GATE_SCHED_FLAKY_ENDINGS
 * seen last, the oldest going first.  An ending is a configuration's: the
 * same signature of another configuration is another ending.
 */
enum { GATE_SCHED_FLAKY_ENDINGS = 64 };

typedef struct gate_sched_flaky {
    char config[GATE_SCHED_NAME_MAX]; /* the configuration's name */
    unsigned long long signature;     /* its failure's signature (not 0) */
    /* gate_sched_flaky_seen's count when it was learned or last seen again; 0: recalled */
    unsigned long long seen;
} gate_sched_flaky;

/*
 * How many times the scheduler learned an ending or saw one it knew again
 * (each flake's failures count one each): the caller keeps the endings
 * whose `seen` is above the count it last kept (for a gate started again:
 * gate_sched_recall_flaky), and nothing when the count has not moved.
 */
unsigned long long gate_sched_flaky_seen(const gate_sched *s);
/*
 * Its endings, the oldest first (the newest last), at most `max` of them
 * into `out`; returns how many it knows (at most GATE_SCHED_FLAKY_ENDINGS).
 */
size_t gate_sched_flaky_endings(const gate_sched *s, gate_sched_flaky *out, size_t max);
/*
 * Endings carried in, the oldest first (an earlier scheduler's of the same
 * queue, gate_sched_flaky_endings's, kept across runs): known from now on as
 * if seen in that order before anything this scheduler sees, `seen` 0 (they
 * are not new: gate_sched_flaky_seen does not move).  Meant before the first
 * build.  One whose signature is 0, whose name is not terminated or that it
 * knows already is ignored; one of a configuration that no longer exists
 * never matches a failure, and goes as newer endings come.
 */
void gate_sched_recall_flaky(gate_sched *s, const gate_sched_flaky *e, size_t n);

/*
 * A watched rejection (Rejections taken back, above), as a caller keeps it
 * across runs: the change, its REJECT decision's `decided` (the candidate
 * means nothing to another scheduler) and `signature`.
 */
typedef struct gate_sched_watched {
    long long change;
    gate_sched_verdict rejected;
    unsigned long long signature;
} gate_sched_watched;

/*
 * Rejections carried in, the oldest first (an earlier scheduler's of the
 * same queue, kept across runs): watched from now on as if this scheduler
 * had made them, the newest GATE_SCHED_REOPEN_WATCH kept.  Meant before the
 * first build; one whose change is not positive, whose signature is 0, whose
 * configuration's name is not terminated or whose change it watches already
 * is ignored.  The caller passes only changes that are still rejected.
 */
void gate_sched_recall_watched(gate_sched *s, const gate_sched_watched *w, size_t n);

/* The oldest decision not yet taken: false when there is none. */
bool gate_sched_poll(gate_sched *s, gate_sched_decision *out);

/*
 * What it has done and the shape it uses now: the one gate_sched_next last
 * cut by when nothing it chose on changed since (the gate's loop asks at
 * every turn), else the strategy's choice for the estimates of now.
 */
void gate_sched_stats_get(const gate_sched *s, gate_sched_stats *out);
/* Its pace at `depth` (0: depth 1's; deeper than the last: the last's). */
double gate_sched_stats_pace(const gate_sched_stats *st, unsigned depth);

const char *gate_sched_kind_name(gate_sched_kind k);
const char *gate_sched_why_name(gate_sched_why w);

/* What the shape of the window depends on besides the parameters. */
typedef struct gate_sched_outlook {
    double p;              /* the estimated failure rate per change, (0, 1) */
    double n;              /* the evidence it rests on, in changes, prior included (> 0) */
    size_t queued;         /* changes waiting */
    double parallel;       /* jobs the executor runs at once without slowing them (> 0) */
    unsigned jobs;         /* jobs in a build (>= 1) */
    double width;          /* its work in units of its longest job (1 .. jobs: gate_cap_width) */
    double fail_time;      /* a failed build's time over a pass's, (0, 1] (0: 1) */
    double fail_work;      /* its work over a pass's, (0, 1] (0: 1): gate_cap_fail_cost */
    double retry_time;     /* its retry's time over a pass's, (0, 1] (0: fail_time) */
    double retry_work;     /* and work (0: fail_work): gate_cap_retry_cost */
    double flake;          /* the part of builds that fail spuriously, [0, 1) */
    unsigned batch, depth; /* adaptive: the shape in use (0: none), kept while near the best */
    /* per depth (index depth - 1, the last for deeper): measured time over the model's; 0: 1 */
    double pace[GATE_SCHED_PACE_DEPTHS];
} gate_sched_outlook;

/*
 * The shape a strategy gives the window now: changes per new candidate and
 * candidates tested ahead of the tip (sched_strategy.c).  Adaptive takes
 * the shape that least exceeds issue 21's bound (1.05 times the time, 1.1
 * times the builds) against the fastest of the fixed strategies' shapes,
 * expected over the posterior Beta(p n, (1 - p) n) of the failure rate
 * (where the executor cannot run the deepest window at once and a failed
 * build takes about what a pass does, at the posterior's points where serial
 * is the fastest fixed shape the time's excess is its worst decile's too);
 * among those within 2% of the fastest, the fewest builds (the shape in use
 * kept while about as good); then single changes in the deepest window the
 * executor runs at once when as good.
 * Each shape's time is the model's (a round of d candidates, each `width`
 * of its longest job in work, taking max(1, d width / parallel) times that
 * job alone: capacity.h; the isolation, retries and flakes as sched.c runs
 * them) times the pace measured at depth d (o->pace).  docs/gate.md,
 * Adaptive.
 */
void gate_sched_shape(const gate_sched_params *params, const gate_sched_outlook *o, unsigned *batch,
                      unsigned *depth);

/*
 * The model's expected time per change decided with `batch` changes per
 * candidate and `depth` candidates, in units of a build's longest job alone,
 * over the posterior as gate_sched_shape weighs it, the pace not counted.
 */
double gate_sched_shape_time(const gate_sched_params *params, const gate_sched_outlook *o,
                             unsigned batch, unsigned depth);

/* The model's expected builds per change decided, the same way. */
double gate_sched_shape_builds(const gate_sched_params *params, const gate_sched_outlook *o,
                               unsigned batch, unsigned depth);

/*
 * The same when every change passes (no failure in any round): the part of
 * that time a landed change takes; a rejected one takes the rest
 * (gate_sched_shape_time's t = (1 - p) pass + p reject), so that the pace
 * compares the time taken with what the model expects of the outcomes that
 * happened, not of the average.
 */
double gate_sched_shape_pass_time(const gate_sched_params *params, const gate_sched_outlook *o,
                                  unsigned batch, unsigned depth);

#endif /* KEEL_GATE_SCHEDULER_H */
