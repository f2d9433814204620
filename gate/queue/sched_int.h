/*
 * sched_int.h - the scheduler's internals, shared by its files: sched.c (the
 * queue, the plan of segments, builds and decisions), sched_flaky.c (the
 * endings of flakes, the rejections watched and taken back) and
 * sched_strategy.c (the window's shape; its tests check the ladders
 * directly).  Not part of scheduler.h's API.
 */
#ifndef KEEL_GATE_SCHED_INT_H
#define KEEL_GATE_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "capacity.h"
#include "scheduler.h"

typedef enum cand_state {
    CAND_NONE,    /* no candidate */
    CAND_RUNNING, /* a build is running */
    CAND_PASSED,  /* waiting for everything below to land */
    CAND_FAILED,  /* waiting: for the front (then a retry or a split) or to be dropped */
    CAND_RETRY    /* at the front, failed, a rerun is wanted */
} cand_state;

/* The most failures of one configuration on one tree (sched.c's record() ends it there). */
enum { SIG_KEEP = GATE_SCHED_MAX_RETRIES + 1 + GATE_SCHED_SUSPECT_EXTRA };

/* The configurations a segment's `held` tells apart (more have no bit: no such evidence). */
enum { GATE_SCHED_HELD_MAX = 64 };

/* A configuration's runs on one candidate's tree. */
typedef struct cfg_ev {
    char name[GATE_SCHED_NAME_MAX];
    unsigned runs, fails;
    unsigned long long sig[SIG_KEEP]; /* its failures' signatures, in order */
    long long job;                    /* the caller's id of its last failing run */
    bool passed;                      /* it passed once: the tree passes it */
    bool learned;                     /* and had failed: its endings are new flakes' (REOPEN) */
    bool repeated;      /* an ending (not a flake's) repeated there, short of flaky_alike */
    gate_sched_why why; /* NONE until it failed for good */
} cfg_ev;

typedef struct seg {
    long long *ids; /* the changes, in queue order */
    size_t n;
    bool known_bad;
    size_t from_n;           /* known bad or being confirmed: the batch whose failure blamed it */
    gate_sched_verdict from; /* and that batch's verdict */
    long long cand;          /* its live candidate, 0 when none */
    long long base; /* that candidate's base (the tip's candidate id when built on the tip) */
    cand_state state;
    unsigned attempts; /* builds started of the candidate */
    unsigned failures; /* of which failed */
    bool presumed_bad; /* adaptive: failed, more likely bad than flaky */
    bool skipped;      /* and the candidates behind it are built without it */
    bool final;        /* a configuration failed its candidate for good */
    /*
     * The configurations (bits: sched.c's held_bit) that passed on a tree
     * holding all of its changes, a candidate stacked on it or on a segment
     * it was split from (whatever that candidate's other configurations
     * did): a failure of one of them here, repeated alike, is no evidence
     * against its changes (record()).
     */
    unsigned long long held;
    cfg_ev *cfg; /* its candidate's configurations */
    size_t ncfg, cfgcap;
} seg;

typedef struct entry {
    gate_sched_kind kind;
    long long candidate;
    long long change;
    long long *ids; /* LAND: owned */
    size_t n;
    gate_sched_verdict decided, batch;
    size_t batch_n;
    gate_sched_verdict rejected; /* REOPEN */
    unsigned long long signature;
} entry;

