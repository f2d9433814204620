/*
 * bench_culprit.c - the flake-aware culprit search (gate/queue/culprit.h)
 * against linear search and plain bisection on simulated histories.
 *
 * A history: commits 0..n, 0 known to pass, n seen failing once; one or two
 * culprits among 1..n (uniform; with two, at distinct positions, the first
 * bad commit is the earlier, and every commit from it on fails); a good
 * commit's build fails spuriously with probability f in {0, 5%, 20%}, a bad
 * one's always (splitmix64, the trial's own seed).  Every method is told
 * the true f and the default confidence, 0.9999 (--confidence P), has a
 * budget of 200 builds and the same verification rule: the suspect fails
 * fail_runs more times (the least m with f^m <= 1 - confidence: 1, 4, 6 at
 * 0.9999; 1, 3, 5 at 0.999) and never passes, its parent passed once.
 *
 *   keel       the search of culprit.h, one build at a time
 *   keel x4    the same with 4 builds in flight, in rounds (take up to 4,
 *              run them, feed the results): builds and rounds (wall time)
 *   linear     build 1, 2, ... until one fails; rerun it until verified,
 *              or, when it passes, go on after it
 *   bisection  lo = 0, hi = n: build the middle, pass: lo, fail: hi, until
 *              hi = lo + 1; rerun hi until verified, or, when it passes,
 *              bisect again from lo = hi to n
 *
 * For each (n, f, culprits): builds per trial (mean, worst decile: the 90th
 * percentile), wrong verified culprits, trials without a verdict (budget
 * spent, or no-culprit where there was one), keel's mean builds over
 * bisection's in the same run, and the goal 2 log2(n) + 4.
 * Goal (issue 17): at 5% flakes no wrong culprit in 1,000 trials, keel's mean
 * builds <= 2 log2(n) + 4.
 *
 * Run: build/release/bench_culprit [--trials N] [--confidence P]
 * [--intermittent P] [--seed S] [--show-wrong] (1000 trials by default; or
 * make bench); --seed S (default 0) draws other histories and flakes, for
 * repetitions that are independent samples;
 * --intermittent P makes a bad commit's build pass with probability P (a
 * break that only sometimes shows: outside keel's model, to see what it
 * costs; the goal line then still judges the 5% rows); --show-wrong prints
 * the log of every wrong verified culprit of keel's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"

#include "bench.h"

#include "culprit.h"

enum { MAXN = 256, BUDGET = 200, METHODS = 4, WIDE = 4 };

/* --confidence (0: gate_culprit_params_default's), --show-wrong */
static double confidence;
static bool show_wrong;
/* --intermittent P: a bad commit's build passes with probability P (outside keel's model) */
static double intermittent;
/* --seed S: the histories of repetition S (0: those of the tables in docs/benchmarks.md) */
static unsigned long long seed;

static const char *const method_name[METHODS] = {"keel", "keel x4", "linear", "bisection"};

/* One trial's world: the first bad commit, the flake rate, the builds so far. */
typedef struct world {
    unsigned n, first_bad;
    double f;
    unsigned long long rng;
    unsigned builds;
    unsigned runs[MAXN + 1], fails[MAXN + 1]; /* the baselines' evidence */
} world;

static bool build(world *w, unsigned commit)
{
    w->builds++;
    bool failed = commit >= w->first_bad
                      ? !(intermittent > 0.0 && bench_uniform(&w->rng) < intermittent)
                      : bench_uniform(&w->rng) < w->f;
    w->runs[commit]++;
    w->fails[commit] += failed;
    return failed;
}

/* What a method ended with: the verified culprit, 0 for none. */
typedef struct outcome {
    unsigned culprit, builds, rounds;
} outcome;

