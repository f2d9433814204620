/*
 * gate/queue/culprit.h - which commit broke a configuration on the target:
 * a flake-aware Bayesian search, pure logic (no I/O, no git, no clock, no
 * threads, no randomness: the caller starts the builds and feeds their
 * results), in the manner of Henderson et al., "Flake Aware Culprit Finding"
 * (Google, 2023).
 *
 *   gate_culprit_params p;
 *   gate_culprit_params_default(&p);
 *   p.n = 12; p.flake = 0.05;               // commits 1..12, the 12th seen failing
 *   gate_culprit *c;
 *   keel_status st = gate_culprit_new(&p, &c);
 *   unsigned todo[4];
 *   size_t k;
 *   st = gate_culprit_next(c, 4, todo, &k); // build todo[0..k-1] now (idle slots)
 *   ... a build ends:  st = gate_culprit_result(c, commit, failed);  (any order)
 *   gate_culprit_verdict v;
 *   gate_culprit_verdict_get(c, &v);        // v.state, v.commit, v.top[] ...
 *   gate_culprit_delete(c);
 *
 * The range: commit 0 is the last commit known to pass the configuration
 * (its pass counts as one run), commit n the first seen failing (its failure
 * counts as one run and is the search's first evidence); the culprit is one
 * of 1..n, commit i's parent is i - 1.
 *
 * The model: a commit is good or bad; once a commit is bad every later one in
 * the range is (the break stays until it is backed out).  A good commit's
 * build fails spuriously with probability f (`flake`, the configuration's
 * measured flake rate); a bad commit's build passes with probability g
 * (`intermittent`, a break that only sometimes shows), 0 by default: a bad
 * commit's build always fails.  With g = 0 one pass of a broken commit
 * rules out every hypothesis up to it: if the break really shows only
 * sometimes, the search blames a later commit whose parent's one pass was
 * the broken commit's (bench_culprit --intermittent: with breaks passing
 * 5% of the time and 5% flakes, 21-42% of its verified culprits are wrong
 * when it is told g = 0; told g, 1 in 72,000 searches, within 1 -
 * confidence).  Set g whenever a break may hide.
 *
 * Hypotheses: H_k "commit k is the first bad one" for k = 1..n, and
 * H_{n+1} "no culprit: every failure was a flake".  The prior is
 * uniform over the n + 1 hypotheses before the first failure; under H_k a
 * build of commit i fails with probability 1 - g when i >= k and f when
 * i < k, so with g = 0 a pass at i rules out every k <= i, and a failure
 * at i multiplies the hypotheses k > i by f.  f = 0 is taken as 1e-9 (a
 * failure contradicting every hypothesis still leaves the posterior
 * defined).
 *
 * Choosing builds: by expected information gain.  Given the builds in flight
 * (their results still to come), the next commit is the one whose result,
 * together with theirs, tells most about the hypothesis (the mutual
 * information of the posterior and the joint outcome, computed exactly over
 * the segments the builds cut the range into).  It is chosen over the
 * posterior median because it also weighs the flake hypothesis and the
 * value of a rerun: with f = 0 it is bisection, with flakes it rebuilds a
 * commit whose failure may have been spurious when that tells more than a
 * new commit does, and with builds in flight it chooses knowing that their
 * results are still to come (a median ignores them: it would name the
 * running commit again, or its neighbour).  The cost per candidate grows
 * with the builds in flight m: m^3 with g = 0, 2^m m^2 with g > 0.  A commit is never returned
 * while a build of it is running; at most GATE_CULPRIT_MAX_FLIGHT are.
 *
 * Verdicts (gate_culprit_state): SUSPECTED when a commit's posterior reaches
 * `suspicion` (0.5 by default: the most likely commit, more likely than all
 * the others together; set it to `confidence` to suspect only a commit the
 * posterior is sure of).  Then verification, separate and stricter: commit
 * k must fail fail_runs more times, in builds that end after the suspicion
 * (none of the runs that raised it count), and not pass since (a pass,
 * which only g > 0 survives, starts the count again), where fail_runs is
 * the least m with f^m <= 1 - confidence (the chance that a good commit
 * looked broken that often); its parent must pass: with g = 0, parent_runs
 * times in all (1 by default: a bad commit never passes, so a pass is no
 * flake; a caller may ask for more); with g > 0, max(parent_runs, the
 * least m with g^m <= 1 - confidence) times since the suspicion (the
 * chance that a broken parent looked good that often); and k's posterior
 * must reach `confidence`
 * (when the runs of verification leave it below, the search goes on with
 * k still suspected).  Only then VERIFIED, and only a verified culprit may
 * be reverted.  A wrong verified culprit needs both a posterior that erred
 * (at most 1 - confidence when the model holds) and fail_runs fresh flakes
 * in a row (f^fail_runs).  The suspicion drops when another hypothesis
 * becomes the most likely or k falls below `suspicion` (k passing does
 * that), and a new suspicion counts its fresh runs from then.
 * NO_CULPRIT when the posterior of H_{n+1} reaches `confidence`.  GAVE_UP
 * when the budget of builds is spent without either (or no build would
 * tell anything more, which only a posterior at its numerical limits can
 * reach): the posterior's top 3 are the report.  A verdict waits for every
 * build in flight (a late result could change it), no new build starts
 * while it waits, and it is final: no build starts after it.
 *
 * Two culprits in one range: the search finds the FIRST bad commit (under
 * the model every commit after it fails whatever the later ones did).  If
 * the first break was fixed inside the range before the second came, the
 * history is outside the model; a verified culprit is then still a commit
 * that failed fail_runs times whose parent passed.
 *
 * Evidence: every decision is logged (gate_culprit_log): the builds
 * started, each result with the run it was at that commit and the
 * posterior's top 3 after it, suspicions, verdicts.
 *
 * Memory: module gate_sched's heap (heaps.h), as the scheduler's.
 */
