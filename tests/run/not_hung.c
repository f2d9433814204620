/* keel-run: no hang, though main joins a worker in a call without a timeout (tests/test_run.c):
 * with `busy_child` the worker waits for a child that waits for a grandchild computing for a
 * second; with `handler` the worker's read is interrupted by a signal whose handler computes for
 * a second, then writes the byte the read gets.  Something runs all along. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fds[2];
static const char *how;

/* Compute for a second (a process or thread that runs: never part of a hang). */
static void compute(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000000L);
}

static void computes_then_writes(int sig)
{
    (void)sig;
    compute();
    (void)write(fds[1], "x", 1); /* (async-signal-safe) */
}

static void *worker(void *arg)
{
    if (strcmp(how, "busy_child") == 0) {
        pid_t child = fork();
        if (child == 0) {
            pid_t grandchild = fork();
            if (grandchild == 0) {
                compute();
                _exit(0);
            }
            _exit(waitpid(grandchild, NULL, 0) == grandchild ? 0 : 1);
        }
        int st = 1;
        return waitpid(child, &st, 0) == child && st == 0 ? arg : &fds;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = computes_then_writes;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* (main blocks it: this thread gets it) */
    struct itimerval in = {{0, 0}, {0, 150000}};
    setitimer(ITIMER_REAL, &in, NULL);
    char c;
    return read(fds[0], &c, 1) == 1 ? arg : &fds; /* interrupted, then the handler's byte */
}

int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "handler";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pipe(fds) != 0)
        return 1;
    pthread_t t;
    void *ret = &fds;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, &ret);
    puts("no hang");
    return ret == NULL ? 0 : 1;
}
