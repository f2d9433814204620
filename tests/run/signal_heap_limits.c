/* keel-run: signal handlers that reach the limits of keel-run's heap for them (tests/test_run.c,
 * test_signal_heap_limits): main allocates and frees big blocks in a loop (most of its time is
 * in keel's heap, poisoning them, or in glibc's allocator, mapping and unmapping them), while a
 * second thread sends it SIGUSR1 as fast as it can.
 *
 * "reserve": the handler allocates 2 MB and frees it.  Made while main is inside glibc's
 * allocator, the block comes from keel-run's reserve (16 MB), whose blocks are never given back:
 * it is used up after a few such signals.  A handler's malloc that returns NULL ends the loop.
 * "defer": main keeps a pool of 300 small blocks; the handler frees them all.  Freed while main
 * is inside keel's heap, their frees are deferred, more than the table of 256 holds.
 * Either way the program must run to its end (exit 0): keel-run reports the limit once. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "storm.h"

enum { ROUNDS = 300, POOL = 300, BIG = 40 << 20, HANDLER_BLOCK = 2 << 20 };

static int defer_mode;
static pthread_t main_thread;
static volatile int stop;
static volatile sig_atomic_t refused; /* a handler's malloc returned NULL */
static void *pool[POOL];
static volatile sig_atomic_t pool_full;

static void handler(int sig)
{
    (void)sig;
    if (defer_mode) {
        if (pool_full) {
            pool_full = 0;
            for (int i = 0; i < POOL; i++)
                free(pool[i]);
        }
        return;
    }
    char *p = malloc(HANDLER_BLOCK);
    if (p == NULL) {
        refused = 1;
        return;
    }
    memset(p, 'h', 64);
    free(p);
}

static void *sender(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
        pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

int main(int argc, char **argv)
{
    defer_mode = argc > 1 && strcmp(argv[1], "defer") == 0;
    main_thread = pthread_self();
    if (storm_handler(handler) != 0)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, sender, NULL) != 0)
        return 2;
    for (int round = 0; round < ROUNDS && !refused; round++) {
        if (defer_mode && !pool_full) {
            sigset_t usr1 = storm_usr1(), old;
            pthread_sigmask(SIG_BLOCK, &usr1,
                            &old); /* (the pool is made whole, then handed over) */
            for (int i = 0; i < POOL; i++)
                pool[i] = malloc(32);
            pool_full = 1;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        char *p = malloc(defer_mode ? 1 << 20 : BIG);
        if (p != NULL)
            p[0] = 'm';
        free(p);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    return 0;
}
