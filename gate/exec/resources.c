/*
 * resources.c - a job's cgroup and rlimits (resources.h).
 *
 * What the machine offers is found once per process: the cgroup mounts in
 * /proc/self/mountinfo, the gate's own cgroups in /proc/self/cgroup, and
 * whether it may make cgroups under them.  Each job then gets its own:
 * v1 <mount><own>/keel-gate-<pid>/job-<n> in each of memory, pids and
 * cpuacct (its CPU limit, and its CPU for the capacity's reading: a job
 * without a CPU limit goes without cpuacct where none can be made); v2 <mount><own>/keel-gate-<pid>-<n>, the
 * gate itself moved into the leaf <own>/gate first (a cgroup v2 parent with
 * controllers enabled holds no processes).
 */
#define _GNU_SOURCE 1
#include "resources.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *const v1_names[GATE_CG_N] = {"memory", "pids", "cpuacct"};

typedef struct cg_system {
    int version;                         /* 0: none, 1, 2 */
    char base[GATE_CG_N][GATE_PATH_MAX]; /* v1: per controller, "" when not usable; v2: [0] */
    char mounts[8][GATE_PATH_MAX];       /* every cgroup mount point (for record checks) */
    size_t nmounts;
} cg_system;

static cg_system sys_cg;
static pthread_once_t sys_once = PTHREAD_ONCE_INIT;
static unsigned long long job_seq;

/* Read a small file into buf (NUL-terminated); false when it cannot be read. */
static bool read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    (void)close(fd);
    buf[got] = '\0';
    return true;
}

/* Write `text` to a cgroup file; an errno, 0 when it worked. */
static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int e = n == (ssize_t)len ? 0 : (n < 0 ? errno : EIO);
    (void)close(fd);
    return e;
}

static int write_in(const char *dir, const char *file, const char *text)
{
    char path[GATE_PATH_MAX + 64];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
    return write_file(path, text);
}

