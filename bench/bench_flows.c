/*
 * bench_flows.c - branch flows (issue 18): how often K component branches
 * of a busy repository conflict with main, and how long they stay blocked,
 * when each syncs with main every I minutes; so docs/gate.md can recommend an
 * interval.  Pure logic, seeded (splitmix64): no git, no gate.
 *
 * The model.  The repository has F files of R regions each (a region: a
 * function, a block of lines; two edits of one region conflict, edits of
 * two regions of one file merge cleanly, as git's merge of distinct hunks
 * does).  Time runs in steps of 15 minutes over W weeks, every hour a working
 * one (a team across time zones):
 *   - main gets its own commits (people committing to main directly), a
 *     Poisson stream of M a day; each touches 1 to 3 regions, the files
 *     chosen by a Zipf law over all files (s = 1.1: a few hot files, shared
 *     headers and build files, take most edits);
 *   - each of the K components gets C commits a day, each touching 1 to 3
 *     regions: with probability `own` in the component's own files (F / (2K)
 *     of them, its directory), else in the shared ones by the same Zipf law;
 *   - component k syncs both ways with main (the gate's two flows, comp -> main
 *     and main -> comp, back-merge = yes) I hours after its last sync: the
 *     merge conflicts when a region changed on main since the merge base (main's
 *     own commits and the other components' syncs) also changed on k.  A
 *     clean sync lands at once (the gate's test time is left out: the same
 *     for every interval).  A conflict blocks both flows until a developer
 *     resolves it: after a response time drawn from an exponential law of
 *     mean `fix` hours (reminders, the person's day) plus 20 minutes per
 *     conflicting region; the resolution then lands, with everything both
 *     sides got meanwhile, and the next sync comes I hours later.
 *
 * Per interval (15 min: every step, about what `trigger = commit` does at
 * these rates), over S seeds (the median and the range of the per-seed
 * values): syncs per component and week (clean ones and resolutions: each
 * one merge per direction with something new, which the gate tests),
 * conflicts per
 * component and week, the share of syncs that conflict, the regions per
 * conflict, hours blocked per component and week, and the latency of a
 * component's commit to main (from its commit to the landing of the sync
 * that brings it: half an interval plus the blocks on average).
 *
 * Run: build/release/bench_flows [--seeds S] [--weeks W] [--components K]
 * [--main M] [--comp C] [--own P] [--fix H] (defaults: 20 seeds, 8 weeks,
 * K = 8, M = 30, C = 12, own = 0.85, fix = 4 h; F = 400 files, R = 16).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum {
    FILES = 400,
    REGIONS = 16,
    WORDS = FILES * REGIONS / 64, /* a set of regions: one bit each */
    KMAX = 64,
    SEEDS_MAX = 200,
    STEP_MIN = 15
};

typedef struct regions {
    unsigned long long w[WORDS];
} regions;

typedef struct params {
    int seeds, weeks, k;
    double main_per_day, comp_per_day, own, fix_h;
} params;

/* One component's side of its two flows. */
typedef struct comp {
    regions mine;        /* changed on the component since its last sync */
    regions theirs;      /* changed on main since that sync */
    long long last_sync; /* minutes */
    long long fixed_at;  /* blocked until (minutes); 0: not blocked */
    double pending;      /* its commits not yet on main */
    double pending_at;   /* their commit times, summed (minutes) */
} comp;

typedef struct totals {
    double attempts;  /* syncs tried with something new on either side */
    double merges;    /* merges the gate tests: clean syncs and resolutions */
    double conflicts; /* syncs that conflicted */
    double regions, blocked_min, latency_sum, latency_n;
} totals;

static double zipf_cdf[FILES];

static void zipf_init(double s)
{
    double sum = 0;
    for (int i = 0; i < FILES; i++)
        sum += 1.0 / pow(i + 1, s);
    double acc = 0;
    for (int i = 0; i < FILES; i++) {
        acc += 1.0 / pow(i + 1, s) / sum;
        zipf_cdf[i] = acc;
    }
}

