/*
 * bench_gate.c - keel-gate's scheduler on a synthetic merge queue: a
 * discrete-event simulation in units of T, the time of one build.
 *
 * 200 changes, each bad with probability p in {0.02, 0.1, 0.3} (splitmix64,
 * fixed seeds), 4 slots, every build takes exactly T.  Every build runs two
 * configurations, a and b (a retry only those that failed): bad change c
 * fails configuration c % 2 (both when c % 3 == 0) with a failure signature
 * of its own, every time; in the flaky runs every job also fails spuriously
 * with probability 0.05, with a random signature (retries = 1).  For each
 * strategy: the makespan in T, the builds started,
 * whether exactly the bad changes were rejected, how many good changes were
 * rejected, and the scheduler's CPU per landed change (process CPU time of
 * the whole simulation divided by the changes landed).
 *
 * Goal (the scheduler's issue): adaptive's makespan <= the best fixed
 * strategy's, with no more builds than that strategy; CPU < 50 ms a change.
 * Run: build/release/bench_gate (or make bench): the table of seed 0;
 * build/release/bench_gate --seeds N: the six workloads over seeds 0 .. N-1,
 * per row how often adaptive meets the goal (a good change rejected misses
 * it) and its means against the best fixed strategy of each seed.
 * build/release/bench_gate --trials N: N trials (a new bad set at p = 0.1
 * and a new flake stream each) per strategy with 5% flakes per job and
 * retries = 1: good changes rejected (the goal: none), bad ones landed.
 *
 * Compiled with -DBENCH_OLD_API (against a scheduler before per-configuration
 * verdicts) a build reports one result, failed when a job failed, and a
 * retry runs every configuration: the gate before them.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"

#include "scheduler.h"

enum { NCHANGES = 200, SLOTS = 4, MAXCAND = 16384, NSTRAT = 6 };

static unsigned long long splitmix64(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(unsigned long long *x)
{
    return (double)(splitmix64(x) >> 11) / 9007199254740992.0;
}

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
};

typedef struct outcome {
    long long makespan; /* in T */
    unsigned long long builds, landed, jobs;
    int bad_landed;
    bool exact; /* exactly the bad changes rejected */
    int good_rejected;
    double cpu_us; /* per landed change */
} outcome;

typedef struct world {
    bool bad[NCHANGES + 1];
    bool cand_bad[MAXCAND];
    unsigned long long cand_sig[MAXCAND]
                               [2]; /* the signature its tree fails a, b with (0: passes) */
    unsigned mask[MAXCAND];         /* the configurations its running build runs */
    unsigned long long jobs;
    long long running[MAXCAND];
    size_t nrunning;
    int state[NCHANGES + 1]; /* 0 active, 1 landed, 2 rejected */
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
        } else if (d.kind == GATE_SCHED_CANCEL_BUILD) {
            for (size_t i = 0; i < w->nrunning; i++)
                if (w->running[i] == d.candidate) {
                    w->running[i] = w->running[--w->nrunning];
                    break;
                }
        }
    }
}

