/* keel-run: every kind of lock contended across keel-run's wait slices (run with a small
 * --deadlock-after), none misused (tests/test_run.c): readers against a writer on a rwlock, a
 * recursive mutex held twice by its holder, timed and clock locks that time out and that get
 * the lock, condition waits of four consumers under one mutex, and the trylocks of every kind.
 * Exits with the number of wrong answers; keel-run must report nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 20

static int wrong;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void expect(int got, int want, int line)
{
    if (got != want) {
        pthread_mutex_lock(&count_lock);
        wrong++;
        pthread_mutex_unlock(&count_lock);
        (void)fprintf(stderr, "contended.c:%d: %d, not %d\n", line, got, want);
    }
}
#define EXPECT(got, want) expect((got), (want), __LINE__)

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct timespec in_ms(clockid_t clock, long ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += (ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/* ---- a rwlock: a writer holding it 10 ms at a time, three readers waiting through slices ---- */

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static int shared_value, readers_saw_odd;

static void *rw_writer(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        EXPECT(pthread_rwlock_wrlock(&rw), 0);
        shared_value++; /* odd while written */
        pause_ms(10);
        shared_value++;
        EXPECT(pthread_rwlock_unlock(&rw), 0);
        pause_ms(1);
    }
    return arg;
}

static void *rw_reader(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        EXPECT(pthread_rwlock_rdlock(&rw), 0);
        readers_saw_odd += shared_value % 2;
        EXPECT(pthread_rwlock_unlock(&rw), 0);
        pause_ms(3);
    }
    return arg;
}

/* ---- a recursive mutex held twice, 10 ms at a time, against a second thread ---- */

static pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static int rec_count;

static void *rec_user(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        EXPECT(pthread_mutex_lock(&rec), 0);
        EXPECT(pthread_mutex_lock(&rec), 0);
        EXPECT(pthread_mutex_trylock(&rec), 0); /* the holder: a third level */
        rec_count++;
        pause_ms(5);
        EXPECT(pthread_mutex_unlock(&rec), 0);
        EXPECT(pthread_mutex_unlock(&rec), 0);
        EXPECT(pthread_mutex_unlock(&rec), 0);
        pause_ms(1);
    }
    return arg;
}

/* ---- timed locks: a holder keeps each lock 150 ms; a short wait times out, a long one gets it ---- */

static pthread_mutex_t timed_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t timed_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t held;

static void *timed_holder(void *arg)
{
    EXPECT(pthread_mutex_lock(&timed_m), 0);
    EXPECT(pthread_rwlock_wrlock(&timed_rw), 0);
    pthread_barrier_wait(&held);
    pause_ms(150);
    EXPECT(pthread_rwlock_unlock(&timed_rw), 0);
    EXPECT(pthread_mutex_unlock(&timed_m), 0);
    return arg;
}

static void timed_locks(void)
{
    pthread_t t;
    pthread_barrier_init(&held, NULL, 2);
    pthread_create(&t, NULL, timed_holder, NULL);
    pthread_barrier_wait(&held);
    struct timespec soon = in_ms(CLOCK_REALTIME, 20), soon_mono = in_ms(CLOCK_MONOTONIC, 20);
    EXPECT(pthread_mutex_trylock(&timed_m), EBUSY);
    EXPECT(pthread_mutex_timedlock(&timed_m, &soon), ETIMEDOUT);
    EXPECT(pthread_mutex_clocklock(&timed_m, CLOCK_MONOTONIC, &soon_mono), ETIMEDOUT);
    EXPECT(pthread_rwlock_tryrdlock(&timed_rw), EBUSY);
    EXPECT(pthread_rwlock_trywrlock(&timed_rw), EBUSY);
    EXPECT(pthread_rwlock_timedrdlock(&timed_rw, &soon), ETIMEDOUT);
    EXPECT(pthread_rwlock_clockwrlock(&timed_rw, CLOCK_MONOTONIC, &soon_mono), ETIMEDOUT);
    struct timespec later = in_ms(CLOCK_REALTIME, 10000);
    struct timespec later_mono = in_ms(CLOCK_MONOTONIC, 10000);
    EXPECT(pthread_mutex_timedlock(&timed_m, &later), 0); /* after the holder's 150 ms */
    EXPECT(pthread_mutex_unlock(&timed_m), 0);
    EXPECT(pthread_rwlock_clockrdlock(&timed_rw, CLOCK_MONOTONIC, &later_mono), 0);
    EXPECT(pthread_rwlock_unlock(&timed_rw), 0);
    pthread_join(t, NULL);
    /* the other two, contended the same way */
    pthread_create(&t, NULL, timed_holder, NULL);
    pthread_barrier_wait(&held);
    later = in_ms(CLOCK_REALTIME, 10000);
    later_mono = in_ms(CLOCK_MONOTONIC, 10000);
    EXPECT(pthread_mutex_clocklock(&timed_m, CLOCK_MONOTONIC, &later_mono), 0);
    EXPECT(pthread_mutex_unlock(&timed_m), 0);
    EXPECT(pthread_rwlock_timedwrlock(&timed_rw, &later), 0);
    EXPECT(pthread_rwlock_unlock(&timed_rw), 0);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&held);
}

