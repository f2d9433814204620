/* keel-run planted bug: destroying a mutex while it is held (tests/test_run.c). */
#include <pthread.h>

int main(void)
{
    pthread_mutex_t m;
    pthread_mutex_init(&m, NULL);
    pthread_mutex_lock(&m);
    int busy = pthread_mutex_destroy(&m); /* held: EBUSY from the C library */
    pthread_mutex_unlock(&m);
    pthread_mutex_destroy(&m);
    return busy != 0 ? 0 : 1;
}
