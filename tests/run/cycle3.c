/* keel-run planted bug: A -> B, B -> C, then C -> A, each in its own thread, one after the other:
 * a three-lock cycle that never deadlocked (tests/test_run.c). */
#include <pthread.h>

static pthread_mutex_t locks[3];

static void *pair(void *arg)
{
    int i = *(const int *)arg;
    pthread_mutex_lock(&locks[i]);
    pthread_mutex_lock(&locks[(i + 1) % 3]); /* i = 2: closes the cycle */
    pthread_mutex_unlock(&locks[(i + 1) % 3]);
    pthread_mutex_unlock(&locks[i]);
    return NULL;
}

int main(void)
{
    pthread_mutex_init(&locks[0], NULL); /* three init sites: three classes */
    pthread_mutex_init(&locks[1], NULL);
    pthread_mutex_init(&locks[2], NULL);
    static int order[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        pthread_t t;
        pthread_create(&t, NULL, pair, &order[i]);
        pthread_join(t, NULL);
    }
    return 0;
}