/* The number after `key ` in a "key value" lines file, or 0. */
static unsigned long long key_value(const char *dir, const char *file, const char *key)
{
    char path[GATE_PATH_MAX + 64], buf[4096];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (dir[0] == '\0' || !read_file(path, buf, sizeof(buf)))
        return 0;
    size_t len = strlen(key);
    for (const char *p = buf; *p != '\0';) {
        if (strncmp(p, key, len) == 0 && p[len] == ' ')
            return strtoull(p + len + 1, NULL, 10);
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return 0;
}

static unsigned long long number_in(const char *dir, const char *file)
{
    char path[GATE_PATH_MAX + 64], buf[64];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (dir[0] == '\0' || !read_file(path, buf, sizeof(buf)))
        return 0;
    return strtoull(buf, NULL, 10);
}

/* Does the comma-separated `list` hold `word`? */
static bool has_word(const char *list, const char *word, char sep)
{
    size_t n = strlen(word);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, sep);
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* The gate's own cgroup for a v1 controller (or v2: `controller` NULL) from /proc/self/cgroup. */
static bool own_cgroup(const char *text, const char *controller, char *out, size_t size)
{
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        const char *c1 = strchr(line, ':');
        const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 != NULL && (nl == NULL || c2 < nl)) {
            char ctrls[256];
            (void)snprintf(ctrls, sizeof(ctrls), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
            bool match = controller == NULL ? strncmp(line, "0::", 3) == 0
                                            : has_word(ctrls, controller, ',');
            if (match) {
                size_t len = nl != NULL ? (size_t)(nl - c2 - 1) : strlen(c2 + 1);
                (void)snprintf(out, size, "%.*s", (int)len, c2 + 1);
                if (strcmp(out, "/") == 0)
                    out[0] = '\0';
                return true;
            }
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    return false;
}

/* Is this process alone in the v2 cgroup `dir`? */
static bool alone_in(const char *dir)
{
    char path[GATE_PATH_MAX + 32], buf[256];
    (void)snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    if (!read_file(path, buf, sizeof(buf)))
        return false;
    return strtol(buf, NULL, 10) == (long)getpid() && strchr(buf, '\n') == buf + strlen(buf) - 1;
}

/* cgroup v2 delegated to the gate: move it into <own>/gate, enable memory and pids below <own>. */
static void try_v2(const char *mount, const char *own)
{
    char dir[GATE_PATH_MAX], buf[512];
    gate_fmt(dir, sizeof(dir), "%s%s", mount, own);
    char path[GATE_PATH_MAX + 32];
    (void)snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
    if (!read_file(path, buf, sizeof(buf)) || !has_word(buf, "memory", ' ') ||
        !has_word(buf, "pids", ' '))
        return;
    (void)snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    char enabled[512] = "";
    (void)read_file(path, enabled, sizeof(enabled));
    char *nl = strchr(enabled, '\n');
    if (nl != NULL)
        *nl = '\0';
    bool ready = has_word(enabled, "memory", ' ') && has_word(enabled, "pids", ' ');
    if (!ready) {
        if (!alone_in(dir) || access(path, W_OK) != 0)
            return;
        char leaf[GATE_PATH_MAX + 8], pid[32];
        (void)snprintf(leaf, sizeof(leaf), "%s/gate", dir);
        (void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
        if ((mkdir(leaf, 0755) != 0 && errno != EEXIST) || write_in(leaf, "cgroup.procs", pid) != 0)
            return;
        if (write_file(path, "+memory +pids") != 0)
            return;
    }
    sys_cg.version = 2;
    (void)snprintf(sys_cg.base[0], sizeof(sys_cg.base[0]), "%s", dir);
}

/* Does the cgroup `dir` hold a process? */
static bool holds_processes(const char *dir)
{
    char path[2 * GATE_PATH_MAX + 32], buf[16];
    (void)snprintf(path, sizeof(path), "%.2047s/cgroup.procs", dir);
    return !read_file(path, buf, sizeof(buf)) || buf[0] != '\0';
}

/* An empty cgroup and its empty children removed (one that holds a process is left). */
static void remove_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char child[2 * GATE_PATH_MAX];
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        (void)snprintf(child, sizeof(child), "%.1300s/%.255s", dir, e->d_name);
        if (!holds_processes(child))
            (void)rmdir(child);
    }
    (void)closedir(d);
    if (!holds_processes(dir))
        (void)rmdir(dir);
}

/*
 * The empty cgroups that gates no longer running left in `parent`
 * (keel-gate-<pid>[-<job>]: a gate killed before it removed them, whose
 * records no gate read again).  One that holds a process is left to the
 * records' sweep; a live pid may be a gate of another PID namespace.
 */
static void sweep_left(const char *parent)
{
    DIR *d = opendir(parent);
    if (d == NULL)
        return;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || strncmp(e->d_name, "keel-gate-", 10) != 0)
            continue;
        long pid = strtol(e->d_name + 10, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char dir[GATE_PATH_MAX + 300];
        (void)snprintf(dir, sizeof(dir), "%.1023s/%.255s", parent, e->d_name);
        remove_empty(dir);
    }
    (void)closedir(d);
}

