/*
 * run/run_block.c - libkeel-run.so's other waiting calls: the poll and select forms with a signal
 * mask, semaphores, waiting for a child and waiting for a signal (docs/keel-run.md, "What is
 * checked" and "Hangs").
 *
 * Each is checked as a blocking call (reported when the thread holds a spinlock, unless the
 * call cannot block: a zero timeout, WNOHANG), and the thread is "in" it while it runs, so that
 * a deadlock or hang report names it with the program's line; a call without a timeout can be
 * part of a hang (--hang-after, run_wait.c).  Each has a stress point (run_faults.c,
 * docs/keel-run.md "Faults at libc calls") but sigwait, which never fails with EINTR: a fire
 * fails it at once, as a signal that interrupted it would (EINTR, or --errno's).  Nothing else
 * changes: the real call is made with the program's arguments.
 */
#include <errno.h>
#include <stdbool.h>

#include "run.h"

#define RA() __builtin_return_address(0)

/* Does a timeout block (NULL: for ever; zero: not at all)? */
static bool ts_blocks(const struct timespec *ts)
{
    return ts == NULL || ts->tv_sec != 0 || ts->tv_nsec != 0;
}

KEEL_RUN_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                          const sigset_t *mask)
{
    int fault = run_wait_fault(RUN_F_POLL, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "ppoll", ts_blocks(ts), ts == NULL, RUN_REAL(ppoll)(fds, n, ts, mask));
}

KEEL_RUN_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                            const sigset_t *mask)
{
    int fault = run_wait_fault(RUN_F_SELECT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "pselect", ts_blocks(ts), ts == NULL,
                 RUN_REAL(pselect)(n, r, w, e, ts, mask));
}

KEEL_RUN_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                                const sigset_t *mask)
{
    int fault = run_wait_fault(RUN_F_EPOLL_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "epoll_pwait", timeout != 0, timeout < 0,
                 RUN_REAL(epoll_pwait)(epfd, ev, max, timeout, mask));
}

/* ---- semaphores: a wait may block, as a lock call may (reported whether or not it does) ---- */

KEEL_RUN_EXPORT int sem_wait(sem_t *sem)
{
    int fault = run_wait_fault(RUN_F_SEM_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sem_wait", true, true, RUN_REAL(sem_wait)(sem));
}

KEEL_RUN_EXPORT int sem_timedwait(sem_t *sem, const struct timespec *abs)
{
    int fault = run_wait_fault(RUN_F_SEM_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sem_timedwait", true, false, RUN_REAL(sem_timedwait)(sem, abs));
}

KEEL_RUN_EXPORT int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abs)
{
    int fault = run_wait_fault(RUN_F_SEM_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sem_clockwait", true, false, RUN_REAL(sem_clockwait)(sem, clock, abs));
}

/* ---- a child's end ---------------------------------------------------------------------------- */

KEEL_RUN_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    int fault = run_wait_fault(RUN_F_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    bool blocks = (options & WNOHANG) == 0;
    RUN_BLOCKING(pid_t, "waitpid", blocks, blocks, RUN_REAL(waitpid)(pid, status, options));
}

KEEL_RUN_EXPORT pid_t wait(int *status)
{
    int fault = run_wait_fault(RUN_F_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(pid_t, "wait", true, true, RUN_REAL(wait)(status));
}

KEEL_RUN_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    int fault = run_wait_fault(RUN_F_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    bool blocks = (options & WNOHANG) == 0;
    RUN_BLOCKING(int, "waitid", blocks, blocks, RUN_REAL(waitid)(type, id, info, options));
}

KEEL_RUN_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage)
{
    int fault = run_wait_fault(RUN_F_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    bool blocks = (options & WNOHANG) == 0;
    RUN_BLOCKING(pid_t, "wait4", blocks, blocks, RUN_REAL(wait4)(pid, status, options, usage));
}

/* ---- a signal --------------------------------------------------------------------------------- */

KEEL_RUN_EXPORT int sigwait(const sigset_t *set, int *sig)
{
    RUN_BLOCKING(int, "sigwait", true, true, RUN_REAL(sigwait)(set, sig));
}

KEEL_RUN_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    int fault = run_wait_fault(RUN_F_SIGWAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sigwaitinfo", true, true, RUN_REAL(sigwaitinfo)(set, info));
}

KEEL_RUN_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
    int fault = run_wait_fault(RUN_F_SIGWAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sigtimedwait", ts_blocks(ts), false, RUN_REAL(sigtimedwait)(set, info, ts));
}

KEEL_RUN_EXPORT int sigsuspend(const sigset_t *mask)
{
    int fault = run_wait_fault(RUN_F_PAUSE, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "sigsuspend", true, true, RUN_REAL(sigsuspend)(mask));
}

KEEL_RUN_EXPORT int pause(void)
{
    int fault = run_wait_fault(RUN_F_PAUSE, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "pause", true, true, RUN_REAL(pause)());
}
