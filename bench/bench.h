/*
 * bench/bench.h - what every benchmark shares: a monotonic clock in
 * nanoseconds and "best of R rounds" (the least disturbed run of a loop).
 */
#ifndef KEEL_BENCH_H
#define KEEL_BENCH_H

#include <time.h>

static inline double bench_now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The smallest of `rounds` runs of fn(n); fn returns nanoseconds per operation. */
static inline double bench_best(double (*fn)(long), long n, int rounds)
{
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t = fn(n);
        if (t < best)
            best = t;
    }
    return best;
}

#endif /* KEEL_BENCH_H */