static void detect(void)
{
    static char cgroups[4096], info[65536];
    if (!read_file("/proc/self/cgroup", cgroups, sizeof(cgroups)) ||
        !read_file("/proc/self/mountinfo", info, sizeof(info)))
        return;
    char v2_mount[GATE_PATH_MAX] = "";
    char v1_mount[GATE_CG_N][GATE_PATH_MAX];
    memset(v1_mount, 0, sizeof(v1_mount));
    for (char *line = info; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        /* id parent major:minor root mountpoint options ... - fstype source superoptions */
        char point[GATE_PATH_MAX], fstype[32], super[512];
        const char *dash = strstr(line, " - ");
        if (dash != NULL && sscanf(line, "%*s %*s %*s %*s %1023s", point) == 1 &&
            sscanf(dash + 3, "%31s %*s %511s", fstype, super) == 2) {
            bool v1 = strcmp(fstype, "cgroup") == 0, v2 = strcmp(fstype, "cgroup2") == 0;
            if ((v1 || v2) && sys_cg.nmounts < 8)
                (void)snprintf(sys_cg.mounts[sys_cg.nmounts++], GATE_PATH_MAX, "%s", point);
            if (v2 && v2_mount[0] == '\0')
                (void)snprintf(v2_mount, sizeof(v2_mount), "%s", point);
            for (int c = 0; v1 && c < GATE_CG_N; c++)
                if (has_word(super, v1_names[c], ',') && v1_mount[c][0] == '\0')
                    (void)snprintf(v1_mount[c], sizeof(v1_mount[c]), "%s", point);
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    char own[GATE_PATH_MAX];
    if (v2_mount[0] != '\0' && own_cgroup(cgroups, NULL, own, sizeof(own))) {
        try_v2(v2_mount, own);
        if (sys_cg.version == 2) {
            sweep_left(sys_cg.base[0]);
            return;
        }
    }
    for (int c = 0; c < GATE_CG_N; c++) {
        if (v1_mount[c][0] == '\0' || !own_cgroup(cgroups, v1_names[c], own, sizeof(own)))
            continue;
        char base[GATE_PATH_MAX], parent[GATE_PATH_MAX];
        gate_fmt(parent, sizeof(parent), "%s%s", v1_mount[c], own);
        sweep_left(parent);
        gate_fmt(base, sizeof(base), "%s%s/keel-gate-%d", v1_mount[c], own, (int)getpid());
        if (mkdir(base, 0755) == 0 || errno == EEXIST) {
            (void)rmdir(base); /* made again with each job (and removed when the last goes) */
            (void)snprintf(sys_cg.base[c], sizeof(sys_cg.base[c]), "%s", base);
            sys_cg.version = 1;
        }
    }
}

static const cg_system *cg_sys(void)
{
    (void)pthread_once(&sys_once, detect);
    return &sys_cg;
}

keel_status gate_cgroup_make(const gate_limits *l, gate_cgroup *cg)
{
    KEEL_ASSERT(l != NULL && cg != NULL);
    memset(cg, 0, sizeof(*cg));
    const cg_system *sys = cg_sys();
    if (sys->version == 0)
        return KEEL_OK;
    unsigned long long seq = __atomic_add_fetch(&job_seq, 1, __ATOMIC_RELAXED);
    char value[32];
    for (int c = 0; c < GATE_CG_N; c++) {
        if (sys->base[c][0] == '\0')
            continue;
        char *dir = cg->dir[c];
        if (sys->version == 2)
            gate_fmt(dir, GATE_PATH_MAX, "%s/keel-gate-%d-%llu", sys->base[0], (int)getpid(), seq);
        else
            gate_fmt(dir, GATE_PATH_MAX, "%s/job-%llu", sys->base[c], seq);
        int e = 0;
        for (int tries = 0; tries < 5; tries++) { /* another job's end may remove the parent */
            if (sys->version == 1 && mkdir(sys->base[c], 0755) != 0 && errno != EEXIST) {
                e = errno;
                break;
            }
            e = mkdir(dir, 0755) == 0 ? 0 : errno;
            if (e != ENOENT)
                break;
        }
        if (e != 0 && c == GATE_CG_CPU && l->cpu == 0) {
            dir[0] = '\0'; /* only its CPU for the capacity's reading (gate_hidden_cpu_add) */
            continue;
        }
        if (e != 0) {
            dir[0] = '\0';
            (void)gate_cgroup_remove(cg);
            return KEEL_ERR_SYS(e, "cannot make a cgroup for a job under '%s'",
                                sys->version == 2 ? sys->base[0] : sys->base[c]);
        }
        cg->version = sys->version;
        if (sys->version == 2)
            break; /* one directory, every controller */
    }
    int e = 0;
    const char *what = "";
    if (cg->version == 2) {
        what = "memory.max";
        (void)snprintf(value, sizeof(value), "%llu", l->memory);
        if (l->memory > 0)
            e = write_in(cg->dir[0], "memory.max", value);
        if (e == 0 && l->memory > 0)
            (void)write_in(cg->dir[0], "memory.swap.max", "0"); /* absent without swap */
        (void)snprintf(value, sizeof(value), "%llu", l->processes);
        if (e == 0 && l->processes > 0) {
            what = "pids.max";
            e = write_in(cg->dir[0], "pids.max", value);
        }
    } else if (cg->version == 1) {
        (void)snprintf(value, sizeof(value), "%llu", l->memory);
        if (cg->dir[GATE_CG_MEMORY][0] != '\0' && l->memory > 0) {
            what = "memory.limit_in_bytes";
            e = write_in(cg->dir[GATE_CG_MEMORY], "memory.limit_in_bytes", value);
            if (e == 0) /* swap too, where it is accounted */
                (void)write_in(cg->dir[GATE_CG_MEMORY], "memory.memsw.limit_in_bytes", value);
        }
        (void)snprintf(value, sizeof(value), "%llu", l->processes);
        if (e == 0 && cg->dir[GATE_CG_PIDS][0] != '\0' && l->processes > 0) {
            what = "pids.max";
            e = write_in(cg->dir[GATE_CG_PIDS], "pids.max", value);
        }
    }
    if (e != 0) {
        (void)gate_cgroup_remove(cg);
        return KEEL_ERR_SYS(e, "cannot set '%s' of a job's cgroup", what);
    }
    return KEEL_OK;
}

keel_status gate_cgroup_attach(const gate_cgroup *cg, pid_t pid)
{
    KEEL_ASSERT(cg != NULL);
    char text[32];
    (void)snprintf(text, sizeof(text), "%d", (int)pid);
    for (int c = 0; c < GATE_CG_N; c++) {
        if (cg->dir[c][0] == '\0')
            continue;
        int e = write_in(cg->dir[c], "cgroup.procs", text);
        if (e != 0 && e != ESRCH) /* ESRCH: it is gone already, which the caller sees */
            return KEEL_ERR_SYS(e, "cannot move process %d into cgroup '%s'", (int)pid, cg->dir[c]);
    }
    return KEEL_OK;
}

unsigned long long gate_cgroup_cpu_ms(const gate_cgroup *cg)
{
    KEEL_ASSERT(cg != NULL);
    if (cg->version == 2)
        return key_value(cg->dir[0], "cpu.stat", "usage_usec") / 1000ull;
    if (cg->version == 1 && cg->dir[GATE_CG_CPU][0] != '\0')
        return number_in(cg->dir[GATE_CG_CPU], "cpuacct.usage") / 1000000ull;
    return ~0ull;
}

void gate_cgroup_read(const gate_cgroup *cg, gate_cgroup_report *r)
{
    KEEL_ASSERT(cg != NULL && r != NULL);
    memset(r, 0, sizeof(*r));
    if (cg->version == 2) {
        r->oom_kills = key_value(cg->dir[0], "memory.events", "oom_kill");
        r->pids_max = key_value(cg->dir[0], "pids.events", "max");
        r->peak_memory = number_in(cg->dir[0], "memory.peak");
    } else if (cg->version == 1) {
        r->oom_kills = key_value(cg->dir[GATE_CG_MEMORY], "memory.oom_control", "oom_kill");
        r->pids_max = key_value(cg->dir[GATE_CG_PIDS], "pids.events", "max");
        r->peak_memory = number_in(cg->dir[GATE_CG_MEMORY], "memory.max_usage_in_bytes");
    }
    unsigned long long cpu = gate_cgroup_cpu_ms(cg);
    r->cpu_ms = cpu == ~0ull ? 0 : cpu;
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    (void)nanosleep(&ts, NULL);
}

/* SIGKILL every pid listed in dir/cgroup.procs: how many were listed. */
static unsigned kill_listed(const char *dir)
{
    char path[GATE_PATH_MAX + 32], line[32];
    (void)snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    unsigned n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        long pid = strtol(line, NULL, 10);
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, SIGKILL) == 0)
            n++;
    }
    (void)fclose(f);
    return n;
}

