/* keel-run planted bug: a hang with no lock cycle (tests/test_run.c), the shape of pigz's error
 * path: the main thread waits for a worker to say it is done, and the worker waits for work that
 * never comes; both in condition waits, nobody left to signal.  Without an argument the work is
 * never sent; with `sweep` it is, unless its allocation fails (the error path forgets the worker). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t worker_done = PTHREAD_COND_INITIALIZER;
static int have_work, done;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!have_work)
        pthread_cond_wait(&work_ready, &lock); /* no work will come */
    done = 1;
    pthread_cond_signal(&worker_done);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_mutex_lock(&lock);
    char *work = argc > 1 && strcmp(argv[1], "sweep") == 0 ? malloc(64) : NULL;
    if (work != NULL) {
        have_work = 1;
        pthread_cond_signal(&work_ready);
        free(work);
    }
    while (!done)
        pthread_cond_wait(&worker_done, &lock); /* the error path forgot the worker */
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);
    puts("no hang");
    return 0;
}