#ifndef KEEL_GATE_CULPRIT_H
#define KEEL_GATE_CULPRIT_H

#include "keel/keel.h"

typedef struct gate_culprit gate_culprit; /* opaque */

enum {
    GATE_CULPRIT_MAX_N = 65536,       /* commits in a range */
    GATE_CULPRIT_MAX_BUDGET = 100000, /* builds */
    GATE_CULPRIT_MAX_FLIGHT = 8,      /* builds in flight at once (next() gives no more) */
    GATE_CULPRIT_MAX_PARENT_RUNS = 20,
    GATE_CULPRIT_TOP = 3,   /* suspects reported */
    GATE_CULPRIT_TEXT = 200 /* a log line, with its NUL */
};

typedef struct gate_culprit_params {
    unsigned n;           /* commits 1..n in the range, n the first seen failing (1..MAX_N) */
    double flake;         /* f: a good commit's build fails spuriously, in [0, 0.5) */
    double intermittent;  /* g: a bad commit's build passes, in [0, 0.5) (0: never) */
    double confidence;    /* of a verdict, in [0.5, 1): 0.9999 by default */
    double suspicion;     /* the posterior at which verification starts, [0.5, confidence] */
    unsigned budget;      /* builds at most, in [1, MAX_BUDGET] */
    unsigned parent_runs; /* passes of the culprit's parent verification needs, 1..20 */
} gate_culprit_params;

typedef enum gate_culprit_state {
    GATE_CULPRIT_SEARCHING,
    GATE_CULPRIT_SUSPECTED,  /* `commit` passed the suspicion, being verified */
    GATE_CULPRIT_VERIFIED,   /* final: `commit` is the culprit */
    GATE_CULPRIT_NO_CULPRIT, /* final: the failure was a flake */
    GATE_CULPRIT_GAVE_UP     /* final: the budget is spent; `top` are the suspects */
} gate_culprit_state;

typedef struct gate_culprit_suspect {
    unsigned commit; /* 1..n; n + 1: no culprit; 0: none (fewer hypotheses left) */
    double p;        /* its posterior */
} gate_culprit_suspect;

