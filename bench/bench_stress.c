/*
 * bench_stress.c - what a stress point costs, against libfiu and against the
 * same loop without the point, in the same run.
 *
 *   loop without a point (the anchor)                 ns per iteration
 *   loop with a disarmed KEEL_STRESS point            / anchor
 *   loop with libfiu's fiu_fail() check, nothing on   / keel disarmed  (goal >= 30x)
 *   armed point, 1 in 1000                            ns per evaluation (goal <= 10 ns)
 *   2 threads on one armed point vs 1 thread          per-thread time ratio (goal ~1.0:
 *                                                      no shared cache line)
 *
 * Built twice by make bench: against libkeel-devel and libkeel (release: the
 * point is the constant 0, so the loop with it is the anchor loop, 1.00x).
 * Best of 7 rounds.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if KEEL_BENCH_HAVE_FIU
#define FIU_ENABLE 1
#include <fiu-control.h>
#include <fiu.h>
#endif

#include "keel/keel.h"

#include "bench.h"

enum { ROUNDS = 7 };
static const long N = 20000000;
static unsigned long long sink;

/* The work every loop does, so that the loops differ only by the check. */
#define BODY(i) (acc += (unsigned long long)(i)) /* one cycle: the loop is throughput-bound */

static double loop_plain(long n)
{
    unsigned long long acc = 1;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        BODY(i);
        __asm__ volatile("" : "+r"(acc)); /* the loop cannot be folded */
    }
    double t = bench_now_ns() - t0;
    sink += acc;
    return t / (double)n;
}

static double loop_keel(long n)
{
    unsigned long long acc = 1;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        BODY(i);
        if (KEEL_STRESS(bench_disarmed))
            acc++;
        __asm__ volatile("" : "+r"(acc));
    }
    double t = bench_now_ns() - t0;
    sink += acc;
    return t / (double)n;
}

/* Eight disarmed points per iteration: their cost, divided by 8, stands out of the noise. */
static double loop_keel8(long n)
{
    unsigned long long acc = 1;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        BODY(i);
        acc +=
            (unsigned long long)KEEL_STRESS(bench_d1) + (unsigned long long)KEEL_STRESS(bench_d2) +
            (unsigned long long)KEEL_STRESS(bench_d3) + (unsigned long long)KEEL_STRESS(bench_d4) +
            (unsigned long long)KEEL_STRESS(bench_d5) + (unsigned long long)KEEL_STRESS(bench_d6) +
            (unsigned long long)KEEL_STRESS(bench_d7) + (unsigned long long)KEEL_STRESS(bench_d8);
        __asm__ volatile("" : "+r"(acc));
    }
    double t = bench_now_ns() - t0;
    sink += acc;
    return t / (double)n;
}

#if KEEL_BENCH_HAVE_FIU
static double loop_fiu(long n)
{
    unsigned long long acc = 1;
    n /= 20; /* libfiu is slow: fewer iterations */
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        BODY(i);
        if (fiu_fail("bench/disarmed"))
            acc++;
        __asm__ volatile("" : "+r"(acc));
    }
    double t = bench_now_ns() - t0;
    sink += acc;
    return t / (double)n;
}
#endif

#if KEEL_DEVEL
static double loop_armed(long n)
{
    unsigned long long acc = 1;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        BODY(i);
        if (KEEL_STRESS(bench_armed))
            acc++;
        __asm__ volatile("" : "+r"(acc));
    }
    double t = bench_now_ns() - t0;
    sink += acc;
    return t / (double)n;
}

/* Both threads' loops together: each thread's ns per evaluation, the larger. */
static double armed_two_threads(long n)
{
    return bench_in_threads(loop_armed, n / 4, 2);
}

static double armed_one_thread(long n)
{
    return bench_in_threads(loop_armed, n / 4, 1);
}
#endif

int main(void)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    double plain = bench_best(loop_plain, N, ROUNDS);
    double keel = bench_best(loop_keel, N, ROUNDS);
    double keel8 = bench_best(loop_keel8, N, ROUNDS);
    /* per check: (8 points - anchor) / 8, at least 0.01 ns to stay finite */
    double check = (keel8 - plain) / 8 > 0.01 ? (keel8 - plain) / 8 : 0.01;
    (void)printf("%-50s %7.2f ns/iteration\n", "loop without a point (anchor)", plain);
    (void)printf("%-50s %7.2f ns/iteration  %5.2fx anchor\n",
                 KEEL_DEVEL ? "loop with a disarmed KEEL_STRESS point"
                            : "loop with KEEL_STRESS (release: constant 0)",
                 keel, keel / plain);
    (void)printf("%-50s %7.2f ns/iteration  %5.2fx anchor  = %.2f ns per check (goal <= 1)\n",
                 KEEL_DEVEL ? "loop with 8 disarmed points" : "loop with 8 points (release)", keel8,
                 keel8 / plain, (keel8 - plain) / 8);
#if KEEL_BENCH_HAVE_FIU
    fiu_init(0);
    double fiu = bench_best(loop_fiu, N, ROUNDS);
    (void)printf("%-50s %7.2f ns/iteration  %.2f ns per check = %.0fx keel's  (goal >= 30x)\n",
                 "loop with libfiu fiu_fail(), nothing enabled", fiu, fiu - plain,
                 (fiu - plain) / check);
#else
    (void)printf("%-50s (libfiu not found at build time)\n", "libfiu fiu_fail()");
#endif
#if KEEL_DEVEL
    s = keel_stress_enable("bench_armed:1/1000");
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    double armed = bench_best(loop_armed, N, ROUNDS);
    (void)printf("%-50s %7.2f ns/iteration  +%.2f ns per evaluation  (goal <= 10 ns)\n",
                 "loop with an armed point, 1 in 1000", armed, armed - plain);
    double one = bench_best(armed_one_thread, N, ROUNDS);
    double two = bench_best(armed_two_threads, N, ROUNDS);
    (void)printf("%-50s %7.2f ns vs %.2f ns alone  %5.2fx  (goal ~1: no shared line)\n",
                 "armed point, 2 threads at once (per thread)", two, one, two / one);
    keel_stress_stats st;
    s = keel_stress_get("bench_armed", &st);
    if (keel_ok(s))
        (void)printf("%-50s %llu evaluations, %llu fires (%.2f per 1000)\n", "  counted by keel",
                     st.evaluations, st.fires, 1000.0 * (double)st.fires / (double)st.evaluations);
    keel_status_free(s);
#endif
    return sink == 42 ? 1 : 0;
}
