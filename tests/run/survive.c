/* keel-run: what a program may do that keel-run must survive without a report: signal handlers
 * that allocate and lock (raised in a thread that holds a lock, and sent to another thread), and
 * a library opened, used and closed with dlopen/dlclose twice (tests/test_run.c). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t in_handler = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t handled;

static void handler(int sig)
{
    (void)sig;
    char *p = malloc(64);
    pthread_mutex_lock(&in_handler);
    if (p != NULL)
        memset(p, 'h', 64);
    pthread_mutex_unlock(&in_handler);
    free(p);
    handled++;
}

static void *target(void *arg)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int sig = 0;
    (void)sigwait(&usr1, &sig); /* (blocked since main: taken here from pthread_kill) */
    return arg;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        return 1;
    for (int i = 0; i < 100; i++) { /* in the middle of the program's own locking */
        pthread_mutex_lock(&outer);
        (void)raise(SIGUSR2);
        pthread_mutex_unlock(&outer); // cppcheck-suppress unreachableCode ; raise returns
    }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* (the thread inherits it, for its sigwait) */
    pthread_t t;
    if (pthread_create(&t, NULL, target, NULL) != 0)
        return 1;
    for (int i = 0; i < 100; i++)
        pthread_kill(t, SIGUSR2);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    for (int round = 0; round < 2; round++) {
        void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        if (m == NULL)
            return 2;
        double (*cosine)(double) = NULL;
        void *sym = dlsym(m, "cos");
        memcpy(&cosine, &sym, sizeof(sym)); /* (ISO C has no object-to-function conversion) */
        if (cosine == NULL || cosine(0.0) != 1.0)
            return 3;
        dlclose(m);
    }
    return handled >= 100 ? 0 : 4;
}