unsigned gate_cgroup_kill(const gate_cgroup *cg)
{
    KEEL_ASSERT(cg != NULL);
    unsigned killed = 0;
    for (int c = 0; c < GATE_CG_N; c++) {
        if (cg->dir[c][0] == '\0')
            continue;
        if (cg->version == 2)
            (void)write_in(cg->dir[c], "cgroup.kill", "1"); /* Linux 5.14 and later */
        /* until none is listed (exiting ones stay listed a moment): ~2 s at most */
        for (int round = 0; round < 400; round++) {
            unsigned n = kill_listed(cg->dir[c]);
            killed += n;
            if (n == 0)
                break;
            pause_ms(round < 100 ? 1 : 10);
        }
    }
    return killed;
}

bool gate_cgroup_remove(gate_cgroup *cg)
{
    KEEL_ASSERT(cg != NULL);
    (void)gate_cgroup_kill(cg);
    bool all = true;
    for (int c = 0; c < GATE_CG_N; c++) {
        if (cg->dir[c][0] == '\0')
            continue;
        int e = 0;
        for (int tries = 0; tries < 100; tries++) {
            e = rmdir(cg->dir[c]) == 0 ? 0 : errno;
            if (e != EBUSY)
                break;
            pause_ms(tries < 50 ? 1 : 10); /* the last ones still exiting */
        }
        all &= e == 0 || e == ENOENT;
        if (cg->version == 1) {
            char *slash = strrchr(cg->dir[c], '/');
            if (slash != NULL) {
                *slash = '\0';
                (void)rmdir(cg->dir[c]); /* the gate's keel-gate-<pid>, when it was the last job */
            }
        }
        cg->dir[c][0] = '\0';
    }
    cg->version = 0;
    return all;
}

