/* keel-run: long lock waits that are not a deadlock (tests/test_run.c).  The holder of `a`
 * sleeps 1.5 s while a second thread, holding `b`, waits for `a`, and a third waits for `b`:
 * a chain of waits, no cycle, nothing to report. */
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t ready;

static void *wait_a(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&ready);
    pthread_mutex_lock(&a); /* waits 1.5 s */
    pthread_mutex_unlock(&a);
    pthread_mutex_unlock(&b);
    return NULL;
}

static void *wait_b(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&ready);
    pthread_mutex_lock(&b); /* waits for the thread that waits for a */
    pthread_mutex_unlock(&b);
    return NULL;
}

int main(void)
{
    pthread_barrier_init(&ready, NULL, 3);
    pthread_mutex_lock(&a);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, wait_a, NULL);
    pthread_create(&t2, NULL, wait_b, NULL);
    pthread_barrier_wait(&ready);
    usleep(1500 * 1000); /* not a lock wait: this thread is not waiting, it holds */
    pthread_mutex_unlock(&a);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
