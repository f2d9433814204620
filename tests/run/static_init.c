/* keel-run: locks of every static initializer, never seen by an init call.  Each type behaves
 * (a recursive one relocked, an error-checking one refuses its relock), and an inversion between
 * two of them is reported with the objects' names (tests/test_run.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* the _NP initializers */
#endif
#include <errno.h>
#include <pthread.h>

static pthread_mutex_t normal_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t normal_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_rwlock_t rwlock_writer = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static void *other_order(void *arg)
{
    pthread_mutex_lock(&normal_b);
    pthread_mutex_lock(&normal_a); /* the inversion */
    pthread_mutex_unlock(&normal_a);
    pthread_mutex_unlock(&normal_b);
    return arg;
}

int main(void)
{
    int status = 0;
    for (int i = 0; i < 3; i++) /* recursive: three deep, no report */
        if (pthread_mutex_lock(&recursive) != 0)
            status = 1;
    for (int i = 0; i < 3; i++)
        pthread_mutex_unlock(&recursive);
    pthread_mutex_lock(&errorcheck);
    pthread_mutex_unlock(&errorcheck);
    if (pthread_mutex_unlock(&errorcheck) != EPERM) /* not held: refused (and reported) */
        status = 2;
    pthread_mutex_lock(&adaptive);
    pthread_rwlock_rdlock(&rwlock);
    pthread_rwlock_unlock(&rwlock);
    pthread_rwlock_wrlock(&rwlock_writer);
    pthread_rwlock_unlock(&rwlock_writer);
    struct timespec ts = {0, 0}; /* (already past: returns at once) */
    if (pthread_cond_timedwait(&cond, &adaptive, &ts) != ETIMEDOUT)
        status = 3;
    pthread_mutex_unlock(&adaptive);
    pthread_mutex_lock(&normal_a);
    pthread_mutex_lock(&normal_b);
    pthread_mutex_unlock(&normal_b);
    pthread_mutex_unlock(&normal_a);
    pthread_t t;
    pthread_create(&t, NULL, other_order, NULL);
    pthread_join(t, NULL);
    return status;
}