static outcome simulate(const strat *st, const bool *bad, double flake, unsigned retries,
                        unsigned long long seed)
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
    gate_sched *s = NULL;
    keel_status ks = gate_sched_new(&p, &s);
    if (!keel_ok(ks))
        die(ks, "new");
    for (long long c = 1; c <= NCHANGES; c++)
        if (!keel_ok(ks = gate_sched_enqueue(s, c)))
            die(ks, "enqueue");
    long long t = 0;
    for (;;) {
        for (;;) {
            gate_sched_build b;
            bool have = false;
            if (!keel_ok(ks = gate_sched_next(s, &b, &have)))
                die(ks, "next");
            if (!have)
                break;
            if (b.candidate >= MAXCAND) {
                (void)fprintf(stderr, "bench_gate: more than %d candidates\n", MAXCAND);
                exit(1);
            }
            if (b.attempt == 1) {
                bool cb = b.base != 0 && w.cand_bad[b.base];
                for (size_t i = 0; i < b.n; i++)
                    cb = cb || w.bad[b.changes[i]];
                w.cand_bad[b.candidate] = cb;
                for (unsigned k = 0; k < 2; k++) {
                    unsigned long long sig = b.base != 0 ? w.cand_sig[b.base][k] : 0;
                    for (size_t i = 0; i < b.n && sig == 0; i++) {
                        long long c = b.changes[i];
                        if (w.bad[c] && ((unsigned long long)c % 2 == k || c % 3 == 0))
                            sig = 1000ull + 2ull * (unsigned long long)c + k;
                    }
                    w.cand_sig[b.candidate][k] = sig;
                }
            }
            w.mask[b.candidate] = 3u;
#ifndef BENCH_OLD_API
            if (b.nconfigs > 0)
                w.mask[b.candidate] = 0;
            for (size_t i = 0; i < b.nconfigs; i++)
                w.mask[b.candidate] |= strcmp(b.configs[i], "a") == 0 ? 1u : 2u;
#endif
            w.running[w.nrunning++] = b.candidate;
        }
        if (w.nrunning == 0)
            break;
        t++; /* every running build ends one T later */
        long long ending[MAXCAND];
        size_t n = w.nrunning;
        memcpy(ending, w.running, n * sizeof(long long));
        for (size_t i = 0; i < n; i++) {
            size_t k = 0;
            while (k < w.nrunning && w.running[k] != ending[i])
                k++;
            if (k == w.nrunning)
                continue; /* cancelled meanwhile */
            w.running[k] = w.running[--w.nrunning];
            long long c = ending[i];
            bool passed = true;
#ifndef BENCH_OLD_API
            gate_sched_run runs[2];
            size_t nr = 0;
#endif
            for (unsigned q = 0; q < 2; q++) {
                if ((w.mask[c] & (1u << q)) == 0)
                    continue;
                w.jobs++;
                unsigned long long sig = w.cand_sig[c][q];
                if (sig == 0 && flake > 0 && uniform(&seed) < flake)
                    sig = splitmix64(&seed) | 1; /* a flake: its log ends any way */
                passed = passed && sig == 0;
#ifndef BENCH_OLD_API
                memset(&runs[nr], 0, sizeof(runs[nr]));
                runs[nr].config = q == 0 ? "a" : "b";
                runs[nr].passed = sig == 0;
                runs[nr++].signature = sig;
#endif
            }
#ifndef BENCH_OLD_API
            ks = gate_sched_results(s, c, runs, nr);
#else
            ks = gate_sched_result(s, c, passed);
#endif
            if (!keel_ok(ks))
                die(ks, "result");
            take(s, &w);
        }
    }
    gate_sched_stats gs;
    gate_sched_stats_get(s, &gs);
    double t1 = cpu_ns();
    outcome o;
    memset(&o, 0, sizeof(o));
    o.makespan = t;
    o.builds = gs.builds;
    o.landed = gs.landed;
    o.jobs = w.jobs;
    o.exact = true;
    for (int c = 1; c <= NCHANGES; c++) {
        if (w.state[c] == 0 || (w.state[c] == 2) != bad[c])
            o.exact = false;
        if (w.state[c] == 2 && !bad[c])
            o.good_rejected++;
        if (w.state[c] == 1 && bad[c])
            o.bad_landed++;
    }
    o.cpu_us = gs.landed > 0 ? (t1 - t0) / 1e3 / (double)gs.landed : 0.0;
    gate_sched_delete(s);
    return o;
}

static const double ps[] = {0.02, 0.1, 0.3};
enum { NP = sizeof(ps) / sizeof(ps[0]) };

/*
 * One workload (p = ps[pi], flakes or not, seed number `seed`; seed 0 is the
 * table's) run by every strategy: the bad set, its size, and each outcome.
 */
