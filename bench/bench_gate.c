/*
 * bench_gate.c - keel-gate's scheduler on a synthetic merge queue: an
 * event-driven simulation in units of T, the time of a build's slowest job
 * alone.
 *
 * 200 changes (--changes N: the first N of each queue, 2..200, as long as
 * a replay's), each bad with probability p in {0.02, 0.1, 0.3} (splitmix64,
 * fixed seeds), 4 slots.  Every build runs two configurations, a and b, as
 * two jobs (a retry only those that failed): a takes 1 T alone, b 0.8 T
 * (--b-length X: X T; the parson replay measured 0.52, gcc -O0 next to
 * clang -O2, which leaves a core idle for half of a build at depth 1).
 * Bad change c fails configuration c % 2 (both when c % 3 == 0) with a
 * failure signature of its own, every time, its job taking all of its time
 * (--fail-length F: F of it, as a build that fails at its first error; the
 * replays' broken builds fail in 0.1 s where they pass in 4); in the flaky runs every job also
 * fails spuriously with probability 0.05, with a random signature
 * (retries = 1).
 *
 * Executors (the capacity issue): "free" is the old model, every build takes
 * its time however many run (no limit on jobs at once); "2 cores" runs the
 * jobs in a pool of 4 threads (the gate's: one per slot) on 2 cores shared
 * evenly (k jobs at once each run at min(1, 2/k) of their speed); "8 cores"
 * a pool of 8 on 8 cores, each job using 2 of them (k jobs at once run at
 * min(1, 8/2k)).  The scheduler is told the executor's parallelism as the
 * gate tells it (free: not limited; else the cores, at most the pool: 2, 8,
 * though the second really runs 4 jobs at once) and fed every job's wall
 * time and load (the harmonic mean of the jobs running meanwhile) and the
 * clock at every event (gate_sched_clock: the pace of each depth; --pace
 * off leaves it out), as the gate feeds them, and learns the rest.
 *
 * For each strategy: the makespan in T, the builds started, whether exactly
 * the bad changes were rejected, how many good changes were rejected, and
 * the scheduler's CPU per landed change (process CPU time of the whole
 * simulation divided by the changes landed).
 *
 * Goal (the capacity issue): adaptive's makespan <= 1.05x the best fixed
 * strategy's with no more than 1.1x its builds, on every executor; CPU
 * < 50 ms a change.
 * Run: build/release/bench_gate (or make bench): the table of seed 0;
 * build/release/bench_gate --seeds N [--first-seed S]: every workload over
 * seeds S .. S+N-1 (S: 0 unless given),
 * adaptive against the fixed strategy best on average for that workload
 * (the one a team would choose): the mean ratios and the worst decile;
 * build/release/bench_gate --seeds N --workload E,P,F: only executor E (0
 * free, 1 2 cores, 2 8 cores), p = ps[P], flakes F (0, 1);
 * --rates P1,P2,P3: the three failure rates of the table instead of 0.02,
 * 0.1, 0.3 (the bound holds between them too, not only at the grid's);
 * build/release/bench_gate --seeds N --warm on: each row again for adaptive
 * started warm (a row "E (warm)"): each seed's queue decided after a queue of
 * the same workload of seed + 200000, by a scheduler that starts from what
 * that one learned (gate_sched_remember, gate_sched_recall: what keel-gate
 * keeps in its store across runs), against the same anchor;
 * build/release/bench_gate --trace E,P,F [--seeds N] [--first-seed S]: that
 * workload per seed, adaptive's shape at each change of it with what it
 * was chosen on (the estimate, the capacity, the pace per depth, what a
 * failure and its retry cost, the flake rate), every strategy's
 * makespan and builds, and the flakes of adaptive's run: of its builds of
 * trees that pass (first builds, retries), how many flaked, beside the
 * flake estimate's mean over the queue's time, its range and its end (the
 * shapes are printed only when they change, mostly early, while the
 * estimate still moves: their estimates are no sample of it);
 * build/release/bench_gate --model E,P,F [--seeds N] [--first-seed S]: that
 * workload's bad sets (20 seeds unless given) run by every shape b x d (b in
 * 1, 2, 3, 4, 6, 8, d in 1..4) as a fixed speculative-batch strategy: its
 * time and builds per change beside what adaptive's model expects of the
 * shape at the workload's p with what the run learned of the executor
 * (gate_sched_shape_time, gate_sched_shape_builds), to see where the model
 * is wrong;
 * build/release/bench_gate --trials N: N trials (a new bad set at p = 0.1
 * and a new flake stream each) per strategy with 5% flakes per job and
 * retries = 1 on the free executor: good changes rejected (the goal: none),
 * bad ones landed (--flake-endings K: flakes ending one of K ways, as a
 * real flaky test's do, instead of any way).
 */
#define _GNU_SOURCE 1
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"

#include "bench.h"

#include "scheduler.h"

enum { MAXCHANGES = 200, SLOTS = 4, MAXCAND = 16384, MAXJOBS = 65536, NSTRAT = 7, NCFG = 2 };

/* The queue's length (--changes N: the first N of each seed's queue, as long as a replay's). */
static int nchanges = MAXCHANGES;

static const char *const cfg_name[NCFG] = {"a", "b"};
static double cfg_work[NCFG] = {1.0, 0.8}; /* in T, alone (b: --b-length) */
/* A job that fails for a bad change takes this part of its time (--fail-length; 1: all of it). */
static double fail_length = 1.0;
/* The simulated clock fed to the scheduler (gate_sched_clock), as the gate does (--pace off: not). */
static bool pace = true;
/* --trace: print adaptive's shape at each change of it (one workload, one seed). */
static bool tracing = false;
/* --workload E,P,F: --seeds runs only that workload (executor, p, flakes; -1: all). */
static int only_e = -1, only_p = -1, only_f = -1;
/*
 * --warm: --seeds also runs adaptive warm: each seed's queue after a queue
 * of the same workload of another seed (the seed + WARM_OFFSET's) decided by
 * the same gate, its scheduler starting from what that one learned
 * (gate_sched_remember, gate_sched_recall: what keel-gate keeps in its store
 * across runs; the executor's capacity and pace are not carried).
 */
