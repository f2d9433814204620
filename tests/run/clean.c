/* keel-run: a correct program with many locks (an array taken in index order, rwlocks, a
 * recursive mutex, spinlocks that never block, a producer and a consumer on a condition
 * variable, locks in freed and reused memory): it must produce no report (tests/test_run.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* the _NP initializers */
#endif
#include <pthread.h>
#include <stdlib.h>

#define NLOCKS   64
#define NTHREADS 4
#define ROUNDS   2000

static pthread_mutex_t table[NLOCKS];
static pthread_rwlock_t config = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t nest = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_spinlock_t counter_lock;
static long counter;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static int queued, done;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        int a = (int)(rand_r(&seed) % NLOCKS), b = (int)(rand_r(&seed) % NLOCKS);
        if (a > b) {
            int x = a;
            a = b;
            b = x;
        }
        pthread_rwlock_rdlock(&config);
        pthread_mutex_lock(&table[a]); /* always in index order */
        if (b != a)
            pthread_mutex_lock(&table[b]);
        pthread_spin_lock(&counter_lock);
        counter++;
        pthread_spin_unlock(&counter_lock);
        if (b != a)
            pthread_mutex_unlock(&table[b]);
        pthread_mutex_unlock(&table[a]);
        pthread_rwlock_unlock(&config);
        if (r % 100 == 0) {
            pthread_rwlock_wrlock(&config);
            pthread_mutex_lock(&nest);
            pthread_mutex_lock(&nest);
            pthread_mutex_unlock(&nest);
            pthread_mutex_unlock(&nest);
            pthread_rwlock_unlock(&config);
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pthread_mutex_lock(&queue_lock);
    while (!done || queued > 0) {
        while (queued == 0 && !done)
            pthread_cond_wait(&queue_cond, &queue_lock);
        if (queued > 0)
            queued--;
    }
    pthread_mutex_unlock(&queue_lock);
    return arg;
}

int main(void)
{
    /* one init site: one class, taken nested in increasing addresses; made in the reverse
     * order (their shadows' addresses decrease: the order is the objects') */
    for (int i = NLOCKS - 1; i >= 0; i--)
        pthread_mutex_init(&table[i], NULL);
    pthread_spin_init(&counter_lock, PTHREAD_PROCESS_PRIVATE);
    pthread_t c, w[NTHREADS];
    pthread_create(&c, NULL, consumer, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&w[i], NULL, worker, (void *)(size_t)(i + 1));
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&queue_lock);
        queued++;
        pthread_cond_signal(&queue_cond);
        pthread_mutex_unlock(&queue_lock);
    }
    pthread_mutex_lock(&queue_lock);
    done = 1;
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    pthread_join(c, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < 100; i++) { /* locks in memory freed and reused, destroyed or not */
        pthread_mutex_t *m = malloc(sizeof(pthread_mutex_t));
        pthread_mutex_init(m, NULL);
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
        if (i % 2 == 0)
            pthread_mutex_destroy(m);
        free(m);
    }
    return counter == (long)NTHREADS * ROUNDS ? 0 : 1;
}
