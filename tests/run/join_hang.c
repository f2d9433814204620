/* keel-run planted bug: a hang whose main thread is in pthread_join (tests/test_run.c): a
 * collector waits for a worker to say it is done, the worker waits for work that never comes
 * (both in condition waits), and main joins the collector. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t worker_done = PTHREAD_COND_INITIALIZER;
static int have_work, done;

static void *worker(void *arg)
{
    pthread_mutex_lock(&lock);
    while (!have_work)
        pthread_cond_wait(&work_ready, &lock); /* no work will come */
    done = 1;
    pthread_cond_signal(&worker_done);
    pthread_mutex_unlock(&lock);
    return arg;
}

static void *collector(void *arg)
{
    pthread_mutex_lock(&lock);
    while (!done)
        pthread_cond_wait(&worker_done, &lock); /* the worker never says it is done */
    pthread_mutex_unlock(&lock);
    return arg;
}

int main(void)
{
    pthread_t w, c;
    pthread_create(&w, NULL, worker, NULL);
    pthread_create(&c, NULL, collector, NULL);
    pthread_setname_np(pthread_self(), "main");
    pthread_join(c, NULL); /* main waits here forever */
    pthread_join(w, NULL);
    puts("no hang");
    return 0;
}
