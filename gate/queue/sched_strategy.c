/*
 * sched_strategy.c - the shape of keel-gate's window: how many changes a new
 * candidate takes and how many candidates are tested ahead of the tip, for
 * each strategy; for adaptive, from the estimated failure rate.
 */
#include "scheduler.h"

#include <math.h>

#include "capacity.h"
#include "sched_int.h"

/* round(1 / sqrt(p)) clamped to [1, hi]: the largest b with (b - 1/2)^2 p <= 1. */
static unsigned inv_sqrt_round(double p, unsigned hi)
{
    unsigned b = 1;
    while (b < hi && ((double)b + 0.5) * ((double)b + 0.5) * p <= 1.0)
        b++;
    return b;
}

/* The probability that n changes hold a bad one. */
static double any_bad(double p, unsigned n)
{
    return 1.0 - pow(1.0 - p, (double)n);
}

/*
 * A failed build's time and work over a pass's, (0, 1] (gate_cap_fail_cost),
 * and its retry's (gate_cap_retry_cost: only what failed runs again).
 */
typedef struct fails {
    double time, work, rtime, rwork;
    /*
     * The part of builds that fail spuriously (a flake), and what its retry
     * (one job, which then passes) costs: its time in units of a build's
     * longest job alone, its work in builds.
     */
    double flake, ftime, fwork;
} fails;

/*
 * An isolation's expected builds, and their time and work in builds
 * (isolate()); `pairs`: its last pairs whose first change failed (at depth
 * d >= 2 the second's confirmation and d - 2 candidates stacked on the
 * first were built beside it, for nothing: model).
 */
typedef struct iso_cost {
    double builds, time, work, pairs;
} iso_cost;

/*
 * Expected builds to decide n >= 2 changes known to hold a bad one (each
 * bad with probability p, given that one is), as the scheduler isolates it
 * (sched.c: split): the first half h is built alone; if it fails (each
 * failure costs r retries) it is isolated in turn (a single one is then
 * rejected as it is) and the second half m goes back to be built as an
 * unknown segment; if it passes, the second half is known bad: isolated, or,
 * a single change, built alone once more to confirm it (that build and its
 * r retries fail).  c->builds: the builds; c->time and c->work: the same
 * with every build that fails counted f->time, f->work of a build (a failed
 * build's time, work over a pass's: gate_cap_fail_cost; a retry f->rtime,
 * f->rwork), the builds one after another: each build costs 1 - (1 - f)
 * P(it fails), each retry (of a build that failed) its part.  With f = 1
 * they are all the same figure.
 */
static void isolate(double p, unsigned n, unsigned r, const fails *f, iso_cost *c)
{
    KEEL_ASSERT(n >= 2);
    unsigned h = n / 2, m = n - h;
    double a = any_bad(p, h) / any_bad(p, n); /* the first half holds one */
    double rt = (double)r * f->rtime, rw = (double)r * f->rwork;
    /* the second half when it is known bad (a single change: built alone, its retries) */
    iso_cost k = {1.0 + (double)r, f->time + rt, f->work + rw, 0.0};
    double um = 0.0, um_t = 0.0, um_w = 0.0, up = 0.0;
    if (m >= 2) {
        double am = any_bad(p, m); /* the unknown second half fails */
        isolate(p, m, r, f, &k);
        um = 1.0 + am * ((double)r + k.builds);
        um_t = 1.0 - (1.0 - f->time) * am + am * (rt + k.time);
        um_w = 1.0 - (1.0 - f->work) * am + am * (rw + k.work);
        up = am * k.pairs;
    } else {
        um = 1.0 + p * (double)r;
        um_t = 1.0 - (1.0 - f->time) * p + p * rt;
        um_w = 1.0 - (1.0 - f->work) * p + p * rw;
    }
    iso_cost hc = {0.0, 0.0, 0.0, 0.0}; /* the first half's, when it fails */
    if (h >= 2)
        isolate(p, h, r, f, &hc);
    c->builds = 1.0 + a * ((double)r + hc.builds + um) + (1.0 - a) * k.builds;
    c->time = 1.0 - (1.0 - f->time) * a + a * (rt + hc.time + um_t) + (1.0 - a) * k.time;
    c->work = 1.0 - (1.0 - f->work) * a + a * (rw + hc.work + um_w) + (1.0 - a) * k.work;
    c->pairs = m < 2 ? a : a * (hc.pairs + up) + (1.0 - a) * k.pairs;
}

/* isolate() of b changes; none for b = 1 (rejected as it is). */
static iso_cost isolation(double p, unsigned b, unsigned r, const fails *f)
{
    iso_cost c = {0.0, 0.0, 0.0, 0.0};
    if (b >= 2)
        isolate(p, b, r, f, &c);
    return c;
}

/*
 * The part of a failing segment's retries on the critical path when the
 * window is deeper than one (the candidates stacked on it go on while it is
 * retried: a flake's retry passes under them): measured with bench_gate
 * (spec-batch w=4 b=4 against the model at p = 0.1 and 0.3: 0.57 and 0.64).
 * Session 26, the same bench with the retries taking no time: a flake's
 * retry costs about this part of it (batches of 2 to 8 four deep at p =
 * 0.1: the model within 0.01 T a change of the simulation); a bad change's
 * hold the path nearly whole (the candidates behind it hold its failure
 * and nothing is stacked on a failure: single changes four deep, 0.095 T a
 * change of retries where the model counts 0.057), but counting them whole
 * made adaptive slower at --fail-length 1 (docs/benchmarks.md), so both
 * keep this part.
 */
static const double overlap = 0.6;