static bool warm = false;
/*
 * --flaky-alike 3: every strategy's scheduler takes a third failure alike to
 * reject on a configuration seen to flake (scheduler.h; keel-gate's
 * `flaky-alike`).  The simulation's flakes end at random, so it measures the
 * cost (a real failure's third run), not the good changes it saves.
 */
static unsigned flaky_alike = GATE_DEFAULT_FLAKY_ALIKE;
/*
 * --flake-endings K: a flake's log ends one of K ways (the same K for both
 * configurations, as a flaky test's message is), chosen at random; 0 (the
 * default): any way, a new signature every time.  The replays' flaky test
 * ends one of 8 ways (bench/replay/make-fixture.sh), and a flaky test
 * failing twice in a row the same way on one tree is the one way they saw a
 * good change rejected (docs/gate.md, Flakes).
 */
static unsigned flake_endings = 0;
enum { WARM_OFFSET = 200000, FLAKE_ENDINGS_MAX = 1000 };

typedef struct strat {
    const char *name;
    gate_strategy strategy;
    unsigned batch, depth;
} strat;

static const strat strats[NSTRAT] = {
    {"adaptive", GATE_STRATEGY_ADAPTIVE, 8, 4},
    {"serial", GATE_STRATEGY_SERIAL, 1, 1},
    {"batch b=4", GATE_STRATEGY_BATCH, 4, 1},
    {"batch b=8", GATE_STRATEGY_BATCH, 8, 1},
    {"speculative w=4", GATE_STRATEGY_SPECULATIVE, 1, 4},
    {"spec-batch w=4 b=4", GATE_STRATEGY_SPECULATIVE_BATCH, 4, 4},
    {"spec-batch w=4 b=8", GATE_STRATEGY_SPECULATIVE_BATCH, 8, 4},
};

/*
 * An executor: cores shared evenly by the jobs running (0: each job at full
 * speed), each job wanting `threads` of them (its make -j), in a pool of
 * `pool` threads (0: any number).
 */
typedef struct executor {
    const char *name;
    double cores;
    unsigned pool;
    double threads;
} executor;

static const executor execs[] = {
    {"free", 0.0, 0, 1.0},
    {"2 cores", 2.0, 4, 1.0},
    {"8 cores, jobs of 2 threads", 8.0, 8, 2.0},
};
enum { NEXEC = sizeof(execs) / sizeof(execs[0]) };

typedef struct outcome {
    double makespan; /* in T */
    unsigned long long builds, landed, jobs;
    int bad_landed;
    bool exact; /* exactly the bad changes rejected */
    int good_rejected;
    double cpu_us;         /* per landed change */
    double parallel;       /* the scheduler's estimate at the end */
    double width;          /* a build's work in its longest job, as estimated at the end */
    gate_sched_stats end;  /* the scheduler's at the end (--model: what it learned) */
    unsigned batch, depth; /* the shape at the end */
    /*
     * The builds of trees that pass every job they ran, first builds [0] and
     * retries [1] (a retry runs only the jobs that failed): how many ended,
     * and how many of them a flake failed (the truth the flake estimate
     * estimates); --trace also: the estimate's mean over the queue's time,
     * its least and most.
     */
    unsigned long long clean[2], clean_flaked[2];
    double flake_mean, flake_lo, flake_hi;
} outcome;

typedef enum job_state { JOB_WAITING, JOB_RUNNING, JOB_OVER } job_state;

typedef struct job {
    long long cand;
    unsigned cfg;
    job_state state;
    double left;        /* work left, in T alone */
    double start, inv0; /* when it started, and the integral of 1 / load then */
} job;

typedef struct world {
    bool bad[MAXCHANGES + 1];
    bool cand_bad[MAXCAND];
    unsigned long long cand_sig[MAXCAND]
                               [NCFG];  /* the signature its tree fails a, b with (0: passes) */
    unsigned pending[MAXCAND];          /* jobs of its build not yet over */
    gate_sched_run runs[MAXCAND][NCFG]; /* their results */
    unsigned nruns[MAXCAND];
    unsigned attempt[MAXCAND];           /* its build's attempt (1: the first) */
    bool real[MAXCAND], flaked[MAXCAND]; /* a job of it failed as its tree does, by a flake */
    unsigned long long clean[2], clean_flaked[2]; /* as in outcome */
    job jobs[MAXJOBS];
    size_t njobs, first_open; /* jobs before first_open are all over */
    unsigned running;
    unsigned long long jobs_run;
    int state[MAXCHANGES + 1]; /* 0 active, 1 landed, 2 rejected */
} world;

static double cpu_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(keel_status s, const char *what)
{
    char msg[512];
    (void)keel_status_format(s, msg, sizeof(msg));
    (void)fprintf(stderr, "bench_gate: %s: %s\n", what, msg);
    keel_status_free(s);
    exit(1);
}

static void take(gate_sched *s, world *w)
{
    gate_sched_decision d;
    while (gate_sched_poll(s, &d)) {
        if (d.kind == GATE_SCHED_LAND) {
            for (size_t i = 0; i < d.n; i++)
                w->state[d.changes[i]] = 1;
        } else if (d.kind == GATE_SCHED_REJECT) {
            w->state[d.change] = 2;
        } else if (d.kind == GATE_SCHED_REOPEN) { /* its ending was a flake's: queued again */
            w->state[d.change] = 0;
            keel_status st = gate_sched_enqueue(s, d.change);
            if (!keel_ok(st))
                die(st, "queueing a reopened change");
        } else if (d.kind == GATE_SCHED_CANCEL_BUILD) {
            for (size_t i = w->first_open; i < w->njobs; i++) {
                job *j = &w->jobs[i];
                if (j->cand != d.candidate || j->state == JOB_OVER)
                    continue;
                if (j->state == JOB_RUNNING)
                    w->running--;
                j->state = JOB_OVER;
            }
        }
    }
}

