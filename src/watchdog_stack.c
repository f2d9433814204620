/*
 * watchdog_stack.c - another thread's backtrace, taken so that the program
 * cannot see it (watchdog.stacks=ptrace, docs/watchdog.md).
 *
 * A process cannot ptrace its own threads, so the watchdog thread starts
 * keel-stack (helper/keel-stack.c) at the first capture and keeps it for the
 * next ones; for each, keel-stack stops the one thread with
 * PTRACE_SEIZE + PTRACE_INTERRUPT (no signal: a stopped nanosleep, read or
 * poll is restarted by the kernel, never EINTR), unwinds it with libdw and
 * writes its frames on a pipe.  While the thread is still stopped the watchdog
 * reads what it needs of the thread's state (its held locks), then lets it go.
 *
 * What the program could notice is kept small: the helper is the child of a
 * go-between (a clone sharing the program's memory, with no exit signal), so
 * no SIGCHLD, nothing for the program's wait() to find, no zombie left.  It inherits none of the program's file
 * descriptors; the program holds one socket to it.  The watchdog waits for an
 * answer for a bounded time (else it closes the socket and starts a new helper
 * next time); the helper lets the thread go when the socket closes, gives up
 * a request by itself (alarm) if anything hangs, and exits when the program
 * does.
 * The helper's stdin, stdout and stderr are one socket (two descriptors of the
 * program's, for the time of a capture).  Between "stopped" and the release
 * nothing here allocates or takes a lock the stopped thread could hold.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KEEL_STACK_HELPER_INSTALLED
#define KEEL_STACK_HELPER_INSTALLED "/usr/local/libexec/keel/keel-stack"
#endif

enum {
    STACK_TIMEOUT_MS = 1000, /* the helper's answer; then it is left (it gives up by itself) */
    OUT_SIZE = 4096,
    SPAWN_STACK = 16 * 1024
};

keel_status keel__watchdog_check_stacks(const char *value)
{
    if (value[0] == '\0' || strcmp(value, "ptrace") == 0 || strcmp(value, "signal") == 0 ||
        strcmp(value, "none") == 0)
        return KEEL_OK;
    return KEEL_ERR(KEEL_E_INVAL, "watchdog.stacks '%s' is not one of ptrace, signal, none", value);
}

static unsigned long long mono_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* ---- finding keel-stack ------------------------------------------------------------------ */

static const char helper_anchor = 0; /* an address in the object keel is linked into */

static bool executable_at(char *out, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(out, size, "%s/%s", dir, rel);
    return n > 0 && (size_t)n < size && access(out, X_OK) == 0;
}

/*
 * The helper: the option watchdog.stack-helper; else beside the object keel is linked into
 * (libkeel's directory, or the program's with the static library), in its ../libexec/keel or
 * libexec/keel (a build tree); else where it was installed.
 */
static keel_status find_helper(char *out, size_t size)
{
    const char *opt = keel__opt_str(KEEL__OPT_WATCHDOG_STACK_HELPER);
    if (opt[0] != '\0') {
        (void)snprintf(out, size, "%s", opt);
        if (access(out, X_OK) != 0)
            return KEEL_ERR_SYS(errno, "watchdog.stack-helper '%s' is not executable", opt);
        return KEEL_OK;
    }
    char dir[PATH_MAX];
    Dl_info info;
    ssize_t len = -1;
    if (dladdr(&helper_anchor, &info) != 0 && info.dli_fname != NULL && info.dli_fname[0] == '/')
        len = (ssize_t)snprintf(dir, sizeof(dir), "%s", info.dli_fname);
    else
        len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (len > 0 && (size_t)len < sizeof(dir)) {
        dir[len] = '\0';
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            if (executable_at(out, size, dir, "keel-stack") ||
                executable_at(out, size, dir, "../libexec/keel/keel-stack") ||
                executable_at(out, size, dir, "libexec/keel/keel-stack"))
                return KEEL_OK;
        }
    }
    (void)snprintf(out, size, "%s", KEEL_STACK_HELPER_INSTALLED);
    if (access(out, X_OK) != 0)
        return KEEL_ERR_SYS(errno,
                            "cannot find keel-stack (beside libkeel, in its ../libexec/keel, or "
                            "'%s'; watchdog.stack-helper names it)",
                            KEEL_STACK_HELPER_INSTALLED);
    return KEEL_OK;
}