/*
 * The isolation's steps, in time (iso_path): a build alone (one), one that
 * passes beside a failing build (pair: round_fail of 1 of 2), a build that
 * goes out in the window's next round (slot: the round's span over its
 * depth), a failed build's time over a pass's (fail) and its retry's (retry).
 */
typedef struct iso_steps {
    double one, pair, slot, fail, retry;
} iso_steps;

/*
 * The critical path of isolating n >= 2 changes known to hold a bad one at
 * the front of a window d >= 2 deep, as sched.c does it (split,
 * gate_sched_next), in time: the first half h is built alone (the second,
 * known bad, stops the window behind it until it is split in turn); if h
 * passes, the second half m is isolated, or, a single change (n = 2), it
 * was built beside h all along (its confirmation, built past: `pair`, its
 * r retries after at the front); if h fails, its r retries, its own
 * isolation, then m goes back unknown and is built in the window's next
 * round beside the rest (`slot`), isolated in turn if it fails.  At depth 1
 * every one of these builds is alone, one after another: isolate().
 */
static double iso_path(double p, unsigned n, unsigned r, const iso_steps *st)
{
    KEEL_ASSERT(n >= 2);
    unsigned h = n / 2, m = n - h;
    double a = any_bad(p, h) / any_bad(p, n), rf = (double)r * st->retry * st->one;
    double fail_h = st->fail * st->one + rf + (h >= 2 ? iso_path(p, h, r, st) : 0.0);
    if (m < 2) /* n = 2: h beside m's confirmation; or h fails, and m goes back */
        return (1.0 - a) * (st->pair + rf) + a * (fail_h + st->slot + p * rf);
    double km = iso_path(p, m, r, st), am = any_bad(p, m);
    return (1.0 - a) * (st->one + km) + a * (fail_h + st->slot + am * (rf + km));
}

/*
 * The time of a round of d candidates whose first failing segment is k, a
 * failed build taking f->time of a pass's time and f->work of its work: the
 * k ahead of it pass, whole; it and the d - k - 1 stacked on it (their trees
 * hold its failure) fail.  Every build failing (k = 0): the longer of a
 * failed build's time and the window's work, d f->work jobs / par; else the
 * passes ahead run their course beside the failures, which free their share
 * of the executor early: the span of k + (d - k) f->work builds' work, at
 * least one build.  f = 1 gives `span`, max(1, d jobs / par), exactly.
 */
static double round_fail(const fails *f, unsigned k, unsigned d, double par, double jobs)
{
    if (k > 0)
        return gate_cap_span(par, ((double)k + (double)(d - k) * f->work) * jobs);
    double w = (double)d * f->work * jobs, t = w > par ? w / par : 0.0;
    return t > f->time ? t : f->time;
}

/*
 * The time after a window's round that a failing segment of b changes takes
 * to decide: its r retries (f->rtime each; at depth d >= 2 OVERLAP of them,
 * the window going on beside them), then its isolation (iso: isolation();
 * none for b = 1): at depth 1 its builds one after another (iso->time), at
 * d >= 2 along iso_path.  In time (a build alone: max(1, jobs / par)).
 */
static double iso_seq(double p, unsigned b, unsigned d, unsigned r, const iso_cost *iso, double par,
                      double jobs, const fails *f)
{
    double one = gate_cap_span(par, jobs), rf = (double)r * f->rtime;
    if (d == 1)
        return (rf + iso->time) * one;
    if (b < 2)
        return overlap * rf * one;
    double slot = gate_cap_span(par, (double)d * jobs) / d, pair = round_fail(f, 1, 2, par, jobs);
    iso_steps st = {one, pair < 2.0 * slot ? pair : 2.0 * slot, slot, f->time, f->rtime};
    return overlap * rf * one + iso_path(p, b, r, &st);
}

/*
 * The candidates built for nothing on a bad change's first retry, in a
 * round of a window of d candidates whose first failure is at k, r
 * retries: a candidate that failed is retried at the front, and the window
 * stacks new candidates on the retry as on any build (a flake's retry
 * passes beneath them); when it was the window's last (k = d - 1, nothing
 * failed behind it to stop the window), d - 1 of them, which hold its
 * failure (sched.c: gate_sched_next).
 */
static double stacked_on_retry(unsigned k, unsigned d, unsigned r)
{
    return r > 0 && k + 1 == d ? (double)(d - 1) : 0.0;
}

/*
 * What model() computes of a round and model_var() uses again: q = (1 -
 * p)^b, the span of the window's d builds when they all pass, the failing
 * segment's path after the round (iso_seq) and the work of its retries and
 * isolation.
 */
typedef struct round_terms {
    double q, span, seq, w_iso;
} round_terms;

/*
 * The spread of the model's time: the variance, per change decided, of a
 * round's time less the model's mean time per change (mean) times the
 * changes it decides, over the round's outcomes (none of its d segments
 * fails, or the first failure is at segment k = 0 .. d - 1, as in model(),
 * the isolation taken at its expectation).  Over N changes the time per
 * change then has the variance this / N (renewal-reward).  Serial with no
 * retries has none: every change takes one build, whatever a failure costs
 * of it.  Called by model(), with its terms of the round (t) and its mean.
 */
