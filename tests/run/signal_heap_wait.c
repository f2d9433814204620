/* keel-run: signal handlers that allocate, free and wait for a mutex the other threads hold while
 * they allocate and free (tests/test_run.c, test_signal_heap_wait).  Four workers allocate and
 * free in a loop (most of their time in keel's heap, some of it holding a shard's lock), and
 * under one shared mutex swap a block of their own into a pool, freeing the block they take out:
 * a block another worker allocated, from that worker's shard of keel's heap.  Main sends them
 * SIGUSR1 as fast as it can; the handler takes the shared mutex, allocates and frees.
 *
 * Without keel-run this ends: glibc's allocator gives each thread a cache and an arena of its own.
 * Under keel-run before session 20 a handler that interrupted its worker inside a shard's lock
 * waited for the shared mutex, held by a worker freeing a block of that shard: that worker waited
 * for the shard's lock, held by the interrupted worker, for ever.  The program must end (exit 0). */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "storm.h"

enum { WORKERS = 4, POOL = 64, OWN = 65536 };

static pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER;
static void *pool[POOL];
static volatile int stop;
static volatile sig_atomic_t handled[WORKERS];
static __thread int me;

static void handler(int sig)
{
    (void)sig;
    pthread_mutex_lock(&shared);
    char *p = malloc(48);
    if (p != NULL)
        memset(p, 'h', 48);
    free(p);
    pthread_mutex_unlock(&shared);
    handled[me]++;
}

static void *worker(void *arg)
{
    me = (int)(long)arg;
    sigset_t usr1 = storm_usr1();
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    unsigned long n = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        size_t size = 32 + (n * 37) % 200;
        char *own = malloc(OWN); /* (this worker's shard; its free poisons it under the lock) */
        if (own != NULL)
            own[0] = 'w';
        free(own);
        char *mine = malloc(size);
        sigset_t old;
        pthread_sigmask(SIG_BLOCK, &usr1, &old); /* (the handler takes this mutex too) */
        pthread_mutex_lock(&shared);
        unsigned at = (unsigned)((n * 7 + (unsigned long)me * 13) % POOL);
        void *out = pool[at]; /* (most likely another worker's: its shard) */
        pool[at] = mine;
        free(out);
        pthread_mutex_unlock(&shared);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        n++;
    }
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (storm_handler(handler) != 0)
        return 1;
    if (storm_run(WORKERS, worker, 0, seconds, &stop) != 0)
        return 2;
    for (int i = 0; i < POOL; i++)
        free(pool[i]);
    for (int i = 0; i < WORKERS; i++)
        if (handled[i] == 0)
            return 3;
    return 0;
}