static outcome keel_search(world *w, size_t wide)
{
    gate_culprit_params p;
    gate_culprit_params_default(&p);
    p.n = w->n;
    p.flake = w->f;
    p.budget = BUDGET;
    p.confidence = confidence;
    p.intermittent = intermittent; /* keel is told; the baselines know nothing of it */
    gate_culprit *c = NULL;
    keel_status st = gate_culprit_new(&p, &c);
    KEEL_ASSERT(keel_ok(st));
    outcome o = {0, 0, 0};
    for (;;) {
        unsigned todo[WIDE];
        size_t k = 0;
        st = gate_culprit_next(c, wide, todo, &k);
        KEEL_ASSERT(keel_ok(st));
        if (k == 0)
            break;
        o.rounds++;
        for (size_t i = 0; i < k; i++) {
            st = gate_culprit_result(c, todo[i], build(w, todo[i]));
            KEEL_ASSERT(keel_ok(st));
        }
    }
    gate_culprit_verdict v;
    gate_culprit_verdict_get(c, &v);
    if (show_wrong && v.state == GATE_CULPRIT_VERIFIED && v.commit != w->first_bad) {
        printf("wrong culprit c%u (the first bad is c%u), %zu at once:\n", v.commit, w->first_bad,
               wide);
        for (size_t i = 0; i < gate_culprit_log_count(c); i++)
            printf("    %s\n", gate_culprit_log(c, i)->text);
    }
    gate_culprit_delete(c);
    o.culprit = v.state == GATE_CULPRIT_VERIFIED ? v.commit : 0;
    o.builds = w->builds;
    return o;
}

/*
 * The baselines' verification, keel's rule: rerun the suspect k until it
 * failed `need` more times with no pass ever (true) or passed (false); its
 * parent has passed.
 */
static bool verify(world *w, unsigned k, unsigned need)
{
    unsigned before = w->fails[k];
    while (w->fails[k] == w->runs[k] && w->fails[k] - before < need) {
        if (w->builds >= BUDGET)
            return false;
        (void)build(w, k);
    }
    return w->fails[k] == w->runs[k];
}

static void given(world *w)
{
    memset(w->runs, 0, sizeof(w->runs));
    memset(w->fails, 0, sizeof(w->fails));
    w->runs[0] = 1;                     /* commit 0 passed */
    w->runs[w->n] = w->fails[w->n] = 1; /* commit n failed */
}

static outcome linear(world *w, unsigned need)
{
    given(w);
    outcome o = {0, 0, 0};
    for (unsigned i = 1; i <= w->n && w->builds < BUDGET; i++) {
        bool failed = w->runs[i] > 0 ? w->fails[i] == w->runs[i] : build(w, i);
        if (failed && verify(w, i, need)) {
            o.culprit = i;
            break;
        }
    }
    o.builds = o.rounds = w->builds;
    return o;
}

static outcome bisection(world *w, unsigned need)
{
    given(w);
    outcome o = {0, 0, 0};
    unsigned lo = 0, hi = w->n;
    while (lo < w->n && w->builds < BUDGET) {
        while (hi - lo > 1 && w->builds < BUDGET) {
            unsigned mid = lo + (hi - lo) / 2;
            if (build(w, mid))
                hi = mid;
            else
                lo = mid;
        }
        if (hi - lo > 1)
            break; /* the budget */
        if (verify(w, hi, need)) {
            o.culprit = hi;
            break;
        }
        lo = hi; /* hi passed: good */
        hi = w->n;
    }
    o.builds = o.rounds = w->builds;
    return o;
}

typedef struct tally {
    unsigned *builds; /* per trial */
    double rounds;
    unsigned wrong, none;
} tally;

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