static double model_var(const round_terms *t, unsigned b, unsigned d, unsigned r, double par,
                        double jobs, const fails *f, double mean)
{
    double pass_t = t->span > (double)d * jobs / par ? t->span : (double)d * jobs / par;
    double pass = pow(t->q, (double)d), dev = pass_t - mean * (double)(b * d);
    double m2 = pass * dev * dev, decided = pass * (double)(b * d);
    for (unsigned k = 0; k < d; k++) {
        double pk = pow(t->q, (double)k) * (1.0 - t->q), c = (double)(b * (k + 1));
        double fail_path = round_fail(f, k, d, par, jobs) + t->seq;
        double stacked = stacked_on_retry(k, d, r);
        double fail_work =
            ((double)d - (double)(d - k) * (1.0 - f->work) + t->w_iso + stacked * f->work) * jobs /
            par;
        double fail_t = fail_path > fail_work ? fail_path : fail_work;
        dev = fail_t - mean * c;
        m2 += pk * dev * dev;
        decided += pk * c;
    }
    return m2 / decided;
}

/*
 * Expected time and builds per change decided for a window of d candidates
 * of b changes each, every change bad with probability p, r retries, each
 * build `jobs` jobs on an executor that runs `par` jobs at once, a failed
 * build taking f->time of a pass's time and f->work of its work
 * (gate_cap_fail_cost).  A round builds the window; segments land in order
 * up to the first failing one (probability q^k (1 - q) at k, q =
 * (1-p)^b), which is retried r times and isolated (iso: isolation(), none
 * for b = 1, a single change that fails at the front being rejected as it
 * is); the candidates behind it are built again in a later round.  `jobs`
 * is a build's width (gate_cap_width: its work in units of its longest
 * job).  Time, in units of that job alone, is the longer of the round's
 * critical path and its work (every build's `jobs`, par at a time).  The
 * path: the window (round_fail: max(1, d jobs / par) when none fails; a
 * failure at k ends the builds from k on early), then the failing segment's
 * retries and isolation (iso_seq: its retries f->rtime each, a retry
 * rerunning what failed, OVERLAP of them deeper than one; the isolation's
 * builds one after another at depth 1, the failing ones f->time:
 * iso->time; deeper along iso_path, the window going on beside
 * confirmations and the halves sent back): sched.c settles the front (a
 * failure is retried, then split, only there), so its retries start as
 * soon as it failed, f->time into the round at the front; each build
 * max(1, jobs / par).  The work: every build, a failed one f->work of one
 * (the window's from k on, the retries, the isolation's failing halves:
 * iso->work).  The candidates behind the failure are not cancelled until
 * it fails for good (sched.c: drop_from, at the front once its retries are
 * spent): they hold the failure and fail too, early; and when the failing
 * candidate is the window's last (k = d - 1), the d - 1 candidates the
 * window stacks on its first retry (sched.c stacks on a retry as on any
 * build) hold it too: built for nothing, each f->work of a build's work.
 * Flakes (f->flake of the builds of trees that pass): each build of the
 * round that reaches the front (the k + 1 up to the first failure, all d
 * when none fails) and each of the isolation's builds and retries counts a
 * flake's retry (one job, which passes: f->ftime in time, f->fwork in
 * work), on the path whole at depth 1 and in an isolation, OVERLAP of it in
 * the round of a deeper window.  That is more than the simulation's: a
 * flake delays only a build that would pass (a failing build is retried
 * anyway, and the candidates behind a failure are dropped).  Counting only
 * those (session 26) matched bench_gate four deep with quick failures, but
 * made adaptive 1.10x speculative-batch's time on inih's replay on a 2-core
 * machine (8 alternating runs; 0.95x with this count; parson met the bound
 * with both): one batch boundary there, a batch of 8 for 7 that took in a
 * conflicting change; on the same histories injected from other seeds this
 * count was as fast or faster on three of four (docs/benchmarks.md,
 * session 27).  The real executor is the one judged.  When var is not NULL,
 * model_var() of the round: the spread of its time per change.
 */
static void model(double p, unsigned b, unsigned d, unsigned r, const iso_cost *iso, double par,
                  double jobs, const fails *f, double *time, double *builds, double *var)
{
    double q = pow(1.0 - p, (double)b);
    double fail = 1.0 - pow(q, (double)d);                        /* some segment fails */
    double segs = 1.0 - q > 1e-12 ? fail / (1.0 - q) : (double)d; /* decided in a round */
    double decided = (double)b * segs;
    double waste = d > 1 ? iso->pairs * (double)(d - 1) : 0.0; /* iso_cost */
    double n_iso = (double)r + iso->builds + waste;
    double w_iso = (double)r * f->rwork + iso->work + waste * f->work;
    double seq = iso_seq(p, b, d, r, iso, par, jobs, f);
    double span = gate_cap_span(par, (double)d * jobs), round = span, work_n = (double)d;
    double reach = (1.0 - fail) * (double)d; /* the round's builds that reach the front */
    double stacked = 0.0;
    for (unsigned k = 0; k < d; k++) {
        double pk = pow(q, (double)k) * (1.0 - q);
        round -= pk * (span - round_fail(f, k, d, par, jobs));
        work_n -= pk * (double)(d - k) * (1.0 - f->work);
        reach += pk * (double)(k + 1);
        stacked += pk * stacked_on_retry(k, d, r);
    }
    /* flakes: each retried at the front (its job again), beside the window at d >= 2 */
    double flaky = f->flake * (reach + fail * n_iso);
    double path = round + fail * seq +
                  f->flake * f->ftime * (reach * (d == 1 ? 1.0 : overlap) + fail * n_iso);
    double n = (double)d + fail * n_iso + stacked + flaky;
    double work = (work_n + fail * w_iso + stacked * f->work + flaky * f->fwork) * jobs / par;
    *time = (path > work ? path : work) / decided;
    *builds = n / decided;
    if (var != NULL) {
        round_terms t = {q, span, seq, w_iso};
        *var = model_var(&t, b, d, r, par, jobs, f, *time);
    }
}

