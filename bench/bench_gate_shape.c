/*
 * bench_gate_shape.c - what one choice of adaptive's shape costs
 * (gate_sched_shape, gate/queue/scheduler.h) as the gate's limits grow.
 *
 * keel-gate asks for the shape whenever what it has learned changes (about
 * every build's result), so with slots for a cluster the choice must stay
 * far below a build's time.  For each setting (slots, max-batch and
 * max-depth; the executor running half the slots at once, builds of two
 * configurations) and each failure rate p (the posterior of 50 changes):
 * the median time of one call over 5 rounds, the shape chosen, and the ratio
 * to the default setting's time at the same p (4 slots, batches of 8, 4
 * deep: the anchor, measured in the same run).
 *
 *   build/release/bench_gate_shape
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "scheduler.h"

typedef struct setting {
    unsigned slots, batch, depth;
} setting;

static const setting settings[] = {{4, 8, 4}, {16, 64, 16}, {64, 256, 64}, {256, 1024, 256}};
static const double ps[] = {0.001, 0.01, 0.1, 0.3};
enum {
    NSET = sizeof(settings) / sizeof(settings[0]),
    NPS = sizeof(ps) / sizeof(ps[0]),
    ROUNDS = 5
};

/* The median of ROUNDS timed calls, in ms; the shape chosen. */
static double one(const setting *st, double p, unsigned *batch, unsigned *depth)
{
    gate_sched_params prm;
    gate_sched_params_default(&prm);
    prm.strategy = GATE_STRATEGY_ADAPTIVE;
    prm.slots = st->slots;
    prm.max_batch = st->batch;
    prm.max_depth = st->depth;
    gate_sched_outlook o = {0};
    o.p = p;
    o.n = 50.0;
    o.queued = 100;
    o.parallel = (double)st->slots / 2.0;
    o.jobs = 2;
    o.width = 1.8;
    o.flake = 0.02;
    double ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = bench_now_ns();
        gate_sched_shape(&prm, &o, batch, depth);
        ms[r] = (bench_now_ns() - t0) / 1e6;
    }
    bench_sort(ms, ROUNDS);
    return ms[ROUNDS / 2];
}

int main(void)
{
    printf("adaptive's choice of shape (gate_sched_shape): ms per call, median of %d\n\n", ROUNDS);
    printf("| slots, max-batch, max-depth | p | ms per call | shape | over the default's |\n");
    printf("|---|---|---|---|---|\n");
    double anchor[NPS];
    for (size_t i = 0; i < NSET; i++)
        for (size_t k = 0; k < NPS; k++) {
            unsigned b = 0, d = 0;
            double ms = one(&settings[i], ps[k], &b, &d);
            if (i == 0)
                anchor[k] = ms;
            printf("| %u, %u, %u | %.3f | %.3f | %ux%u | %.1f |\n", settings[i].slots,
                   settings[i].batch, settings[i].depth, ps[k], ms, b, d, ms / anchor[k]);
            (void)fflush(stdout);
        }
    return 0;
}