static double mean(const unsigned *v, unsigned n)
{
    double s = 0.0;
    for (unsigned i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* The 90th percentile (sorts v). */
static unsigned worst_decile(unsigned *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_unsigned);
    return v[(unsigned)ceil(0.9 * n) - 1];
}

/* One row: `trials` histories of n commits at flake rate f with `culprits` culprits. */
static bool row(unsigned n, double f, unsigned culprits, unsigned trials, unsigned seed_base)
{
    tally t[METHODS];
    for (int m = 0; m < METHODS; m++) {
        memset(&t[m], 0, sizeof(t[m]));
        t[m].builds = calloc(trials, sizeof(unsigned));
        if (t[m].builds == NULL) {
            (void)fprintf(stderr, "bench_culprit: out of memory\n");
            exit(1);
        }
    }
    unsigned need = gate_culprit_fail_runs(f, confidence);
    for (unsigned i = 0; i < trials; i++) {
        unsigned long long pos = 0x5eedull * (seed_base + i) + n + 0x9e3779b97f4a7c15ull * seed;
        unsigned first = 1 + (unsigned)(bench_uniform(&pos) * n);
        if (culprits == 2 && n > 1) {
            unsigned second = first;
            while (second == first)
                second = 1 + (unsigned)(bench_uniform(&pos) * n);
            if (second < first)
                first = second;
        }
        for (int m = 0; m < METHODS; m++) {
            world w = {.n = n, .first_bad = first, .f = f, .rng = pos ^ (0x9e37ull * (unsigned)m)};
            outcome o = m == 0   ? keel_search(&w, 1)
                        : m == 1 ? keel_search(&w, WIDE)
                        : m == 2 ? linear(&w, need)
                                 : bisection(&w, need);
            t[m].builds[i] = o.builds;
            t[m].rounds += o.rounds;
            if (o.culprit == 0)
                t[m].none++;
            else if (o.culprit != first)
                t[m].wrong++;
        }
    }
    double goal = 2.0 * log2((double)n) + 4.0;
    double keel_mean = mean(t[0].builds, trials), bis_mean = mean(t[3].builds, trials);
    printf("| %3u | %4.0f%% | %u |", n, f * 100.0, culprits);
    for (int m = 0; m < METHODS; m++) {
        double mb = mean(t[m].builds, trials);
        unsigned p90 = worst_decile(t[m].builds, trials);
        if (m == 1)
            printf(" %.1f (%u), %.1f rounds |", mb, p90, t[m].rounds / trials);
        else
            printf(" %.1f (%u) |", mb, p90);
    }
    printf(" %u / %u / %u / %u | %u / %u / %u / %u | %.2f | %.0f |\n", t[0].wrong, t[1].wrong,
           t[2].wrong, t[3].wrong, t[0].none, t[1].none, t[2].none, t[3].none, keel_mean / bis_mean,
           goal);
    bool ok = f != 0.05 || (t[0].wrong == 0 && keel_mean <= goal);
    for (int m = 0; m < METHODS; m++)
        free(t[m].builds);
    return ok;
}

static unsigned count_arg(const char *opt, const char *s)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v < 10 || v > 1000000) {
        (void)fprintf(stderr, "bench_culprit: '%s' needs a count in [10, 1000000], not '%s'\n", opt,
                      s);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    unsigned trials = 1000;
    gate_culprit_params defaults;
    gate_culprit_params_default(&defaults);
    confidence = defaults.confidence;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
            trials = count_arg(argv[i], argv[i + 1]);
            i++;
        } else if (strcmp(argv[i], "--confidence") == 0 && i + 1 < argc) {
            char *end = NULL;
            confidence = strtod(argv[++i], &end);
            if (*end != '\0' || !(confidence >= 0.5 && confidence < 1.0)) {
                (void)fprintf(stderr, "bench_culprit: '--confidence' needs a value in [0.5, 1)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--intermittent") == 0 && i + 1 < argc) {
            char *end = NULL;
            intermittent = strtod(argv[++i], &end);
            if (*end != '\0' || !(intermittent >= 0.0 && intermittent < 1.0)) {
                (void)fprintf(stderr, "bench_culprit: '--intermittent' needs a value in [0, 1)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end = NULL;
            seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || argv[i][0] == '-' || argv[i][0] == '\0') {
                (void)fprintf(stderr, "bench_culprit: '--seed' needs a whole number\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--show-wrong") == 0) {
            show_wrong = true;
        } else {
            (void)fprintf(stderr,
                          "usage: bench_culprit [--trials N] [--confidence P] [--intermittent P] "
                          "[--seed S] [--show-wrong]\n");
            return 2;
        }
    }
    printf("culprit search, %u trials a row, confidence %g, budget %d builds, bad builds passing "
           "%g, seed %llu; builds: mean (90th percentile)\n\n",
           trials, confidence, BUDGET, intermittent, seed);
    printf("| n | flakes | culprits | %s | %s | %s | %s | wrong k/k4/l/b | no verdict k/k4/l/b | "
           "keel / bisection | goal |\n",
           method_name[0], method_name[1], method_name[2], method_name[3]);
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    static const unsigned sizes[] = {8, 16, 32, 64, 128, 256};
    static const double flakes[] = {0.0, 0.05, 0.2};
    bool ok = true;
    clock_t t0 = clock();
    for (size_t fi = 0; fi < sizeof flakes / sizeof flakes[0]; fi++)
        for (unsigned culprits = 1; culprits <= 2; culprits++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
                ok &= row(sizes[si], flakes[fi], culprits, trials, 1000u * (unsigned)si);
    printf("\ngoal at 5%% flakes (no wrong culprit, keel's mean builds <= 2 log2(n) + 4): %s; "
           "CPU %.1f s\n",
           ok ? "met" : "NOT met", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return ok ? 0 : 1;
}