/* ---- four consumers waiting on one condition; a producer hands out items 5 ms apart ---- */

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static int queued, consumed, closed;

static void *consumer(void *arg)
{
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (queued == 0 && !closed)
            EXPECT(pthread_cond_wait(&queue_cond, &queue_lock), 0);
        if (queued == 0)
            break;
        queued--;
        consumed++;
        pthread_mutex_unlock(&queue_lock);
        pause_ms(2); /* the work, outside the lock */
        pthread_mutex_lock(&queue_lock);
    }
    pthread_mutex_unlock(&queue_lock);
    return arg;
}

static void conditions(void)
{
    pthread_t c[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&c[i], NULL, consumer, NULL);
    for (int i = 0; i < 4 * ROUNDS; i++) {
        pthread_mutex_lock(&queue_lock);
        queued++;
        pthread_cond_signal(&queue_cond);
        pthread_mutex_unlock(&queue_lock);
        pause_ms(i % 8 == 0 ? 20 : 1);
    }
    pthread_mutex_lock(&queue_lock);
    closed = 1;
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    for (int i = 0; i < 4; i++)
        pthread_join(c[i], NULL);
    EXPECT(consumed, 4 * ROUNDS);
}

/* ---- a spinlock: tried while held (EBUSY), then taken once let go ---- */

static pthread_spinlock_t spin;
static int spin_taken;

static void *spin_holder(void *arg)
{
    EXPECT(pthread_spin_lock(&spin), 0);
    __atomic_store_n(&spin_taken, 1, __ATOMIC_RELEASE);
    struct timespec until = in_ms(CLOCK_MONOTONIC, 30), now;
    do /* held 30 ms, computing (no sleep under a spinlock) */
        clock_gettime(CLOCK_MONOTONIC, &now);
    while (now.tv_sec < until.tv_sec ||
           (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec));
    EXPECT(pthread_spin_unlock(&spin), 0);
    return arg;
}

static void spinlocks(void)
{
    pthread_t t;
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_create(&t, NULL, spin_holder, NULL);
    while (!__atomic_load_n(&spin_taken, __ATOMIC_ACQUIRE))
        pause_ms(1);
    EXPECT(pthread_spin_trylock(&spin), EBUSY);
    EXPECT(pthread_spin_lock(&spin), 0); /* spins through slices until let go */
    EXPECT(pthread_spin_unlock(&spin), 0);
    EXPECT(pthread_spin_trylock(&spin), 0);
    EXPECT(pthread_spin_unlock(&spin), 0);
    pthread_join(t, NULL);
    pthread_spin_destroy(&spin);
}

int main(void)
{
    pthread_t t[5];
    pthread_create(&t[0], NULL, rw_writer, NULL);
    for (int i = 1; i < 4; i++)
        pthread_create(&t[i], NULL, rw_reader, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    EXPECT(shared_value, 2 * ROUNDS);
    EXPECT(readers_saw_odd, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, rec_user, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    EXPECT(rec_count, 2 * ROUNDS);
    timed_locks();
    conditions();
    spinlocks();
    return wrong;
}
