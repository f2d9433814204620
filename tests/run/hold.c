/* keel-run planted bug: a lock held past its budget (tests/test_run.c, with
 * lock.budget=hold.c:LINE:100 for the mutex initialised at `init_site`).  The worker sleeps
 * 800 ms while it holds `slow`; `quick` (another class, same budget) is held briefly. */
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t slow, quick;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&quick);
    pthread_mutex_unlock(&quick);
    pthread_mutex_lock(&slow); /* the site the report names */
    usleep(800 * 1000);
    pthread_mutex_unlock(&slow);
    return NULL;
}

int main(void)
{
    pthread_mutex_init(&slow, NULL);  /* class 'hold.c:22' */
    pthread_mutex_init(&quick, NULL); /* class 'hold.c:23' */
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return 0;
}