/*
 * The posterior of the failure rate, Beta(p n, (1 - p) n), on NGRID points
 * spaced evenly in log p over [PLO, PHI]: the points and their weights (the
 * density in log p, normalised).  n >= POINT_N: all the weight on p.
 */
enum { NGRID = 48 };
static const double plo = 1e-4, phi = 0.95, point_n = 1e4;

/*
 * Points of the posterior weighing less than this are left out: all of them
 * together weigh less than NGRID times it, far below the 1e-9 within which
 * choice() takes two expectations for equal (a posterior of n = 50 changes
 * has about a third of the grid above it, so the model runs a third as
 * often).
 */
static const double negligible = 1e-13;

/*
 * Adaptive: the shape in use is kept while its expected excess over the
 * bound (choice()) is within KEEP of the least (in units of the bound's
 * time, 5%) and its expected time within BAND of that shape's: a shape that
 * flips with every small move of the estimate cuts the queue into ever new
 * candidates.
 */
static const double band = 0.02, keep = 0.005;

/*
 * Adaptive: the time of single changes in a window the executor runs at
 * once spreads least with the failures (serial with no retries takes one
 * build a change whatever fails; a batch's failure costs its isolation).
 * They are chosen over the shape the passes below chose when their expected
 * time is within issue 21's bound of the fastest's (BOUND_TIME), their
 * expected builds within its bound of the chosen's (BOUND_BUILDS), and their
 * worst decile no longer than the chosen's: the mean plus DECILE_Z standard
 * deviations of the time per change over the next n changes (the evidence
 * the estimate rests on, about as long as a choice made on it holds),
 * DECILE_Z the mean of a normal's worst tenth in standard deviations
 * (phi(1.2816) / 0.1).
 */
static const double bound_time = 0.05, bound_builds = 0.1, decile_z = 1.755;

/*
 * Adaptive, where the executor cannot run the deepest window at once (a
 * failure's isolation then holds up everything behind it), at the rates
 * where serial (single changes, one at a time) is the fastest fixed shape:
 * a shape's time there is judged at its worst decile too, its mean plus z
 * standard deviations of its time per change over the next n changes,
 * against the least such decile of the fixed shapes whose builds are within
 * BOUND_BUILDS of the anchor's (choice()).  Serial with no retries takes one
 * build a change whatever fails: its time does not spread, so a shape as
 * fast on the mean whose failures cost isolations (batches of 3 near p =
 * 0.3 on 2 cores) is past the bound on the worst decile though within it on
 * the mean (bench_gate's 2-core row at p = 0.3: batches of 3 one deep,
 * fixed, 0.986 of serial's mean makespan and 1.086 of its worst decile;
 * docs/benchmarks.md, session 33).  Not where another fixed shape is the
 * anchor: its time spreads too, and judging the decile there sent parson's
 * replay to deeper windows of smaller batches (1.06 of batch's time, 1.07
 * of its builds; session 32) and the free executor to smaller batches
 * (1.13-1.15 of the builds of speculative batches; session 31).  z is
 * CHOICE_Z where the executor runs at most half of the deepest window at
 * once, 0 where it runs all of it, in proportion between (no jump at a
 * width measured a hair either side).  CHOICE_Z is more than DECILE_Z: the
 * model's spread takes each isolation at its expectation, so it is short.
 * And z fades with a failed build's time (o->fail_time): it is full where a
 * failure takes as long as a pass, 0 where it takes CHOICE_FAIL of it or
 * less, in proportion between.  Serial's time does not spread only because
 * its failures cost what its passes do; where failures are quick its time
 * spreads with the number of broken changes as every shape's does, the
 * mean is the fair judge, and judging the decile there cost the tables of
 * quick failures (`--fail-length 0.05` at 2 cores p = 0.3, worst decile
 * 1.039 -> 1.057 of speculative batches' makespan) and parson's shape
 * (1.048 -> 1.054) (docs/benchmarks.md, session 34).
 */
static const double choice_z = 2.5, choice_fail = 0.75;

/* x clamped to [0, 1]. */
static double unit(double x)
{
    return x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
}

static size_t posterior(double p, double n, double *pts, double *w)
{
    if (n >= point_n) {
        pts[0] = p;
        w[0] = 1.0;
        return 1;
    }
    double a = p * n, b = (1.0 - p) * n, lmax = -1e300;
    double step = log(phi / plo) / (double)(NGRID - 1);
    for (size_t k = 0; k < NGRID; k++) {
        double lp = log(plo) + step * (double)k;
        pts[k] = exp(lp);
        w[k] = a * lp + (b - 1.0) * log1p(-pts[k]); /* log of p^a (1-p)^(b-1) */
        if (w[k] > lmax)
            lmax = w[k];
    }
    double sum = 0.0;
    for (size_t k = 0; k < NGRID; k++) {
        w[k] = exp(w[k] - lmax);
        sum += w[k];
    }
    size_t np = 0;
    for (size_t k = 0; k < NGRID; k++) {
        w[k] /= sum;
        if (w[k] >= negligible) { /* the rest weighs too little to move any comparison */
            pts[np] = pts[k];
            w[np++] = w[k];
        }
    }
    return np;
}

/* A failed build's time and work over a pass's, (0, 1] (1 when none is known). */
static fails fails_of(const gate_sched_outlook *o)
{
    fails f = {o->fail_time > 0.0 && o->fail_time < 1.0 ? o->fail_time : 1.0,
               o->fail_work > 0.0 && o->fail_work < 1.0 ? o->fail_work : 1.0,
               0.0,
               0.0,
               o->flake > 0.0 && o->flake < 1.0 ? o->flake : 0.0,
               o->width / (double)o->jobs,
               1.0 / (double)o->jobs};
    f.rtime = o->retry_time > 0.0 && o->retry_time < 1.0 ? o->retry_time : f.time;
    f.rwork = o->retry_work > 0.0 && o->retry_work < 1.0 ? o->retry_work : f.work;
    return f;
}

