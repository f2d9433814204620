/* keel-run: four threads make, lock, destroy (or not) and free mutexes and rwlocks in the heap,
 * nested under one static mutex, 20,000 times each: the side table under concurrent inits,
 * destroys and reused addresses.  No report, no crash (tests/test_run.c). */
#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER;

static void *churn(void *arg)
{
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_t *m = malloc(sizeof(pthread_mutex_t));
        pthread_rwlock_t *rw = malloc(sizeof(*rw));
        if (m == NULL || rw == NULL)
            abort();
        pthread_mutex_init(m, NULL);
        pthread_rwlock_init(rw, NULL);
        pthread_mutex_lock(&outer);
        pthread_mutex_lock(m);
        pthread_rwlock_rdlock(rw);
        pthread_rwlock_unlock(rw);
        pthread_mutex_unlock(m);
        pthread_mutex_unlock(&outer);
        if (i % 3 != 0) { /* the others are freed without a destroy */
            pthread_mutex_destroy(m);
            pthread_rwlock_destroy(rw);
        }
        free(m);
        free(rw);
    }
    return arg;
}

int main(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    return 0;
}
