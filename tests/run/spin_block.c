/* keel-run planted bug: sleeping and taking a mutex while holding a spinlock (tests/test_run.c). */
#include <pthread.h>
#include <unistd.h>

static pthread_spinlock_t spin;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

int main(void)
{
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_spin_lock(&spin);
    usleep(1000); /* blocking under a spinlock */
    pthread_spin_unlock(&spin);
    pthread_spin_lock(&spin);
    pthread_mutex_lock(&mutex); /* blocking under a spinlock */
    pthread_mutex_unlock(&mutex);
    pthread_spin_unlock(&spin);
    usleep(1000); /* fine: no spinlock held */
    pthread_spin_destroy(&spin);
    return 0;
}