bool gate_cgroup_path_ok(const char *dir)
{
    const cg_system *sys = cg_sys();
    if (strstr(dir, "/keel-gate-") == NULL || strstr(dir, "/../") != NULL ||
        strstr(dir, "/./") != NULL)
        return false;
    for (size_t i = 0; i < sys->nmounts; i++) {
        size_t n = strlen(sys->mounts[i]);
        if (strncmp(dir, sys->mounts[i], n) == 0 && dir[n] == '/')
            return true;
    }
    return false;
}

/* prlimit `res` of `pid` to `value` (soft) and `hard`, never above the hard limit it has. */
static keel_status set_limit(pid_t pid, int res, const char *name, unsigned long long value,
                             unsigned long long hard)
{
    struct rlimit old, lim; /* prlimit(2) itself: glibc's resource type differs in C and C++ */
    if (syscall(SYS_prlimit64, pid, res, NULL, &old) != 0)
        return errno == ESRCH ? KEEL_OK /* gone already: its end says how */
                              : KEEL_ERR_SYS(errno, "cannot read %s of process %d", name, (int)pid);
    lim.rlim_max = old.rlim_max != RLIM_INFINITY && old.rlim_max < hard ? old.rlim_max : hard;
    lim.rlim_cur = value < lim.rlim_max ? value : lim.rlim_max;
    if (syscall(SYS_prlimit64, pid, res, &lim, NULL) != 0 && errno != ESRCH)
        return KEEL_ERR_SYS(errno, "cannot set %s of process %d", name, (int)pid);
    return KEEL_OK;
}

