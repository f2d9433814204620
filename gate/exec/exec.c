/*
 * exec.c - keel-gate's job runner.
 *
 * A step (one command) is started with posix_spawn (no copy of the gate's
 * memory): bwrap with the job's sandbox (sandbox.h), or with `sandbox = none`
 * the command itself; behind a small /bin/sh trampoline either way; its own
 * process group; stdin /dev/null, stdout and stderr into a pipe; the
 * environment from the allow-list.  Before the command runs, it waits (the
 * trampoline's `read`; a gate that died meanwhile never lets it run) while
 * the gate puts its processes
 * into the job's cgroup and sets the rlimits no cgroup covers (resources.h), so
 * nothing the job starts escapes either; a record of it goes into the
 * records directory for a restarted gate to clean up after a killed one.
 *
 * The parent copies the pipe into the log up to the job's output limit,
 * watches the clock (at the timeout SIGTERM to the group, SIGKILL after a
 * grace period), the job's CPU (its cgroup) and its work tree's size.  When
 * the command exits, whatever it left behind is killed too (its cgroup, its
 * group; in the sandbox its PID namespace ends with it), so no job outlives
 * its slot.
 *
 * bwrap's --json-status-fd tells a sandbox that could not be set up (no
 * "exit-code": the command never ran) from a command that failed: the first
 * is the gate's failure (an error), the second the change's (an outcome).
 *
 * The groups running are also in a table of atomics that gate_exec_kill_all
 * reads without a lock (a process exiting at once on a second signal, which
 * first freezes every gate_exec_run so that no job it kills is reported).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_exec"
#include "exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ccache.h"
#include "heaps.h"
#include "resources.h"

#define EXEC_HEAP KEEL_MODULE_REF(gate_exec)

enum {
    GRACE_MS = 2000,  /* SIGTERM, then SIGKILL */
    CHUNK = 16384,    /* output read at once */
    MAX_GROUPS = 512, /* jobs running at once that gate_exec_kill_all knows */
    SETUP_MS = 10000, /* bwrap reports its sandbox's pid within this */
    LEFT_MS = 500,    /* after the command and its group are gone: the pipe's EOF within this */
    GONE_MS = 10000,  /* after that, the sandbox's processes gone within this (sandbox_gone) */
    CHECK_MS = 250,   /* the CPU and disk checks */
    COUNT_MS = 50,    /* a sandbox's processes counted, where no pids cgroup holds its limit */
    FORKS_REFUSED_MAX = 100, /* forks refused by the process limit before the job is stopped */
    REFUSED_FOR_MS = 2000,   /* ... or this long after its first refused fork */
    CHILD_FD = 10,           /* the pipes' ends are moved to fds from here (clear of 3 and 4) */
    STATUS_FD = 3,           /* bwrap's --json-status-fd in the child */
    RELEASE_FD = 4,          /* bwrap's --block-fd; the trampoline's read without a sandbox */
    GUARD_FD = 5,            /* in the sandbox, the trampoline's read (bwrap closes RELEASE_FD) */
    HEAD = 1024,             /* the first output kept: bwrap's message when it fails */
    UNSETTLED_ROUNDS = 10,   /* sweep_marked: rounds of 20 ms /proc is read again for them */
    PF_KTHREAD_FLAG = 0x00200000 /* /proc/PID/stat's flags: a kernel thread (PF_KTHREAD) */
};

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

static const char *const result_names[] = {"passed",    "failed",    "crashed", "timeout",
                                           "not-found", "cancelled", "limit"};

const char *gate_exec_result_name(gate_exec_result r)
{
    return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ? result_names[r] : "?";
}

unsigned long long gate_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

/* The start time of process `pid` (clock ticks since boot, /proc/<pid>/stat), or 0 when gone. */
static unsigned long long start_time(pid_t pid, char *state)
{
    return gate_proc_stat(pid, 22, state);
}

/* ---- one step ------------------------------------------------------------------------ */

typedef struct step {
    const gate_exec_spec *spec;
    const gate_job_policy *policy; /* NULL: none */
    bool sandbox;                  /* bwrap */
    gate_exec_outcome *out;
    int log;
    int out_r, out_w;     /* the output pipe */
    int st_r, st_w;       /* bwrap's status */
    int rel_r, rel_w;     /* the release: the job waits on rel_r until the gate writes */
    int guard_r, guard_w; /* the sandbox's: its trampoline waits on guard_r (after bwrap's block) */
    pid_t pid;            /* what posix_spawn started (bwrap, the trampoline, the command) */
    pid_t sandbox_pid;    /* bwrap's sandbox (its PID 1) */
    int sandbox_fd;       /* a pidfd of sandbox_pid (sandbox_gone), or -1 */
    gate_cgroup cg;
    char dir[GATE_PATH_MAX];    /* the work tree, canonical */
    char home[GATE_PATH_MAX];   /* sandbox none: a private HOME made for the step */
    char record[GATE_PATH_MAX]; /* "" until written */
    char marker[96];            /* KEEL_GATE_JOB=...: every process of the job carries it */
    char ccache_vars[GATE_CCACHE_VARS][1200]; /* its compiler cache's variables (add_ccache) */
    char **env_base;          /* what gate_sandbox_env made (its strings), when env is a copy */
    char prog[GATE_PATH_MAX]; /* the program, as found */
    char bwrap[GATE_PATH_MAX];
    char why[512]; /* the program cannot be run: why */
    char **env;
    char **argv; /* what is spawned (bwrap's or the trampoline's vector), or NULL */
    char status[2048];
    size_t status_len;
    char head[HEAD]; /* the first output */
    size_t head_len;
    int log_errno; /* writing the log failed: the gate's failure */
    /* how it ended (watch) */
    int wstatus;
    struct rusage reaped; /* the CPU the gate got back with it (wait4) */
    bool timed_out, cancelled;
    const char *limit_hit; /* NULL, or limit_text */
    char limit_text[GATE_REASON_TEXT];
    unsigned long long refused_at; /* when a refused fork was first seen (check_limits), or 0 */
} step;

static void step_init(step *st, const gate_exec_spec *spec, gate_exec_outcome *out)
{
    memset(st, 0, sizeof(*st));
    st->spec = spec;
    st->out = out;
    st->policy = spec->policy;
    st->sandbox = spec->policy != NULL && spec->policy->sandbox;
    st->log = st->out_r = st->out_w = st->st_r = st->st_w = st->rel_r = st->rel_w = -1;
    st->guard_r = st->guard_w = st->sandbox_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        (void)close(*fd);
    *fd = -1;
}