/* Start the builds the scheduler wants now: their jobs join the pool's queue. */
static void start_builds(gate_sched *s, world *w)
{
    for (;;) {
        gate_sched_build b;
        bool have = false;
        keel_status ks = gate_sched_next(s, &b, &have);
        if (!keel_ok(ks))
            die(ks, "next");
        if (!have)
            return;
        if (b.candidate >= MAXCAND) {
            (void)fprintf(stderr, "bench_gate: more than %d candidates\n", MAXCAND);
            exit(1);
        }
        if (b.attempt == 1) {
            bool cb = b.base != 0 && w->cand_bad[b.base];
            for (size_t i = 0; i < b.n; i++)
                cb = cb || w->bad[b.changes[i]];
            w->cand_bad[b.candidate] = cb;
            for (unsigned k = 0; k < NCFG; k++) {
                unsigned long long sig = b.base != 0 ? w->cand_sig[b.base][k] : 0;
                for (size_t i = 0; i < b.n && sig == 0; i++) {
                    long long c = b.changes[i];
                    if (w->bad[c] && ((unsigned long long)c % 2 == k || c % 3 == 0))
                        sig = 1000ull + 2ull * (unsigned long long)c + k;
                }
                w->cand_sig[b.candidate][k] = sig;
            }
        }
        w->attempt[b.candidate] = b.attempt;
        w->real[b.candidate] = false;
        w->flaked[b.candidate] = false;
        unsigned mask = b.nconfigs > 0 ? 0u : (1u << NCFG) - 1u;
        for (size_t i = 0; i < b.nconfigs; i++)
            mask |= strcmp(b.configs[i], "a") == 0 ? 1u : 2u;
        w->pending[b.candidate] = 0;
        w->nruns[b.candidate] = 0;
        for (unsigned k = 0; k < NCFG; k++) {
            if ((mask & (1u << k)) == 0)
                continue;
            if (w->njobs == MAXJOBS) {
                (void)fprintf(stderr, "bench_gate: more than %d jobs\n", MAXJOBS);
                exit(1);
            }
            job *j = &w->jobs[w->njobs++];
            memset(j, 0, sizeof(*j));
            j->cand = b.candidate;
            j->cfg = k;
            j->state = JOB_WAITING;
            j->left = cfg_work[k] * (w->cand_sig[b.candidate][k] != 0 ? fail_length : 1.0);
            w->pending[b.candidate]++;
        }
    }
}

/* A job's run ended at `now`: its result, and the build's when it was the last. */
static void job_over(gate_sched *s, world *w, job *j, double now, double inv, double flake,
                     unsigned long long *seed)
{
    j->state = JOB_OVER;
    w->running--;
    w->jobs_run++;
    double elapsed = now - j->start;
    long long c = j->cand;
    unsigned long long sig = w->cand_sig[c][j->cfg];
    w->real[c] = w->real[c] || sig != 0;
    if (sig == 0 && flake > 0 && bench_uniform(seed) < flake) {
        sig = flake_endings == 0 /* a flake: its log ends any way, or one of K ways */
                  ? bench_splitmix64(seed) | 1
                  : 0xf1a4e0000000ull + 1 + bench_splitmix64(seed) % flake_endings;
        w->flaked[c] = true;
    }
    gate_sched_job_time jt = {cfg_name[j->cfg], elapsed * 1000.0, elapsed / (inv - j->inv0), 0.0,
                              sig == 0};
    gate_sched_job_timed(s, &jt); /* as the gate feeds it, with its result */
    gate_sched_run *r = &w->runs[c][w->nruns[c]++];
    memset(r, 0, sizeof(*r));
    r->config = cfg_name[j->cfg];
    r->passed = sig == 0;
    r->signature = sig;
    if (--w->pending[c] > 0)
        return;
    if (!w->real[c]) {
        unsigned k = w->attempt[c] > 1 ? 1u : 0u;
        w->clean[k]++;
        w->clean_flaked[k] += w->flaked[c];
    }
    keel_status ks = gate_sched_results(s, c, w->runs[c], w->nruns[c]);
    if (!keel_ok(ks))
        die(ks, "result");
    take(s, w);
}

/* --trace: adaptive's shape, estimate and pace whenever the shape changed since *last. */
static void trace(const gate_sched *s, double t, gate_sched_stats *last)
{
    gate_sched_stats gs;
    gate_sched_stats_get(s, &gs);
    if (gs.batch == last->batch && gs.depth == last->depth)
        return;
    printf("  %7.1f T: %3llu decided, %4llu builds, p %.3f: %ux%u (jobs at once %.1f, width "
           "%.2f, pace d1 %.2f d2 %.2f d4 %.2f; a failure %.2f time %.2f work, its retry %.2f "
           "%.2f; flakes %.3f)\n",
           t, gs.landed + gs.rejected, gs.builds, gs.p, gs.batch, gs.depth, gs.parallel, gs.width,
           gs.pace[0], gs.pace[1], gs.pace[3], gs.fail_time, gs.fail_work, gs.retry_time,
           gs.retry_work, gs.flake);
    *last = gs;
}

/*
 * One queue of nchanges decided by strategy st; `recall`: what an earlier
 * scheduler of the queue learned (NULL: none, the default prior); `learned`:
 * what this one learned, when not NULL.
 */
