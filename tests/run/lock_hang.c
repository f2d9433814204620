/* keel-run planted bug: a hang of lock waits with no cycle (tests/test_run.c): a thread takes the
 * table's lock and returns without giving it back, a worker then waits for that lock forever, and
 * main joins the worker. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t table = PTHREAD_MUTEX_INITIALIZER;

static void *forgetful(void *arg)
{
    pthread_mutex_lock(&table);
    return arg; /* the lock is never given back */
}

static void *worker(void *arg)
{
    pthread_mutex_lock(&table); /* waits here forever */
    pthread_mutex_unlock(&table);
    return arg;
}

int main(void)
{
    pthread_t f, w;
    pthread_create(&f, NULL, forgetful, NULL);
    pthread_join(f, NULL);
    pthread_create(&w, NULL, worker, NULL);
    pthread_setname_np(pthread_self(), "main");
    pthread_join(w, NULL); /* main waits here forever */
    puts("no hang");
    return 0;
}
