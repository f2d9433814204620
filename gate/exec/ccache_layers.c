/*
 * ccache_layers.c - a configuration's compiler cache in layers (ccache.h): the counters of
 * finished jobs, the merge of a landed candidate's layers into the landed layer, the removal
 * of layers nobody will merge.
 *
 * Only the gate writes the landed layer for a candidate, and only files it checked: a job's
 * layer is the job's (it may hold anything: links, strange names, half-written files), so
 * the merge takes regular files at <2 characters>/<name> whose names are ccache's (letters
 * and digits), opened without following links, and copies each to a temporary name in the
 * landed layer before renaming it into place: a process killed at any point leaves whole
 * entries and temporary files (".keel-merge-*", never looked up; gate_ccache_sweep removes
 * them).  ccache checks each entry's checksum when it reads it as well.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_exec"
#include "ccache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MERGE_TMP ".keel-merge-" /* a temporary file of the merge in the landed layer */

/* ---- counters ----------------------------------------------------------------------- */

/* Add hits and misses to <dir>/counters (under a lock on dir: jobs end in several threads). */
static void counters_add(const char *dir, unsigned long long hits, unsigned long long misses)
{
    int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0)
        return;
    while (flock(lock, LOCK_EX) != 0 && errno == EINTR)
        ;
    char path[GATE_PATH_MAX + 16], tmp[GATE_PATH_MAX + 48];
    gate_fmt(path, sizeof(path), "%s/counters", dir);
    unsigned long long h = 0, m = 0;
    gate_ccache_counters_read(path, &h, &m);
    gate_fmt(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "we");
    bool ok = f != NULL && fprintf(f, "hits %llu\nmisses %llu\n", h + hits, m + misses) > 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0)
        (void)unlink(tmp); /* the counters stay as they were: a job's figures are lost */
    (void)close(lock);
}

/* The configuration's directory: the parent of a layer's parent (<dir>/layers/<key>). */
static void config_dir_of(const char *layer, char *buf, size_t size)
{
    gate_fmt(buf, size, "%s", layer);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(buf, '/');
        if (slash != NULL && slash != buf)
            *slash = '\0';
    }
}

void gate_ccache_job_end(const gate_job_policy *p)
{
    KEEL_ASSERT(p != NULL);
    if (p->ccache_dir[0] == '\0')
        return;
    char dir[GATE_PATH_MAX];
    config_dir_of(p->ccache_layer, dir, sizeof(dir));
    gate_ccache_stats st;
    struct stat sb;
    if (stat(p->ccache_dir, &sb) == 0) { /* the job compiled through it */
        keel_status s = gate_ccache_stats_of(p->ccache_dir, &st);
        if (keel_ok(s))
            counters_add(dir, st.hits, st.misses);
        keel_status_ignore(s, "a job's counters that cannot be read are not counted");
        gate_rm_tree(p->ccache_dir); /* counted once, even when the job runs again */
    }
    if (!p->ccache_writes_landed)
        return;
    gate_rm_tree(p->ccache_layer);
    keel_status_ignore(gate_ccache_trim(p->ccache_landed, p->ccache_size),
                       "trimmed again after the next build that writes it");
}

keel_status gate_ccache_trim(const char *landed, unsigned long long size)
{
    KEEL_ASSERT(landed != NULL);
    if (size == 0)
        return KEEL_OK;
    char max[32];
    (void)snprintf(max, sizeof(max), "%lluK", size / 1024);
    const char *const args[] = {"--trim-dir", landed, "--trim-max-size", max, NULL};
    keel_status s = gate_ccache_run(args, NULL, 0);
    return keel_ok(s) ? KEEL_OK
                      : KEEL_CONTEXT(s, "trimming compiler cache '%s' to %s", landed, max);
}

/* ---- merge -------------------------------------------------------------------------- */

/* Is `name` one of ccache's (letters and digits, not empty, not too long)? */
static bool entry_name(const char *name, size_t max)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++)
        if (!((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= 'A' && name[n] <= 'Z') ||
              (name[n] >= '0' && name[n] <= '9')))
            return false;
    return n > 0 && n <= max;
}

/* Copy the open file `in` (`size` bytes) to <to>/<name> through a temporary name; errno, or 0. */
static int copy_entry(int in, int to, const char *name, off_t size)
{
    char tmp[128];
    (void)snprintf(tmp, sizeof(tmp), MERGE_TMP "%d-%s", (int)getpid(), name);
    int out = openat(to, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0)
        return errno;
    bool kill_mid = KEEL_STRESS(ccache_merge_kill); /* killed half-way through this entry */
    char buf[65536];
    off_t done = 0;
    int e = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            e = errno;
        if (r <= 0)
            break;
        if (kill_mid) {
            (void)gate_write_all(out, buf, (size_t)r / 2);
            (void)fprintf(stderr, "keel-gate: stress point 'gate_exec.ccache_merge_kill' fired: "
                                  "exiting as if killed\n");
            _exit(99);
        }
        e = gate_write_all(out, buf, (size_t)r);
        if (e != 0)
            break;
        done += r;
    }
    if (close(out) != 0 && e == 0)
        e = errno;
    if (e == 0 && done != size)
        e = EIO; /* it changed under the merge: not taken */
    if (e == 0 && renameat(to, tmp, to, name) != 0)
        e = errno;
    if (e != 0)
        (void)unlinkat(to, tmp, 0);
    return e;
}