static void note(step *st, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* A line of the gate's into the job's log. */
static void note(step *st, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    line[len++] = '\n';
    int e = KEEL_STRESS(log_fail) ? ENOSPC : gate_write_all(st->log, line, len);
    if (e != 0 && st->log_errno == 0)
        st->log_errno = e;
}

/*
 * A pipe (or, `socket`, a socket pair: writing to it when the other end is
 * gone is EPIPE, never SIGPIPE) with both ends at fds >= CHILD_FD, so that
 * dup2 to 1..4 in the child never clobbers one.
 */
static int make_pipe(int *r, int *w, bool socket)
{
    int p[2];
    if (KEEL_STRESS(pipe_fail))
        return EMFILE;
    if (socket ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0
               : pipe2(p, O_CLOEXEC) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        if (p[i] >= CHILD_FD)
            continue;
        int moved = fcntl(p[i], F_DUPFD_CLOEXEC, CHILD_FD);
        int e = errno;
        (void)close(p[i]);
        p[i] = moved;
        if (moved < 0) {
            close_fd(&p[0]);
            close_fd(&p[1]);
            return e;
        }
    }
    *r = p[0];
    *w = p[1];
    return 0;
}

/*
 * Can `path` be executed as the job's program: a regular executable file the
 * sandbox sees, an ELF or a script whose `#!` interpreter is one too?
 * Leaves why not in st->why.
 */
static bool runnable(step *st, const char *path, int level)
{
    char real[GATE_PATH_MAX];
    struct stat sb;
    if (realpath(path, real) == NULL || stat(real, &sb) != 0) {
        (void)snprintf(st->why, sizeof(st->why), "'%s': %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(sb.st_mode) || access(real, X_OK) != 0) {
        (void)snprintf(st->why, sizeof(st->why), "'%s' is not an executable file", path);
        return false;
    }
    if (st->policy != NULL && !gate_sandbox_sees(st->policy, st->spec->hidden, st->dir, real)) {
        (void)snprintf(st->why, sizeof(st->why),
                       "'%s' is hidden from jobs (the gate's files, its home directory or /tmp: "
                       "the sandbox does not see it)",
                       path);
        return false;
    }
    char head[256];
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, head, sizeof(head) - 1) : -1;
    if (fd >= 0)
        (void)close(fd);
    if (n >= 4 && memcmp(head, "\177ELF", 4) == 0)
        return true;
    if (n >= 2 && head[0] == '#' && head[1] == '!' && level < 4) {
        head[n] = '\0';
        char interp[GATE_PATH_MAX];
        if (sscanf(head + 2, " %1023[^ \t\n]", interp) == 1 && interp[0] == '/')
            return runnable(st, interp, level + 1);
    }
    (void)snprintf(st->why, sizeof(st->why),
                   "'%s' is neither a program (ELF) nor a script starting with '#!' and the path "
                   "of its interpreter (Exec format error)",
                   path);
    return false;
}

/* The job's program as its PATH finds it, in st->prog; false (st->why says) when none can run. */
static bool find_program(step *st)
{
    const char *name = st->spec->argv[0];
    if (strchr(name, '/') != NULL) {
        if (name[0] == '/')
            (void)snprintf(st->prog, sizeof(st->prog), "%s", name);
        else
            gate_fmt(st->prog, sizeof(st->prog), "%s/%s", st->dir, name);
        return runnable(st, st->prog, 0);
    }
    const char *path = gate_env_get(st->env, "PATH");
    bool any = false;
    char first_why[sizeof(st->why)] = "";
    for (const char *p = path != NULL ? path : "";; p++) {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        gate_fmt(st->prog, sizeof(st->prog), "%.*s/%s", len > 0 ? (int)len : (int)strlen(st->dir),
                 len > 0 ? p : st->dir, name);
        if (access(st->prog, F_OK) == 0) {
            if (runnable(st, st->prog, 0))
                return true;
            if (!any)
                (void)snprintf(first_why, sizeof(first_why), "%s", st->why);
            any = true; /* as execvp: go on to the next directory */
        }
        if (end == NULL)
            break;
        p = end;
    }
    if (any)
        (void)snprintf(st->why, sizeof(st->why), "%s", first_why);
    else
        (void)snprintf(st->why, sizeof(st->why), "'%s' is in none of the directories of PATH=%s",
                       name, path != NULL ? path : "");
    return false;
}

/* What the hidden paths are now (a -wal file comes and goes): their kinds for bwrap. */
static void hidden_kinds(const gate_hidden *h, unsigned char *kinds)
{
    for (size_t i = 0; h != NULL && i < h->n; i++) {
        struct stat sb;
        kinds[i] = GATE_HIDE_SKIP;
        if (lstat(h->e[i].path, &sb) == 0)
            kinds[i] = S_ISDIR(sb.st_mode) ? GATE_HIDE_DIR : GATE_HIDE_FILE;
    }
}

/* The job marker's value for the gate of `records`: "<dir hash>:<gate pid>:<its start time>". */
static unsigned long long records_hash(const char *records)
{
    unsigned long long h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)records; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/*
 * Every process of a job carries KEEL_GATE_JOB=<hash of the records
 * directory>:<gate pid>:<gate start time> in its environment (bwrap's own
 * processes too, before the sandbox exists): after a kill, the next gate of
 * the same records finds whatever is left of the dead one's jobs by it, even
 * a job started in the instant before its record was written.
 */
static keel_status env_extend(step *st, char *const *vars, size_t nvars);

static keel_status add_marker(step *st, const char *records)
{
    (void)snprintf(st->marker, sizeof(st->marker), "KEEL_GATE_JOB=%016llx:%d:%llu",
                   records_hash(records), (int)getpid(), start_time(getpid(), NULL));
    char *vars[] = {st->marker};
    return env_extend(st, vars, 1);
}

/* Is `var` (NAME=value) setting the variable `other` (NAME=value) sets? */
static bool same_name(const char *var, const char *other)
{
    size_t len = strcspn(other, "=");
    return strncmp(var, other, len) == 0 && var[len] == '=';
}

/*
 * st->env with `vars` (NAME=value) added, each replacing the variable of its name: a new
 * vector of pointers (the strings stay where they are: the first vector, gate_sandbox_env's
 * block, is kept in env_base; a later copy is freed).
 */
static keel_status env_extend(step *st, char *const *vars, size_t nvars)
{
    size_t n = 0;
    while (st->env[n] != NULL)
        n++;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(EXEC_HEAP, (n + nvars + 1) * sizeof(char *), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "a job's environment");
    char **v = (char **)mem;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nvars && !replaced; j++)
            replaced = same_name(st->env[i], vars[j]);
        if (!replaced)
            v[k++] = st->env[i];
    }
    for (size_t j = 0; j < nvars; j++)
        v[k++] = vars[j];
    v[k] = NULL;
    if (st->env_base == NULL)
        st->env_base = st->env; /* its block holds strings the copy points at */
    else
        keel_heap_free(EXEC_HEAP, st->env);
    st->env = v;
    return KEEL_OK;
}

/* The job's compiler cache (ccache.h): its CCACHE_* variables, /usr/lib/ccache on its PATH. */
static keel_status add_ccache(step *st)
{
    size_t n = gate_ccache_env(st->policy, st->dir, gate_env_get(st->env, "PATH"), st->ccache_vars);
    char *vars[GATE_CCACHE_VARS];
    for (size_t i = 0; i < n; i++)
        vars[i] = st->ccache_vars[i];
    return env_extend(st, vars, n);
}

/*
 * The trampoline: sh -c 'read ... <&4 || exit 125; exec 4<&-; exec "$@"'
 * keel-gate-job PROG ARGS...  It waits until the gate lets the job go, after
 * it put the job into its cgroup and set its limits; when the gate died
 * before (the read finds the end of the pipe), the command never runs.  In
 * the sandbox too: bwrap's own --block-fd would start the command at that
 * end, and a bwrap whose parent died before it set PR_SET_PDEATHSIG would
 * run it as an orphan next to the next gate's jobs.
 */