/* The pace measured at depth d (1 when none). */
static double pace_at(const gate_sched_outlook *o, unsigned d)
{
    unsigned i = d < GATE_SCHED_PACE_DEPTHS ? d - 1 : GATE_SCHED_PACE_DEPTHS - 1;
    return o->pace[i] > 0.0 ? o->pace[i] : 1.0;
}

/* isolation() of b changes at each of the posterior's np points (pts). */
static void isolations(const gate_sched_params *params, const gate_sched_outlook *o,
                       const double *pts, size_t np, unsigned b, iso_cost *iso)
{
    fails f = fails_of(o);
    for (size_t k = 0; k < np; k++)
        iso[k] = isolation(pts[k], b, params->retries, &f);
}

/*
 * Shape (b, d)'s expectations over the posterior (pts, w: np points; iso:
 * isolations() of b there), the pace not counted: its time per change
 * (*mean) and its builds per change (*builds); when m2 is not NULL, the
 * second moment of its time per change over the next o->n changes (at each
 * p the model's spread over o->n changes, model_var() / o->n, plus the
 * square of its mean: with *mean, the spread of the model at each p and
 * the posterior's of the mean itself).
 */
static void expect(const gate_sched_params *params, const gate_sched_outlook *o, const double *pts,
                   const double *w, size_t np, const iso_cost *iso, unsigned b, unsigned d,
                   double *mean, double *builds, double *m2)
{
    fails f = fails_of(o);
    double m = 0.0, s2 = 0.0, bu = 0.0;
    for (size_t k = 0; k < np; k++) {
        double tk = 0.0, bk = 0.0, v = 0.0;
        model(pts[k], b, d, params->retries, &iso[k], o->parallel, o->width, &f, &tk, &bk,
              m2 != NULL ? &v : NULL);
        m += w[k] * tk;
        if (m2 != NULL)
            s2 += w[k] * (v / o->n + tk * tk);
        bu += w[k] * bk;
    }
    *mean = m;
    *builds = bu;
    if (m2 != NULL)
        *m2 = s2;
}

/*
 * Shape (b, d)'s expected time per change over the posterior (pts, w: np
 * points) and the standard deviation of its time per change over the next
 * o->n changes (the model's spread at each p, and the posterior's of the
 * mean itself), both times the pace measured at depth d; its expected builds
 * per change.
 */
static void shape_spread(const gate_sched_params *params, const gate_sched_outlook *o,
                         const double *pts, const double *w, size_t np, unsigned b, unsigned d,
                         double *mean, double *sd, double *builds)
{
    iso_cost iso[NGRID];
    isolations(params, o, pts, np, b, iso);
    double m = 0.0, m2 = 0.0;
    expect(params, o, pts, w, np, iso, b, d, &m, builds, &m2);
    double var = m2 - m * m, pace = pace_at(o, d);
    *mean = m * pace;
    *sd = var > 0.0 ? sqrt(var) * pace : 0.0;
}

/* gate_sched_shape_time and gate_sched_shape_builds: the expectations over the posterior. */
static void shape_expect(const gate_sched_params *params, const gate_sched_outlook *o,
                         unsigned batch, unsigned depth, double *time, double *builds)
{
    KEEL_ASSERT(params != NULL && o != NULL && batch >= 1 && depth >= 1);
    KEEL_ASSERT(o->p > 0.0 && o->p < 1.0 && o->n > 0.0 && o->parallel > 0.0);
    double pts[NGRID], w[NGRID];
    size_t np = posterior(o->p, o->n, pts, w);
    iso_cost iso[NGRID];
    isolations(params, o, pts, np, batch, iso);
    expect(params, o, pts, w, np, iso, batch, depth, time, builds, NULL);
}

double gate_sched_shape_time(const gate_sched_params *params, const gate_sched_outlook *o,
                             unsigned batch, unsigned depth)
{
    double t = 0.0, builds = 0.0;
    shape_expect(params, o, batch, depth, &t, &builds);
    return t;
}

double gate_sched_shape_builds(const gate_sched_params *params, const gate_sched_outlook *o,
                               unsigned batch, unsigned depth)
{
    double t = 0.0, builds = 0.0;
    shape_expect(params, o, batch, depth, &t, &builds);
    return builds;
}

double gate_sched_shape_pass_time(const gate_sched_params *params, const gate_sched_outlook *o,
                                  unsigned batch, unsigned depth)
{
    KEEL_ASSERT(params != NULL && o != NULL && batch >= 1 && depth >= 1 && o->parallel > 0.0);
    double t = 0.0, builds = 0.0;
    iso_cost none = {0.0, 0.0, 0.0, 0.0};
    fails whole = {1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0};
    model(0.0, batch, depth, params->retries, &none, o->parallel, o->width, &whole, &t, &builds,
          NULL);
    return t;
}

/*
 * Shape (b, d)'s time per change at each of the posterior's np points (pts;
 * the pace measured at depth d counted) in t[], its builds per change in
 * bu[]; iso: isolations() of b.  With dec (not NULL), the worst decile of
 * the time per change at each point too: the mean plus z standard
 * deviations over the next o->n changes (model_var() / o->n), the pace
 * counted.
 */
