/*
 * run/run_calls.h - the C library calls keel-run can fail (stress points at libc calls,
 * run/run_faults.c) and the errno values a fire sets: the defaults, and `--errno CALL=ERR,...`
 * (KEEL_RUN_ERRNO), parsed the same way by the launcher (to refuse a bad list before the program
 * runs) and by the preload (to apply it).
 */
#ifndef KEEL_RUN_CALLS_H
#define KEEL_RUN_CALLS_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The calls, by the name of their stress points: libc.CALL.SITE (docs/keel-run.md). */
typedef enum run_call {
    RUN_F_ALLOC, /* the malloc family */
    RUN_F_OPEN,  /* open, open64, openat, openat64 */
    RUN_F_READ,
    RUN_F_WRITE,
    RUN_F_FSYNC, /* fsync, fdatasync */
    RUN_F_CLOSE,
    RUN_F_RENAME,
    RUN_F_MKDIR,
    RUN_F_SOCKET,
    RUN_F_CONNECT,
    RUN_F_ACCEPT, /* accept, accept4 */
    RUN_F_SEND,   /* send, sendto */
    RUN_F_RECV,   /* recv, recvfrom */
    RUN_F_PREAD,  /* pread, pread64 */
    RUN_F_PWRITE, /* pwrite, pwrite64 */
    RUN_F_READV,
    RUN_F_WRITEV,
    RUN_F_SENDMSG,
    RUN_F_RECVMSG,
    /* the waits: a fire is a signal that interrupted them (EINTR) */
    RUN_F_POLL,       /* poll, ppoll */
    RUN_F_SELECT,     /* select, pselect */
    RUN_F_EPOLL_WAIT, /* epoll_wait, epoll_pwait */
    RUN_F_SEM_WAIT,   /* sem_wait, sem_timedwait, sem_clockwait */
    RUN_F_WAIT,       /* waitpid, wait, waitid, wait4 */
    RUN_F_SIGWAIT,    /* sigwaitinfo, sigtimedwait (sigwait itself never fails with EINTR) */
    RUN_F_PAUSE,      /* pause, sigsuspend (they end only so: -1, EINTR) */
    RUN_F_COUNT
} run_call;

/* The errno value that means "a short transfer" instead of a failure (the calls that move bytes). */
#define RUN_SHORT (-1)

typedef struct run_call_def {
    const char *name;
    int err; /* the default errno of a fire */
    bool can_short;
} run_call_def;

static inline const run_call_def *run_calls(void)
{
    static const run_call_def calls[RUN_F_COUNT] = {
        {"alloc", ENOMEM, false},      {"open", EACCES, false},
        {"read", EIO, true},           {"write", ENOSPC, true},
        {"fsync", EIO, false},         {"close", EIO, false},
        {"rename", EACCES, false},     {"mkdir", EACCES, false},
        {"socket", EMFILE, false},     {"connect", ECONNREFUSED, false},
        {"accept", EMFILE, false},     {"send", ECONNRESET, true},
        {"recv", ECONNRESET, true},    {"pread", EIO, true},
        {"pwrite", ENOSPC, true},      {"readv", EIO, true},
        {"writev", ENOSPC, true},      {"sendmsg", ECONNRESET, true},
        {"recvmsg", ECONNRESET, true}, {"poll", EINTR, false},
        {"select", EINTR, false},      {"epoll_wait", EINTR, false},
        {"sem_wait", EINTR, false},    {"wait", EINTR, false},
        {"sigwait", EINTR, false},     {"pause", EINTR, false},
    };
    return calls;
}

/* The errno name of value e ("short" for RUN_SHORT), or NULL when it is not one of keel-run's. */
typedef struct run_errno_def {
    const char *name;
    int value;
} run_errno_def;

static inline const run_errno_def *run_errno_find(const char *name, size_t len, int value)
{
    static const run_errno_def errnos[] = {
        {"short", RUN_SHORT},
        {"EACCES", EACCES},
        {"EAGAIN", EAGAIN},
        {"EBADF", EBADF},
        {"ECHILD", ECHILD},
        {"ECONNABORTED", ECONNABORTED},
        {"ECONNREFUSED", ECONNREFUSED},
        {"ECONNRESET", ECONNRESET},
        {"EDQUOT", EDQUOT},
        {"EEXIST", EEXIST},
        {"EHOSTUNREACH", EHOSTUNREACH},
        {"EINTR", EINTR},
        {"EINVAL", EINVAL},
        {"EIO", EIO},
        {"EMFILE", EMFILE},
        {"ENETUNREACH", ENETUNREACH},
        {"ENFILE", ENFILE},
        {"ENOENT", ENOENT},
        {"ENOMEM", ENOMEM},
        {"ENOSPC", ENOSPC},
        {"EPERM", EPERM},
        {"EPIPE", EPIPE},
        {"EROFS", EROFS},
        {"ETIMEDOUT", ETIMEDOUT},
        {"EXDEV", EXDEV},
    };
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
        if (name != NULL ? strlen(errnos[i].name) == len && strncmp(errnos[i].name, name, len) == 0
                         : errnos[i].value == value)
            return &errnos[i];
    return NULL;
}

/*
 * Apply "CALL=ERR,CALL=ERR..." (ERR an errno name of run_errno_find, or "short" for the calls
 * that move bytes) to errs, which holds one errno per call.  False with the reason in why (the
 * entry quoted) when the list is malformed, an empty entry too (two commas, or one at either
 * end); errs is then partly changed.
 */
static inline bool run_errno_parse(const char *spec, int errs[RUN_F_COUNT], char *why, size_t size)
{
    const char *p = spec;
    bool more = *p != '\0'; /* an empty list changes nothing */
    while (more) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            (void)snprintf(why, size, "empty entry (two commas, or a comma at an end)");
            return false;
        }
        const char *eq = (const char *)memchr(p, '=', len);
        int call = -1;
        for (int c = 0; eq != NULL && c < RUN_F_COUNT; c++)
            if (strlen(run_calls()[c].name) == (size_t)(eq - p) &&
                strncmp(run_calls()[c].name, p, (size_t)(eq - p)) == 0)
                call = c;
        const run_errno_def *e =
            eq != NULL ? run_errno_find(eq + 1, len - (size_t)(eq - p) - 1, 0) : NULL;
        if (call < 0 || e == NULL || (e->value == RUN_SHORT && !run_calls()[call].can_short)) {
            (void)snprintf(why, size,
                           "bad entry '%.*s': CALL=ERRNO, a call of alloc, open, read, write, "
                           "fsync, close, rename, mkdir, socket, connect, accept, send, recv, "
                           "pread, pwrite, readv, writev, sendmsg, recvmsg, poll, select, "
                           "epoll_wait, sem_wait, wait, sigwait, pause; an errno name such as "
                           "EIO, or short for the calls that move bytes",
                           (int)len, p);
            return false;
        }
        errs[call] = e->value;
        p += len;
        more = *p == ',';
        if (more)
            p++;
    }
    return true;
}

#endif /* KEEL_RUN_CALLS_H */