static int workload(size_t pi, bool flaky, unsigned long long seed, bool *bad, outcome *o)
{
    unsigned long long x = 0x5eed0000ull + pi + (seed << 16);
    int nbad = 0;
    bad[0] = false;
    for (int c = 1; c <= NCHANGES; c++) {
        bad[c] = uniform(&x) < ps[pi];
        nbad += bad[c];
    }
    for (int k = 0; k < NSTRAT; k++)
        o[k] = simulate(&strats[k], bad, flaky ? 0.05 : 0.0, flaky ? 1u : 0u,
                        0xf1a4e000ull + pi + (seed << 16));
    return nbad;
}

/* The best fixed strategy: the shortest makespan, then the fewest builds. */
static int best_fixed(const outcome *o)
{
    int best = 1;
    for (int k = 2; k < NSTRAT; k++)
        if (o[k].makespan < o[best].makespan ||
            (o[k].makespan == o[best].makespan && o[k].builds < o[best].builds))
            best = k;
    return best;
}

static bool goal_met(const outcome *o, int best)
{
    return o[0].makespan <= o[best].makespan && o[0].builds <= o[best].builds &&
           o[0].good_rejected == 0;
}

/* The table of seed 0, every strategy. */
static void table(void)
{
    double worst_cpu = 0.0;
    int goals_met = 0, goals = 0;
    printf("keel-gate scheduler: %d changes, %d slots, every build takes T\n\n", NCHANGES, SLOTS);
    for (int flaky = 0; flaky <= 1; flaky++) {
        printf("%s\n", flaky
                           ? "with flakes: every job (2 a build) fails spuriously with probability "
                             "0.05, retries = 1"
                           : "no flakes, retries = 0");
        printf(
            "| p | strategy | makespan (T) | builds | exactly the bad rejected | good rejected | "
            "CPU per landed change |\n|---|---|---|---|---|---|---|\n");
        for (size_t pi = 0; pi < NP; pi++) {
            bool bad[NCHANGES + 1];
            outcome o[NSTRAT];
            int nbad = workload(pi, flaky != 0, 0, bad, o);
            for (int k = 0; k < NSTRAT; k++) {
                printf("| %.2f (%d bad) | %s | %lld | %llu | %s | %d | %.1f us |\n", ps[pi], nbad,
                       strats[k].name, o[k].makespan, o[k].builds, o[k].exact ? "yes" : "no",
                       o[k].good_rejected, o[k].cpu_us);
                if (o[k].cpu_us > worst_cpu)
                    worst_cpu = o[k].cpu_us;
            }
            int best = best_fixed(o);
            bool met = goal_met(o, best);
            goals++;
            goals_met += met;
            printf("|  | adaptive vs best fixed (%s: %lld T, %llu builds) | %s | | | | |\n",
                   strats[best].name, o[best].makespan, o[best].builds, met ? "met" : "NOT met");
        }
        printf("\n");
    }
    printf("adaptive <= best fixed strategy (makespan, and builds no more than it): %d of %d "
           "workloads\n",
           goals_met, goals);
    printf("scheduler CPU per landed change, worst run: %.1f us (goal < 50 ms)\n", worst_cpu);
}

/*
 * The same six workloads over seeds 0 .. n-1 (a new bad set and a new flake
 * stream each): per row, how often adaptive meets the goal, and its mean
 * makespan and builds against those of the best fixed strategy of each seed.
 */
