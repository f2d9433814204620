/*
 * sched_strategy.c - the shape of keel-gate's window: how many changes a new
 * candidate takes and how many candidates are tested ahead of the tip, for
 * each strategy; for adaptive, from the estimated failure rate.
 */
#include "scheduler.h"

/* x clamped to [lo, hi], rounded down (no libm). */
static unsigned clamp(double x, unsigned lo, unsigned hi)
{
    if (!(x >= (double)lo))
        return lo;
    if (x >= (double)hi)
        return hi;
    return (unsigned)x;
}

/* round(1 / sqrt(p)) clamped to [1, hi]: the largest b with (b - 1/2)^2 p <= 1. */
static unsigned inv_sqrt_round(double p, unsigned hi)
{
    unsigned b = 1;
    while (b < hi && ((double)b + 0.5) * ((double)b + 0.5) * p <= 1.0)
        b++;
    return b;
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
    unsigned b = inv_sqrt_round(p, params->max_batch);
    unsigned lim = maxd < params->slots ? maxd : params->slots;
    *batch = b;
    *depth = clamp(1.0 / p, 1, lim);
}