static outcome simulate(const strat *st, const executor *ex, const bool *bad, double flake,
                        unsigned retries, unsigned long long seed, const gate_sched_memory *recall,
                        gate_sched_memory *learned)
{
    static world w;
    memset(&w, 0, sizeof(w));
    memcpy(w.bad, bad, sizeof(w.bad));
    double t0 = cpu_ns();
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = st->strategy;
    p.max_batch = st->batch;
    p.max_depth = st->depth;
    p.slots = SLOTS;
    p.retries = retries;
    p.flaky_alike = flaky_alike;
    p.parallel = ex->cores == 0.0                       ? 0.0
                 : ex->pool > 0 && ex->pool < ex->cores ? (double)ex->pool
                                                        : ex->cores;
    p.jobs = NCFG; /* as keel-gate tells it from the configuration (gate_build_jobs) */
    gate_sched *s = NULL;
    keel_status ks = gate_sched_new(&p, &s);
    if (!keel_ok(ks))
        die(ks, "new");
    if (recall != NULL)
        gate_sched_recall(s, recall);
    for (long long c = 1; c <= nchanges; c++)
        if (!keel_ok(ks = gate_sched_enqueue(s, c)))
            die(ks, "enqueue");
    double t = 0.0, inv = 0.0; /* the integral of 1 / (jobs running) over time */
    gate_sched_stats traced;
    memset(&traced, 0, sizeof(traced));
    bool traced_here = tracing && st->strategy == GATE_STRATEGY_ADAPTIVE;
    double flake_int = 0.0, flake_lo = 1.0, flake_hi = 0.0; /* the estimate over time (--trace) */
    for (;;) {
        if (pace)
            gate_sched_clock(s, t * 1000.0); /* builds start now: the clock as the gate feeds it */
        start_builds(s, &w);
        while (w.first_open < w.njobs && w.jobs[w.first_open].state == JOB_OVER)
            w.first_open++;
        for (size_t i = w.first_open; i < w.njobs && (ex->pool == 0 || w.running < ex->pool); i++)
            if (w.jobs[i].state == JOB_WAITING) {
                w.jobs[i].state = JOB_RUNNING;
                w.jobs[i].start = t;
                w.jobs[i].inv0 = inv;
                w.running++;
            }
        if (w.running == 0)
            break;
        double want = (double)w.running * ex->threads;
        double rate = ex->cores == 0.0 || want <= ex->cores ? 1.0 : ex->cores / want;
        double dt = INFINITY;
        for (size_t i = w.first_open; i < w.njobs; i++)
            if (w.jobs[i].state == JOB_RUNNING && w.jobs[i].left / rate < dt)
                dt = w.jobs[i].left / rate;
        if (traced_here) { /* the estimate held over [t, t + dt] */
            gate_sched_stats now;
            gate_sched_stats_get(s, &now);
            flake_int += now.flake * dt;
            flake_lo = now.flake < flake_lo ? now.flake : flake_lo;
            flake_hi = now.flake > flake_hi ? now.flake : flake_hi;
        }
        t += dt;
        inv += dt / (double)w.running;
        size_t hi = w.njobs; /* jobs started later are not running now */
        for (size_t i = w.first_open; i < hi; i++)
            if (w.jobs[i].state == JOB_RUNNING)
                w.jobs[i].left -= rate * dt;
        if (pace)
            gate_sched_clock(s, t * 1000.0); /* the gate's clock, as the gate feeds it */
        for (size_t i = w.first_open; i < hi; i++)
            if (w.jobs[i].state == JOB_RUNNING && w.jobs[i].left <= 1e-9)
                job_over(s, &w, &w.jobs[i], t, inv, flake, &seed); /* may cancel others */
        if (traced_here)
            trace(s, t, &traced);
    }
    gate_sched_stats gs;
    gate_sched_stats_get(s, &gs);
    double t1 = cpu_ns();
    outcome o;
    memset(&o, 0, sizeof(o));
    o.makespan = t;
    o.builds = gs.builds;
    o.landed = gs.landed;
    o.jobs = w.jobs_run;
    o.parallel = gs.parallel;
    o.width = gs.width;
    o.end = gs;
    o.batch = gs.batch;
    o.depth = gs.depth;
    memcpy(o.clean, w.clean, sizeof(o.clean));
    memcpy(o.clean_flaked, w.clean_flaked, sizeof(o.clean_flaked));
    o.flake_mean = t > 0.0 ? flake_int / t : 0.0;
    o.flake_lo = flake_lo;
    o.flake_hi = flake_hi;
    o.exact = true;
    for (int c = 1; c <= nchanges; c++) {
        if (w.state[c] == 0 || (w.state[c] == 2) != bad[c])
            o.exact = false;
        if (w.state[c] == 2 && !bad[c])
            o.good_rejected++;
        if (w.state[c] == 1 && bad[c])
            o.bad_landed++;
    }
    o.cpu_us = gs.landed > 0 ? (t1 - t0) / 1e3 / (double)gs.landed : 0.0;
    if (learned != NULL)
        gate_sched_remember(s, learned);
    gate_sched_delete(s);
    return o;
}

static double ps[] = {0.02, 0.1, 0.3}; /* --rates: the table's three failure rates */
enum { NP = sizeof(ps) / sizeof(ps[0]) };

/*
 * One workload (executor ex, p = ps[pi], flakes or not, seed number `seed`;
 * seed 0 is the table's) run by every strategy: the bad set, its size, and
 * each outcome.
 */
static int bad_set(size_t pi, unsigned long long seed, bool *bad)
{
    unsigned long long x = 0x5eed0000ull + pi + (seed << 16);
    int nbad = 0;
    bad[0] = false;
    for (int c = 1; c <= nchanges; c++) {
        bad[c] = bench_uniform(&x) < ps[pi];
        nbad += bad[c];
    }
    return nbad;
}

static int workload(const executor *ex, size_t pi, bool flaky, unsigned long long seed, bool *bad,
                    outcome *o)
{
    int nbad = bad_set(pi, seed, bad);
    for (int k = 0; k < NSTRAT; k++)
        o[k] = simulate(&strats[k], ex, bad, flaky ? 0.05 : 0.0, flaky ? 1u : 0u,
                        0xf1a4e000ull + pi + (seed << 16), NULL, NULL);
    return nbad;
}

/*
 * The same workload's seed `seed` run by adaptive warm (--warm): after the
 * queue of seed + WARM_OFFSET, decided by adaptive from the default prior,
 * from what it learned.
 */
static outcome warm_workload(const executor *ex, size_t pi, bool flaky, unsigned long long seed)
{
    bool bad[MAXCHANGES + 1];
    unsigned long long before = seed + WARM_OFFSET;
    double flake = flaky ? 0.05 : 0.0;
    unsigned retries = flaky ? 1u : 0u;
    gate_sched_memory m;
    (void)bad_set(pi, before, bad);
    (void)simulate(&strats[0], ex, bad, flake, retries, 0xf1a4e000ull + pi + (before << 16), NULL,
                   &m);
    (void)bad_set(pi, seed, bad);
    return simulate(&strats[0], ex, bad, flake, retries, 0xf1a4e000ull + pi + (seed << 16), &m,
                    NULL);
}

