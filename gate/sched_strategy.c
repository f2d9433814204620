/*
 * sched_strategy.c - the shape of keel-gate's window: how many changes a new
 * candidate takes and how many candidates are tested ahead of the tip, for
 * each strategy; for adaptive, from the estimated failure rate.
 */
#include "scheduler.h"

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
 * of b changes each, every change bad with probability p.  A round builds the
 * window; segments land in order up to the first failing one (probability
 * 1 - q each, q = (1-p)^b), whose changes are then isolated by bisection:
 * about log2(b) sequential builds per bad change it holds.
 */
static void model(double p, unsigned b, unsigned d, double *rounds, double *builds)
{
    double q = 1.0;
    for (unsigned i = 0; i < b; i++)
        q *= 1.0 - p;
    double qd = 1.0;
    for (unsigned i = 0; i < d; i++)
        qd *= q;
    double fail = 1.0 - qd; /* some segment fails */
    double decided = 1.0 - q > 1e-12 ? (double)b * fail / (1.0 - q) : (double)(b * d);
    double log2b = 0.0;
    for (unsigned x = 1; x < b; x *= 2)
        log2b += 1.0;
    double bad_in = 1.0 - q > 1e-12 ? (double)b * p / (1.0 - q) : 1.0; /* given one fails */
    double iso = b > 1 ? bad_in * (log2b + 1.0) : 0.0;
    *rounds = (1.0 + fail * iso) / decided;
    *builds = ((double)d + fail * iso) / decided;
}

void gate_sched_shape(const gate_sched_params *params, double p, size_t queued, unsigned *batch,
                      unsigned *depth)
{
    KEEL_ASSERT(params != NULL && batch != NULL && depth != NULL);
    KEEL_ASSERT(p > 0.0 && p < 1.0);
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
     * Adaptive: the shape with the fewest expected rounds (of T) per change
     * under the estimate p; among shapes within 2% of it, the fewest builds.
     * Batches are searched up to about 2/sqrt(p) (the classic 1/sqrt(p) is
     * the optimum of a single batch), depths up to min(slots, max-depth).
     */
    unsigned lim = maxd < params->slots ? maxd : params->slots;
    unsigned bmax = inv_sqrt_round(p / 4.0, params->max_batch);
    double best_r = 1e300, best_b = 1e300;
    *batch = 1;
    *depth = 1;
    for (unsigned d = 1; d <= lim; d++)
        for (unsigned b = 1; b <= bmax; b++) {
            double r = 0.0, bu = 0.0;
            model(p, b, d, &r, &bu);
            if (r < best_r * 0.98 || (r <= best_r * 1.02 && bu < best_b)) {
                if (r < best_r)
                    best_r = r;
                best_b = bu;
                *batch = b;
                *depth = d;
            }
        }
}