static keel_status trampoline(const step *st, char ***out)
{
    const gate_exec_spec *spec = st->spec;
    /* sh -c 'read ... <&4 || exit 125; exec 4<&-; exec "$@"' keel-gate-job PROG ARGS... */
    static const char plain[] = "read -r go <&4 || exit 125; exec 4<&-; exec \"$@\"";
    static const char sandboxed[] = "read -r go <&5 || exit 125; exec 5<&-; exec \"$@\"";
    const char *script = st->sandbox ? sandboxed : plain;
    size_t n = 0, bytes = 0;
    for (char *const *a = spec->argv; *a != NULL; a++, n++)
        bytes += strlen(*a) + 1;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(
        EXEC_HEAP, (n + 5) * sizeof(char *) + bytes + 64 + strlen(st->prog) + sizeof(plain), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting '%s'", spec->argv[0]);
    char **v = (char **)mem;
    char *t = (char *)(v + n + 5);
    const char *fixed[4] = {"/bin/sh", "-c", script, "keel-gate-job"};
    size_t k = 0;
    for (size_t i = 0; i < 4; i++) {
        v[k++] = t;
        t = stpcpy(t, fixed[i]) + 1;
    }
    v[k++] = t;
    t = stpcpy(t, st->prog) + 1;
    for (size_t i = 1; i < n; i++) {
        v[k++] = t;
        t = stpcpy(t, spec->argv[i]) + 1;
    }
    v[k] = NULL;
    *out = v;
    return KEEL_OK;
}

/* The vector to spawn: bwrap's (sandbox), the trampoline's (limits without a sandbox), or NULL. */
static keel_status make_argv(step *st)
{
    const gate_exec_spec *spec = st->spec;
    KEEL_ASSERT(!st->sandbox || st->policy != NULL);
    if (st->policy == NULL)
        return KEEL_OK;
    char **tv = NULL;
    keel_status s = trampoline(st, &tv);
    if (!keel_ok(s) || !st->sandbox) {
        st->argv = tv;
        return s;
    }
    for (const char *w = st->policy->writable; keel_ok(s) && *w != '\0'; w += strlen(w) + 1) {
        struct stat sb;
        if (stat(w, &sb) != 0)
            s = keel_status_with_str(
                KEEL_ERR_SYS(errno,
                             "writable path '%s' of the job's configuration cannot be bound "
                             "into its sandbox",
                             w),
                "path", w);
    }
    if (keel_ok(s)) {
        unsigned char kinds[GATE_HIDDEN_MAX];
        hidden_kinds(spec->hidden, kinds);
        gate_bwrap_spec b;
        memset(&b, 0, sizeof(b));
        b.bwrap = st->bwrap;
        b.dir = st->dir;
        b.policy = st->policy;
        b.hidden = spec->hidden;
        b.kinds = kinds;
        b.home = "/tmp/home";
        b.status_fd = STATUS_FD;
        b.block_fd = RELEASE_FD; /* bwrap waits, and then its trampoline at GUARD_FD */
        b.fail = KEEL_STRESS(sandbox_fail) ? "/nonexistent/keel-gate-stress" : NULL;
        b.argv = tv;
        s = gate_bwrap_argv(&b, &st->argv);
    }
    keel_heap_free(EXEC_HEAP, tv); /* bwrap's vector holds copies */
    return s;
}

/*
 * posix_spawn (vfork-like: no copy of the gate's page tables, no
 * copy-on-write faults after): its own process group, stdin from /dev/null,
 * stdout and stderr into the pipe, bwrap's status and the release at fds 3
 * and 4, in the work tree, an empty signal mask and every signal at its
 * default.  An errno when it could not start.
 */
static int spawn(step *st, const char *file, char *const *argv)
{
    if (KEEL_STRESS(spawn_fail))
        return EAGAIN;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        (void)posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none, all;
    (void)sigemptyset(&none);
    (void)sigfillset(&all);
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                             POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, st->out_w, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, st->out_w, 2);
    if (rc == 0 && st->st_w >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, st->st_w, STATUS_FD);
    if (rc == 0 && st->rel_r >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, st->rel_r, RELEASE_FD);
    if (rc == 0 && st->guard_r >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, st->guard_r, GUARD_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_addchdir_np(&fa, st->dir);
    if (rc == 0)
        rc = posix_spawn(&st->pid, file, &fa, &attr, argv, st->env);
    (void)posix_spawnattr_destroy(&attr);
    (void)posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static void kill_group(pid_t pgid, int sig)
{
    if (pgid > 0)
        (void)kill(-pgid, sig);
}

/* Output the job wrote: into the log up to its limit (false: past it). */
static bool take_output(step *st, const char *buf, size_t n)
{
    const gate_exec_spec *spec = st->spec;
    if (st->head_len < HEAD - 1) {
        size_t k = n < HEAD - 1 - st->head_len ? n : HEAD - 1 - st->head_len;
        memcpy(st->head + st->head_len, buf, k);
        st->head_len += k;
        st->head[st->head_len] = '\0';
    }
    size_t keep = n;
    bool over = spec->log_limit > 0 && st->out->log_bytes + n > spec->log_limit;
    if (over) {
        keep = st->out->log_bytes < spec->log_limit ? spec->log_limit - st->out->log_bytes : 0;
        st->out->log_truncated = true;
    }
    int e = KEEL_STRESS(log_fail) ? ENOSPC : gate_write_all(st->log, buf, keep);
    if (e != 0 && st->log_errno == 0)
        st->log_errno = e;
    st->out->log_bytes += keep;
    return !over;
}

/* bwrap's JSON status so far: the number after `key`, or -1. */
static long status_number(const step *st, const char *key)
{
    const char *p = strstr(st->status, key);
    return p != NULL ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void read_status(step *st)
{
    if (st->st_r < 0)
        return;
    if (st->status_len + 1 >= sizeof(st->status)) {
        close_fd(&st->st_r); /* bwrap's few lines never get this long */
        return;
    }
    ssize_t n =
        read(st->st_r, st->status + st->status_len, sizeof(st->status) - 1 - st->status_len);
    if (n > 0) {
        st->status_len += (size_t)n;
        st->status[st->status_len] = '\0';
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(&st->st_r);
    }
}

/*
 * The job is started but waits: put it into its cgroup, set its rlimits,
 * then let it go.  For bwrap, both its monitor (our child) and its sandbox
 * (whose pid its status reports once it has cloned) are moved before any of
 * the command's code runs.
 */
static keel_status release(step *st)
{
    if (st->sandbox) {
        unsigned long long until = gate_now_ms() + SETUP_MS;
        while (status_number(st, "\"child-pid\":") <= 0 && st->st_r >= 0) {
            if (gate_now_ms() >= until)
                return KEEL_ERR(KEEL_E_TIMEOUT, "bwrap did not start the sandbox within %d s",
                                SETUP_MS / 1000);
            struct pollfd pf[2];
            memset(pf, 0, sizeof(pf));
            pf[0].fd = st->st_r;
            pf[1].fd = st->out_r;
            pf[0].events = pf[1].events = POLLIN;
            if (poll(pf, 2, 50) <= 0)
                continue;
            if (pf[1].revents != 0) {
                char buf[512];
                ssize_t n = read(st->out_r, buf, sizeof(buf));
                if (n > 0)
                    (void)take_output(st, buf, (size_t)n);
            }
            if (pf[0].revents != 0)
                read_status(st);
        }
        long child = status_number(st, "\"child-pid\":");
        if (child <= 0)
            return KEEL_OK; /* bwrap failed before its sandbox: the end says how */
        st->sandbox_pid = (pid_t)child;
        /* it waits for the release: alive, so the pidfd is its (-1 on a kernel before 5.3, as
           at the stress point pidfd_none) */
        st->sandbox_fd =
            KEEL_STRESS(pidfd_none) ? -1 : (int)syscall(SYS_pidfd_open, st->sandbox_pid, 0);
    }
    const gate_limits *l = &st->policy->limits;
    keel_status s = gate_cgroup_attach(&st->cg, st->pid);
    if (keel_ok(s) && st->sandbox_pid > 0)
        s = gate_cgroup_attach(&st->cg, st->sandbox_pid);
    if (keel_ok(s))
        s = gate_rlimits_apply(st->pid, l, &st->cg);
    if (keel_ok(s) && st->sandbox_pid > 0)
        s = gate_rlimits_apply(st->sandbox_pid, l, &st->cg);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "putting '%s' under its limits", st->spec->argv[0]);
    int e = send(st->rel_w, "\n", 1, MSG_NOSIGNAL) == 1 ? 0 : errno;
    close_fd(&st->rel_w);
    if (e == 0 && st->guard_w >= 0) /* the sandbox's trampoline, once bwrap's block is let go */
        e = send(st->guard_w, "\n", 1, MSG_NOSIGNAL) == 1 ? 0 : errno;
    close_fd(&st->guard_w);
    if (e != 0 && e != EPIPE)
        return KEEL_ERR_SYS(e, "cannot let '%s' start", st->spec->argv[0]);
    return KEEL_OK;
}

/*
 * A record of the running job for gate_exec_reap_orphans: the gate, the job,
 * its cgroups, its HOME.  One file per executor thread, rewritten for each
 * step and emptied at its end (a file made and removed per step costs the
 * filesystem more than the rest of the record).
 */
static keel_status write_record(step *st)
{
    const char *dir = st->spec->records;
    if (dir == NULL)
        return KEEL_OK;
    char text[(GATE_CG_N + 1) * (GATE_PATH_MAX + 16) + 128];
    int n = snprintf(text, sizeof(text), "gate %d %llu\njob %d %llu\n", (int)getpid(),
                     start_time(getpid(), NULL), (int)st->pid, start_time(st->pid, NULL));
    for (int c = 0; c < GATE_CG_N && n > 0 && (size_t)n < sizeof(text); c++)
        if (st->cg.dir[c][0] != '\0')
            n += snprintf(text + n, sizeof(text) - (size_t)n, "cgroup %s\n", st->cg.dir[c]);
    if (st->home[0] != '\0' && n > 0 && (size_t)n < sizeof(text))
        n += snprintf(text + n, sizeof(text) - (size_t)n, "home %s\n", st->home);
    gate_fmt(st->record, sizeof(st->record), "%s/%d-%ld", dir, (int)getpid(),
             (long)syscall(SYS_gettid));
    int fd = open(st->record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0 && n > 0)
        e = gate_write_all(fd, text, strnlen(text, sizeof(text)));
    if (fd >= 0)
        (void)close(fd);
    if (e != 0) {
        if (fd >= 0)
            (void)truncate(st->record, 0);
        st->record[0] = '\0';
        return KEEL_ERR_SYS(e, "cannot write the record of a running job in '%s'", dir);
    }
    return KEEL_OK;
}

/* Free what the step holds (its processes are gone). */
static void step_end(step *st)
{
    if (st->cg.version != 0)
        (void)gate_cgroup_remove(&st->cg);
    if (st->record[0] != '\0')
        (void)truncate(st->record, 0); /* the thread's next step writes it again */
    if (st->home[0] != '\0')
        gate_rm_tree(st->home); /* sandbox = none: the step's private HOME */
    keel_heap_free(EXEC_HEAP, st->argv);
    keel_heap_free(EXEC_HEAP, st->env);
    keel_heap_free(EXEC_HEAP, st->env_base);
    close_fd(&st->out_r);
    close_fd(&st->out_w);
    close_fd(&st->st_r);
    close_fd(&st->st_w);
    close_fd(&st->rel_r);
    close_fd(&st->rel_w);
    close_fd(&st->guard_r);
    close_fd(&st->guard_w);
    close_fd(&st->sandbox_fd);
    close_fd(&st->log);
}

/* Everything before the command runs; an error is the gate's failure, `*cannot` the program's. */
static keel_status prepare(step *st, bool *cannot)
{
    const gate_exec_spec *spec = st->spec;
    *cannot = false;
    struct stat sb;
    if (spec->dir == NULL || realpath(spec->dir, st->dir) == NULL || stat(st->dir, &sb) != 0 ||
        !S_ISDIR(sb.st_mode))
        return KEEL_ERR_SYS(spec->dir == NULL ? EINVAL : errno,
                            "the work tree '%s' of the job is not there",
                            spec->dir != NULL ? spec->dir : "");
    if (st->sandbox) {
        keel_status found = gate_bwrap_find(st->bwrap, sizeof(st->bwrap));
        if (!keel_ok(found))
            return found;
    } else {
        (void)snprintf(st->home, sizeof(st->home), "/tmp/keel-gate-home-XXXXXX");
        if (mkdtemp(st->home) == NULL) {
            int e = errno;
            st->home[0] = '\0';
            return KEEL_ERR_SYS(e, "cannot make a home directory for a job in /tmp");
        }
    }
    keel_status s = gate_sandbox_env(environ, st->policy != NULL ? st->policy->pass_env : NULL,
                                     spec->env, st->sandbox ? "/tmp/home" : st->home, &st->env);
    if (keel_ok(s) && st->policy != NULL && st->policy->ccache_dir[0] != '\0')
        s = add_ccache(st);
    if (keel_ok(s) && spec->records != NULL)
        s = add_marker(st, spec->records);
    if (!keel_ok(s))
        return s;
    if (!find_program(st)) {
        *cannot = true;
        return KEEL_OK;
    }
    if (st->policy != NULL) {
        s = KEEL_STRESS(cgroup_fail) ? KEEL_ERR_SYS(EACCES, "cannot make a cgroup for a job")
                                     : gate_cgroup_make(&st->policy->limits, &st->cg);
        if (KEEL_STRESS(cgroup_none) && keel_ok(s)) { /* as a machine with no cgroup to use */
            (void)gate_cgroup_remove(&st->cg);
            memset(&st->cg, 0, sizeof(st->cg));
        }
        if (!keel_ok(s))
            return s;
        char limits[768];
        gate_limits_describe(&st->policy->limits, &st->cg, st->sandbox, limits, sizeof(limits));
        if (st->sandbox)
            note(st, "keel-gate: sandbox: bubblewrap, %s%s%s; limits: %s",
                 st->policy->network ? "the host's network" : "no network",
                 st->policy->writable[0] != '\0' ? ", writable: " : "", st->policy->writable,
                 limits);
        else
            note(st, "keel-gate: sandbox: none ('sandbox = none'); limits: %s", limits);
        if (st->policy->ccache_dir[0] != '\0' && st->policy->ccache_writes_landed)
            note(st,
                 "keel-gate: compiler cache: '%s' (its configuration's landed layer, written: "
                 "a build of a landed commit)",
                 st->policy->ccache_landed);
        else if (st->policy->ccache_dir[0] != '\0')
            note(st,
                 "keel-gate: compiler cache: '%s' read-only (its configuration's landed "
                 "layer), new entries in '%s' (its own, merged when the change lands)",
                 st->policy->ccache_landed, st->policy->ccache_layer);
        else if (st->policy->ccache_note[0] != '\0')
            note(st, "keel-gate: %s", st->policy->ccache_note);
    }
    s = make_argv(st);
    if (!keel_ok(s))
        return s;
    int e = make_pipe(&st->out_r, &st->out_w, false);
    if (e == 0 && st->sandbox)
        e = make_pipe(&st->st_r, &st->st_w, false);
    if (e == 0 && st->policy != NULL)
        e = make_pipe(&st->rel_r, &st->rel_w, true);
    if (e == 0 && st->sandbox)
        e = make_pipe(&st->guard_r, &st->guard_w, true);
    if (e != 0)
        return KEEL_ERR_SYS(e, "cannot make a pipe for '%s'", spec->argv[0]);
    return KEEL_OK;
}

/* Does its work tree hold a file as large as `disk` (RLIMIT_FSIZE stopped it there)? */
static bool file_at_limit(const step *st)
{
    if (st->policy->limits.disk == 0)
        return false;
    unsigned long long used = 0, largest = 0;
    gate_tree_usage(st->dir, &used, &largest);
    return largest >= st->policy->limits.disk;
}

/* How the step ended, limits first (they are why it failed), then the sandbox's own failure. */
static keel_status classify(step *st, int wstatus, bool timed_out, bool cancelled,
                            const char *limit_hit)
{
    gate_exec_outcome *out = st->out;
    gate_cgroup_report rep;
    gate_cgroup_read(&st->cg, &rep);
    const gate_limits *l = st->policy != NULL ? &st->policy->limits : NULL;
    bool exited = WIFEXITED(wstatus);
    int code = exited ? WEXITSTATUS(wstatus) : -1;
    int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    long ran = st->sandbox ? status_number(st, "\"exit-code\":") : code;
    if (st->sandbox && ran >= 0) {
        code = (int)ran; /* the command's (bwrap exits with it too) */
        sig = code > 128 && code <= 128 + 64 ? code - 128 : 0;
    }
    bool passed = !timed_out && !cancelled && limit_hit == NULL && sig == 0 && code == 0 &&
                  (!st->sandbox || ran == 0);
    char size[32];
    if (cancelled) { /* the gate stopped it: nothing about it is a verdict */
        out->result = GATE_EXEC_CANCELLED;
        out->signal = sig;
        return KEEL_OK;
    }
    if (limit_hit == NULL && !passed && l != NULL) {
        if (rep.oom_kills > 0) {
            gate_size_text(l->memory, size, sizeof(size));
            (void)snprintf(out->reason, sizeof(out->reason),
                           "memory limit %s reached (killed by the OOM killer of its cgroup)",
                           size);
        } else if (rep.pids_max > 0) {
            (void)snprintf(out->reason, sizeof(out->reason),
                           "process limit %llu reached (%llu forks refused)%s", l->processes,
                           rep.pids_max, timed_out ? ", then its time ran out" : "");
        } else if (sig == SIGXFSZ || file_at_limit(st)) {
            gate_size_text(l->disk, size, sizeof(size));
            (void)snprintf(out->reason, sizeof(out->reason),
                           "disk limit %s reached (a file grew past it: SIGXFSZ)", size);
        } else if (sig == SIGXCPU) {
            (void)snprintf(out->reason, sizeof(out->reason), "cpu limit %llu s reached (SIGXCPU)",
                           l->cpu);
        }
        if (out->reason[0] != '\0')
            limit_hit = out->reason;
    }
    if (rep.oom_kills > 0 && passed)
        note(st, "keel-gate: its cgroup's OOM killer killed %llu process(es), and it passed anyway",
             rep.oom_kills);
    if (limit_hit != NULL) {
        if (limit_hit != out->reason)
            (void)snprintf(out->reason, sizeof(out->reason), "%s", limit_hit);
        out->result = GATE_EXEC_LIMIT;
        out->signal = sig;
        out->exit_code = code;
        note(st, "keel-gate: %s", out->reason);
    } else if (timed_out) {
        out->result = GATE_EXEC_TIMEOUT;
        out->signal = sig;
    } else if (st->sandbox && ran < 0) {
        /* the command never ran: all the output is bwrap's */
        char *nl = strchr(st->head, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(st->head, "bwrap: execvp ", 14) == 0) {
            out->result = GATE_EXEC_NOT_FOUND;
            out->exit_code = 127;
            return KEEL_OK;
        }
        return keel_status_with_int(
            KEEL_ERR(KEEL_E_STATE, "the sandbox of '%s' could not be set up (bwrap %s %d): %s",
                     st->spec->argv[0], exited ? "exited" : "was killed by signal",
                     exited ? code : sig, st->head[0] != '\0' ? st->head : "no message"),
            "bwrap_status", wstatus);
    } else if (sig != 0) {
        out->signal = sig;
        out->result = GATE_EXEC_CRASHED;
    } else {
        out->exit_code = code;
        out->result = code == 0 ? GATE_EXEC_PASSED : GATE_EXEC_FAILED;
    }
    if (rep.peak_memory > 0 && l != NULL) {
        gate_size_text(rep.peak_memory, size, sizeof(size));
        note(st, "keel-gate: peak memory %s, cpu %llu ms", size, rep.cpu_ms);
    }
    return KEEL_OK;
}

/* A limit it reached: why, for its log and the change's reason. */
static void hit(step *st, const char *fmt, ...) KEEL_PRINTF(2, 3);

static void hit(step *st, const char *fmt, ...)
{
    if (st->limit_hit != NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(st->limit_text, sizeof(st->limit_text), fmt, ap);
    va_end(ap);
    st->limit_hit = st->limit_text;
}

/* Its CPU (its cgroup) and its work tree's size against its limits. */
static void check_limits(step *st, const struct statvfs *fs0, unsigned long long now,
                         unsigned long long *walked_at)
{
    const gate_limits *lim = &st->policy->limits;
    unsigned long long cpu = lim->cpu > 0 ? gate_cgroup_cpu_ms(&st->cg) : ~0ull;
    if (cpu != ~0ull && cpu >= lim->cpu * 1000ull) {
        hit(st, "cpu limit %llu s reached", lim->cpu);
        return;
    }
    if (lim->processes > 0 && st->cg.dir[GATE_CG_PIDS][0] != '\0') {
        /* a job that keeps forking at its limit (a fork bomb) is stopped, not left to spin */
        gate_cgroup_report rep;
        gate_cgroup_read(&st->cg, &rep);
        if (rep.pids_max > 0 && st->refused_at == 0)
            st->refused_at = now;
        /*
         * a bomb that dies out at its limit (its shells exit when their fork
         * fails) leaves the rest waiting: stopped too, not left to its timeout
         */
        if (rep.pids_max >= FORKS_REFUSED_MAX ||
            (rep.pids_max > 0 && now - st->refused_at >= REFUSED_FOR_MS)) {
            hit(st, "process limit %llu reached (%llu forks refused)", lim->processes,
                rep.pids_max);
            return;
        }
    }
    struct statvfs fs;
    if (fs0 == NULL || now - *walked_at < 2000 || statvfs(st->dir, &fs) != 0 ||
        fs0->f_bavail <= fs.f_bavail ||
        (unsigned long long)(fs0->f_bavail - fs.f_bavail) * fs.f_frsize <= lim->disk / 2)
        return;
    *walked_at = now; /* the filesystem lost half the limit since the start: measure the tree */
    unsigned long long used = 0, largest = 0;
    gate_tree_usage(st->dir, &used, &largest);
    if (used <= lim->disk)
        return;
    char size[32], have[32];
    gate_size_text(lim->disk, size, sizeof(size));
    gate_size_text(used, have, sizeof(have));
    if (largest >= lim->disk) /* one file at the limit: its writer may be getting SIGXFSZ now */
        hit(st, "disk limit %s reached (its work tree holds %s; a file grew to the limit)", size,
            have);
    else
        hit(st, "disk limit %s reached (its work tree holds %s)", size, have);
}

/*
 * Its processes and threads counted in its PID namespace, where no pids cgroup
 * holds its limit: past it, the namespace's init is killed at once (the kernel
 * then kills every process in it), since nothing stops its forks meanwhile.
 */
static void count_tasks(step *st)
{
    unsigned long long limit = st->policy->limits.processes;
    unsigned long long tasks = gate_pidns_tasks(st->sandbox_pid);
    if (tasks <= limit)
        return;
    hit(st, "process limit %llu reached (%llu processes and threads counted)", limit, tasks);
    (void)kill(st->sandbox_pid, SIGKILL);
}

/*
 * Its work tree measured once more when it has ended: while it ran, the
 * tree is walked only when the filesystem lost half the limit, which other
 * work on the same filesystem can hide (files it removed meanwhile).
 */
static void over_disk_at_end(step *st)
{
    unsigned long long used = 0, largest = 0;
    gate_tree_usage(st->dir, &used, &largest);
    if (largest >= st->policy->limits.disk)
        return; /* one file stopped at the limit (SIGXFSZ): classify names that */
    if (used > st->policy->limits.disk) {
        char size[32], have[32];
        gate_size_text(st->policy->limits.disk, size, sizeof(size));
        gate_size_text(used, have, sizeof(have));
        hit(st, "disk limit %s reached (its work tree holds %s)", size, have);
    }
}

/*
 * Until the command has ended and everything it started with it: its output
 * into the log, bwrap's status, the timeout, the cancel flag and the limits.
 * A pidfd wakes it when the command exits.
 */
static void watch(step *st, unsigned long long start)
{
    const gate_exec_spec *spec = st->spec;
    char buf[CHUNK];
    bool term_sent = false, eof = false, reaped = false;
    unsigned long long term_at = 0, reaped_at = 0, next_check = start + CHECK_MS, walked_at = 0;
    struct statvfs fs0;
    bool disk = st->policy != NULL && st->policy->limits.disk > 0 && statvfs(st->dir, &fs0) == 0;
    int pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0); /* -1 (old kernel): poll's timeout */
    bool count = st->policy != NULL && st->policy->limits.processes > 0 && st->sandbox_pid > 0 &&
                 !gate_cgroup_has_pids(&st->cg);
    unsigned long long next_count = start;
    while (!eof || !reaped || st->st_r >= 0) {
        unsigned long long now = gate_now_ms();
        if (!term_sent && !reaped) {
            st->timed_out |= spec->timeout_ms > 0 && now - start >= spec->timeout_ms;
            st->cancelled |=
                spec->cancel != NULL && __atomic_load_n(spec->cancel, __ATOMIC_ACQUIRE);
            if (st->policy != NULL && now >= next_check) {
                next_check = now + CHECK_MS;
                check_limits(st, disk ? &fs0 : NULL, now, &walked_at);
            }
            if (count && now >= next_count) {
                next_count = now + COUNT_MS;
                count_tasks(st);
            }
            if (st->timed_out || st->cancelled || st->limit_hit != NULL || st->log_errno != 0) {
                term_sent = true;
                term_at = now;
                kill_group(st->pid, SIGTERM);
            }
        }
        if (term_sent && !reaped && now - term_at >= GRACE_MS) {
            kill_group(st->pid, SIGKILL);
            (void)gate_cgroup_kill(&st->cg);
        }
        struct pollfd pf[3];
        memset(pf, 0, sizeof(pf));
        nfds_t npf = 0;
        if (!eof)
            pf[npf++].fd = st->out_r;
        if (st->st_r >= 0)
            pf[npf++].fd = st->st_r;
        if (!reaped && pidfd >= 0)
            pf[npf++].fd = pidfd;
        for (nfds_t i = 0; i < npf; i++)
            pf[i].events = POLLIN;
        int rc = poll(pf, npf, reaped || pidfd >= 0 ? 50 : 5);
        for (nfds_t i = 0; rc > 0 && i < npf; i++) {
            if (pf[i].revents == 0 || pf[i].fd == pidfd)
                continue;
            if (pf[i].fd == st->st_r) {
                read_status(st);
                continue;
            }
            ssize_t n = read(st->out_r, buf, sizeof(buf));
            if (n > 0) {
                if (!take_output(st, buf, (size_t)n)) {
                    char size[32];
                    gate_size_text(spec->log_limit, size, sizeof(size));
                    hit(st, "output limit %s reached", size);
                }
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                eof = true;
            }
        }
        if (!reaped && wait4(st->pid, &st->wstatus, WNOHANG, &st->reaped) == st->pid) {
            reaped = true;
            reaped_at = gate_now_ms();
            /* what it left behind goes with it: the pipe can then close */
            kill_group(st->pid, SIGKILL);
            (void)gate_cgroup_kill(&st->cg);
        }
        if (reaped && !eof && gate_now_ms() - reaped_at >= LEFT_MS) {
            /* sandbox = none without a cgroup: a process that left its group holds the pipe */
            note(st, "keel-gate: a process the job started (outside its process group) kept its "
                     "output open and was left running; its output is not in this log");
            eof = true;
        }
        if (reaped && st->st_r >= 0 && gate_now_ms() - reaped_at >= LEFT_MS)
            close_fd(&st->st_r);
    }
    close_fd(&pidfd);
}

/* Whether the process of pidfd `fd` has exited by `until` (gate_now_ms). */
static bool sandbox_exited(int fd, unsigned long long until)
{
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int rc = poll(&pf, 1, 100);
        if (rc > 0 || (rc < 0 && errno != EINTR))
            return true;
        if (gate_now_ms() >= until)
            return false;
    }
}

/*
 * Until its sandbox's PID 1 has exited.  When the init of a PID namespace
 * exits, the kernel kills what is left in it, and the init's exit waits until
 * all of that is gone.  Nothing else waits for it: bwrap's monitor, killed by
 * the gate (a limit, the timeout, a cancel), exits at once, and the output's
 * EOF comes when the last process holding it has closed it, while one that
 * closed it earlier may still be exiting (freeing a large memory takes a
 * while).  A pids cgroup's removal waits for its processes, but without one
 * the next job would start while this one's still count against the user's
 * or the machine's process limit, and its forks could be refused
 * (tests/test_gate_exec.c, test_sandbox_gone_at_its_end).  SIGKILL first: the
 * job has ended, nothing of it may run on.  Without a pidfd (a kernel before
 * 5.3) nothing is waited for.  At the stress point gone_late the log says so
 * as if the processes were still exiting GONE_MS after the end.
 */
static void sandbox_gone(step *st)
{
    if (st->sandbox_fd < 0)
        return;
    (void)syscall(SYS_pidfd_send_signal, st->sandbox_fd, SIGKILL, NULL, 0u);
    if (!sandbox_exited(st->sandbox_fd, gate_now_ms() + GONE_MS) || KEEL_STRESS(gone_late))
        note(st, "keel-gate: its sandbox's processes were still exiting %d s after it ended",
             GONE_MS / 1000);
}

/*
 * The job's CPU that did not come back to the gate with the process it
 * reaped (resources.h, gate_hidden_cpu_add): its cgroup's, every process
 * dead by now, less the reaped process's own and its children's.  In the
 * sandbox that is nearly all of it (bwrap's monitor does not wait for the
 * sandbox); with `sandbox = none`, what the job left behind and its cgroup
 * killed.  A sandboxed job without CPU accounting is counted as unknown.
 */
static void account_hidden(const step *st)
{
    unsigned long long cg = gate_cgroup_cpu_ms(&st->cg);
    if (cg == ~0ull) {
        if (st->sandbox)
            gate_hidden_cpu_unknown();
        return;
    }
    const struct rusage *r = &st->reaped;
    unsigned long long back =
        (unsigned long long)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1000ull +
        (unsigned long long)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1000ull;
    if (cg > back)
        gate_hidden_cpu_add(cg - back);
}

keel_status gate_exec_run(const gate_exec_spec *spec, gate_exec_outcome *out)
{
    KEEL_ASSERT(spec != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    if (spec->argv == NULL || spec->argv[0] == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "a job needs a command");
    step st;
    step_init(&st, spec, out);
    int log_errno = ENOSPC;
    if (!KEEL_STRESS(log_fail)) {
        st.log = open(spec->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        log_errno = errno;
    }
    if (st.log < 0)
        return KEEL_ERR_SYS(log_errno, "cannot open job log '%s'", spec->log);
    unsigned long long start = gate_now_ms();
    bool cannot = false;
    keel_status s = prepare(&st, &cannot);
    if (keel_ok(s) && cannot) {
        /* the change's: exit 127, the reason in its log */
        note(&st, "keel-gate: cannot run '%s': %s", spec->argv[0], st.why);
        s = st.log_errno != 0 ? KEEL_ERR_SYS(st.log_errno, "cannot write job log '%s'", spec->log)
                              : KEEL_OK;
        out->result = GATE_EXEC_NOT_FOUND;
        out->exit_code = 127;
        out->elapsed_ms = gate_now_ms() - start;
        step_end(&st);
        return s;
    }
    int spawn_errno = 0;
    if (keel_ok(s)) {
        const char *file = st.sandbox ? st.bwrap : st.argv != NULL ? "/bin/sh" : st.prog;
        spawn_errno = spawn(&st, file, st.argv != NULL ? st.argv : spec->argv);
        close_fd(&st.out_w);
        close_fd(&st.st_w);
        close_fd(&st.rel_r);
        close_fd(&st.guard_r);
    }
    if (keel_ok(s) && spawn_errno != 0) {
        s = KEEL_ERR_SYS(spawn_errno, "cannot start '%s'", st.sandbox ? st.bwrap : spec->argv[0]);
        if (spawn_errno == E2BIG) { /* its arguments and environment: the change's */
            keel_status_free(s);
            s = KEEL_OK;
            note(&st, "keel-gate: cannot run '%s': %s", spec->argv[0], strerror(spawn_errno));
            out->result = GATE_EXEC_NOT_FOUND;
            out->exit_code = 127;
        }
        out->elapsed_ms = gate_now_ms() - start;
        step_end(&st);
        return s;
    }
    if (!keel_ok(s)) {
        step_end(&st);
        return KEEL_CONTEXT(s, "running '%s'", spec->argv[0]);
    }
    track_group(st.pid); /* its group is its pid: set before it ran (POSIX_SPAWN_SETPGROUP) */
    if (st.policy != NULL) {
        s = write_record(&st);
        if (keel_ok(s))
            s = release(&st);
        if (!keel_ok(s)) { /* it never ran: kill what was started, the gate failed */
            kill_group(st.pid, SIGKILL);
            (void)gate_cgroup_kill(&st.cg);
            (void)waitpid(st.pid, NULL, 0);
            untrack_group(st.pid);
            step_end(&st);
            return KEEL_CONTEXT(s, "running '%s'", spec->argv[0]);
        }
    }

    watch(&st, start);
    sandbox_gone(&st);
    untrack_group(st.pid); /* after the group's last kill */
    while (__atomic_load_n(&frozen, __ATOMIC_SEQ_CST))
        (void)pause(); /* the process is exiting: this job's end is nobody's result */
    out->elapsed_ms = gate_now_ms() - start;
    if (out->log_truncated)
        note(&st, "\nkeel-gate: log truncated at %llu bytes", spec->log_limit);
    if (st.policy != NULL && st.policy->limits.disk > 0 && st.limit_hit == NULL && !st.cancelled)
        over_disk_at_end(&st); /* what the checks while it ran could not tell apart */
    s = classify(&st, st.wstatus, st.timed_out, st.cancelled, st.limit_hit);
    account_hidden(&st);
    if (keel_ok(s) && st.log_errno != 0)
        s = KEEL_ERR_SYS(st.log_errno, "cannot write job log '%s'", spec->log);
    step_end(&st);
    return s;
}

/* ---- orphans of a killed gate ------------------------------------------------------ */

/* Is process `pid` with start time `t` still there (not a zombie)? */
static bool alive(pid_t pid, unsigned long long t)
{
    char state = '?';
    return pid > 0 && t > 0 && start_time(pid, &state) == t && state != 'Z' && state != 'X';
}

/*
 * A process whose environment reads empty (the caller read it) and whose
 * command line does too, neither a zombie nor a kernel thread: in the middle
 * of an execve (the new image's arguments and environment are not set up
 * yet), so it cannot be told to be a job's or not; a job's shell starting its
 * command shows one such for a moment.  (A process with only an empty
 * environment, as some containers' init, is settled: it is not a job's.)
 */
static bool unsettled(pid_t pid)
{
    char path[64], arg[8];
    (void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t got = read(fd, arg, sizeof(arg));
    (void)close(fd);
    char state = '?';
    unsigned long long flags = got == 0 ? gate_proc_stat(pid, 9, &state) : 0;
    return got == 0 && state != 'Z' && state != 'X' && state != '?' &&
           (flags & PF_KTHREAD_FLAG) == 0;
}

/*
 * Processes carrying the marker of a gate of `records` that is no longer
 * alive: killed (SIGKILL), and waited for (up to 5 s).  *found: how many.
 * While a process is unsettled (its environment not readable yet), /proc
 * is read again, for UNSETTLED_ROUNDS rounds at most (a process that really
 * has an empty environment costs a sweep that much): a job's process in the
 * middle of an execve when the gate looked would otherwise run on beside the
 * next gate's jobs (gate_chaos_found.test_no_job_of_a_killed_unsandboxed_gate_runs_on,
 * seen once in a make check under load, session 22).
 */
static keel_status sweep_marked(const char *records, size_t *found)
{
    char want[48];
    int wn = snprintf(want, sizeof(want), "KEEL_GATE_JOB=%016llx:", records_hash(records));
    *found = 0;
    enum { KILLED_MAX = 4096 };
    static pid_t killed[KILLED_MAX]; /* run's start only, one thread: waited for below */
    static unsigned long long killed_at[KILLED_MAX];
    size_t nkilled = 0;
    for (int round = 0; round < 250; round++) {
        DIR *d = opendir("/proc");
        if (d == NULL)
            return KEEL_ERR_SYS(errno, "cannot read /proc");
        size_t live = 0, unsure = 0;
        for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
            char path[64], env[16384];
            (void)snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue; /* gone, or another user's: not ours */
            ssize_t got = read(fd, env, sizeof(env) - 1);
            (void)close(fd);
            if (got == 0 && round < UNSETTLED_ROUNDS && unsettled(pid))
                unsure++; /* in the middle of an execve: its environment not there yet */
            if (got <= 0)
                continue; /* exiting (its memory gone), or a kernel thread */
            env[got] = '\0';
            for (ssize_t i = 0; i < got; i += (ssize_t)strlen(env + i) + 1) {
                if (strncmp(env + i, want, (size_t)wn) != 0)
                    continue;
                char *end = NULL;
                long gpid = strtol(env + i + wn, &end, 10);
                unsigned long long gt =
                    end != NULL && *end == ':' ? strtoull(end + 1, NULL, 10) : 0;
                char state = '?';
                unsigned long long t = start_time(pid, &state);
                if (!alive((pid_t)gpid, gt) && t > 0 && state != 'Z' && state != 'X') {
                    (void)kill(pid, SIGKILL);
                    live++;
                    if (nkilled < KILLED_MAX) {
                        killed[nkilled] = pid;
                        killed_at[nkilled++] = t;
                    }
                }
                break;
            }
        }
        (void)closedir(d);
        /* and until what was killed is gone (an exiting process no longer shows its marker) */
        for (size_t i = 0; i < nkilled; i++)
            if (alive(killed[i], killed_at[i]))
                live++;
        if (round == 0)
            *found = live;
        if (live == 0 && unsure == 0)
            return KEEL_OK;
        struct timespec ms = {0, 20000000};
        (void)nanosleep(&ms, NULL);
    }
    return KEEL_ERR(KEEL_E_BUSY,
                    "processes of a killed keel-gate's jobs survived SIGKILL for 5 s: no job may "
                    "run alongside them");
}

static keel_status reap_one(const char *path, bool *reaped)
{
    *reaped = false;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return KEEL_OK; /* gone meanwhile */
    char line[GATE_PATH_MAX + 32];
    long gate_pid = 0, job_pid = 0;
    unsigned long long gate_t = 0, job_t = 0;
    gate_cgroup cg;
    memset(&cg, 0, sizeof(cg));
    int ncg = 0;
    char home[GATE_PATH_MAX] = "";
    while (fgets(line, sizeof(line), f) != NULL) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        bool is_gate = strncmp(line, "gate ", 5) == 0, is_job = strncmp(line, "job ", 4) == 0;
        if (is_gate || is_job) { /* "gate|job <pid> <start time>" */
            char *end = NULL;
            long pid = strtol(line + (is_gate ? 5 : 4), &end, 10);
            unsigned long long t = end != NULL && *end == ' ' ? strtoull(end + 1, NULL, 10) : 0;
            *(is_gate ? &gate_pid : &job_pid) = pid;
            *(is_gate ? &gate_t : &job_t) = t;
            continue;
        }
        if (strncmp(line, "cgroup ", 7) == 0 && ncg < GATE_CG_N && gate_cgroup_path_ok(line + 7)) {
            gate_fmt(cg.dir[ncg++], GATE_PATH_MAX, "%s", line + 7);
            cg.version = strstr(line, "/job-") != NULL ? 1 : 2;
        }
        if (strncmp(line, "home /tmp/keel-gate-home-", 25) == 0 && strstr(line, "/..") == NULL)
            gate_fmt(home, sizeof(home), "%s", line + 5);
    }
    (void)fclose(f);
    if (alive((pid_t)gate_pid, gate_t))
        return KEEL_OK;  /* a running gate's job */
    if (gate_pid == 0) { /* empty: no job ran from that thread when its gate was killed */
        (void)unlink(path);
        return KEEL_OK;
    }
    bool job = alive((pid_t)job_pid, job_t);
    if (job) {
        (void)kill(-(pid_t)job_pid, SIGKILL);
        (void)kill((pid_t)job_pid, SIGKILL);
    }
    (void)gate_cgroup_kill(&cg);
    for (int i = 0; job && i < 250 && alive((pid_t)job_pid, job_t); i++) {
        struct timespec ms = {0, 20000000};
        (void)nanosleep(&ms, NULL);
    }
    if (job && alive((pid_t)job_pid, job_t))
        return KEEL_ERR(KEEL_E_BUSY,
                        "process %ld, a job of a killed keel-gate (pid %ld), survived SIGKILL: no "
                        "job may run alongside it",
                        job_pid, gate_pid);
    char first[GATE_PATH_MAX];
    (void)snprintf(first, sizeof(first), "%s", cg.dir[0]);
    if (!gate_cgroup_remove(&cg))
        return KEEL_ERR(KEEL_E_BUSY,
                        "a cgroup of a killed keel-gate's job ('%s', ...) holds processes that "
                        "survived SIGKILL: no job may run alongside them",
                        first);
    if (home[0] != '\0')
        gate_rm_tree(home);
    (void)unlink(path);
    *reaped = true;
    return KEEL_OK;
}

keel_status gate_exec_reap_orphans(const char *dir, size_t *reaped)
{
    KEEL_ASSERT(dir != NULL && reaped != NULL);
    *reaped = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT
                   ? KEEL_OK
                   : KEEL_ERR_SYS(errno, "cannot read the records of jobs in '%s'", dir);
    keel_status s = KEEL_OK;
    for (struct dirent *e = readdir(d); e != NULL && keel_ok(s); e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        char path[GATE_PATH_MAX + 256];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        bool one = false;
        s = reap_one(path, &one);
        *reaped += one ? 1u : 0u;
    }
    (void)closedir(d);
    size_t marked = 0;
    if (keel_ok(s))
        s = sweep_marked(dir, &marked); /* what no record names (killed before it was written) */
    if (keel_ok(s) && *reaped == 0 && marked > 0)
        *reaped = 1;
    return s;
}
