/* keel-run's signal-storm programs' common part (signal_storm.c, signal_graph.c,
 * signal_heap_wait.c, signal_heap_limits.c): SIGUSR1's handler installed, and the storm itself -
 * n workers started with SIGUSR1 blocked (each lets it in when ready), sent SIGUSR1 in turn as
 * fast as main can for a number of seconds, then told to stop and joined. */
#ifndef KEEL_TESTS_RUN_STORM_H
#define KEEL_TESTS_RUN_STORM_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

/* handler for SIGUSR1 (SA_RESTART, nothing more blocked in it): 0, or -1. */
static inline int storm_handler(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGUSR1, &sa, NULL);
}

/* The set of SIGUSR1 alone, which the storm sends. */
static inline sigset_t storm_usr1(void)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    return usr1;
}

static inline double storm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { STORM_MAX = 8 };

/* n workers (up to STORM_MAX), worker i given first + i; *stop set after seconds: 0, or 2 when a
 * worker could not be started. */
static inline int storm_run(int n, void *(*worker)(void *), long first, double seconds,
                            volatile int *stop)
{
    sigset_t usr1 = storm_usr1();
    pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* (each worker lets it in when ready) */
    pthread_t t[STORM_MAX];
    for (int i = 0; i < n && i < STORM_MAX; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(first + i)) != 0)
            return 2;
    double end = storm_now() + seconds;
    for (unsigned long i = 0; storm_now() < end; i++)
        pthread_kill(t[i % (unsigned long)n], SIGUSR1);
    __atomic_store_n(stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < n && i < STORM_MAX; i++)
        pthread_join(t[i], NULL);
    return 0;
}

#endif
