/*
 * slurm_client.c - keel-gate's Slurm executor running Slurm's clients (srun,
 * salloc, squeue, scancel) and waiting for them, and reconciling at start:
 * the Slurm jobs and files a killed keel-gate left (slurm.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "slurm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "pool.h"
#include "slurm_int.h"

extern char **environ;

/*
 * Start `argv` (a Slurm client) with the gate's environment, its input from `in` (-1:
 * /dev/null), its output into `out`.
 */
keel_status gate_slurm__spawn(char *const *argv, int in, const char *out, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return KEEL_ERR_SYS(ENOMEM, "cannot start '%s'", argv[0]);
    int rc = in >= 0 ? posix_spawn_file_actions_adddup2(&fa, in, 0)
                     : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (rc == 0)
        rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    (void)posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return KEEL_ERR_SYS(rc, "cannot start '%s' (is Slurm's client installed?)", argv[0]);
    return KEEL_OK;
}

void gate_slurm__nap_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Wait for `pid`: its wait status; polls *cancel (then on_cancel once) when given.  A pidfd
 * wakes it when the process exits (-1 on an old kernel: a poll every few ms).
 */
int gate_slurm__wait_for(pid_t pid, const int *cancel, void (*on_cancel)(void *), void *arg)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool cancelled = false;
    int status = -1;
    for (;;) {
        int st = 0;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) {
            status = st;
            break;
        }
        if (got < 0 && errno != EINTR)
            break;
        if (!cancelled && cancel != NULL && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            cancelled = true;
            on_cancel(arg);
        }
        struct pollfd pf = {pidfd, POLLIN, 0};
        if (pidfd < 0 || poll(&pf, 1, 50) < 0)
            gate_slurm__nap_ms(5);
    }
    if (pidfd >= 0)
        (void)close(pidfd);
    return status;
}

/* Run a Slurm client to its end: its exit code (-1: it did not run), its output into `out`. */
int gate_slurm__run_client(char *const *argv, const char *out)
{
    pid_t pid = 0;
    keel_status s = gate_slurm__spawn(argv, -1, out, &pid);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return -1;
    }
    int st = gate_slurm__wait_for(pid, NULL, NULL, NULL);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The last non-empty line of `path` (what a Slurm client said last), or "". */
void gate_slurm__last_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '\0')
            gate_fmt(buf, size, "%s", line);
    }
    (void)fclose(f);
}

/* Does `path` hold `needle`? */
bool gate_slurm__file_says(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    (void)fclose(f);
    return found;
}

/* The files of steps whose gate is gone (*.log.spec, *.log.spec.result, *.log.srun) in `logs`. */
static void remove_leftovers(const char *logs)
{
    DIR *d = opendir(logs);
    if (d == NULL)
        return;
    static const char *const ends[] = {".log.spec", ".log.spec.result", ".log.spec.tmp",
                                       ".log.spec.result.tmp", ".log.srun"};
    char path[GATE_PATH_MAX + 300];
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        size_t n = strlen(e->d_name);
        for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
            size_t m = strlen(ends[i]);
            if (strncmp(e->d_name, "job-", 4) == 0 && n > m &&
                strcmp(e->d_name + n - m, ends[i]) == 0) {
                gate_fmt(path, sizeof(path), "%s/%s", logs, e->d_name);
                (void)unlink(path);
            }
        }
    }
    (void)closedir(d);
}

keel_status gate_slurm_reconcile(const char *logs, size_t *cancelled)
{
    KEEL_ASSERT(logs != NULL && cancelled != NULL);
    *cancelled = 0;
    char out[GATE_PATH_MAX + 32], mine[GATE_PATH_MAX + 16];
    gate_fmt(out, sizeof(out), "%s/squeue.out", logs);
    gate_fmt(mine, sizeof(mine), ",logs=%s", logs);
    char squeue[] = "squeue", noheader[] = "--noheader", format[] = "--format=%A|%k";
    char *const q[] = {squeue, noheader, format, NULL};
    int rc = gate_slurm__run_client(q, out);
    if (rc != 0) {
        char said[512];
        gate_slurm__last_line(out, said, sizeof(said));
        (void)unlink(out);
        return KEEL_ERR(KEEL_E_IO, "slurm: squeue exited %d%s%s", rc, said[0] != '\0' ? ": " : "",
                        said);
    }
    FILE *f = fopen(out, "re");
    char line[GATE_PATH_MAX + 128];
    enum { MAX_IDS = 64 };
    char ids[MAX_IDS][24];
    char scancel[] = "scancel", quiet[] = "--quiet";
    char *c[MAX_IDS + 3] = {scancel, quiet};
    size_t n = 0;
    while (f != NULL && n < MAX_IDS && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *bar = strchr(line, '|');
        if (bar == NULL || strncmp(bar + 1, "keel:", 5) != 0)
            continue;
        const char *l = strstr(bar, mine), *pid = strstr(bar, ",pid=");
        if (l == NULL || l[strlen(mine)] != '\0' || bar - line >= (ptrdiff_t)sizeof(ids[0]))
            continue;
        long owner = pid != NULL ? strtol(pid + 5, NULL, 10) : 0;
        if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno != ESRCH))
            continue; /* its gate (a run, a try) is alive and waits for it */
        *bar = '\0';
        gate_fmt(ids[n], sizeof(ids[n]), "%s", line);
        c[2 + n] = ids[n];
        n++; /* more than MAX_IDS: the rest at the next start */
    }
    if (f != NULL)
        (void)fclose(f);
    c[2 + n] = NULL;
    if (n > 0) {
        rc = gate_slurm__run_client(c, out);
        if (rc != 0) {
            (void)unlink(out);
            return KEEL_ERR(KEEL_E_IO, "slurm: scancel of %zu job(s) exited %d", n, rc);
        }
    }
    *cancelled = n;
    remove_leftovers(logs);
    (void)unlink(out);
    return KEEL_OK;
}

keel_status gate_slurm_start(const gate_config *target, const char *work, size_t *cancelled)
{
    KEEL_ASSERT(work != NULL && cancelled != NULL);
    *cancelled = 0;
    if (target == NULL || target->executor != GATE_EXECUTOR_SLURM)
        return KEEL_OK;
    char logs[GATE_PATH_MAX];
    gate_fmt(logs, sizeof(logs), "%s/logs", work);
    keel_status s = gate_slurm_reconcile(logs, cancelled);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s,
                            "cancelling the Slurm jobs a killed keel-gate left (no job may "
                            "start before: is slurmctld reachable? SLURM_CONF='%s')",
                            getenv("SLURM_CONF") != NULL ? getenv("SLURM_CONF") : "");
    return KEEL_OK;
}