/* ---- starting it ----------------------------------------------------------------------------- */

typedef struct spawn_args {
    const char *path;
    char *const *argv;
    int fd;      /* the helper's stdin, stdout and stderr */
    long helper; /* atomic: set by the go-between: the helper's pid, or -1 */
} spawn_args;

/* Shared with the go-between (CLONE_VM); the watchdog thread's only otherwise. */
static spawn_args spawn_shared;
static char spawn_stacks[2][SPAWN_STACK] __attribute__((aligned(16)));
static pid_t go_between_pid; /* 0: none to reap */

/* glibc's clone under its other name: a sanitizer's interceptor of clone() assumes a fork. */
KEEL_EXTERN_C_BEGIN
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
KEEL_EXTERN_C_END

/* Close every descriptor from `first` on, with raw system calls. */
__attribute__((no_sanitize("address", "thread", "undefined"))) static void
close_from(unsigned first)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, ~0u, 0u) == 0)
        return;
#endif
    for (unsigned fd = first; fd < 65536; fd++) /* kernels before 5.9 */
        (void)syscall(SYS_close, fd);
}

/*
 * The helper until execve, and the go-between: both share the program's memory (CLONE_VM),
 * with every signal blocked; raw system calls only (no libc state, no sanitizer).
 */
__attribute__((no_sanitize("address", "thread", "undefined"))) static int exec_child(void *p)
{
    const spawn_args *a = (const spawn_args *)p;
    static char *const no_env[] = {NULL};
    if (syscall(SYS_dup3, a->fd, 0, 0) < 0 || syscall(SYS_dup3, a->fd, 1, 0) < 0 ||
        syscall(SYS_dup3, a->fd, 2, 0) < 0)
        syscall(SYS_exit, 127);
    close_from(3); /* none of the program's: the helper must not keep a pipe or socket open */
    (void)syscall(SYS_execve, a->path, a->argv, no_env);
    syscall(SYS_exit, 127);
    return 127;
}

/*
 * execve makes any child's exit signal SIGCHLD, so the helper is not the program's child but
 * the go-between's: a process with no exit signal that shares the program's memory and
 * descriptors (no copy of either), starts the helper, lets go of the descriptors, waits for the
 * helper and exits after it.  The program gets no SIGCHLD, its wait()
 * never sees either (only __WALL does), and the watchdog reaps the go-between.
 */
