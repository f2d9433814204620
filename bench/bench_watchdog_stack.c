/*
 * bench_watchdog_stack.c - what taking a stuck thread's backtrace costs, and
 * what the thread sees (watchdog.stacks=ptrace, docs/watchdog.md).
 *
 * A thread loops on nanosleep(20 ms) (its own clock checks every sleep: none
 * may fail or return early); the main thread takes its backtrace 100 times
 * through keel-stack, as the watchdog does, 3 ms apart.  Printed: the wall
 * time of a capture (the watchdog thread's), how long the thread was stopped
 * (mean and worst), and the sleeps that failed or came back short.  The first
 * capture, which starts keel-stack, is shown apart.
 * Run: make bench (or build/devel/bench_watchdog_stack [captures])
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#include "bench.h"

static long sleeper_tid;  /* atomic */
static int stop_sleeping; /* atomic */
static long sleeps, failed, short_sleeps;

__attribute__((noinline)) static void sleeper_loop(void)
{
    while (!__atomic_load_n(&stop_sleeping, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 20000000};
        double t0 = bench_now_ns();
        int rc = nanosleep(&ts, NULL);
        double ns = bench_now_ns() - t0;
        sleeps++;
        if (rc != 0)
            failed++;
        else if (ns < 20e6)
            short_sleeps++;
    }
}

static void *sleeper(void *arg)
{
    (void)arg;
    __atomic_store_n(&sleeper_tid, (long)syscall(SYS_gettid), __ATOMIC_RELEASE);
    sleeper_loop();
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n < 2)
        n = 2;
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0)
        return 1;
    while (__atomic_load_n(&sleeper_tid, __ATOMIC_ACQUIRE) == 0)
        usleep(1000);
    usleep(10000);
    double first_ms = 0, sum_ms = 0, worst_ms = 0;
    unsigned long long stop_sum = 0, stop_worst = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        void *frames[32];
        int nframes = 0;
        unsigned long long stopped_us = 0;
        double t0 = bench_now_ns();
        keel_status s = keel__stack_ptrace(__atomic_load_n(&sleeper_tid, __ATOMIC_ACQUIRE), frames,
                                           32, &nframes, NULL, NULL, &stopped_us);
        double ms = (bench_now_ns() - t0) / 1e6;
        if (!keel_ok(s)) {
            printf("capture %d: %s\n", i, keel_status_message(s));
            keel_status_free(s);
            continue;
        }
        ok++;
        if (i == 0) {
            first_ms = ms;
        } else {
            sum_ms += ms;
            worst_ms = ms > worst_ms ? ms : worst_ms;
            stop_sum += stopped_us;
            stop_worst = stopped_us > stop_worst ? stopped_us : stop_worst;
        }
        usleep(3000);
    }
    __atomic_store_n(&stop_sleeping, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    printf("watchdog.stacks=ptrace: %d/%d captures; the first (starts keel-stack) %.1f ms; then "
           "%.2f ms mean, %.1f ms worst\n",
           ok, n, first_ms, sum_ms / (n - 1), worst_ms);
    printf("  the thread was stopped %llu us mean, %llu us worst; %ld sleeps of 20 ms: %ld "
           "failed, %ld short\n",
           stop_sum / (unsigned long long)(n - 1), stop_worst, sleeps, failed, short_sleeps);
    /* a capture refused here (no ptrace) is printed above; a sleep cut short is a failure */
    return failed == 0 && short_sleeps == 0 ? 0 : 1;
}