/* The best fixed strategy of one run: the shortest makespan, then the fewest builds. */
static int best_fixed(const outcome *o)
{
    int best = 1;
    for (int k = 2; k < NSTRAT; k++)
        if (o[k].makespan < o[best].makespan - 1e-9 ||
            (o[k].makespan <= o[best].makespan + 1e-9 && o[k].builds < o[best].builds))
            best = k;
    return best;
}

/* The bound: adaptive within 5% of `best`'s makespan, 10% of its builds, no good change rejected. */
static bool bound_met(double makespan, double builds, double best_makespan, double best_builds,
                      int good_rejected)
{
    return makespan <= 1.05 * best_makespan + 1e-9 && builds <= 1.1 * best_builds + 1e-9 &&
           good_rejected == 0;
}

/* The table of seed 0, every executor and strategy. */
static void table(void)
{
    double worst_cpu = 0.0;
    int met_n = 0, n = 0;
    printf(
        "keel-gate scheduler: %d changes, %d slots, 2 configurations (a: 1 T alone, b: %.2f T)\n\n",
        nchanges, SLOTS, cfg_work[1]);
    for (size_t e = 0; e < NEXEC; e++)
        for (int flaky = 0; flaky <= 1; flaky++) {
            printf("executor %s, %s\n", execs[e].name,
                   flaky ? "with flakes: every job fails spuriously with probability 0.05, "
                           "retries = 1"
                         : "no flakes, retries = 0");
            printf("| p | strategy | makespan (T) | builds | exactly the bad rejected | good "
                   "rejected | capacity learned: jobs at once, build width, shape at the end | CPU "
                   "per "
                   "landed change |\n"
                   "|---|---|---|---|---|---|---|---|\n");
            for (size_t pi = 0; pi < NP; pi++) {
                bool bad[MAXCHANGES + 1];
                outcome o[NSTRAT];
                int nbad = workload(&execs[e], pi, flaky != 0, 0, bad, o);
                for (int k = 0; k < NSTRAT; k++) {
                    printf("| %.2f (%d bad) | %s | %.1f | %llu | %s | %d | %.1f, %.2f, %ux%u | "
                           "%.1f us |\n",
                           ps[pi], nbad, strats[k].name, o[k].makespan, o[k].builds,
                           o[k].exact ? "yes" : "no", o[k].good_rejected, o[k].parallel, o[k].width,
                           o[k].batch, o[k].depth, o[k].cpu_us);
                    if (o[k].cpu_us > worst_cpu)
                        worst_cpu = o[k].cpu_us;
                }
                int best = best_fixed(o);
                bool met = bound_met(o[0].makespan, (double)o[0].builds, o[best].makespan,
                                     (double)o[best].builds, o[0].good_rejected);
                n++;
                met_n += met;
                printf("|  | adaptive / best fixed (%s: %.1f T, %llu builds) | %.3f | %.3f | %s "
                       "| | | |\n",
                       strats[best].name, o[best].makespan, o[best].builds,
                       o[0].makespan / o[best].makespan,
                       (double)o[0].builds / (double)o[best].builds, met ? "met" : "NOT met");
            }
            printf("\n");
        }
    printf("adaptive <= 1.05x the best fixed strategy's makespan with <= 1.1x its builds: %d of "
           "%d workloads of seed 0\n",
           met_n, n);
    printf("scheduler CPU per landed change, worst run: %.1f us (goal < 50 ms)\n", worst_cpu);
}

/* The mean of the worst tenth (the largest) of v[0 .. n), sorted here. */
static double worst_tenth(double *v, unsigned n)
{
    bench_sort(v, n);
    unsigned k = (n + 9) / 10;
    double sum = 0.0;
    for (unsigned i = n - k; i < n; i++)
        sum += v[i];
    return sum / k;
}

/* The 90th percentile of v[0 .. n), sorted here. */
static double p90(double *v, unsigned n)
{
    bench_sort(v, n);
    return v[(size_t)((double)(n - 1) * 0.9)];
}

/*
 * Every workload over seeds first .. first+n-1 (a new bad set and a new
 * flake stream each).  Per row, the fixed strategy best on average (mean
 * makespan) is the anchor: adaptive's mean makespan and builds as ratios to
 * its; the worst decile: the mean of adaptive's worst tenth of seeds (its
 * largest makespans, its largest builds) as ratios to the anchor's worst
 * tenth; the bound judged on both.  Also shown, not judged: the 90th
 * percentile of the per-seed ratios (each seed's adaptive to that seed's
 * anchor), and how often adaptive is within the bound of the best fixed
 * strategy of each seed (an oracle no fixed choice has).
 */
/*
 * One row of seeds(): adaptive's makespans and builds per seed in mk[sd][0],
 * bu[sd][0] (the fixed strategies' in the other columns) against the fixed
 * strategy best on average; `start`: "" or " (warm)".  Adds its misses.
 */
static void seeds_row(size_t e, size_t pi, int flaky, const char *start, unsigned n,
                      double (*mk)[NSTRAT], double (*bu)[NSTRAT], double *v, unsigned oracle,
                      int good_rejected, int *missed, int *dmissed)
{
    double mean_mk[NSTRAT] = {0}, mean_bu[NSTRAT] = {0};
    for (unsigned sd = 0; sd < n; sd++)
        for (int k = 0; k < NSTRAT; k++) {
            mean_mk[k] += mk[sd][k] / n;
            mean_bu[k] += bu[sd][k] / n;
        }
    int best = 1;
    for (int k = 2; k < NSTRAT; k++)
        if (mean_mk[k] < mean_mk[best])
            best = k;
    double tail[4], pct[2];
    for (int which = 0; which < 4; which++) { /* adaptive's mk, bu; the anchor's */
        for (unsigned sd = 0; sd < n; sd++)
            v[sd] = (which % 2 == 0 ? mk : bu)[sd][which < 2 ? 0 : best];
        tail[which] = worst_tenth(v, n);
    }
    for (int which = 0; which < 2; which++) {
        for (unsigned sd = 0; sd < n; sd++)
            v[sd] = which == 0 ? mk[sd][0] / mk[sd][best] : bu[sd][0] / bu[sd][best];
        pct[which] = p90(v, n);
    }
    bool met = bound_met(mean_mk[0], mean_bu[0], mean_mk[best], mean_bu[best], good_rejected);
    bool dmet = bound_met(tail[0], tail[1], tail[2], tail[3], good_rejected);
    *missed += !met;
    *dmissed += !dmet;
    printf("| %s%s | %.2f | %s | %s: %.1f T, %.1f builds | %.3f | %.3f | %.3f | %.3f | "
           "%s | %s | %.3f | %.3f | %u of %u | %d |\n",
           execs[e].name, start, ps[pi], flaky ? "5%" : "no", strats[best].name, mean_mk[best],
           mean_bu[best], mean_mk[0] / mean_mk[best], mean_bu[0] / mean_bu[best], tail[0] / tail[2],
           tail[1] / tail[3], met ? "met" : "NOT met", dmet ? "met" : "NOT met", pct[0], pct[1],
           oracle, n, good_rejected);
    (void)fflush(stdout);
}

