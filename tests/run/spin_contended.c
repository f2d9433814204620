/* keel-run: a contended spinlock is acquired once its holder lets it go (tests/test_run.c).
 * Each round the holder keeps the lock about 5 ms (busy: no blocking call under a spinlock)
 * while the main thread waits for it, so every acquisition of main's finds the lock held and
 * spins in keel-run's slices.  An acquisition that never ends is killed by the alarm. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 20

static pthread_spinlock_t lock;
static atomic_int held, taken;

static long long now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *holder(void *arg)
{
    for (int r = 1; r <= ROUNDS; r++) {
        pthread_spin_lock(&lock);
        atomic_store(&held, r);
        long long until = now_ns() + 5000000LL;
        while (now_ns() < until)
            ;
        pthread_spin_unlock(&lock);
        while (atomic_load(&taken) != r)
            ;
    }
    return arg;
}

int main(void)
{
    (void)alarm(20); /* a spin that never ends: killed (SIGALRM), not a hung test */
    pthread_spin_init(&lock, PTHREAD_PROCESS_PRIVATE);
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    for (int r = 1; r <= ROUNDS; r++) {
        while (atomic_load(&held) != r)
            ;
        pthread_spin_lock(&lock); /* held by the other thread for the rest of its 5 ms */
        atomic_store(&taken, r);
        pthread_spin_unlock(&lock);
    }
    pthread_join(t, NULL);
    pthread_spin_destroy(&lock);
    return 0;
}
