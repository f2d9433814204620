/* keel-run: signals sent to the process (kill, not pthread_kill) go to the program's thread
 * that waits for them in sigwait, never to a thread keel-run runs in the program (its hang
 * watcher with --hang-after, keel's watchdog with a hold budget) (tests/test_run.c,
 * test_sigwait_process_signals).
 *
 * main locks a mutex first, with SIGUSR1 open: keel's threads start then, from main (a thread
 * inherits the signal mask of the one that makes it).  Then main blocks SIGUSR1, makes the waiter
 * (blocked too), and sends SIGUSR1 to the process while the waiter is not yet in sigwait: the
 * kernel hands it to a thread that does not block it.  No thread of the program does; one of
 * keel's that did would take it, and its default action ends the process (status 128 + 10).
 * Here the waiter takes each in sigwait: exit 0. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

enum { ROUNDS = 20 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int round_sent;  /* under lock: the rounds main has sent */
static int round_taken; /* under lock: the rounds the waiter took */

/* Wait until *counter (under lock) is past i. */
static void wait_past(const int *counter, int i)
{
    for (;;) {
        pthread_mutex_lock(&lock);
        int now = *counter;
        pthread_mutex_unlock(&lock);
        if (now > i)
            return;
        usleep(1000);
    }
}

static void *waiter(void *arg)
{
    (void)arg;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    for (int i = 0; i < ROUNDS; i++) {
        wait_past(&round_sent, i); /* (this round's signal is pending on the process by then) */
        int sig = 0;
        if (sigwait(&usr1, &sig) != 0 || sig != SIGUSR1)
            return (void *)1;
        pthread_mutex_lock(&lock);
        round_taken++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void)
{
    pthread_mutex_lock(&lock); /* (keel's threads start here, SIGUSR1 open in main) */
    pthread_mutex_unlock(&lock);
    usleep(50 * 1000);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, waiter, NULL) != 0)
        return 2;
    for (int i = 0; i < ROUNDS; i++) {
        kill(getpid(), SIGUSR1);
        pthread_mutex_lock(&lock);
        round_sent++;
        pthread_mutex_unlock(&lock);
        wait_past(&round_taken, i); /* (the waiter took it) */
    }
    void *rc = NULL;
    pthread_join(t, &rc);
    return rc == NULL ? 0 : 3;
}