static int zipf_file(unsigned long long *x)
{
    double u = bench_uniform(x);
    int lo = 0, hi = FILES - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A Poisson draw of mean `mean` (Knuth's: the means here are small). */
static int poisson(unsigned long long *x, double mean)
{
    double limit = exp(-mean), p = 1.0;
    int n = -1;
    do {
        n++;
        p *= bench_uniform(x);
    } while (p > limit);
    return n;
}

static void set_bit(regions *r, int file, int region)
{
    int bit = file * REGIONS + region;
    r->w[bit / 64] |= 1ull << (bit % 64);
}

/*
 * One commit's regions into `out`: 1 to 3, in the component's own files
 * (own >= 0: its first file) with probability `own`, else hot shared ones.
 */
static void commit_regions(unsigned long long *x, int own_first, int own_n, double own,
                           regions *out)
{
    int n = 1 + (int)(bench_uniform(x) * 3);
    for (int i = 0; i < n; i++) {
        int file;
        if (own_first >= 0 && bench_uniform(x) < own)
            file = own_first + (int)(bench_uniform(x) * own_n);
        else
            file = zipf_file(x);
        set_bit(out, file, (int)(bench_uniform(x) * REGIONS));
    }
}

static bool empty(const regions *r)
{
    for (int i = 0; i < WORDS; i++)
        if (r->w[i] != 0)
            return false;
    return true;
}

static int overlap(const regions *a, const regions *b)
{
    int n = 0;
    for (int i = 0; i < WORDS; i++)
        n += __builtin_popcountll(a->w[i] & b->w[i]);
    return n;
}

static void or_into(regions *to, const regions *from)
{
    for (int i = 0; i < WORDS; i++)
        to->w[i] |= from->w[i];
}

/* Component k's sync lands at `now`: its commits reach main, main's reach it. */
static void land(comp *cs, int k, int ncomp, long long now, totals *t)
{
    comp *c = &cs[k];
    for (int j = 0; j < ncomp; j++)
        if (j != k)
            or_into(&cs[j].theirs, &c->mine);
    t->latency_sum += c->pending * (double)now - c->pending_at;
    t->latency_n += c->pending;
    c->pending = c->pending_at = 0;
    memset(&c->mine, 0, sizeof(c->mine));
    memset(&c->theirs, 0, sizeof(c->theirs));
    c->last_sync = now;
    c->fixed_at = 0;
}

/* One seed's run at interval `interval_min`: its totals. */
static void run(const params *p, long long interval_min, unsigned long long seed, totals *t)
{
    static comp cs[KMAX];
    memset(cs, 0, sizeof(cs));
    memset(t, 0, sizeof(*t));
    unsigned long long x = seed;
    long long end = (long long)p->weeks * 7 * 24 * 60;
    int shared = FILES / 2, own_n = (FILES - shared) / p->k;
    double step_days = STEP_MIN / (24.0 * 60.0);
    for (long long now = 0; now < end; now += STEP_MIN) {
        /* main's own commits: every component's "theirs" */
        for (int n = poisson(&x, p->main_per_day * step_days); n > 0; n--) {
            regions r;
            memset(&r, 0, sizeof(r));
            commit_regions(&x, -1, 0, 0, &r);
            for (int k = 0; k < p->k; k++)
                or_into(&cs[k].theirs, &r);
        }
        for (int k = 0; k < p->k; k++) {
            comp *c = &cs[k];
            for (int n = poisson(&x, p->comp_per_day * step_days); n > 0; n--) {
                commit_regions(&x, shared + k * own_n, own_n, p->own, &c->mine);
                c->pending += 1;
                c->pending_at += (double)now;
            }
            if (c->fixed_at > 0) { /* blocked: the resolution lands when it is done */
                if (now >= c->fixed_at) {
                    t->merges += 1;
                    land(cs, k, p->k, now, t);
                }
                continue;
            }
            if (now - c->last_sync < interval_min)
                continue;
            if (c->pending == 0 && empty(&c->theirs)) { /* nothing new either way: no merge */
                c->last_sync = now;
                continue;
            }
            t->attempts += 1;
            int hit = overlap(&c->mine, &c->theirs);
            if (hit == 0) {
                t->merges += 1;
                land(cs, k, p->k, now, t);
                continue;
            }
            double u = bench_uniform(&x);
            double fix = -log(1.0 - u) * p->fix_h * 60.0 + 20.0 * hit;
            t->conflicts += 1;
            t->regions += hit;
            t->blocked_min += fix;
            c->fixed_at = now + (long long)fix + 1;
        }
    }
}

/* The median and range of v[0..n-1] (sorted here) as "median [min, max]", `digits` decimals. */
static void summary(double *v, int n, char *out, size_t size, int digits)
{
    bench_sort(v, (size_t)n);
    double med = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    (void)snprintf(out, size, "%.*f [%.*f, %.*f]", digits, med, digits, v[0], digits, v[n - 1]);
}

static double arg_num(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        (void)fprintf(stderr, "bench_flows: '%s' needs a value\n", argv[*i]);
        exit(2);
    }
    return atof(argv[++*i]);
}

int main(int argc, char **argv)
{
    params p = {20, 8, 8, 30, 12, 0.85, 4};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--seeds") == 0)
            p.seeds = (int)arg_num(argc, argv, &i);
        else if (strcmp(a, "--weeks") == 0)
            p.weeks = (int)arg_num(argc, argv, &i);
        else if (strcmp(a, "--components") == 0)
            p.k = (int)arg_num(argc, argv, &i);
        else if (strcmp(a, "--main") == 0)
            p.main_per_day = arg_num(argc, argv, &i);
        else if (strcmp(a, "--comp") == 0)
            p.comp_per_day = arg_num(argc, argv, &i);
        else if (strcmp(a, "--own") == 0)
            p.own = arg_num(argc, argv, &i);
        else if (strcmp(a, "--fix") == 0)
            p.fix_h = arg_num(argc, argv, &i);
        else {
            (void)fprintf(stderr,
                          "usage: bench_flows [--seeds S] [--weeks W] [--components K] [--main M] "
                          "[--comp C] [--own P] [--fix H]\n");
            return 2;
        }
    }
    if (p.seeds < 1 || p.seeds > SEEDS_MAX || p.weeks < 1 || p.k < 1 || p.k > KMAX || p.own < 0 ||
        p.own > 1 || p.fix_h < 0) {
        (void)fprintf(stderr,
                      "bench_flows: a value out of range (seeds 1..%d, components 1..%d, "
                      "own 0..1)\n",
                      SEEDS_MAX, KMAX);
        return 2;
    }
    zipf_init(1.1);
    /* in minutes; 15: every step, about what `trigger = commit` does at these rates */
    static const long long minutes[] = {15, 60, 240, 720, 1440, 4320, 10080};
    printf("bench_flows: K=%d components x %.0f commits/day, main %.0f commits/day of its own, "
           "%d files x %d regions, own share %.2f, fix %.1f h mean + 20 min/region; "
           "%d weeks, %d seeds: median [range] of the per-seed values, per component and week\n",
           p.k, p.comp_per_day, p.main_per_day, FILES, REGIONS, p.own, p.fix_h, p.weeks, p.seeds);
    printf("%-8s %-22s %-22s %-22s %-20s %-24s %s\n", "interval", "syncs/week", "conflicts/week",
           "conflicting syncs %", "regions/conflict", "hours blocked/week", "latency to main (h)");
    double v[6][SEEDS_MAX];
    for (size_t h = 0; h < sizeof(minutes) / sizeof(minutes[0]); h++) {
        for (int s = 0; s < p.seeds; s++) {
            totals t;
            run(&p, minutes[h], 0x5eed0000ull + (unsigned long long)s, &t);
            double per = (double)p.k * p.weeks;
            v[0][s] = t.merges / per;
            v[1][s] = t.conflicts / per;
            v[2][s] = t.attempts > 0 ? 100.0 * t.conflicts / t.attempts : 0;
            v[3][s] = t.conflicts > 0 ? t.regions / t.conflicts : 0;
            v[4][s] = t.blocked_min / 60.0 / per;
            v[5][s] = t.latency_n > 0 ? t.latency_sum / t.latency_n / 60.0 : 0;
        }
        char cols[6][64];
        static const int digits[] = {1, 2, 1, 1, 1, 1};
        for (int c = 0; c < 6; c++)
            summary(v[c], p.seeds, cols[c], sizeof(cols[c]), digits[c]);
        char label[32];
        long long m = minutes[h];
        (void)snprintf(label, sizeof(label), "%lld %s",
                       m < 60     ? m
                       : m < 1440 ? m / 60
                                  : m / 1440,
                       m < 60     ? "min"
                       : m < 1440 ? "h"
                                  : "d");
        printf("%-8s %-22s %-22s %-22s %-20s %-24s %s\n", label, cols[0], cols[1], cols[2], cols[3],
               cols[4], cols[5]);
    }
    return 0;
}
