/* keel-run: every waiting call with a stress point, each made once (tests/test_run.c, run with
 * --stress 'libc.*:max=1'): each must fail at once with EINTR, as a signal that interrupted it
 * would make it.  Exits with the number of calls that did not; an alarm ends it after 10 s if
 * one waits (the calls would wait for ever without their point). */
#define _GNU_SOURCE 1
#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int wrong;

static void expect_eintr(int rc)
{
    wrong += rc != -1 || errno != EINTR;
}

int main(void)
{
    alarm(10);
    int fds[2];
    if (pipe(fds) != 0)
        return 100;
    struct pollfd p = {fds[0], POLLIN, 0};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fds[0], &set);
    struct timespec later = {5, 0};
    clock_gettime(CLOCK_REALTIME, &later);
    later.tv_sec += 5;
    sem_t sem;
    sem_init(&sem, 0, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {0}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    sigset_t usr1, none;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    pid_t child = fork();
    if (child == 0)
        _exit(0); /* (the waits for it fail before they look) */
    siginfo_t info;
    struct timespec five = {5, 0};
    expect_eintr(poll(&p, 1, -1));
    expect_eintr(ppoll(&p, 1, NULL, NULL));
    expect_eintr(select(fds[0] + 1, &set, NULL, NULL, NULL));
    expect_eintr(pselect(fds[0] + 1, &set, NULL, NULL, NULL, NULL));
    expect_eintr(epoll_wait(ep, &ev, 1, -1));
    expect_eintr(epoll_pwait(ep, &ev, 1, -1, NULL));
    expect_eintr(sem_wait(&sem));
    expect_eintr(sem_timedwait(&sem, &later));
    expect_eintr(waitpid(child, NULL, 0));
    expect_eintr(wait(NULL));
    expect_eintr(waitid(P_PID, (id_t)child, &info, WEXITED));
    expect_eintr(wait4(child, NULL, 0, NULL));
    expect_eintr(sigwaitinfo(&usr1, &info));
    expect_eintr(sigtimedwait(&usr1, &info, &five));
    expect_eintr(sigsuspend(&usr1));
    expect_eintr(pause());
    return wrong;
}