static void seeds(unsigned n)
{
    printf("keel-gate scheduler over %u seeds: %d changes, %d slots, every build takes T\n\n", n,
           NCHANGES, SLOTS);
    printf("| p | flakes | goal met | adaptive makespan (T) | best fixed makespan (T) | adaptive "
           "builds | best fixed builds | adaptive - best makespan, range | good rejected by "
           "adaptive | best fixed was |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int flaky = 0; flaky <= 1; flaky++)
        for (size_t pi = 0; pi < NP; pi++) {
            unsigned met = 0, wins[NSTRAT] = {0};
            double am = 0, bm = 0, ab = 0, bb = 0;
            long long lo = 0, hi = 0;
            int good_rejected = 0;
            for (unsigned sd = 0; sd < n; sd++) {
                bool bad[NCHANGES + 1];
                outcome o[NSTRAT];
                (void)workload(pi, flaky != 0, sd, bad, o);
                int best = best_fixed(o);
                met += goal_met(o, best);
                wins[best]++;
                am += (double)o[0].makespan;
                bm += (double)o[best].makespan;
                ab += (double)o[0].builds;
                bb += (double)o[best].builds;
                long long d = o[0].makespan - o[best].makespan;
                lo = sd == 0 || d < lo ? d : lo;
                hi = sd == 0 || d > hi ? d : hi;
                good_rejected += o[0].good_rejected;
            }
            char who[256] = "";
            size_t len = 0;
            for (int k = 1; k < NSTRAT; k++)
                if (wins[k] > 0 && len < sizeof(who))
                    len += (size_t)snprintf(who + len, sizeof(who) - len, "%s%s %u",
                                            len ? ", " : "", strats[k].name, wins[k]);
            printf(
                "| %.2f | %s | %u of %u | %.1f | %.1f | %.1f | %.1f | %+lld .. %+lld | %d | %s |\n",
                ps[pi], flaky ? "5%" : "no", met, n, am / n, bm / n, ab / n, bb / n, lo, hi,
                good_rejected, who);
        }
}

/*
 * N trials per strategy, each a new bad set at p = 0.1 and a new flake
 * stream, 5% flakes per job, retries = 1: good changes rejected (the goal:
 * none), in how many trials, bad changes landed, and the mean cost.
 */
static void trials(unsigned n)
{
    printf("keel-gate scheduler, %u trials per strategy: %d changes (p = 0.10), 2 "
           "configurations, 5%% flakes per job, retries = 1, %d slots%s\n\n",
           n, NCHANGES, SLOTS,
#ifdef BENCH_OLD_API
           " (one result per build, retries of every configuration)"
#else
           ""
#endif
    );
    printf("| strategy | good rejected | trials with one | bad landed | makespan (T) | builds | "
           "jobs |\n|---|---|---|---|---|---|---|\n");
    int total = 0;
    for (int k = 0; k < NSTRAT; k++) {
        int good = 0, hit = 0, bad_landed = 0;
        double mk = 0, bu = 0, jb = 0;
        for (unsigned t = 0; t < n; t++) {
            bool bad[NCHANGES + 1];
            unsigned long long x = 0x7e1a1000ull + ((unsigned long long)t << 20);
            bad[0] = false;
            for (int c = 1; c <= NCHANGES; c++)
                bad[c] = uniform(&x) < 0.1;
            outcome o = simulate(&strats[k], bad, 0.05, 1,
                                 0xf1a4e000ull + t * 7919ull + (unsigned long long)k);
            good += o.good_rejected;
            hit += o.good_rejected > 0;
            bad_landed += o.bad_landed;
            mk += (double)o.makespan;
            bu += (double)o.builds;
            jb += (double)o.jobs;
        }
        total += good;
        printf("| %s | %d | %d | %d | %.1f | %.1f | %.1f |\n", strats[k].name, good, hit,
               bad_landed, mk / n, bu / n, jb / n);
    }
    printf("\ngood changes rejected in %u trials, all strategies: %d\n", n, total);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--trials") == 0) {
        char *end = NULL;
        unsigned long n = strtoul(argv[2], &end, 10);
        if (*end != '\0' || n < 1 || n > 100000) {
            (void)fprintf(stderr, "bench_gate: --trials wants a count in [1, 100000]\n");
            return 2;
        }
        trials((unsigned)n);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--seeds") == 0) {
        char *end = NULL;
        unsigned long n = strtoul(argv[2], &end, 10);
        if (*end != '\0' || n < 1 || n > 100000) {
            (void)fprintf(stderr, "bench_gate: --seeds wants a count in [1, 100000]\n");
            return 2;
        }
        seeds((unsigned)n);
        return 0;
    }
    if (argc != 1) {
        (void)fprintf(stderr, "usage: bench_gate [--seeds N | --trials N]\n");
        return 2;
    }
    table();
    return 0;
}
