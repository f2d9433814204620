/* keel-run planted bug: A then B in one thread, B then A in another, one after the other (it
 * never deadlocks).  keel-run reports the inversion at the second order (tests/test_run.c). */
#include <pthread.h>

static pthread_mutex_t lock_a, lock_b;

static void *first_order(void *arg)
{
    pthread_mutex_lock(&lock_a);
    pthread_mutex_lock(&lock_b);
    pthread_mutex_unlock(&lock_b);
    pthread_mutex_unlock(&lock_a);
    return arg;
}

int main(void)
{
    pthread_mutex_init(&lock_a, NULL);
    pthread_mutex_init(&lock_b, NULL);
    pthread_t t;
    pthread_create(&t, NULL, first_order, NULL);
    pthread_join(t, NULL);
    pthread_mutex_lock(&lock_b);
    pthread_mutex_lock(&lock_a); /* the inversion */
    pthread_mutex_unlock(&lock_a);
    pthread_mutex_unlock(&lock_b);
    return 0;
}