/*
 * Every workload over seeds first .. first+n-1 (a new bad set and a new
 * flake stream each).  Per row, the fixed strategy best on average (mean
 * makespan) is the anchor: adaptive's mean makespan and builds as ratios to
 * its; the worst decile: the mean of adaptive's worst tenth of seeds (its
 * largest makespans, its largest builds) as ratios to the anchor's worst
 * tenth; the bound judged on both.  Also shown, not judged: the 90th
 * percentile of the per-seed ratios (each seed's adaptive to that seed's
 * anchor), and how often adaptive is within the bound of the best fixed
 * strategy of each seed (an oracle no fixed choice has).  --warm: each row
 * again for adaptive started warm (warm_workload), against the same anchor.
 */
static int seeds(unsigned first, unsigned n)
{
    printf("keel-gate scheduler over seeds %u .. %u: %d changes, %d slots, 2 configurations (b: "
           "%.2f T)%s\n\n",
           first, first + n - 1, nchanges, SLOTS, cfg_work[1],
           warm ? "; (warm): adaptive after a queue of the same workload (seed + 200000)" : "");
    printf("| executor | p | flakes | best fixed (mean) | adaptive / it, mean: makespan | builds | "
           "worst decile: makespan | builds | bound: mean | worst decile | per-seed ratio, 90th "
           "percentile: makespan | builds | within it of each seed's best | good rejected by "
           "adaptive |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    int missed = 0, dmissed = 0, wmissed = 0, wdmissed = 0;
    double *v = (double *)calloc(4 * (size_t)n, sizeof(double));
    double(*mk)[NSTRAT] = (double(*)[NSTRAT])calloc(n, sizeof(*mk));
    double(*bu)[NSTRAT] = (double(*)[NSTRAT])calloc(n, sizeof(*bu));
    if (v == NULL || mk == NULL || bu == NULL) {
        (void)fprintf(stderr, "bench_gate: out of memory\n");
        exit(1);
    }
    for (size_t e = 0; e < NEXEC; e++)
        for (int flaky = 0; flaky <= 1; flaky++)
            for (size_t pi = 0; pi < NP; pi++) {
                if (only_e >= 0 && (only_e != (int)e || only_p != (int)pi || only_f != flaky))
                    continue;
                unsigned oracle = 0;
                int good_rejected = 0;
                for (unsigned sd = 0; sd < n; sd++) {
                    bool bad[MAXCHANGES + 1];
                    outcome o[NSTRAT];
                    (void)workload(&execs[e], pi, flaky != 0, first + sd, bad, o);
                    int best = best_fixed(o);
                    oracle += bound_met(o[0].makespan, (double)o[0].builds, o[best].makespan,
                                        (double)o[best].builds, o[0].good_rejected);
                    good_rejected += o[0].good_rejected;
                    for (int k = 0; k < NSTRAT; k++) {
                        mk[sd][k] = o[k].makespan;
                        bu[sd][k] = (double)o[k].builds;
                    }
                }
                seeds_row(e, pi, flaky, "", n, mk, bu, v, oracle, good_rejected, &missed, &dmissed);
                if (!warm)
                    continue;
                oracle = 0;
                good_rejected = 0;
                for (unsigned sd = 0; sd < n; sd++) {
                    outcome w = warm_workload(&execs[e], pi, flaky != 0, first + sd);
                    int best = 1; /* the seed's best fixed strategy, as best_fixed */
                    for (int k = 2; k < NSTRAT; k++)
                        if (mk[sd][k] < mk[sd][best] - 1e-9 ||
                            (mk[sd][k] <= mk[sd][best] + 1e-9 && bu[sd][k] < bu[sd][best]))
                            best = k;
                    oracle += bound_met(w.makespan, (double)w.builds, mk[sd][best], bu[sd][best],
                                        w.good_rejected);
                    good_rejected += w.good_rejected;
                    mk[sd][0] = w.makespan;
                    bu[sd][0] = (double)w.builds;
                }
                seeds_row(e, pi, flaky, " (warm)", n, mk, bu, v, oracle, good_rejected, &wmissed,
                          &wdmissed);
            }
    free(v);
    free(mk);
    free(bu);
    printf("\nworkloads where adaptive misses the bound (makespan <= 1.05x, builds <= 1.1x the "
           "best fixed strategy's, no good change rejected): on the means %d of %d, on the worst "
           "decile %d of %d\n",
           missed, (int)(NEXEC * 2 * NP), dmissed, (int)(NEXEC * 2 * NP));
    if (warm)
        printf("the same, adaptive started warm: on the means %d of %d, on the worst decile %d "
               "of %d\n",
               wmissed, (int)(NEXEC * 2 * NP), wdmissed, (int)(NEXEC * 2 * NP));
    return missed + dmissed + wmissed + wdmissed;
}

/*
 * N trials per strategy on the free executor, each a new bad set at p = 0.1
 * and a new flake stream, 5% flakes per job, retries = 1: good changes
 * rejected (the goal: none), in how many trials, bad changes landed, and
 * the mean cost.
 */
static void trials(unsigned n)
{
    char endings[64] = "";
    if (flake_endings > 0)
        (void)snprintf(endings, sizeof(endings), " ending one of %u ways", flake_endings);
    printf("keel-gate scheduler, %u trials per strategy: %d changes (p = 0.10), 2 "
           "configurations, 5%% flakes per job%s, retries = 1, %d slots\n\n",
           n, nchanges, endings, SLOTS);
    printf("| strategy | good rejected | trials with one | bad landed | makespan (T) | builds | "
           "jobs |\n|---|---|---|---|---|---|---|\n");
    int total = 0;
    for (int k = 0; k < NSTRAT; k++) {
        int good = 0, hit = 0, bad_landed = 0;
        double mk = 0, bu = 0, jb = 0;
        for (unsigned t = 0; t < n; t++) {
            bool bad[MAXCHANGES + 1];
            unsigned long long x = 0x7e1a1000ull + ((unsigned long long)t << 20);
            bad[0] = false;
            for (int c = 1; c <= nchanges; c++)
                bad[c] = bench_uniform(&x) < 0.1;
            outcome o = simulate(&strats[k], &execs[0], bad, 0.05, 1,
                                 0xf1a4e000ull + t * 7919ull + (unsigned long long)k, NULL, NULL);
            good += o.good_rejected;
            hit += o.good_rejected > 0;
            bad_landed += o.bad_landed;
            mk += o.makespan;
            bu += (double)o.builds;
            jb += (double)o.jobs;
        }
        total += good;
        printf("| %s | %d | %d | %d | %.1f | %.1f | %.1f |\n", strats[k].name, good, hit,
               bad_landed, mk / n, bu / n, jb / n);
    }
    printf("\ngood changes rejected in %u trials, all strategies: %d\n", n, total);
}

/*
 * --trace E,P,F: executor E (0 free, 1 2 cores, 2 8 cores), p = ps[P], flakes F (0, 1), over
 * the seeds given: each strategy's makespan and builds, and adaptive's shape at each change.
 */
/* An option's E,P,F (executor, p, flakes), or exit. */
static void workload_spec(const char *opt, const char *spec, unsigned *e, unsigned *pi,
                          unsigned *flaky)
{
    if (sscanf(spec, "%u,%u,%u", e, pi, flaky) != 3 || *e >= NEXEC || *pi >= NP || *flaky > 1) {
        (void)fprintf(stderr, "bench_gate: %s wants E,P,F (executor, p, flakes), not '%s'\n", opt,
                      spec);
        exit(2);
    }
}

static double ratio_of(unsigned long long k, unsigned long long n)
{
    return n > 0 ? (double)k / (double)n : 0.0;
}

static void traces(const char *spec, unsigned first, unsigned n)
{
    unsigned e = 0, pi = 0, flaky = 0;
    workload_spec("--trace", spec, &e, &pi, &flaky);
    for (unsigned sd = first; sd < first + n; sd++) {
        bool bad[MAXCHANGES + 1];
        outcome o[NSTRAT];
        printf("executor %s, p %.2f, %s, seed %u: adaptive's shapes\n", execs[e].name, ps[pi],
               flaky ? "flakes" : "no flakes", sd);
        tracing = true;
        int nbad = workload(&execs[e], pi, flaky != 0, sd, bad, o);
        tracing = false;
        printf("  %d bad;", nbad);
        for (int k = 0; k < NSTRAT; k++)
            printf(" %s %.1f T %llu builds;", strats[k].name, o[k].makespan, o[k].builds);
        printf("\n");
        const outcome *a = &o[0];
        unsigned long long all = a->clean[0] + a->clean[1];
        unsigned long long fl = a->clean_flaked[0] + a->clean_flaked[1];
        printf("  adaptive's builds of trees that pass: %llu of %llu first builds flaked (%.3f), "
               "%llu of %llu retries (%.3f), all %.3f; the flake estimate over the queue's "
               "time: mean %.3f, %.3f .. %.3f, at the end %.3f\n",
               a->clean_flaked[0], a->clean[0], ratio_of(a->clean_flaked[0], a->clean[0]),
               a->clean_flaked[1], a->clean[1], ratio_of(a->clean_flaked[1], a->clean[1]),
               ratio_of(fl, all), a->flake_mean, a->flake_lo, a->flake_hi, a->end.flake);
    }
}

/*
 * --model E,P,F: every shape b x d (b in 1..8, d in 1..4) run as a fixed
 * speculative-batch strategy over the seeds given, against what adaptive's
 * model expects of it (gate_sched_shape_time, gate_sched_shape_builds) at
 * the workload's p, with the capacity and failure costs that run learned:
 * the simulated time and builds per change decided beside the model's.
 */
static void models(const char *spec, unsigned first, unsigned n)
{
    unsigned e = 0, pi = 0, flaky = 0;
    workload_spec("--model", spec, &e, &pi, &flaky);
    static const unsigned bs[] = {1, 2, 3, 4, 6, 8};
    printf("executor %s, p %.2f, %s, seeds %u .. %u: per change, simulated / model\n\n",
           execs[e].name, ps[pi], flaky ? "flakes" : "no flakes", first, first + n - 1);
    printf("| shape | time sim | model | ratio | builds sim | model | ratio | fail time, work |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (size_t bi = 0; bi < sizeof(bs) / sizeof(bs[0]); bi++)
        for (unsigned d = 1; d <= 4; d++) {
            strat st = {"shape", GATE_STRATEGY_SPECULATIVE_BATCH, bs[bi], d};
            double mk = 0, bu = 0, mt = 0, mb = 0, ft = 0, fw = 0;
            for (unsigned sd = first; sd < first + n; sd++) {
                bool bad[MAXCHANGES + 1];
                (void)bad_set(pi, sd, bad);
                outcome o =
                    simulate(&st, &execs[e], bad, flaky ? 0.05 : 0.0, flaky ? 1u : 0u,
                             0xf1a4e000ull + pi + ((unsigned long long)sd << 16), NULL, NULL);
                gate_sched_params p;
                gate_sched_params_default(&p);
                p.max_batch = bs[bi];
                p.max_depth = d;
                p.retries = flaky ? 1u : 0u;
                const gate_sched_stats *g = &o.end; /* p known (n large), the rest learned */
                gate_sched_outlook ol = {ps[pi],
                                         1e6,
                                         0,
                                         g->parallel,
                                         NCFG,
                                         g->width,
                                         g->fail_time,
                                         g->fail_work,
                                         g->retry_time,
                                         g->retry_work,
                                         g->flake,
                                         0,
                                         0,
                                         {0}};
                mk += o.makespan / nchanges;
                bu += (double)o.builds / nchanges;
                mt += gate_sched_shape_time(&p, &ol, bs[bi], d);
                mb += gate_sched_shape_builds(&p, &ol, bs[bi], d);
                ft += g->fail_time;
                fw += g->fail_work;
            }
            printf("| %ux%u | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f, %.2f |\n", bs[bi], d,
                   mk / n, mt / n, mk / mt, bu / n, mb / n, bu / mb, ft / n, fw / n);
            (void)fflush(stdout);
        }
}

static unsigned count_arg(const char *opt, const char *arg)
{
    char *end = NULL;
    unsigned long n = strtoul(arg, &end, 10);
    if (*end != '\0' || n < 1 || n > 100000) {
        (void)fprintf(stderr, "bench_gate: %s wants a count in [1, 100000], not '%s'\n", opt, arg);
        exit(2);
    }
    return (unsigned)n;
}

int main(int argc, char **argv)
{
    unsigned first = 0, nseeds = 0, ntrials = 0;
    const char *trace_spec = NULL, *model_spec = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (arg != NULL && strcmp(opt, "--b-length") == 0) {
            char *end = NULL;
            double b = strtod(arg, &end);
            if (*end != '\0' || !(b > 0.0 && b <= 1.0)) {
                (void)fprintf(stderr,
                              "bench_gate: --b-length wants a length in (0, 1] T, not '%s'\n", arg);
                return 2;
            }
            cfg_work[1] = b;
        } else if (arg != NULL && strcmp(opt, "--fail-length") == 0) {
            char *end = NULL;
            double f = strtod(arg, &end);
            if (*end != '\0' || !(f > 0.0 && f <= 1.0)) {
                (void)fprintf(stderr,
                              "bench_gate: --fail-length wants a part of a job's time in (0, 1], "
                              "not '%s'\n",
                              arg);
                return 2;
            }
            fail_length = f;
        } else if (arg != NULL && strcmp(opt, "--changes") == 0) {
            unsigned n = count_arg(opt, arg);
            if (n < 2 || n > MAXCHANGES) {
                (void)fprintf(stderr, "bench_gate: --changes wants a count in [2, %d], not '%s'\n",
                              MAXCHANGES, arg);
                return 2;
            }
            nchanges = (int)n;
        } else if (arg != NULL && strcmp(opt, "--pace") == 0 &&
                   (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
            pace = strcmp(arg, "on") == 0;
        } else if (arg != NULL && strcmp(opt, "--first-seed") == 0) {
            first = strcmp(arg, "0") == 0 ? 0 : count_arg(opt, arg);
        } else if (arg != NULL && strcmp(opt, "--seeds") == 0) {
            nseeds = count_arg(opt, arg);
        } else if (arg != NULL && strcmp(opt, "--workload") == 0) {
            if (sscanf(arg, "%d,%d,%d", &only_e, &only_p, &only_f) != 3 || only_e < 0 ||
                only_e >= (int)NEXEC || only_p < 0 || only_p >= (int)NP || only_f < 0 ||
                only_f > 1) {
                (void)fprintf(
                    stderr, "bench_gate: --workload wants E,P,F (executor, p, flakes), not '%s'\n",
                    arg);
                return 2;
            }
        } else if (arg != NULL && strcmp(opt, "--rates") == 0) {
            double r[NP];
            char tail = '\0';
            if (sscanf(arg, "%lf,%lf,%lf%c", &r[0], &r[1], &r[2], &tail) != 3 ||
                !(r[0] > 0.0 && r[0] < 1.0 && r[1] > 0.0 && r[1] < 1.0 && r[2] > 0.0 &&
                  r[2] < 1.0)) {
                (void)fprintf(stderr,
                              "bench_gate: --rates wants three failure rates in (0, 1), "
                              "not '%s'\n",
                              arg);
                return 2;
            }
            memcpy(ps, r, sizeof(ps));
        } else if (arg != NULL && strcmp(opt, "--flaky-alike") == 0 &&
                   (strcmp(arg, "2") == 0 || strcmp(arg, "3") == 0)) {
            flaky_alike = (unsigned)(arg[0] - '0');
        } else if (arg != NULL && strcmp(opt, "--flake-endings") == 0) {
            unsigned k = strcmp(arg, "0") == 0 ? 0 : count_arg(opt, arg);
            if (k > FLAKE_ENDINGS_MAX) {
                (void)fprintf(stderr,
                              "bench_gate: --flake-endings wants a count in [0, %d], not '%s'\n",
                              FLAKE_ENDINGS_MAX, arg);
                return 2;
            }
            flake_endings = k;
        } else if (arg != NULL && strcmp(opt, "--warm") == 0 &&
                   (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
            warm = strcmp(arg, "on") == 0;
        } else if (arg != NULL && strcmp(opt, "--trace") == 0) {
            trace_spec = arg;
        } else if (arg != NULL && strcmp(opt, "--model") == 0) {
            model_spec = arg;
        } else if (arg != NULL && strcmp(opt, "--trials") == 0) {
            ntrials = count_arg(opt, arg);
        } else {
            (void)fprintf(stderr,
                          "usage: bench_gate [--seeds N [--first-seed S] | --trials N | "
                          "--trace E,P,F [--seeds N] [--first-seed S] | --model E,P,F [--seeds N]] "
                          "[--workload E,P,F] [--b-length X] "
                          "[--fail-length F] [--changes N] [--rates P1,P2,P3] [--pace on|off] "
                          "[--warm on|off] "
                          "[--flaky-alike 2|3] [--flake-endings K]\n");
            return 2;
        }
    }
    if (model_spec != NULL) {
        models(model_spec, first, nseeds > 0 ? nseeds : 20);
        return 0;
    }
    if (trace_spec != NULL) {
        traces(trace_spec, first, nseeds > 0 ? nseeds : 1);
        return 0;
    }
    if (ntrials > 0) {
        trials(ntrials);
        return 0;
    }
    if (nseeds > 0)
        return seeds(first, nseeds) == 0 ? 0 : 1;
    table();
    return 0;
}