static void at_points(const gate_sched_params *params, const gate_sched_outlook *o,
                      const double *pts, size_t np, const iso_cost *iso, unsigned b, unsigned d,
                      double z, double *t, double *bu, double *dec)
{
    fails f = fails_of(o);
    double pace = pace_at(o, d);
    for (size_t k = 0; k < np; k++) {
        double v = 0.0;
        model(pts[k], b, d, params->retries, &iso[k], o->parallel, o->width, &f, &t[k], &bu[k],
              dec != NULL ? &v : NULL);
        t[k] *= pace;
        if (dec != NULL)
            dec[k] = t[k] + z * sqrt(v > 0.0 ? v / o->n : 0.0) * pace;
    }
}

/*
 * The shapes of the fixed strategies a team could have chosen instead:
 * batches of 1, max-batch and half of it, one at a time or in the deepest
 * window the slots allow (serial, batch, speculative, speculative batch).
 */
static unsigned half_batch(const gate_sched_params *params)
{
    return params->max_batch / 2 > 1 ? params->max_batch / 2 : 1;
}

static bool fixed_shape(const gate_sched_params *params, unsigned lim, unsigned b, unsigned d)
{
    return (b == 1 || b == half_batch(params) || b == params->max_batch) && (d == 1 || d == lim);
}

/*
 * The ladders of sizes adaptive searches (sched_int.h): every size where the
 * model's time moves much from one to the next, about six to an octave
 * above (at max-batch 1024 and depth 256, 61 batch sizes and 49 depths
 * instead of every one of 1024 x 256: seconds a choice), then the shapes
 * between the pick's neighbours on both (choice()).
 */
enum {
    LADDER_ALL = GATE_SCHED_LADDER_ALL,
    LADDER_MAX = GATE_SCHED_LADDER_MAX,
    REFINE_MAX = GATE_SCHED_REFINE_MAX
};
static const double ladder_step = 1.125;

size_t gate__sched_ladder(unsigned hi, const unsigned *also, size_t nalso, unsigned *out)
{
    size_t n = 0;
    for (unsigned v = 1; v <= hi && n < LADDER_MAX - nalso - 1;) {
        out[n++] = v;
        unsigned next = v < LADDER_ALL ? v + 1 : (unsigned)ceil((double)v * ladder_step);
        v = next > v ? next : v + 1;
    }
    if (n > 0 && out[n - 1] != hi)
        out[n++] = hi;
    for (size_t a = 0; a < nalso; a++) {
        unsigned v = also[a];
        size_t at = 0;
        while (at < n && out[at] < v)
            at++;
        if (v < 1 || v > hi || (at < n && out[at] == v))
            continue;
        for (size_t k = n; k > at; k--)
            out[k] = out[k - 1];
        out[at] = v;
        n++;
    }
    return n;
}

/* (sched_int.h) */
size_t gate__sched_around(const unsigned *v, size_t n, unsigned pick, unsigned *out)
{
    size_t i = 0;
    while (i < n && v[i] != pick)
        i++;
    if (i == n)
        return 0;
    unsigned lo = i > 0 ? v[i - 1] : pick, hi = i + 1 < n ? v[i + 1] : pick;
    unsigned from = pick - lo > REFINE_MAX / 2 ? pick - REFINE_MAX / 2 : lo;
    unsigned to = hi - pick > REFINE_MAX / 2 ? pick + REFINE_MAX / 2 : hi;
    size_t k = 0;
    for (unsigned x = from; x <= to; x++)
        out[k++] = x;
    return k;
}

/* Sizes bs x ds, in order: shapes choice() judges. */
typedef struct space {
    const unsigned *bs, *ds;
    size_t nb, nd;
} space;

