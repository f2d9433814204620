/*
 * bench/bench.h - what every benchmark shares: a monotonic clock in
 * nanoseconds and "best of R rounds" (the least disturbed run of a loop).
 */
#ifndef KEEL_BENCH_H
#define KEEL_BENCH_H

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* splitmix64: a seeded stream for simulated workloads (reproducible from the seed). */
static inline unsigned long long bench_splitmix64(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), from the stream. */
static inline double bench_uniform(unsigned long long *x)
{
    return (double)(bench_splitmix64(x) >> 11) / 9007199254740992.0;
}

/* v[0 .. n) in increasing order (for medians and percentiles). */
static inline int bench_by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline void bench_sort(double *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), bench_by_value);
}

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

/*
 * An anchor and what is compared with it, in alternate rounds (a, b, a, b,
 * ...): the best of `rounds` of each.  Load from other processes or a
 * frequency change then hits both, where best-of-a then best-of-b can put a
 * quiet phase on one side and a busy one on the other.
 */
static inline void bench_best_pair(double (*fa)(long), double (*fb)(long), long n, int rounds,
                                   double *a, double *b)
{
    *a = *b = 1e30;
    for (int r = 0; r < rounds; r++) {
        double ta = fa(n), tb = fb(n);
        if (ta < *a)
            *a = ta;
        if (tb < *b)
            *b = tb;
    }
}

typedef struct bench_thread_run {
    double (*fn)(long);
    long n;
    double ns;
} bench_thread_run;

static inline void *bench_thread_main(void *arg)
{
    bench_thread_run *r = (bench_thread_run *)arg;
    r->ns = r->fn(r->n);
    return NULL;
}

/* fn(n) in `threads` threads at once (at most 8): the slowest thread's ns per operation. */
static inline double bench_in_threads(double (*fn)(long), long n, int threads)
{
    pthread_t t[8];
    bench_thread_run r[8];
    if (threads > 8)
        threads = 8;
    for (int i = 0; i < threads; i++) {
        r[i].fn = fn;
        r[i].n = n;
        r[i].ns = 0;
        if (pthread_create(&t[i], NULL, bench_thread_main, &r[i]) != 0)
            abort();
    }
    double worst = 0;
    for (int i = 0; i < threads; i++) {
        (void)pthread_join(t[i], NULL);
        if (r[i].ns > worst)
            worst = r[i].ns;
    }
    return worst;
}

#endif /* KEEL_BENCH_H */
