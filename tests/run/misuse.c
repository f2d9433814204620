/* keel-run planted bugs: a condition wait without its mutex, a thread that exits holding a lock,
 * pthread_join under a spinlock (tests/test_run.c). */
#include <pthread.h>
#include <time.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t left_locked = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static pthread_spinlock_t spin;

static void *exits_holding(void *arg)
{
    pthread_mutex_lock(&left_locked);
    return arg; /* still held */
}

int main(void)
{
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
    struct timespec past = {0, 0};
    pthread_mutex_lock(&m);
    pthread_cond_timedwait(&c, &m, &past); /* fine: held */
    pthread_mutex_unlock(&m);
    (void)past;
    pthread_t t;
    pthread_create(&t, NULL, exits_holding, NULL);
    pthread_spin_lock(&spin);
    pthread_join(t, NULL); /* blocking under a spinlock */
    pthread_spin_unlock(&spin);
    pthread_mutex_t other;
    pthread_mutex_init(&other, NULL);
    pthread_mutex_lock(&other);
    pthread_cond_timedwait(&c, &m, &past); /* m not held */
    pthread_mutex_unlock(&other);
    return 0;
}