keel_status gate_rlimits_apply(pid_t pid, const gate_limits *l, const gate_cgroup *cg)
{
    KEEL_ASSERT(l != NULL && cg != NULL);
    keel_status s = KEEL_OK;
    bool mem_cg = cg->version == 2 || cg->dir[GATE_CG_MEMORY][0] != '\0';
    bool pids_cg = gate_cgroup_has_pids(cg);
    if (l->disk > 0)
        s = set_limit(pid, RLIMIT_FSIZE, "RLIMIT_FSIZE", l->disk, l->disk);
    if (keel_ok(s) && l->memory > 0 && !mem_cg)
        s = set_limit(pid, RLIMIT_AS, "RLIMIT_AS", l->memory, l->memory);
    if (keel_ok(s) && l->processes > 0 && !pids_cg && geteuid() != 0)
        s = set_limit(pid, RLIMIT_NPROC, "RLIMIT_NPROC", l->processes, l->processes);
    if (keel_ok(s) && l->cpu > 0 && gate_cgroup_cpu_ms(cg) == ~0ull)
        s = set_limit(pid, RLIMIT_CPU, "RLIMIT_CPU", l->cpu, l->cpu + 5);
    return s;
}

bool gate_cgroup_has_pids(const gate_cgroup *cg)
{
    KEEL_ASSERT(cg != NULL);
    return cg->version == 2 || cg->dir[GATE_CG_PIDS][0] != '\0';
}

/*
 * /proc/<pid>/stat read into buf: the text after the process's name (the
 * blank before field 3, its state), NULL when the process is gone.
 */
static const char *proc_stat_text(pid_t pid, char *buf, size_t size)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, size - 1);
    (void)close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold anything but ends before this */
    return p == NULL || p[1] != ' ' || p[2] == '\0' ? NULL : p + 1;
}

unsigned long long gate_proc_stat(pid_t pid, int field, char *state)
{
    KEEL_ASSERT(field >= 3);
    char buf[1024];
    const char *p = proc_stat_text(pid, buf, sizeof(buf));
    if (p == NULL)
        return 0;
    if (state != NULL)
        *state = p[1];
    for (int f = 3; f < field && p != NULL; f++)
        p = strchr(p + 1, ' ');
    if (p == NULL)
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(p + 1, &end, 10);
    return end == p + 1 ? 0 : v;
}

unsigned long long gate_pidns_tasks(pid_t init)
{
    char path[64];
    struct stat ns;
    (void)snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init);
    if (init <= 0 || stat(path, &ns) != 0)
        return 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    unsigned long long tasks = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        struct stat other;
        (void)snprintf(path, sizeof(path), "/proc/%.20s/ns/pid", e->d_name);
        if (stat(path, &other) == 0 && other.st_ino == ns.st_ino && other.st_dev == ns.st_dev)
            tasks += gate_proc_stat((pid_t)strtol(e->d_name, NULL, 10), 20, NULL); /* threads */
    }
    (void)closedir(d);
    return tasks;
}

void gate_limits_describe(const gate_limits *l, const gate_cgroup *cg, bool counted, char *buf,
                          size_t size)
{
    KEEL_ASSERT(l != NULL && cg != NULL && buf != NULL);
    char mem[32], out[32], disk[32], tmp[32], how[16];
    gate_size_text(l->memory, mem, sizeof(mem));
    gate_size_text(l->output, out, sizeof(out));
    gate_size_text(l->disk, disk, sizeof(disk));
    gate_size_text(l->tmp, tmp, sizeof(tmp));
    (void)snprintf(how, sizeof(how), "cgroup v%d", cg->version);
    bool mem_cg = cg->version == 2 || cg->dir[GATE_CG_MEMORY][0] != '\0';
    bool pids_cg = gate_cgroup_has_pids(cg);
    bool cpu_cg = gate_cgroup_cpu_ms(cg) != ~0ull;
    char cpu[64], memory[64];
    gate_fmt(memory, sizeof(memory), "%s (%s)", mem, mem_cg ? how : "RLIMIT_AS per process");
    if (l->cpu > 0)
        gate_fmt(cpu, sizeof(cpu), "%llu s (%s)", l->cpu, cpu_cg ? how : "RLIMIT_CPU per process");
    gate_fmt(
        buf, size,
        "memory %s, processes and threads %llu (%s), cpu %s, output %s per job, "
        "disk %s (its work tree; RLIMIT_FSIZE per file), /tmp %s",
        l->memory > 0 ? memory : "none", l->processes,
        l->processes == 0 ? "none"
        : pids_cg         ? how
        : counted && geteuid() == 0
            ? "counted in its PID namespace: no pids cgroup, and RLIMIT_NPROC does not hold root"
        : counted        ? "RLIMIT_NPROC per user, and counted in its PID namespace"
        : geteuid() == 0 ? "NOT enforced: no pids cgroup, and RLIMIT_NPROC does not hold root"
                         : "RLIMIT_NPROC, per user",
        l->cpu > 0 ? cpu : "none", l->output > 0 ? out : "none", l->disk > 0 ? disk : "none",
        l->tmp > 0 ? tmp : "no cap");
}