/* Merge the entries of layer directory `from` (<from>/<xx>/<name>) into landed layer `to`. */
static keel_status merge_layer(const char *from, const char *to, gate_ccache_merged *m)
{
    int src = open(from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return errno == ENOENT ? KEEL_OK : KEEL_ERR_SYS(errno, "cannot open layer '%s'", from);
    int dst = open(to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst < 0) {
        int e = errno;
        (void)close(src);
        return KEEL_ERR_SYS(e, "cannot open landed layer '%s'", to);
    }
    keel_status s = KEEL_OK;
    DIR *top = fdopendir(src);
    for (struct dirent *d; top != NULL && keel_ok(s) && (d = readdir(top)) != NULL;) {
        struct stat sb;
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0 ||
            strcmp(d->d_name, "CACHEDIR.TAG") == 0)
            continue;
        int sub = -1;
        if (entry_name(d->d_name, 2) && strlen(d->d_name) == 2 &&
            fstatat(src, d->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode))
            sub = openat(src, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            m->skipped++;
            continue;
        }
        if (mkdirat(dst, d->d_name, 0755) != 0 && errno != EEXIST) {
            s = KEEL_ERR_SYS(errno, "cannot make '%s/%s'", to, d->d_name);
            (void)close(sub);
            break;
        }
        int out = openat(dst, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *in = fdopendir(sub);
        for (struct dirent *f; in != NULL && out >= 0 && keel_ok(s) && (f = readdir(in)) != NULL;) {
            if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0)
                continue;
            int fd = -1;
            if (entry_name(f->d_name, 64))
                fd = openat(sub, f->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
                m->skipped++;
            } else if (faccessat(out, f->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                m->had++; /* the landed layer's stays: same key, an entry as good */
            } else {
                int e = copy_entry(fd, out, f->d_name, sb.st_size);
                if (e != 0)
                    s = KEEL_ERR_SYS(e, "cannot copy '%s/%s/%s' into '%s'", from, d->d_name,
                                     f->d_name, to);
                else
                    m->entries++;
            }
            if (fd >= 0)
                (void)close(fd);
        }
        if (out < 0 && keel_ok(s))
            s = KEEL_ERR_SYS(errno, "cannot open '%s/%s'", to, d->d_name);
        if (out >= 0)
            (void)close(out);
        if (in != NULL)
            (void)closedir(in);
        else
            (void)close(sub);
    }
    if (top != NULL)
        (void)closedir(top);
    else
        (void)close(src);
    (void)close(dst);
    return s;
}

/*
 * fn on each <top>/<a>/<mid>/<b> (without <mid> when NULL), a and b not starting with '.',
 * with a, b and the whole path.
 */
static void walk2(const char *top, const char *mid,
                  void (*fn)(void *arg, const char *a, const char *b, const char *path), void *arg)
{
    DIR *outer = opendir(top);
    for (struct dirent *d; outer != NULL && (d = readdir(outer)) != NULL;) {
        if (d->d_name[0] == '.')
            continue;
        char sub[GATE_PATH_MAX];
        gate_fmt(sub, sizeof(sub), "%s/%s%s%s", top, d->d_name, mid != NULL ? "/" : "",
                 mid != NULL ? mid : "");
        DIR *in = opendir(sub);
        for (struct dirent *f; in != NULL && (f = readdir(in)) != NULL;) {
            if (f->d_name[0] == '.' && strncmp(f->d_name, MERGE_TMP, strlen(MERGE_TMP)) != 0)
                continue;
            char path[GATE_PATH_MAX];
            gate_fmt(path, sizeof(path), "%s/%s", sub, f->d_name);
            fn(arg, d->d_name, f->d_name, path);
        }
        if (in != NULL)
            (void)closedir(in);
    }
    if (outer != NULL)
        (void)closedir(outer);
}

typedef struct layer_walk {
    const char *part; /* what the layer's key holds */
    void (*fn)(void *arg, const char *config, const char *layer);
    void *arg;
} layer_walk;

static void layer_found(void *arg, const char *config, const char *key, const char *path)
{
    const layer_walk *w = (const layer_walk *)arg;
    if (key[0] != '.' && strstr(key, w->part) != NULL)
        w->fn(w->arg, config, path);
}

/* Each layer of each configuration under `work` whose key holds `part`: fn on it. */
static void each_layer(const char *work, const char *part,
                       void (*fn)(void *arg, const char *config, const char *layer), void *arg)
{
    char root[GATE_PATH_MAX];
    gate_fmt(root, sizeof(root), "%s/ccache", work);
    layer_walk w = {part, fn, arg};
    walk2(root, "layers", layer_found, &w);
}

typedef struct land_ctx {
    const char *work;
    const gate_config *target;
    gate_ccache_merged *m;
    keel_status first;
} land_ctx;

static void land_one(void *arg, const char *config, const char *layer)
{
    land_ctx *x = (land_ctx *)arg;
    char from[GATE_PATH_MAX + 8], to[GATE_PATH_MAX + 8], dir[GATE_PATH_MAX];
    gate_ccache_dir(x->work, config, dir, sizeof(dir));
    gate_fmt(from, sizeof(from), "%s/new", layer);
    gate_fmt(to, sizeof(to), "%s/landed", dir);
    unsigned long long before = x->m->entries;
    keel_status s = merge_layer(from, to, x->m);
    gate_rm_tree(layer);
    x->m->layers++;
    unsigned long long size = 0;
    for (size_t i = 0; x->target != NULL && i < x->target->nconfigs; i++)
        if (strcmp(x->target->configs[i].name, config) == 0)
            size = x->target->configs[i].ccache_size;
    if (keel_ok(s) && x->m->entries > before && size > 0)
        s = gate_ccache_trim(to, size);
    if (!keel_ok(s) && keel_ok(x->first))
        x->first = KEEL_CONTEXT(s, "merging layer '%s'", layer);
    else
        keel_status_ignore(s, "the first error is returned");
}

keel_status gate_ccache_land(const char *work, const gate_config *target, long long cand,
                             gate_ccache_merged *out)
{
    KEEL_ASSERT(work != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    char prefix[32];
    (void)snprintf(prefix, sizeof(prefix), "-c%lld-", cand);
    land_ctx x = {work, target, out, KEEL_OK};
    each_layer(work, prefix, land_one, &x);
    return x.first;
}

/* ---- removal ------------------------------------------------------------------------ */

static void drop_one(void *arg, const char *config, const char *layer)
{
    (void)arg;
    (void)config;
    gate_rm_tree(layer);
}

void gate_ccache_drop(const char *work, long long cand)
{
    KEEL_ASSERT(work != NULL);
    char prefix[32];
    (void)snprintf(prefix, sizeof(prefix), "-c%lld-", cand);
    each_layer(work, prefix, drop_one, NULL);
}

void gate_ccache_layer_drop(const gate_job_policy *p)
{
    KEEL_ASSERT(p != NULL);
    if (p->ccache_layer[0] != '\0')
        gate_rm_tree(p->ccache_layer);
}

/*
 * A layer no job will use again: one of this process (no job of it runs while `run` begins)
 * or of a process that is gone (a killed gate, a killed `try`); not another gate's, running
 * for another target on the same <state>.d, nor a running `try`'s.
 */
static void sweep_one(void *arg, const char *config, const char *layer)
{
    (void)arg;
    (void)config;
    const char *key = strrchr(layer, '/') + 1;
    char *end = NULL;
    long pid = key[0] == 'p' ? strtol(key + 1, &end, 10) : 0;
    if (pid <= 0 || pid > INT_MAX || end == NULL || *end != '-' || pid == (long)getpid() ||
        (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        gate_rm_tree(layer);
}

/* A temporary file a killed merge left in a landed layer: removed. */
static void tmp_found(void *arg, const char *sub, const char *name, const char *path)
{
    (void)arg;
    (void)sub;
    if (strncmp(name, MERGE_TMP, strlen(MERGE_TMP)) == 0)
        (void)unlink(path);
}

/*
 * A cache of the single-directory layout (sessions 12-15: ccache's own directory, written by
 * every job of the configuration, landed or not): nothing in it can be trusted, so it goes.
 */
static void sweep_old_layout(const char *dir)
{
    char path[GATE_PATH_MAX + 16];
    gate_fmt(path, sizeof(path), "%s/ccache.conf", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return;
    static const char *const old[] = {"0", "1", "2",   "3",     "4",          "5", "6",
                                      "7", "8", "9",   "a",     "b",          "c", "d",
                                      "e", "f", "tmp", "stats", "ccache.conf"};
    for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
        gate_fmt(path, sizeof(path), "%s/%s", dir, old[i]);
        gate_rm_tree(path);
    }
}

void gate_ccache_sweep(const char *work)
{
    KEEL_ASSERT(work != NULL);
    each_layer(work, "", sweep_one, NULL);
    char root[GATE_PATH_MAX];
    gate_fmt(root, sizeof(root), "%s/ccache", work);
    DIR *configs = opendir(root);
    for (struct dirent *c; configs != NULL && (c = readdir(configs)) != NULL;) {
        if (c->d_name[0] == '.')
            continue;
        char dir[GATE_PATH_MAX], landed[GATE_PATH_MAX + 8];
        gate_fmt(dir, sizeof(dir), "%s/%s", root, c->d_name);
        gate_fmt(landed, sizeof(landed), "%s/landed", dir);
        sweep_old_layout(dir);
        walk2(landed, NULL, tmp_found, NULL);
    }
    if (configs != NULL)
        (void)closedir(configs);
}