__attribute__((no_sanitize("address", "thread", "undefined"))) static int go_between(void *p)
{
    spawn_args *a = (spawn_args *)p;
    (void)syscall(SYS_prctl, PR_SET_NAME, "keel-stack-wait", 0ul, 0ul, 0ul);
    int helper =
        __clone(exec_child, spawn_stacks[1] + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    /*
     * Hold none of the program's files from now on: were the program to end without closing
     * the socket (_exit, a crash), keel-stack must still see its end and exit.
     */
    if (syscall(SYS_unshare, CLONE_FILES) == 0)
        close_from(0);
    __atomic_store_n(&a->helper, helper > 0 ? (long)helper : -1L, __ATOMIC_RELEASE);
    if (helper > 0) {
        int status;
        (void)syscall(SYS_wait4, helper, &status, __WALL, 0ul);
    }
    syscall(SYS_exit, 0);
    return 0;
}

/* Reap the go-between if it has exited (its helper gone); wait up to ms for it. */
static void reap_go_between(int ms)
{
    for (int i = 0; go_between_pid != 0; i++) {
        pid_t rc = waitpid(go_between_pid, NULL, __WALL | WNOHANG);
        if (rc == go_between_pid || (rc < 0 && errno != EINTR))
            go_between_pid = 0;
        else if (i >= ms)
            return; /* still waiting for its helper: tried again next time */
        else {
            struct timespec one = {0, 1000000};
            (void)nanosleep(&one, NULL);
        }
    }
}

/* Start the helper; its pid, or a status. */
static keel_status spawn_helper(const char *path, char *const *argv, int fd, pid_t *pid)
{
    reap_go_between(0);
    if (go_between_pid != 0)
        return KEEL_ERR(KEEL_E_BUSY, "the last keel-stack has not exited yet");
    spawn_shared.path = path;
    spawn_shared.argv = argv;
    spawn_shared.fd = fd;
    __atomic_store_n(&spawn_shared.helper, 0L, __ATOMIC_RELEASE);
    sigset_t all, old;
    (void)sigfillset(&all);
    KEEL_VERIFY(pthread_sigmask(SIG_SETMASK, &all, &old) == 0); /* the go-between keeps it */
    /* sharing the descriptor table too: the go-between holds no copy of the program's files */
    int mid =
        __clone(go_between, spawn_stacks[0] + SPAWN_STACK, CLONE_VM | CLONE_FILES, &spawn_shared);
    int err = errno;
    KEEL_VERIFY(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    if (mid < 0)
        return KEEL_ERR_SYS(err, "cannot start keel-stack '%s'", path);
    go_between_pid = (pid_t)mid;
    /* path and argv must live until the helper has called execve */
    long helper = 0;
    for (int i = 0; i < STACK_TIMEOUT_MS && helper == 0; i++) {
        helper = __atomic_load_n(&spawn_shared.helper, __ATOMIC_ACQUIRE);
        if (helper == 0) {
            struct timespec one = {0, 1000000};
            (void)nanosleep(&one, NULL);
        }
    }
    if (helper <= 0) {
        reap_go_between(STACK_TIMEOUT_MS);
        return KEEL_ERR(KEEL_E_SYS, "cannot start keel-stack '%s'", path);
    }
    *pid = (pid_t)helper;
    return KEEL_OK;
}

/* Yama's ptrace_scope 1 lets only ancestors trace: allow the helper for the time of a capture. */
static bool yama_restricted(void)
{
    int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char c = '0';
    ssize_t n = read(fd, &c, 1);
    (void)close(fd);
    return n == 1 && c == '1';
}

/* ---- the conversation ---------------------------------------------------------------------- */

typedef struct conversation {
    char buf[OUT_SIZE];
    size_t len;
    size_t parsed;
    void **frames;
    int max;
    int n;
    unsigned long long stopped_us;
    bool stopped;
    bool failed; /* an "error" line, or the helper went away */
} conversation;

/* Parse the complete lines read so far. */
static void parse_lines(conversation *c)
{
    for (;;) {
        char *line = c->buf + c->parsed;
        char *nl = (char *)memchr(line, '\n', c->len - c->parsed);
        if (nl == NULL)
            return;
        *nl = '\0';
        c->parsed = (size_t)(nl - c->buf) + 1;
        if (strncmp(line, "pc ", 3) == 0 && c->n < c->max) {
            /* a program counter of the stuck thread, symbolized, never dereferenced */
            uintptr_t pc = (uintptr_t)strtoull(line + 3, NULL, 16);
            memcpy(&c->frames[c->n++], &pc, sizeof(pc));
        } else if (strncmp(line, "stopped", 7) == 0) {
            c->stopped = true;
            c->stopped_us = strtoull(line + 7, NULL, 10);
        } else if (strncmp(line, "error ", 6) == 0) {
            c->failed = true;
            *nl = '\n';                          /* kept for the message */
            c->parsed = (size_t)(line - c->buf); /* the error line starts the message */
            return;
        }
    }
}

/* Read until "stopped", an error, end of file or the deadline. */
static void converse(conversation *c, int fd, unsigned long long deadline)
{
    while (!c->stopped && !c->failed && c->len < sizeof(c->buf) - 1) {
        unsigned long long now = mono_ns();
        if (now >= deadline)
            return;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return;
        ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->failed = true;
            return;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        parse_lines(c);
    }
}

/* What went wrong, from the helper's own words when it said any. */
static keel_status helper_failed(const conversation *c, const char *path)
{
    if (c->failed && strncmp(c->buf + c->parsed, "error ", 6) == 0) {
        const char *why = c->buf + c->parsed + 6;
        int n = (int)strcspn(why, "\n");
        return KEEL_ERR(KEEL_E_SYS, "keel-stack: %.*s", n, why);
    }
    if (c->failed)
        return KEEL_ERR(KEEL_E_SYS, "keel-stack '%s' ended without an answer", path);
    return KEEL_ERR(KEEL_E_TIMEOUT, "keel-stack did not answer within %d ms", STACK_TIMEOUT_MS);
}

/* ---- the helper, while it lives (the watchdog thread only) ------------------------------------ */

static int helper_fd = -1;
static bool helper_yama; /* it was allowed as this process's tracer */
static char helper_path[PATH_MAX];

void keel__stack_close(void)
{
    if (helper_fd < 0)
        return;
    (void)close(helper_fd); /* it sees the end of the socket and exits, then the go-between */
    helper_fd = -1;
    reap_go_between(200);
    if (helper_yama)
        (void)prctl(PR_SET_PTRACER, 0ul, 0ul, 0ul, 0ul);
    helper_yama = false;
}

/* The helper named `path` running, started now if it is not (or is another). */
static keel_status helper_ready(const char *path)
{
    if (helper_fd >= 0 && strcmp(path, helper_path) == 0)
        return KEEL_OK;
    keel__stack_close();
    char spid[24];
    (void)snprintf(spid, sizeof(spid), "%ld", (long)getpid());
    char *const argv[] = {(char *)"keel-stack", spid, NULL};
    int sv[2]; /* a socket, not pipes: a helper gone means EPIPE here, never SIGPIPE */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return KEEL_ERR_SYS(errno, "cannot make a socket to keel-stack");
    pid_t pid = 0;
    keel_status s = spawn_helper(path, argv, sv[1], &pid);
    (void)close(sv[1]);
    if (!keel_ok(s)) {
        (void)close(sv[0]);
        return s;
    }
    helper_fd = sv[0];
    (void)snprintf(helper_path, sizeof(helper_path), "%s", path);
    helper_yama = yama_restricted();
    if (helper_yama)
        (void)prctl(PR_SET_PTRACER, (unsigned long)pid, 0ul, 0ul, 0ul);
    return KEEL_OK;
}

keel_status keel__stack_ptrace(long tid, void **frames, int max, int *n,
                               void (*while_stopped)(void *), void *arg,
                               unsigned long long *stopped_us)
{
    KEEL_ASSERT(frames != NULL && n != NULL && max > 0);
    keel__lazy_init(); /* watchdog.stack-helper */
    *n = 0;
    char path[PATH_MAX];
    keel_status s = find_helper(path, sizeof(path));
    if (!keel_ok(s))
        return s;
    char request[48];
    int len = snprintf(request, sizeof(request), "%ld %d\n", tid, max);
    bool sent = false;
    for (int attempt = 0; attempt < 2 && !sent; attempt++) { /* again if it had gone */
        s = helper_ready(path);
        if (!keel_ok(s))
            return s;
        sent = send(helper_fd, request, (size_t)len, MSG_NOSIGNAL) == len;
        if (!sent)
            keel__stack_close();
    }
    if (!sent)
        return KEEL_ERR_SYS(errno, "cannot ask keel-stack '%s'", path);
    conversation *c = (conversation *)calloc(1, sizeof(*c));
    if (c == NULL) {
        keel__stack_close(); /* its answer would be read as the next one's */
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory taking a backtrace");
    }
    c->frames = frames;
    c->max = max;
    converse(c, helper_fd, mono_ns() + (unsigned long long)STACK_TIMEOUT_MS * 1000000ull);
    if (c->stopped) {
        unsigned long long held_since = mono_ns();
        if (while_stopped != NULL)
            while_stopped(arg); /* no allocation, no lock: the thread may hold any */
        if (send(helper_fd, "r", 1, MSG_NOSIGNAL) != 1)
            keel__stack_close(); /* the end of the socket lets the thread go too */
        *stopped_us = c->stopped_us + (mono_ns() - held_since) / 1000ull;
    } else if (!c->failed || strncmp(c->buf + c->parsed, "error ", 6) != 0) {
        keel__stack_close(); /* no answer in time, or it went away: a new one next time */
    }
    if (c->stopped && c->n > 0) {
        *n = c->n;
        s = KEEL_OK;
    } else {
        s = helper_failed(c, path);
    }
    free(c);
    return s;
}
