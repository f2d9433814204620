/*
 * sched_strategy.c - the shape of keel-gate's window: how many changes a new
 * candidate takes and how many candidates are tested ahead of the tip, for
 * each strategy; for adaptive, from the estimated failure rate.
 */
#include "scheduler.h"

#include <math.h>

/* round(1 / sqrt(p)) clamped to [1, hi]: the largest b with (b - 1/2)^2 p <= 1. */
static unsigned inv_sqrt_round(double p, unsigned hi)
{
    unsigned b = 1;
    while (b < hi && ((double)b + 0.5) * ((double)b + 0.5) * p <= 1.0)
        b++;
    return b;
}

/*
 * Expected rounds and builds per change decided for a window of d candidates
 * of b changes each, every change bad with probability p, r retries.  A round
 * builds the window; segments land in order up to the first failing one
 * (probability 1 - q each, q = (1-p)^b), which is first retried r times and
 * whose changes are then isolated by bisection: about log2(b) sequential
 * builds per bad change it holds (a known-bad single is rejected without a
 * build), a part of which fail and are retried too (counted as a third).
 */
static void model(double p, unsigned b, unsigned d, unsigned r, double *rounds, double *builds)
{
    double q = pow(1.0 - p, (double)b);
    double fail = 1.0 - pow(q, (double)d); /* some segment fails */
    double decided = 1.0 - q > 1e-12 ? (double)b * fail / (1.0 - q) : (double)(b * d);
    double log2b = 0.0;
    for (unsigned x = 1; x < b; x *= 2)
        log2b += 1.0;
    double bad_in = 1.0 - q > 1e-12 ? (double)b * p / (1.0 - q) : 1.0; /* given one fails */
    double iso = bad_in * log2b * (1.0 + (double)r / 3.0) + (double)r;
    *rounds = (1.0 + fail * iso) / decided;
    *builds = ((double)d + fail * iso) / decided;
}

/*
 * The posterior of the failure rate, Beta(p n, (1 - p) n), on NGRID points
 * spaced evenly in log p over [PLO, PHI]: the points and their weights (the
 * density in log p, normalised).  n >= POINT_N: all the weight on p.
 */
enum { NGRID = 48 };
static const double plo = 1e-4, phi = 0.95, point_n = 1e4;

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
    for (size_t k = 0; k < NGRID; k++)
        w[k] /= sum;
    return NGRID;
}

void gate_sched_shape(const gate_sched_params *params, double p, double n, size_t queued,
                      unsigned *batch, unsigned *depth)
{
    KEEL_ASSERT(params != NULL && batch != NULL && depth != NULL);
    KEEL_ASSERT(p > 0.0 && p < 1.0 && n > 0.0);
    (void)queued;
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
     * Adaptive: the shape with the fewest expected rounds (of T) per change,
     * the expectation taken over the posterior of p rather than at its mean
     * (an uncertain estimate is not a low one: large batches are costly at
     * the high rates it still allows); among shapes within 2% of the best,
     * the fewest expected builds.  Batches are searched up to about 4/sqrt(p)
     * (the classic 1/sqrt(p) is the optimum of a single batch), depths up to
     * min(slots, max-depth).
     */
    double pts[NGRID], w[NGRID];
    size_t np = posterior(p, n, pts, w);
    unsigned lim = maxd < params->slots ? maxd : params->slots;
    unsigned bmax = inv_sqrt_round(p / 16.0, params->max_batch);
    double best_r = 1e300, best_b = 1e300;
    *batch = 1;
    *depth = 1;
    for (unsigned d = 1; d <= lim; d++)
        for (unsigned b = 1; b <= bmax; b++) {
            double r = 0.0, bu = 0.0;
            for (size_t k = 0; k < np; k++) {
                double rk = 0.0, bk = 0.0;
                model(pts[k], b, d, params->retries, &rk, &bk);
                r += w[k] * rk;
                bu += w[k] * bk;
            }
            if (r < best_r * 0.98 || (r <= best_r * 1.02 && bu < best_b)) {
                if (r < best_r)
                    best_r = r;
                best_b = bu;
                *batch = b;
                *depth = d;
            }
        }
}
