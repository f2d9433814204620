/* keel-run planted bug: a thread locks a mutex it holds, in three ways that return: an
 * error-checking mutex (EDEADLK), and a normal one with a timed lock and with a clock lock
 * (ETIMEDOUT).  Exit status 0 when the real calls behaved as without keel-run
 * (tests/test_run.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_mutex_clocklock */
#endif
#include <errno.h>
#include <pthread.h>
#include <time.h>

int main(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t checked, normal;
    pthread_mutex_init(&checked, &attr);
    pthread_mutex_init(&normal, NULL);
    int status = 0;
    pthread_mutex_lock(&checked);
    if (pthread_mutex_lock(&checked) != EDEADLK) /* self-deadlock, refused */
        status = 1;
    pthread_mutex_unlock(&checked);
    pthread_mutex_lock(&normal);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20L * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_timedlock(&normal, &ts) != ETIMEDOUT) /* self-deadlock until the timeout */
        status = 2;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 20L * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_clocklock(&normal, CLOCK_MONOTONIC, &ts) != ETIMEDOUT) /* the same */
        status = 3;
    pthread_mutex_unlock(&normal);
    return status;
}
