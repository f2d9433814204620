/*
 * bench_watchdog.c - the cost of a budgeted section, and of the watchdog.
 *
 * Measured in one run, best of 5 rounds:
 *   anchor 1: a bare out-of-line function call (nothing else)
 *   anchor 2: a clock_gettime(CLOCK_MONOTONIC) pair, what a section that
 *             reads the clock on entry and exit would pay
 *   keel:     keel_section_enter + keel_section_leave (devel library)
 *   locks:    keel_mutex lock+unlock of a class with a hold budget against one
 *             without, on a thread the watchdog samples (devel: the ratio
 *             shows a budget costs the lock path nothing)
 * Then the watchdog thread's CPU use at the default tick with 8 threads that
 * each keep a section open and a heartbeat promised: the watchdog thread's
 * own CPU clock over 2 s of wall time.
 *
 * Goals (issue 6): a section <= 3 ns; the watchdog < 1% of one core.
 * Run: make bench
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/keel.h"

#include "bench.h"

enum { ROUNDS = 5 };
static const long N = 50000000;

__attribute__((noinline)) static void bare_call(unsigned long *x)
{
    __asm__ volatile("" : "+r"(*x));
}

static const keel_section_desc section = {"bench", 1000000000ull, __FILE__, __LINE__, "bench"};

static double run_bare(long n)
{
    unsigned long x = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        bare_call(&x);
    return (bench_now_ns() - t0) / (double)n;
}

static double run_clock_pair(long n)
{
    struct timespec a, b;
    unsigned long long sum = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        (void)clock_gettime(CLOCK_MONOTONIC, &a);
        (void)clock_gettime(CLOCK_MONOTONIC, &b);
        sum += (unsigned long long)(b.tv_nsec - a.tv_nsec);
    }
    double t = (bench_now_ns() - t0) / (double)n;
    if (sum == 42)
        printf(" ");
    return t;
}

static double run_section(long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        keel_section_enter(&section);
        keel_section_leave(&section);
    }
    return (bench_now_ns() - t0) / (double)n;
}

static keel_mutex plain_lock = KEEL_MUTEX_INITIALIZER("bench_unbudgeted", 0);
static keel_mutex budgeted_lock = KEEL_MUTEX_INITIALIZER("bench_budgeted", 0);

static double run_lock(keel_mutex *m, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        keel_mutex_lock(m);
        keel_mutex_unlock(m);
    }
    return (bench_now_ns() - t0) / (double)n;
}

static double run_lock_plain(long n)
{
    return run_lock(&plain_lock, n);
}

static double run_lock_budgeted(long n)
{
    return run_lock(&budgeted_lock, n);
}

#if KEEL_WATCHDOG_ON
static int stop_sleepers;

static void *sleeper(void *arg)
{
    (void)arg;
    static const keel_section_desc long_section = {"long_wait", 60000000000ull, __FILE__, __LINE__,
                                                   "sleeper"};
    keel_heartbeat_expect(60000);
    keel_section_enter(&long_section);
    while (!__atomic_load_n(&stop_sleepers, __ATOMIC_ACQUIRE))
        usleep(10000);
    keel_section_leave(&long_section);
    keel_heartbeat_expect(0);
    return NULL;
}
#endif

/* The bench cannot go on without it: print the error and stop. */
static void must(keel_status s)
{
    if (keel_ok(s))
        return;
    keel_status_print(stderr, s);
    keel_status_free(s);
    exit(1);
}

int main(void)
{
    must(keel_init());
    double t_bare = bench_best(run_bare, N, ROUNDS);
    double t_clock = bench_best(run_clock_pair, N / 10, ROUNDS);
    double t_section = bench_best(run_section, N, ROUNDS);
    printf("bench_watchdog (%s, best of %d rounds)\n", keel_version_string(), ROUNDS);
    printf("  %-40s %6.2f ns  1.00x (anchor)\n", "bare function call", t_bare);
    printf("  %-40s %6.2f ns  %.2fx call\n", "clock_gettime pair", t_clock, t_clock / t_bare);
    printf("  %-40s %6.2f ns  %.2fx call, %.2fx clock pair\n", "keel section enter+leave",
           t_section, t_section / t_bare, t_section / t_clock);

    /* the section above registered this thread: the watchdog samples its held locks */
    must(keel_lock_class_budget("bench_budgeted", 1000));
    double t_plain = bench_best(run_lock_plain, N / 5, ROUNDS);
    double t_budgeted = bench_best(run_lock_budgeted, N / 5, ROUNDS);
    printf("  %-40s %6.2f ns  1.00x (anchor)\n", "keel_mutex lock+unlock, no budget", t_plain);
    printf("  %-40s %6.2f ns  %.2fx no budget\n", "keel_mutex lock+unlock, budgeted class",
           t_budgeted, t_budgeted / t_plain);
    must(keel_lock_class_budget("bench_budgeted", 0));

#if KEEL_WATCHDOG_ON
    keel_thread *t[8];
    for (int i = 0; i < 8; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "sleeper-%d", i);
        must(keel_thread_create(&t[i], name, "bench", sleeper, NULL));
    }
    /* the watchdog thread's own CPU clock, over 2 s of wall time */
    char json[16384];
    (void)keel_watchdog_stats_json(json, sizeof(json));
    const char *key = "\"watchdog_cpu_ns\":";
    const char *p0 = strstr(json, key);
    double w0 = bench_now_ns();
    unsigned long long c0 = p0 != NULL ? strtoull(p0 + strlen(key), NULL, 10) : 0;
    usleep(2000000);
    (void)keel_watchdog_stats_json(json, sizeof(json));
    const char *p1 = strstr(json, key);
    unsigned long long c1 = p1 != NULL ? strtoull(p1 + strlen(key), NULL, 10) : 0;
    double share = (double)(c1 - c0) / (bench_now_ns() - w0);
    __atomic_store_n(&stop_sleepers, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++)
        must(keel_thread_join(t[i], NULL));
    printf("  %-40s %6.3f%% of one core (tick %s ms, 8 watched threads)\n", "watchdog thread CPU",
           share * 100.0, "10");
#endif
    return 0;
}
