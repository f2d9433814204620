/* keel-run: a storm of signals whose handler allocates, frees and locks, sent to threads that
 * allocate, free, lock and make mutexes in loops (tests/test_run.c, test_signal_storm).  A
 * handler runs at any instruction of keel-run's interposed calls, in the middle of its tables'
 * updates: the program must run to its end as without keel-run (exit 0), never hang.
 *
 * The handler leaves its block in its thread's stash and frees the one it finds there; the
 * thread frees the stashed block too, between its own calls.  A block the handler made while
 * the thread was inside keel-run's code is glibc's (keel-run's calls from inside itself), so
 * both free glibc's blocks and keel's.  The handler's blocks are 40 bytes and the threads' own
 * 64 or more: glibc's allocator serves the handler from the thread's cache (the stash's blocks
 * go back there), without its arena's lock, natively as under keel-run. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "storm.h"

enum { WORKERS = 3 };

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
/* the handler's, one per thread: a handler waits for no other thread (under keel-run a thread
 * that holds a lock of keel's own, interrupted, could otherwise hold up a thread that waits for it
 * holding this one) */
static pthread_mutex_t handler_lock[WORKERS + 1];
static volatile int stop;
static volatile sig_atomic_t handled[WORKERS + 1];
static __thread int me;
static __thread char *stash;

static void handler(int sig)
{
    (void)sig;
    char *p = malloc(40);
    pthread_mutex_lock(&handler_lock[me]);
    if (p != NULL)
        memset(p, 'h', 40);
    pthread_mutex_unlock(&handler_lock[me]);
    free(__atomic_exchange_n(&stash, p, __ATOMIC_RELAXED));
    handled[me]++;
}

static void *worker(void *arg)
{
    me = (int)(long)arg;
    pthread_mutex_init(&handler_lock[me], NULL);
    void *warm[4]; /* (the handler's size in this thread's glibc cache) */
    for (int i = 0; i < 4; i++)
        warm[i] = malloc(40);
    for (int i = 0; i < 4; i++)
        free(warm[i]);
    sigset_t usr1 = storm_usr1();
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    unsigned long n = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        size_t size = 64 + (n * 97) % 2000;
        char *p = malloc(size);
        pthread_mutex_lock(&work_lock);
        if (p != NULL)
            memset(p, 'w', size);
        pthread_mutex_unlock(&work_lock);
        char *q = n % 3 == 0 ? realloc(p, size + 64) : p;
        free(q != NULL ? q : p);
        free(__atomic_exchange_n(&stash, NULL, __ATOMIC_RELAXED));
        if (n % 16 == 0) { /* a new mutex: a new shadow in keel-run's table */
            pthread_mutex_t m;
            pthread_mutex_init(&m, NULL);
            pthread_mutex_lock(&m);
            pthread_mutex_unlock(&m);
            pthread_mutex_destroy(&m);
        }
        n++;
    }
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    free(stash);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (storm_handler(handler) != 0)
        return 1;
    if (storm_run(WORKERS, worker, 1, seconds, &stop) != 0)
        return 2;
    for (int i = 1; i <= WORKERS; i++)
        if (handled[i] == 0)
            return 3;
    return 0;
}