static unsigned long long walk(int dirfd, int level, unsigned long long *largest)
{
    if (level > 256) {
        (void)close(dirfd);
        return 0;
    }
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        (void)close(dirfd);
        return 0;
    }
    unsigned long long total = 0;
    struct stat top;
    dev_t dev = fstat(dirfd, &top) == 0 ? top.st_dev : 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        total += (unsigned long long)st.st_blocks * 512ull;
        if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > *largest)
            *largest = (unsigned long long)st.st_size;
        if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                total += walk(sub, level + 1, largest);
        }
    }
    (void)closedir(d);
    return total;
}

void gate_tree_usage(const char *dir, unsigned long long *bytes, unsigned long long *largest)
{
    KEEL_ASSERT(dir != NULL && bytes != NULL && largest != NULL);
    *largest = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *bytes = fd >= 0 ? walk(fd, 0, largest) : 0;
}

/* ---- the machine's CPU, and the gate's share of it ------------------------------------- */

static double ms_per_tick(void)
{
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? 1000.0 / (double)hz : 10.0;
}

bool gate_machine_cpu(unsigned long long fields[8], bool *count_nice)
{
    char buf[512];
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n <= 4 || strncmp(buf, "cpu ", 4) != 0)
        return false;
    buf[n] = '\0';
    /* user nice system idle iowait irq softirq steal (guest time is in user already) */
    memset(fields, 0, 8 * sizeof(fields[0]));
    const char *p = buf + 4;
    for (int k = 0; k < 8; k++) {
        char *end = NULL;
        fields[k] = strtoull(p, &end, 10);
        if (end == p)
            break;
        p = end;
    }
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno != 0)
        nice = 0;
    char on[8];
    bool autogroup =
        read_file("/proc/sys/kernel/sched_autogroup_enabled", on, sizeof(on)) && on[0] == '1';
    *count_nice = gate_nice_competes(nice, autogroup);
    return fields[0] + fields[2] > 0;
}

bool gate_nice_competes(int nice, bool autogroup)
{
    return nice > 0 || autogroup;
}

double gate_stat_busy_between(const unsigned long long from[8], const unsigned long long to[8],
                              bool count_nice)
{
    double d[8];
    for (int k = 0; k < 8; k++)
        d[k] = to[k] >= from[k] ? (double)(to[k] - from[k]) : 0.0;
    double user = d[0], nice = d[1], system = d[2];
    if (!count_nice && user + nice > 0.0)
        system *= user / (user + nice); /* the niced processes' share of it yields too */
    return user + (count_nice ? nice : 0.0) + system + d[5] + d[6] + d[7];
}

/*
 * Process `pid`'s CPU in clock ticks: its own (utime, stime, fields 14 and
 * 15 of /proc/<pid>/stat) and its children's that it waited for (cutime,
 * cstime); 0 when it is gone.
 */