typedef struct gate_culprit_verdict {
    gate_culprit_state state;
    unsigned commit;                            /* SUSPECTED, VERIFIED: the culprit; else 0 */
    double p;                                   /* its posterior (NO_CULPRIT: that of no culprit) */
    gate_culprit_suspect top[GATE_CULPRIT_TOP]; /* the posterior's most likely, best first */
    unsigned builds;                            /* builds started */
    unsigned running;                           /* builds in flight */
    unsigned fail_runs;   /* failures of the culprit verification needs (from f) */
    unsigned parent_runs; /* passes of its parent it needs */
    /* SUSPECTED, VERIFIED: the commit's runs and failures, those since it was suspected */
    unsigned runs, fails, fresh_fails;
    unsigned parent_passes; /* and its parent's passes */
} gate_culprit_verdict;

typedef enum gate_culprit_event_kind {
    GATE_CULPRIT_EV_START,     /* the range; commit n's failure */
    GATE_CULPRIT_EV_BUILD,     /* a build of `commit` started */
    GATE_CULPRIT_EV_RESULT,    /* a build of `commit` ended: `failed`, its `run`th there */
    GATE_CULPRIT_EV_ABANDONED, /* a build of `commit` ended without a result */
    GATE_CULPRIT_EV_SUSPECTED, /* `commit` passed the suspicion */
    GATE_CULPRIT_EV_CLEARED,   /* `commit` is suspected no more */
    GATE_CULPRIT_EV_VERIFIED,
    GATE_CULPRIT_EV_NO_CULPRIT,
    GATE_CULPRIT_EV_GAVE_UP
} gate_culprit_event_kind;

/* One decision and its evidence. */
typedef struct gate_culprit_event {
    gate_culprit_event_kind kind;
    unsigned commit;
    bool failed;  /* RESULT */
    unsigned run; /* RESULT: the how-manieth run of `commit` it was (the given ones included) */
    gate_culprit_suspect top[GATE_CULPRIT_TOP]; /* the posterior after it */
    char text[GATE_CULPRIT_TEXT]; /* "c5 failed (run 3); posterior c5 0.62 c6 0.31 none 0.05" */
} gate_culprit_event;

/*
 * budget 64, flake 0, intermittent 0, confidence 0.9999, suspicion 0.5,
 * parent_runs 1; n 0 (the caller's).
 */
void gate_culprit_params_default(gate_culprit_params *p);

/* KEEL_E_INVAL when a parameter is out of range (the message names it). */
KEEL_MUST_USE keel_status gate_culprit_new(const gate_culprit_params *p, gate_culprit **out);
void gate_culprit_delete(gate_culprit *c);

/*
 * Up to `max` commits to build now (out[0..*n-1], each started: counted
 * against the budget and in flight until its result), none in flight
 * already; *n 0 when nothing should start now (the budget is spent, the
 * search waits for the builds in flight, or a verdict is final).  At most
 * GATE_CULPRIT_MAX_FLIGHT builds are in flight at once.
 */
KEEL_MUST_USE keel_status gate_culprit_next(gate_culprit *c, size_t max, unsigned *out, size_t *n);

/*
 * A build of `commit` ended: failed or passed.  KEEL_E_RANGE for a commit
 * beyond n, KEEL_E_STATE for one not in flight.
 */
KEEL_MUST_USE keel_status gate_culprit_result(gate_culprit *c, unsigned commit, bool failed);

/*
 * A build of `commit` ended without a result (its executor died, it was
 * cancelled): no longer in flight, its build stays counted.  Errors as
 * gate_culprit_result's.
 */
KEEL_MUST_USE keel_status gate_culprit_abandon(gate_culprit *c, unsigned commit);

void gate_culprit_verdict_get(const gate_culprit *c, gate_culprit_verdict *out);

/* The posterior of H_k, k in 1..n + 1 (n + 1: no culprit); 0 outside. */
double gate_culprit_posterior(const gate_culprit *c, unsigned k);

/* The log: its length, and entry i (NULL beyond it); valid until the next call on c. */
size_t gate_culprit_log_count(const gate_culprit *c);
const gate_culprit_event *gate_culprit_log(const gate_culprit *c, size_t i);

/* The least m >= 1 with flake^m <= 1 - confidence (1 when flake is 0). */
unsigned gate_culprit_fail_runs(double flake, double confidence);

const char *gate_culprit_state_name(gate_culprit_state s);

#endif /* KEEL_GATE_CULPRIT_H */
