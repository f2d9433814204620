/* keel-run: two rwlocks taken for reading in both orders (shared-shared: no deadlock, not
 * reported), then the same with one writer, which is a real inversion (tests/test_run.c). */
#include <pthread.h>
#include <string.h>

static pthread_rwlock_t r1, r2, w1, w2;

static void *reader(void *arg)
{
    pthread_rwlock_rdlock(&r2);
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_unlock(&r1);
    pthread_rwlock_unlock(&r2);
    return arg;
}

static void *writer(void *arg)
{
    pthread_rwlock_wrlock(&w2);
    pthread_rwlock_rdlock(&w1); /* w2 exclusive, then w1: with the main thread's order, a cycle */
    pthread_rwlock_unlock(&w1);
    pthread_rwlock_unlock(&w2);
    return arg;
}

int main(int argc, char **argv)
{
    pthread_rwlock_init(&r1, NULL);
    pthread_rwlock_init(&r2, NULL);
    pthread_rwlock_init(&w1, NULL);
    pthread_rwlock_init(&w2, NULL);
    pthread_rwlock_rdlock(&r1);
    pthread_rwlock_rdlock(&r2);
    pthread_rwlock_unlock(&r2);
    pthread_rwlock_unlock(&r1);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    pthread_join(t, NULL);
    if (argc > 1 && strcmp(argv[1], "writer") == 0) {
        pthread_rwlock_wrlock(&w1);
        pthread_rwlock_rdlock(&w2);
        pthread_rwlock_unlock(&w2);
        pthread_rwlock_unlock(&w1);
        pthread_create(&t, NULL, writer, NULL);
        pthread_join(t, NULL);
    }
    return 0;
}
