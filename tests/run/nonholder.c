/* keel-run planted bug: a thread unlocks a mutex another thread holds (tests/test_run.c). */
#include <pthread.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void *stranger(void *arg)
{
    pthread_mutex_unlock(&m); /* not its lock */
    return arg;
}

int main(void)
{
    pthread_mutex_lock(&m);
    pthread_t t;
    pthread_create(&t, NULL, stranger, NULL);
    pthread_join(t, NULL);
    return 0;
}
