/*
 * exec.c - keel-gate's job runner.
 *
 * The job is started with posix_spawn (no copy of the gate's memory): its
 * own process group, a pipe for stdout and stderr, the gate's environment
 * with the job's added.  The parent copies the pipe into the log up to the
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
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heaps.h"

#define EXEC_HEAP KEEL_MODULE_REF(gate_exec)

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

unsigned long long gate_now_ms(void)
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

/* The value of NAME in `env` (NAME=value strings), or NULL. */
static const char *env_value(char *const *env, const char *name)
{
    size_t len = strlen(name);
    for (char *const *e = env; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* Does `env` set the variable that `var` (NAME=value) sets? */
static bool env_sets(char *const *env, const char *var)
{
    const char *eq = strchr(var, '=');
    size_t len = eq != NULL ? (size_t)(eq - var) : strlen(var);
    for (char *const *e = env; e != NULL && *e != NULL; e++)
        if (strncmp(*e, var, len) == 0 && (*e)[len] == '=')
            return true;
    return false;
}

/* The job's environment: the gate's, with spec->env added or replacing (on gate_exec's heap). */
static keel_status job_environment(const gate_exec_spec *spec, char ***out)
{
    size_t n = 0, extra = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        n++;
    for (char *const *e = spec->env; e != NULL && *e != NULL; e++)
        extra++;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(EXEC_HEAP, (n + extra + 1) * sizeof(char *), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "the environment of '%s'", spec->argv[0]);
    char **env = (char **)mem;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_sets(spec->env, environ[i]))
            env[k++] = environ[i];
    for (size_t i = 0; i < extra; i++)
        env[k++] = spec->env[i];
    env[k] = NULL;
    *out = env;
    return KEEL_OK;
}

/* `name` looked up in `path` (a job's PATH) into buf; NULL when it is in none of its directories. */
static const char *look_up(const char *path, const char *name, char *buf, size_t size)
{
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int n = snprintf(buf, size, "%.*s%s%s", (int)len, p, len > 0 ? "/" : "", name);
        if (n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
            return buf;
        if (end == NULL)
            return NULL;
        p = end;
    }
}

/*
 * Start the job with posix_spawn (vfork-like: no copy of the gate's page
 * tables, no copy-on-write faults after): its own process group, stdin from
 * /dev/null, stdout and stderr into `out_fd`, in spec->dir, an empty signal
 * mask and every signal at its default.  An errno when it could not start
 * (no such program, directory, ...).
 */
static int spawn(const gate_exec_spec *spec, char *const *env, int out_fd, pid_t *pid)
{
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
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    if (rc == 0 && spec->dir != NULL)
        rc = posix_spawn_file_actions_addchdir_np(&fa, spec->dir);
    /* a PATH the job sets is where its program is looked up, as execvp in the job would */
    const char *job_path = env_value(spec->env, "PATH");
    if (rc == 0 && job_path != NULL && strchr(spec->argv[0], '/') == NULL) {
        char buf[4096];
        const char *file = look_up(job_path, spec->argv[0], buf, sizeof(buf));
        rc = file != NULL ? posix_spawn(pid, file, &fa, &attr, spec->argv, env) : ENOENT;
    } else if (rc == 0) {
        rc = posix_spawnp(pid, spec->argv[0], &fa, &attr, spec->argv, env);
    }
    (void)posix_spawnattr_destroy(&attr);
    (void)posix_spawn_file_actions_destroy(&fa);
    return rc;
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
    int out_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        (void)close(log);
        return KEEL_ERR_SYS(e, "cannot make a pipe for '%s'", spec->argv[0]);
    }
    char **env = NULL;
    keel_status s = job_environment(spec, &env);
    if (!keel_ok(s)) {
        (void)close(log);
        (void)close(out_pipe[0]);
        (void)close(out_pipe[1]);
        return s;
    }
    unsigned long long start = gate_now_ms();
    pid_t pid = 0;
    int spawn_errno = spawn(spec, env, out_pipe[1], &pid);
    keel_heap_free(EXEC_HEAP, env);
    (void)close(out_pipe[1]);
    if (spawn_errno != 0) {
        /* as a job that could not be started: exit 127, the reason in its log */
        (void)close(out_pipe[0]);
        char note[512];
        keel_status why = KEEL_ERR_SYS(spawn_errno, "cannot run '%s'", spec->argv[0]);
        int n = snprintf(note, sizeof(note), "keel-gate: %s\n", keel_status_message(why));
        keel_status_free(why);
        if (n > 0)
            write_all(log, note, (size_t)n < sizeof(note) ? (size_t)n : sizeof(note) - 1);
        (void)close(log);
        out->result = GATE_EXEC_NOT_FOUND;
        out->exit_code = 127;
        out->elapsed_ms = gate_now_ms() - start;
        return KEEL_OK;
    }
    track_group(pid); /* its group is its pid: set before it ran (POSIX_SPAWN_SETPGROUP) */

    char buf[CHUNK];
    unsigned long written = 0;
    bool timed_out = false, cancelled = false, term_sent = false, eof = false;
    unsigned long long term_at = 0;
    int wstatus = 0;
    bool reaped = false;
    while (!eof || !reaped) {
        unsigned long long now = gate_now_ms();
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
    out->elapsed_ms = gate_now_ms() - start;
    if (out->log_truncated) {
        char note[128];
        int n = snprintf(note, sizeof(note), "\nkeel-gate: log truncated at %lu bytes\n",
                         spec->log_limit);
        if (n > 0)
            write_all(log, note, (size_t)n);
    }
    (void)close(log);
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