static bool in_sizes(const unsigned *v, size_t n, unsigned x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/*
 * What choice()'s passes found so far: the least expected time (fastest),
 * the least expected excess and the least expected time of the shapes that
 * have it (pass 0); the fewest expected builds among those within BAND of
 * that time, its time and the shape (pass 1); the shape in use's figures.
 */
typedef struct judging {
    double fastest, least, least_t, pick_b, pick_t, in_x, in_t, in_b;
    unsigned batch, depth;
} judging;

/*
 * What a shape is judged against at each point of the posterior: the
 * anchor's time and builds (t, b), whether it is serial (single changes one
 * at a time) and, when z > 0, the least worst decile of time of the fixed
 * shapes within BOUND_BUILDS of its builds (dec).
 */
typedef struct anchors {
    double t[NGRID], b[NGRID], dec[NGRID];
    bool serial[NGRID], any_serial;
    double z; /* CHOICE_Z's part here (0: the deciles not judged) */
} anchors;

/*
 * One pass (0 or 1) of choice() over the shapes of `sp` but those of `skip`
 * (NULL: none), against the anchors `an` at each point, into *j.
 */
static void sweep(const gate_sched_params *params, const gate_sched_outlook *o, const double *pts,
                  const double *w, size_t np, const anchors *an, const space *sp, const space *skip,
                  unsigned lim, unsigned bmax, int pass, judging *j)
{
    double t[NGRID], bu[NGRID], dec[NGRID] = {0.0}; /* dec: written only where judged */
    iso_cost iso[NGRID];
    for (size_t bi = 0; bi < sp->nb; bi++) {
        unsigned b = sp->bs[bi];
        if (b > bmax && !fixed_shape(params, lim, b, 1))
            continue;
        bool b_done = skip != NULL && in_sizes(skip->bs, skip->nb, b);
        bool iso_made = false;
        for (size_t di = 0; di < sp->nd; di++) {
            unsigned d = sp->ds[di];
            if (b_done && in_sizes(skip->ds, skip->nd, d))
                continue;
            if (!iso_made) {
                isolations(params, o, pts, np, b, iso);
                iso_made = true;
            }
            at_points(params, o, pts, np, iso, b, d, an->z, t, bu,
                      an->z > 0.0 && an->any_serial ? dec : NULL);
            double x = 0.0, et = 0.0, eb = 0.0;
            for (size_t k = 0; k < np; k++) {
                double over_t = t[k] / an->t[k] - 1.0 - bound_time;
                double over_d =
                    an->z > 0.0 && an->serial[k] ? dec[k] / an->dec[k] - 1.0 - bound_time : over_t;
                double over_b = bu[k] / an->b[k] - 1.0 - bound_builds;
                over_t = over_d > over_t ? over_d : over_t;
                double over = over_t > over_b ? over_t : over_b;
                x += w[k] * (over > 0.0 ? over / bound_time : 0.0);
                et += w[k] * t[k];
                eb += w[k] * bu[k];
            }
            if (pass == 0) {
                if (et < j->fastest)
                    j->fastest = et;
                if (x < j->least - 1e-9 || (x <= j->least + 1e-9 && et < j->least_t)) {
                    j->least = x;
                    j->least_t = et;
                }
                if (b == o->batch && d == o->depth) {
                    j->in_x = x;
                    j->in_t = et;
                    j->in_b = eb;
                }
            } else if (x <= j->least + 1e-9 && et <= j->least_t * (1.0 + band) &&
                       (eb < j->pick_b * (1.0 - 1e-9) ||
                        (eb <= j->pick_b * (1.0 + 1e-9) && et < j->pick_t))) {
                j->pick_b = eb;
                j->pick_t = et;
                j->batch = b;
                j->depth = d;
            }
        }
    }
}

/*
 * Adaptive's choice (gate_sched_shape): at each point of the posterior of p,
 * the anchor is the fixed strategies' shape (fixed_shape) the model finds
 * fastest there, and a shape's excess over issue 21's bound is how much its
 * time exceeds 1 + BOUND_TIME times the anchor's, or its builds 1 +
 * BOUND_BUILDS times the anchor's, whichever is more (a part of time and a
 * part of builds counted alike; 0 within the bound).  The shapes with the
 * least expected excess over the posterior win, and of those within BAND of
 * the fastest of them, the one with the fewest expected builds (the shape in
 * use kept while its excess is within KEEP of the least, its time within
 * BAND of the choice's and its builds no more).  So where the estimate is
 * uncertain the window hedges between what the plausible rates each want,
 * and where the rate is known it takes the fastest shape that meets the
 * bound against every fixed strategy (the least time alone took shapes a
 * little faster for many more builds: batches of 2 in a window of 4 on the
 * free executor at p = 0.1, 13% faster than the fastest fixed shape for 12%
 * more builds).  Where the executor cannot run the window at once (CHOICE_Z),
 * a shape's time at each point where serial is the anchor counts at its
 * worst decile too, against the least decile of the fixed shapes within the
 * bound on the anchor's builds.  Every batch size up to bmax and the fixed
 * ones, every depth up to lim.  Returns the least expected time of any of
 * them (*batch, *depth: the choice).
 */
static double choice(const gate_sched_params *params, const gate_sched_outlook *o,
                     const double *pts, const double *w, size_t np, unsigned lim, unsigned bmax,
                     unsigned *batch, unsigned *depth)
{
    anchors an;
    double beyond = 2.0 * (1.0 - o->parallel / ((double)lim * o->width)); /* 1: half or less */
    double quick = ((o->fail_time > 0.0 ? o->fail_time : 1.0) - choice_fail) / (1.0 - choice_fail);
    an.z = choice_z * unit(beyond) * unit(quick);
    const bool decs = an.z > 0.0; /* deciles judged: one test, asked once */
    an.any_serial = false;
    for (size_t k = 0; k < np; k++) {
        an.t[k] = an.b[k] = an.dec[k] = INFINITY;
        an.serial[k] = false;
    }
    enum { FIXED_MAX = 6 }; /* 3 batch sizes by 2 depths (fixed_shape) */
    double ft[FIXED_MAX][NGRID], fb[FIXED_MAX][NGRID], fd[FIXED_MAX][NGRID];
    bool fs[FIXED_MAX]; /* serial */
    size_t nf = 0;
    iso_cost iso[NGRID];
    unsigned hi = bmax > params->max_batch ? bmax : params->max_batch;
    for (unsigned b = 1; b <= hi; b++) { /* the fixed shapes */
        if (!fixed_shape(params, lim, b, 1))
            continue;
        isolations(params, o, pts, np, b, iso);
        for (unsigned d = 1; d <= lim; d++) {
            if (!fixed_shape(params, lim, b, d))
                continue;
            KEEL_ASSERT(nf < FIXED_MAX);
            fs[nf] = b == 1 && d == 1;
            at_points(params, o, pts, np, iso, b, d, an.z, ft[nf], fb[nf], decs ? fd[nf] : NULL);
            nf++;
        }
    }
    for (size_t i = 0; i < nf; i++) /* the anchor: the fastest at each point */
        for (size_t k = 0; k < np; k++)
            if (ft[i][k] < an.t[k]) {
                an.t[k] = ft[i][k];
                an.b[k] = fb[i][k];
                an.serial[k] = fs[i];
            }
    for (size_t k = 0; k < np; k++)
        an.any_serial = an.any_serial || an.serial[k];
    /* the least decile within the bound on the anchor's builds (where deciles are judged) */
    for (size_t i = 0; i < nf && decs; i++)
        for (size_t k = 0; k < np; k++)
            if (fd[i][k] < an.dec[k] && fb[i][k] <= an.b[k] * (1.0 + bound_builds))
                an.dec[k] = fd[i][k];
    unsigned bs[LADDER_MAX], ds[LADDER_MAX];
    const unsigned b_also[] = {half_batch(params), params->max_batch, o->batch};
    const unsigned d_also[] = {lim, o->depth};
    space lad = {bs, ds, gate__sched_ladder(hi, b_also, 3, bs),
                 gate__sched_ladder(lim, d_also, 2, ds)};
    judging j = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY,
                 INFINITY, INFINITY, INFINITY, 1,        1};
    sweep(params, o, pts, w, np, &an, &lad, NULL, lim, bmax, 0, &j);
    sweep(params, o, pts, w, np, &an, &lad, NULL, lim, bmax, 1, &j);
    /*
     * Where the ladders skip sizes: the box of every size between the pick's
     * neighbours on each (gate__sched_around).  When it holds a shape of less
     * excess, or of the least excess in less time, what is within BAND
     * changes and the ladder's shapes are judged again with it; else only the
     * box's are, against the pick.
     */
    unsigned rb[REFINE_MAX + 1], rd[REFINE_MAX + 1];
    space box = {rb, rd, gate__sched_around(bs, lad.nb, j.batch, rb),
                 gate__sched_around(ds, lad.nd, j.depth, rd)};
    bool gaps = false;
    for (size_t i = 0; i < box.nb; i++)
        gaps |= !in_sizes(bs, lad.nb, rb[i]);
    for (size_t i = 0; i < box.nd; i++)
        gaps |= !in_sizes(ds, lad.nd, rd[i]);
    if (gaps) {
        double least = j.least, least_t = j.least_t;
        sweep(params, o, pts, w, np, &an, &box, &lad, lim, bmax, 0, &j);
        if (j.least != least || j.least_t != least_t) {
            j.pick_b = j.pick_t = INFINITY;
            j.batch = j.depth = 1;
            sweep(params, o, pts, w, np, &an, &lad, NULL, lim, bmax, 1, &j);
        }
        sweep(params, o, pts, w, np, &an, &box, &lad, lim, bmax, 1, &j);
    }
    if (o->batch > 0 && j.in_x <= j.least + keep && j.in_t <= j.pick_t * (1.0 + band) &&
        j.in_b <= j.pick_b * (1.0 + 1e-9)) {
        j.batch = o->batch;
        j.depth = o->depth;
    }
    *batch = j.batch;
    *depth = j.depth;
    return j.fastest;
}

