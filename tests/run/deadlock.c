/* keel-run planted bug: real deadlocks (tests/test_run.c).  Argument:
 *   two     two threads, each holding one mutex and waiting for the other's;
 *   three   three threads in a cycle of three mutexes;
 *   rwlock  two threads, each holding one rwlock for writing and waiting to write the other;
 * Besides, `main` joins the first thread of the cycle and a thread 'reader' holds a mutex of its
 * own while it reads a pipe no one writes: the report lists them too.
 * The program hangs: the test stops it once keel-run has reported the deadlock. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m[3];
static pthread_rwlock_t rw[2];
static pthread_barrier_t all_hold;
static int nthreads;
static int use_rwlock;
static pthread_mutex_t reader_own;
static int pipe_fds[2];

static void *reader(void *arg)
{
    (void)arg;
    char c;
    pthread_mutex_lock(&reader_own);
    if (read(pipe_fds[0], &c, 1) != 1) /* no one writes: waits here forever */
        return NULL;
    pthread_mutex_unlock(&reader_own);
    return NULL;
}

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
    pthread_mutex_init(&reader_own, NULL);
    pthread_barrier_init(&all_hold, NULL, (unsigned)nthreads);
    if (pipe(pipe_fds) != 0)
        return 1;
    pthread_t r;
    pthread_create(&r, NULL, reader, NULL);
    pthread_setname_np(r, "reader");
    static int index[3] = {0, 1, 2};
    pthread_t t[3];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, use_rwlock ? rwlock_cycle : mutex_cycle, &index[i]);
    pthread_setname_np(pthread_self(), "main");
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL); /* main waits here forever */
    puts("no deadlock");
    return 0;
}
