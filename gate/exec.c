/*
 * exec.c - keel-gate's job runner.
 *
 * The child gets its own process group, a pipe for stdout and stderr, and
 * execvp()s the command.  The parent copies the pipe into the log up to the
 * limit, and watches the clock: at the timeout it sends SIGTERM to the group,
 * then SIGKILL after a grace period.  When the command exits, whatever it left
 * behind in its group is killed too, so no job outlives its slot.
 *
 * The groups running are also in a table of atomics that gate_exec_kill_all
 * reads without a lock (a process exiting at once on a second signal, which
 * first freezes every gate_exec_run so that no job it kills is reported).
 */
#define _GNU_SOURCE 1
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { GRACE_MS = 2000, CHUNK = 16384, MAX_GROUPS = 512 };

static pid_t groups[MAX_GROUPS]; /* running jobs' process groups; 0: a free slot */
static int frozen;               /* gate_exec_freeze */

void gate_exec_freeze(void)
{
    __atomic_store_n(&frozen, 1, __ATOMIC_SEQ_CST);
}

static void track_group(pid_t pgid)
{
    for (size_t i = 0; i < MAX_GROUPS; i++) {
        pid_t free_slot = 0;
        if (__atomic_compare_exchange_n(&groups[i], &free_slot, pgid, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return;
    }
    /* full: only gate_exec_kill_all misses this one */
}

static void untrack_group(pid_t pgid)
{
    for (size_t i = 0; i < MAX_GROUPS; i++)
        if (__atomic_load_n(&groups[i], __ATOMIC_ACQUIRE) == pgid) {
            __atomic_store_n(&groups[i], 0, __ATOMIC_RELEASE);
            return;
        }
}

unsigned gate_exec_kill_all(int sig)
{
    unsigned n = 0;
    for (size_t i = 0; i < MAX_GROUPS; i++) {
        pid_t pgid = __atomic_load_n(&groups[i], __ATOMIC_ACQUIRE);
        if (pgid > 0 && kill(-pgid, sig) == 0)
            n++;
    }
    return n;
}

static const char *const result_names[] = {"passed",  "failed",    "crashed",
                                           "timeout", "not-found", "cancelled"};

const char *gate_exec_result_name(gate_exec_result r)
{
    return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ? result_names[r] : "?";
}

static unsigned long long now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* In the child: never returns. */
__attribute__((noreturn)) static void child(const gate_exec_spec *spec, int out_fd, int err_pipe)
{
    (void)setpgid(0, 0);
    /* a signal mask or handlers inherited from the gate must not leak into jobs */
    sigset_t none;
    (void)sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0)
        (void)dup2(devnull, 0);
    (void)dup2(out_fd, 1);
    (void)dup2(out_fd, 2);
    if (spec->dir != NULL && chdir(spec->dir) != 0) {
        int e = errno;
        write_all(err_pipe, (const char *)&e, sizeof(e));
        _exit(127);
    }
    for (char *const *e = spec->env; e != NULL && *e != NULL; e++)
        (void)putenv(*e);
    execvp(spec->argv[0], spec->argv);
    int e = errno;
    write_all(err_pipe, (const char *)&e, sizeof(e));
    _exit(127);
}

static void kill_group(pid_t pgid, int sig)
{
    if (pgid > 0)
        (void)kill(-pgid, sig);
}

keel_status gate_exec_run(const gate_exec_spec *spec, gate_exec_outcome *out)
{
    KEEL_ASSERT(spec != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    if (spec->argv == NULL || spec->argv[0] == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "a job needs a command");
    int log = open(spec->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return KEEL_ERR_SYS(errno, "cannot open job log '%s'", spec->log);
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        (void)close(log);
        return KEEL_ERR_SYS(e, "cannot make a pipe for '%s'", spec->argv[0]);
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        (void)close(log);
        (void)close(out_pipe[0]);
        (void)close(out_pipe[1]);
        return KEEL_ERR_SYS(e, "cannot make a pipe for '%s'", spec->argv[0]);
    }
    unsigned long long start = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        (void)close(log);
        (void)close(out_pipe[0]);
        (void)close(out_pipe[1]);
        (void)close(err_pipe[0]);
        (void)close(err_pipe[1]);
        return KEEL_ERR_SYS(e, "cannot fork for '%s'", spec->argv[0]);
    }
    if (pid == 0)
        child(spec, out_pipe[1], err_pipe[1]);
    (void)setpgid(pid, pid); /* also in the parent: no race with kill(-pid) */
    track_group(pid);
    (void)close(out_pipe[1]);
    (void)close(err_pipe[1]);

    /* Did exec fail?  The pipe closes on a successful exec with nothing written. */
    int exec_errno = 0;
    ssize_t got = read(err_pipe[0], &exec_errno, sizeof(exec_errno));
    (void)close(err_pipe[0]);

    char buf[CHUNK];
    unsigned long written = 0;
    bool timed_out = false, cancelled = false, term_sent = false, eof = false;
    unsigned long long term_at = 0;
    int wstatus = 0;
    bool reaped = false;
    while (!eof || !reaped) {
        unsigned long long now = now_ms();
        if (!timed_out && spec->timeout_ms > 0 && now - start >= spec->timeout_ms) {
            timed_out = true;
            term_sent = true;
            term_at = now;
            kill_group(pid, SIGTERM);
        }
        if (!term_sent && spec->cancel != NULL && __atomic_load_n(spec->cancel, __ATOMIC_ACQUIRE)) {
            cancelled = true;
            term_sent = true;
            term_at = now;
            kill_group(pid, SIGTERM);
        }
        if (term_sent && now - term_at >= GRACE_MS)
            kill_group(pid, SIGKILL);
        if (!eof) {
            struct pollfd pfd = {out_pipe[0], POLLIN, 0};
            int rc = poll(&pfd, 1, 50);
            if (rc > 0) {
                ssize_t n = read(out_pipe[0], buf, sizeof(buf));
                if (n > 0) {
                    size_t keep = (size_t)n;
                    if (spec->log_limit > 0 && written + keep > spec->log_limit) {
                        keep = written < spec->log_limit ? spec->log_limit - written : 0;
                        out->log_truncated = true;
                    }
                    write_all(log, buf, keep);
                    written += keep;
                } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                    eof = true;
                }
            }
        } else {
            struct timespec ms = {0, 20000000};
            (void)nanosleep(&ms, NULL);
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &wstatus, WNOHANG);
            if (w == pid) {
                reaped = true;
                /* what it left behind in its group goes with it: the pipe can then close */
                kill_group(pid, SIGKILL);
            }
        }
    }
    (void)close(out_pipe[0]);
    untrack_group(pid); /* after the group's last kill */
    while (__atomic_load_n(&frozen, __ATOMIC_SEQ_CST))
        (void)pause(); /* the process is exiting: this job's end is nobody's result */
    out->elapsed_ms = now_ms() - start;
    if (out->log_truncated) {
        char note[128];
        int n = snprintf(note, sizeof(note), "\nkeel-gate: log truncated at %lu bytes\n",
                         spec->log_limit);
        if (n > 0)
            write_all(log, note, (size_t)n);
    }
    (void)close(log);
    if (got == (ssize_t)sizeof(exec_errno)) {
        out->result = GATE_EXEC_NOT_FOUND;
        out->exit_code = 127;
        return KEEL_OK;
    }
    if (timed_out || cancelled) {
        out->result = timed_out ? GATE_EXEC_TIMEOUT : GATE_EXEC_CANCELLED;
        out->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    } else if (WIFEXITED(wstatus)) {
        out->exit_code = WEXITSTATUS(wstatus);
        out->result = out->exit_code == 0 ? GATE_EXEC_PASSED : GATE_EXEC_FAILED;
    } else {
        out->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
        out->result = GATE_EXEC_CRASHED;
    }
    return KEEL_OK;
}
