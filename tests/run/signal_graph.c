/* keel-run: a storm of signals whose handlers share one mutex, and lock another under it, at
 * threads that keep taking new sequences of locks (tests/test_run.c, test_signal_graph).  Each
 * new sequence sends the checker to its slow path, which holds keel's own lock of the order
 * graph.  A handler that runs there waits for the shared mutex, held by a handler on another
 * thread, whose next lock is a new sequence too: it waits for the graph's lock.  Without
 * keel-run nothing here waits for a thread that waits: the program must end (exit 0).
 *
 * Sixteen static mutexes, each a class of its own (a static object); the threads lock subsets
 * of them in one order (no order report), a different subset each time: up to 65,536
 * sequences, more than keel's table of known sequences holds (16,384), so the slow path never
 * stops.  The handlers' locks are made at their sites before the storm (their call sites known). */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "storm.h"

enum { WORKERS = 3, CLASSES = 16 };

#define M(i) static pthread_mutex_t m##i = PTHREAD_MUTEX_INITIALIZER;
M(0)
M(1)
M(2)
M(3)
M(4)
M(5)
M(6)
M(7)
M(8)
M(9)
M(10)
M(11)
M(12)
M(13)
M(14)
M(15)
static pthread_mutex_t *const ms[CLASSES] = {&m0, &m1, &m2,  &m3,  &m4,  &m5,  &m6,  &m7,
                                             &m8, &m9, &m10, &m11, &m12, &m13, &m14, &m15};

static pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER; /* every handler's */
static pthread_mutex_t inner = PTHREAD_MUTEX_INITIALIZER;  /* taken under it */
static volatile int stop;
static volatile sig_atomic_t handled[WORKERS];
static __thread int me = -1;

static void handler(int sig)
{
    (void)sig;
    pthread_mutex_lock(&shared);
    pthread_mutex_lock(&inner); /* (under whatever the thread holds: a new sequence) */
    pthread_mutex_unlock(&inner);
    pthread_mutex_unlock(&shared);
    if (me >= 0)
        handled[me]++;
}

static void *worker(void *arg)
{
    me = (int)(long)arg;
    sigset_t usr1 = storm_usr1();
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    unsigned x = 2463534242u + (unsigned)me * 7919u;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        unsigned set = x & 0xffffu;
        for (int i = 0; i < CLASSES; i++)
            if (set & (1u << i))
                pthread_mutex_lock(ms[i]);
        for (int i = CLASSES - 1; i >= 0; i--)
            if (set & (1u << i))
                pthread_mutex_unlock(ms[i]);
    }
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    handler(0); /* (its sites and shadows made here, not in the storm) */
    if (storm_handler(handler) != 0)
        return 1;
    if (storm_run(WORKERS, worker, 0, seconds, &stop) != 0)
        return 2;
    for (int i = 0; i < WORKERS; i++)
        if (handled[i] == 0)
            return 3;
    return 0;
}
