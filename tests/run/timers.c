/* keel-run: timers and --hang-after (tests/test_run.c).  The program (one thread) waits, without
 * a timeout, for a timer it armed, its argument says which:
 *   posix           sigwait for the signal of a timer_create timer firing every 400 ms, 3 times
 *                   (and first for the signal it sent itself with kill, blocked meanwhile)
 *   timerfd         read of a timerfd firing every 400 ms, 3 times
 * (the program makes progress: no hang), or for a timer that will never fire again:
 *   posix_spent     a one-shot timer_create timer that fired once, then sigwait for it again
 *   timerfd_spent   a one-shot timerfd read once, then read again
 * (a hang: the program waits for ever). */
#define _GNU_SOURCE 1
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static struct itimerspec every(long ms, int times)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = ms % 1000 * 1000000L;
    if (times > 1)
        its.it_interval = its.it_value;
    return its;
}

static int posix_timer(int times)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int sig = 0;
    kill(getpid(), SIGUSR1); /* blocked: pending until taken (by a thread that does not block it) */
    if (sigwait(&set, &sig) != 0)
        return 1;
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        return 1;
    struct itimerspec its = every(times > 1 ? 400 : 50, times);
    if (timer_settime(t, 0, &its, NULL) != 0)
        return 1;
    for (int i = 0; i < (times > 1 ? times : 2); i++)
        (void)sigwait(&set, &sig); /* (posix_spent: the second waits for ever) */
    timer_delete(t);
    return 0;
}

static int fd_timer(int times)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = every(times > 1 ? 400 : 50, times);
    if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) != 0)
        return 1;
    for (int i = 0; i < (times > 1 ? times : 2); i++) {
        uint64_t fired;
        (void)read(fd, &fired, sizeof(fired)); /* (timerfd_spent: the second waits for ever) */
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "posix";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL); /* (taken by sigwait) */
    int rc = strcmp(how, "posix") == 0           ? posix_timer(3)
             : strcmp(how, "posix_spent") == 0   ? posix_timer(1)
             : strcmp(how, "timerfd") == 0       ? fd_timer(3)
             : strcmp(how, "timerfd_spent") == 0 ? fd_timer(1)
                                                 : 2;
    if (rc == 0)
        puts("no hang");
    return rc;
}
