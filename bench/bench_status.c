/*
 * bench_status.c - "success is free": the cost of returning and testing a
 * keel_status on the success path, against returning and testing a plain int,
 * measured in the same run; and the cost of the error path (create + wrap +
 * free) for scale.
 *
 * Prints one line per measure with ns/op and the ratio to the anchor.
 * Run: make bench   (or build/<cc>-release/bench/bench_status)
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keel/keel.h"

#include "bench.h"

enum { ROUNDS = 5 };

/* Kept out of line so that the call and the test are really made. */
__attribute__((noinline)) static int int_op(volatile int *x)
{
    *x += 1;
    return *x < 0 ? -1 : 0;
}

__attribute__((noinline)) static keel_status status_op(volatile int *x)
{
    *x += 1;
    if (*x < 0)
        return KEEL_ERR(KEEL_E_RANGE, "overflow");
    return KEEL_OK;
}

__attribute__((noinline)) static keel_status failing_op(int i)
{
    return keel_status_with_int(KEEL_ERR(KEEL_E_IO, "disk error on block %d", i), "block", i);
}

static volatile int sink;

static double run_int(long n)
{
    double t0 = bench_now_ns();
    long fails = 0;
    for (long i = 0; i < n; i++)
        if (int_op(&sink) != 0)
            fails++;
    double t = (bench_now_ns() - t0) / (double)n;
    if (fails != 0)
        abort();
    return t;
}

static double run_status(long n)
{
    double t0 = bench_now_ns();
    long fails = 0;
    for (long i = 0; i < n; i++) {
        keel_status s = status_op(&sink);
        if (!keel_ok(s)) {
            fails++;
            keel_status_free(s);
        }
    }
    double t = (bench_now_ns() - t0) / (double)n;
    if (fails != 0)
        abort();
    return t;
}

static double run_error(long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        keel_status s = failing_op((int)i);
        s = KEEL_WRAP(s, KEEL_E_STATE, "while flushing");
        if (!keel_ok(s))
            keel_status_free(s);
    }
    return (bench_now_ns() - t0) / (double)n;
}

int main(void)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 2;
    }
    const long n = 50000000;
    double t_int = bench_best(run_int, n, ROUNDS);
    double t_status = bench_best(run_status, n, ROUNDS);
    double t_error = bench_best(run_error, n / 100, ROUNDS);
    printf("bench_status (%s, best of %d rounds)\n", keel_version_string(), ROUNDS);
    printf("  %-44s %8.2f ns/op  1.00x (anchor)\n", "return int 0/-1 + test", t_int);
    printf("  %-44s %8.2f ns/op  %.2fx int\n", "return keel_status OK + keel_ok()", t_status,
           t_status / t_int);
    printf("  %-44s %8.2f ns/op  %.0fx int\n", "error path: create + detail + wrap + free", t_error,
           t_error / t_int);
    return 0;
}