void gate_sched_shape(const gate_sched_params *params, const gate_sched_outlook *o, unsigned *batch,
                      unsigned *depth)
{
    KEEL_ASSERT(params != NULL && o != NULL && batch != NULL && depth != NULL);
    KEEL_ASSERT(o->p > 0.0 && o->p < 1.0 && o->n > 0.0 && o->parallel > 0.0 && o->jobs >= 1);
    KEEL_ASSERT(o->width >= 1.0 && o->width <= (double)o->jobs + 1e-9);
    double p = o->p;
    unsigned maxd = params->max_depth;
    switch (params->strategy) {
    case GATE_STRATEGY_SERIAL:
        *batch = 1;
        *depth = 1;
        return;
    case GATE_STRATEGY_BATCH:
        *batch = params->max_batch;
        *depth = 1;
        return;
    case GATE_STRATEGY_SPECULATIVE:
        *batch = 1;
        *depth = maxd;
        return;
    case GATE_STRATEGY_SPECULATIVE_BATCH:
        *batch = params->max_batch;
        *depth = maxd;
        return;
    case GATE_STRATEGY_ADAPTIVE:
    default:
        break;
    }
    /*
     * Adaptive: the shape that least exceeds issue 21's bound against the
     * fixed strategies (choice()) on this executor (a deeper window costs
     * time once its jobs exceed what the executor runs at once), over the
     * posterior of p rather than at its mean (an uncertain estimate is not a
     * low one: large batches are costly at the high rates it still allows).
     * Each depth's time is
     * the model's times the pace the gate measured there (gate_sched_clock):
     * where a deeper window decided changes slower than the model expected
     * (builds that slow each other in ways the jobs' timings do not show, the
     * gate's own work per build, isolations the window could not overlap), it
     * counts for what it did.  Batches are searched
     * up to about 4/sqrt(p) (the classic 1/sqrt(p) is the optimum of a single
     * batch), depths up to min(slots, max-depth), on the ladders of sizes
     * (gate__sched_ladder, then gate__sched_around the pick).
     */
    double pts[NGRID], w[NGRID];
    size_t np = posterior(p, o->n, pts, w);
    double jobs = o->width; /* the work of a build, in its longest job */
    unsigned lim = maxd < params->slots ? maxd : params->slots;
    unsigned bmax = inv_sqrt_round(p / 16.0, params->max_batch);
    double best_t = choice(params, o, pts, w, np, lim, bmax, batch, depth);
    /* single changes in the deepest window the executor runs at once, when as good (bound_time) */
    unsigned sd_depth = 1;
    while (sd_depth < lim && (double)(sd_depth + 1) * jobs <= o->parallel)
        sd_depth++;
    if (*batch == 1 && *depth == sd_depth)
        return;
    double s_t = 0.0, s_sd = 0.0, s_b = 0.0, c_t = 0.0, c_sd = 0.0, c_b = 0.0;
    shape_spread(params, o, pts, w, np, 1, sd_depth, &s_t, &s_sd, &s_b);
    shape_spread(params, o, pts, w, np, *batch, *depth, &c_t, &c_sd, &c_b);
    bool as_good = s_t <= best_t * (1.0 + bound_time) && s_b <= c_b * (1.0 + bound_builds);
    if (as_good && s_t + decile_z * s_sd <= c_t + decile_z * c_sd) {
        *batch = 1;
        *depth = sd_depth;
    }
}
