/* keel-run planted bug: real deadlocks (tests/test_run.c).  Argument:
 *   two     two threads, each holding one mutex and waiting for the other's;
 *   three   three threads in a cycle of three mutexes;
 *   rwlock  two threads, each holding one rwlock for writing and waiting to write the other;
 * The program hangs: the test stops it once keel-run has reported the deadlock. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t m[3];
static pthread_rwlock_t rw[2];
static pthread_barrier_t all_hold;
static int nthreads;
static int use_rwlock;

static void *mutex_cycle(void *arg)
{
    int i = *(const int *)arg;
    pthread_mutex_lock(&m[i]);
    pthread_barrier_wait(&all_hold);
    pthread_mutex_lock(&m[(i + 1) % nthreads]); /* every thread waits here forever */
    pthread_mutex_unlock(&m[(i + 1) % nthreads]);
    pthread_mutex_unlock(&m[i]);
    return NULL;
}

static void *rwlock_cycle(void *arg)
{
    int i = *(const int *)arg;
    pthread_rwlock_wrlock(&rw[i]);
    pthread_barrier_wait(&all_hold);
    pthread_rwlock_wrlock(&rw[1 - i]); /* both threads wait here forever */
    pthread_rwlock_unlock(&rw[1 - i]);
    pthread_rwlock_unlock(&rw[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *shape = argc > 1 ? argv[1] : "two";
    nthreads = strcmp(shape, "three") == 0 ? 3 : 2;
    use_rwlock = strcmp(shape, "rwlock") == 0;
    pthread_mutex_init(&m[0], NULL); /* an init site each: three classes */
    pthread_mutex_init(&m[1], NULL);
    pthread_mutex_init(&m[2], NULL);
    pthread_rwlock_init(&rw[0], NULL);
    pthread_rwlock_init(&rw[1], NULL);
    pthread_barrier_init(&all_hold, NULL, (unsigned)nthreads);
    static int index[3] = {0, 1, 2};
    pthread_t t[3];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, use_rwlock ? rwlock_cycle : mutex_cycle, &index[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    puts("no deadlock");
    return 0;
}