static unsigned long long proc_ticks(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_text(pid, buf, sizeof(buf)); /* the blank before field 3 */
    for (int f = 3; f < 14 && p != NULL; f++)
        p = strchr(p + 1, ' ');
    unsigned long long sum = 0;
    for (int f = 14; f <= 17 && p != NULL; f++) {
        char *end = NULL;
        long long v = strtoll(p + 1, &end, 10);
        if (end == p + 1)
            break;
        sum += v > 0 ? (unsigned long long)v : 0;
        p = end;
    }
    return sum;
}

/* Push the children of every thread of `pid` (/proc/<pid>/task/<tid>/children) on `stack`. */
static size_t push_children(pid_t pid, pid_t *stack, size_t n, size_t cap)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return n;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char file[128], buf[4096];
        (void)snprintf(file, sizeof(file), "/proc/%d/task/%.20s/children", (int)pid, e->d_name);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t got = read(fd, buf, sizeof(buf) - 1);
        (void)close(fd);
        if (got <= 0)
            continue;
        buf[got] = '\0';
        const char *p = buf;
        for (;;) {
            char *end = NULL;
            long v = strtol(p, &end, 10);
            if (end == p || n == cap)
                break;
            if (v > 0)
                stack[n++] = (pid_t)v;
            p = end;
        }
    }
    (void)closedir(d);
    return n;
}

unsigned long long gate_tree_cpu_ms(pid_t root)
{
    enum { MAX_TREE = 4096 };
    pid_t stack[MAX_TREE];
    size_t n = 0;
    stack[n++] = root;
    unsigned long long ticks = 0;
    while (n > 0) {
        pid_t pid = stack[--n];
        ticks += proc_ticks(pid);
        n = push_children(pid, stack, n, MAX_TREE);
    }
    return (unsigned long long)((double)ticks * ms_per_tick());
}

static unsigned long long hidden_ms, hidden_unknown; /* gate_hidden_cpu_add, _unknown */

void gate_hidden_cpu_add(unsigned long long ms)
{
    (void)__atomic_add_fetch(&hidden_ms, ms, __ATOMIC_RELAXED);
}

void gate_hidden_cpu_unknown(void)
{
    (void)__atomic_add_fetch(&hidden_unknown, 1, __ATOMIC_RELAXED);
}

double gate_others_cores(const gate_cpu_sample *from, const gate_cpu_sample *to)
{
    KEEL_ASSERT(from != NULL && to != NULL);
    if (!from->machine_known || !to->machine_known || !(to->at_ms > from->at_ms) ||
        to->unknown != from->unknown)
        return 0.0;
    double machine =
        gate_stat_busy_between(from->machine, to->machine, to->count_nice) * ms_per_tick();
    double own = to->tree_ms > from->tree_ms ? (double)(to->tree_ms - from->tree_ms) : 0.0;
    double others = (machine - own) / (double)(to->at_ms - from->at_ms);
    return others > 0.0 ? others : 0.0;
}

void gate_cpu_sample_take(pid_t root, unsigned long long now_ms, gate_cpu_sample *out)
{
    KEEL_ASSERT(out != NULL);
    out->at_ms = now_ms;
    out->machine_known = gate_machine_cpu(out->machine, &out->count_nice);
    /* what left the tree is added after it left: read before the tree, never counted twice */
    out->unknown = __atomic_load_n(&hidden_unknown, __ATOMIC_RELAXED);
    unsigned long long hidden = __atomic_load_n(&hidden_ms, __ATOMIC_RELAXED);
    out->tree_ms = gate_tree_cpu_ms(root) + hidden;
}

double gate_load_advance(gate_load_meter *m, unsigned long long now, unsigned executing)
{
    KEEL_ASSERT(m != NULL);
    if (now > m->at) {
        if (executing > 0)
            m->inv += (double)(now - m->at) / (double)executing;
        m->at = now;
    }
    return m->inv;
}

double gate_load_of(unsigned long long t0, double area0, unsigned long long t1, double area1,
                    double alone)
{
    return area1 > area0 && t1 > t0 ? (double)(t1 - t0) / (area1 - area0) : alone;
}
