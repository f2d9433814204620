/*
 * bench/run/lockloop.c - the per-call cost keel-run adds to an uncontended pthread mutex: N lock
 * and unlock pairs of one mutex, then of two nested mutexes, in one thread; prints ns per pair.
 * A plain program (no keel): run it natively and under keel-run (docs/benchmarks.md, "keel-run").
 * With the argument `threaded` an idle second thread exists meanwhile (the C library's locks then
 * use atomic instructions, and keel-run's a try first).  Each figure twice: by the wall clock, and
 * by the thread's CPU time (which leaves out the time a loaded machine did not run it).
 *   cc -O2 -pthread bench/run/lockloop.c -o /tmp/lockloop && keel-run -- /tmp/lockloop [threaded]
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N 10000000L

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;

static double now_on(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double now(void)
{
    return now_on(CLOCK_MONOTONIC);
}

/* The thread's CPU time: on a loaded machine, the time it was not running is left out. */
static double cpu(void)
{
    return now_on(CLOCK_THREAD_CPUTIME_ID);
}

static pthread_barrier_t done;

static void *idle(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&done);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t;
    int threaded = argc > 1 && strcmp(argv[1], "threaded") == 0;
    if (threaded) {
        pthread_barrier_init(&done, NULL, 2);
        pthread_create(&t, NULL, idle, NULL);
    }
    double c0 = cpu();
    double t0 = now();
    for (long i = 0; i < N; i++) {
        pthread_mutex_lock(&a);
        pthread_mutex_unlock(&a);
    }
    double t1 = now();
    double c1 = cpu();
    for (long i = 0; i < N; i++) {
        pthread_mutex_lock(&a);
        pthread_mutex_lock(&b);
        pthread_mutex_unlock(&b);
        pthread_mutex_unlock(&a);
    }
    double t2 = now();
    double c2 = cpu();
    printf("one mutex: %.1f ns per lock+unlock; two nested: %.1f ns per pair of pairs; CPU time: "
           "one %.1f, two %.1f\n",
           (t1 - t0) / (double)N, (t2 - t1) / (double)N, (c1 - c0) / (double)N,
           (c2 - c1) / (double)N);
    if (threaded) {
        pthread_barrier_wait(&done);
        pthread_join(t, NULL);
    }
    return 0;
}
