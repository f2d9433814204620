/* keel-run planted bug: hangs outside the locks (tests/test_run.c): main joins a worker that
 * blocks for ever in the call its argument names (read, poll, sigwait, ppoll, sem_wait,
 * waitpid), waiting for something no thread of the program will do.  With `timed` the worker
 * waits 300 ms in a poll with a timeout and the program ends: not a hang. */
#define _GNU_SOURCE 1
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2]; /* a pipe whose write end main keeps and never writes to */
static sem_t sem;  /* never posted */
static const char *how;

static void *worker(void *arg)
{
    char c;
    struct pollfd p = {fds[0], POLLIN, 0};
    sigset_t set;
    int sig = 0;
    if (strcmp(how, "read") == 0) {
        (void)read(fds[0], &c, 1); /* nothing will be written */
    } else if (strcmp(how, "poll") == 0) {
        (void)poll(&p, 1, -1);
    } else if (strcmp(how, "sigwait") == 0) {
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        (void)sigwait(&set, &sig); /* no one sends it */
    } else if (strcmp(how, "ppoll") == 0) {
        (void)ppoll(&p, 1, NULL, NULL);
    } else if (strcmp(how, "sem_wait") == 0) {
        (void)sem_wait(&sem);
    } else if (strcmp(how, "waitpid") == 0) {
        pid_t child = fork();
        if (child == 0) { /* a child that waits for its parent's end */
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            (void)read(fds[0], &c, 1);
            _exit(0);
        }
        (void)waitpid(child, NULL, 0);
    } else if (strcmp(how, "timed") == 0) {
        (void)poll(&p, 1, 300); /* ends on its own */
    }
    return arg;
}

int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "read";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pipe(fds) != 0 || sem_init(&sem, 0, 0) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_setname_np(pthread_self(), "main");
    pthread_join(t, NULL); /* main waits here for ever (but with `timed`) */
    puts("no hang");
    return 0;
}