struct gate_sched {
    gate_sched_params p;
    long long *queue; /* queue[qhead .. qhead + qlen) */
    size_t qhead, qlen, qcap;
    long long *alone; /* changes built alone (gate_sched_enqueue_alone) */
    size_t nalone, alonecap;
    seg *plan;
    size_t nplan, plancap;
    entry *decs; /* decs[dhead .. dhead + dlen) */
    size_t dhead, dlen, dcap;
    long long *polled;  /* the ids of the last decision polled */
    long long *spare;   /* max_batch ids, for the second half of a split */
    const char **names; /* a retry's configurations */
    size_t namescap;
    long long next_cand;
    long long tip; /* the candidate whose tree the tip is, 0 at first */
    unsigned running;
    double bad_w, all_w;
    double flaked_w, tried_w; /* the flake rate's counts */
    /*
     * The endings of flakes seen (a configuration failed, then passed on the
     * same tree), the oldest first: a failure that repeats one of them is no
     * evidence of a real failure (gate__sched_flaky_ending).
     */
    gate_sched_flaky flaky[GATE_SCHED_FLAKY_ENDINGS];
    unsigned flaky_n;              /* in use */
    unsigned long long flaky_seen; /* endings learned or seen again so far */
    /* the rejections watched for their ending to flake (Rejections taken back), the oldest first */
    gate_sched_watched watch[GATE_SCHED_REOPEN_WATCH];
    unsigned nwatch;
    /* the configurations' names seen, in order: their bits in seg.held (GATE_SCHED_HELD_MAX) */
    char held_names[GATE_SCHED_HELD_MAX][GATE_SCHED_NAME_MAX];
    unsigned nheld_names;
    gate_cap cap;                 /* what the executor runs at once (capacity.h) */
    unsigned jobs;                /* jobs in a build: the configurations a first build ran */
    gate_sched_outlook shape_for; /* what the cached shape is for (p 0: none) */
    unsigned shape_batch, shape_depth;
    /*
     * The pace (gate_sched_clock): per depth, the time measured while it was
     * in use (ms: in units of a build's longest job alone when fitted, the
     * unit known or not when it ran) and the model's time of the changes
     * decided meanwhile (in those units); the clock's last reading.
     */
    double pace_measured[GATE_SCHED_PACE_DEPTHS], pace_expected[GATE_SCHED_PACE_DEPTHS];
    /*
     * The time measured since the last decision, per depth: it joins
     * pace_measured with the decisions it bought (observe), so that the pace
     * moves only when decisions come.  A window gone deeper decides nothing
     * until its first round ends, all of it at once; counted as it ran, that
     * round read as ever slower until it ended, and the window went back to
     * the shallower depth before it did, the deeper depth's pace marked up
     * for nothing (bench_gate --trace 2,2,0: every probe of depth 4 raised
     * its pace, and the window stayed at depth 1 for the rest of the queue).
     */
    double pace_pending[GATE_SCHED_PACE_DEPTHS];
    unsigned pend_batch[GATE_SCHED_PACE_DEPTHS], pend_depth[GATE_SCHED_PACE_DEPTHS]; /* its shape */
    double pace_life[GATE_SCHED_PACE_DEPTHS]; /* changes halving it at depth 1 */
    /*
     * A failure's episode (ep_on: from the first failed build after a
     * rejection to the next rejection): the time measured at each depth
     * meanwhile (the shape that ran there is pend_batch, pend_depth: every
     * time counted at a depth since the episode began is in it).  A rejection's expected time
     * beyond a pass's (expected_of: the whole isolation's, retries and
     * failed builds) is split among the depths by that time, not by the
     * time since the last decision: the window often changes depth during
     * an isolation (its estimates move with every result), and the last
     * decision before a rejection is usually a half that passed, so the
     * depth in use when the rejection came took an isolation's expected
     * time that other depths had spent (inih's replay on 2 cores: a window
     * gone from depth 2 to 1 mid-isolation read depth 1 at 0.15 of the
     * model, and stayed there for the rest of the queue at 1.1-1.4 times
     * the time of a window that happened to stay 2 deep).
     */
    double ep_time[GATE_SCHED_PACE_DEPTHS];
    bool ep_on;
    double clock_ms;
    bool clock_set;
    gate_sched_stats st;
};

/*
 * The functions one of the scheduler's files lends the others, described
 * where they are defined.  sched.c's:
 */
entry *gate__sched_push(gate_sched *s, gate_sched_kind kind, long long cand, long long change,
                        long long *ids, size_t n);
void gate__sched_cfg_verdict(const seg *g, const cfg_ev *c, gate_sched_verdict *v);
bool gate__sched_cfg_failed(const cfg_ev *c);

/* sched_flaky.c's: the endings of flakes, the rejections watched and taken back. */
bool gate__sched_flaky_ending(const gate_sched *s, const char *config, unsigned long long sig);
bool gate__sched_flaked_lately(const gate_sched *s, const char *config);
void gate__sched_flaky_endings_add(gate_sched *s, const cfg_ev *c);
void gate__sched_watch(gate_sched *s, const seg *f, entry *e);
void gate__sched_unwatch_change(gate_sched *s, long long change);
void gate__sched_reopen(gate_sched *s, const seg *g, const cfg_ev *c);

/* sched_strategy.c's, which its tests check directly: */

/* ---- sched_strategy.c ---- */

/*
 * The sizes adaptive searches from 1 to hi (batch sizes, depths): every one
 * up to GATE_SCHED_LADDER_ALL, then each about 1.125 times the last (about
 * six to an octave), hi, and those of `also` in range (the fixed
 * strategies' sizes and the shape in use), in order; how many (at most
 * GATE_SCHED_LADDER_MAX).
 */
enum { GATE_SCHED_LADDER_ALL = 32, GATE_SCHED_LADDER_MAX = 96, GATE_SCHED_REFINE_MAX = 64 };
size_t gate__sched_ladder(unsigned hi, const unsigned *also, size_t nalso, unsigned *out);

/*
 * The sizes from the neighbour of `pick` below it on ladder `v` (n sizes, in
 * order) to its neighbour above, every one, at most GATE_SCHED_REFINE_MAX / 2
 * either side of `pick`, into `out` (room for GATE_SCHED_REFINE_MAX + 1);
 * how many (0 when `pick` is not on it).  choice() judges them where the
 * ladders skip sizes.
 */
size_t gate__sched_around(const unsigned *v, size_t n, unsigned pick, unsigned *out);

#endif /* KEEL_GATE_SCHED_INT_H */
