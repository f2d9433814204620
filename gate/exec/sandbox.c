/*
 * sandbox.c - a job's policy, environment and bubblewrap arguments (sandbox.h).
 */
#define _GNU_SOURCE 1
#include "sandbox.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heaps.h"

#define SANDBOX_HEAP KEEL_MODULE_REF(gate_exec)

/* ---- paths ------------------------------------------------------------------------ */

/* Is `path` `prefix` or under it? */
static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1 && prefix[0] == '/')
        return true;
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Components of an absolute path: "/" 0, "/a" 1, "/a/b" 2. */
static size_t depth(const char *path)
{
    size_t d = 0;
    for (const char *p = path; *p != '\0'; p++)
        if (*p == '/' && p[1] != '\0' && p[1] != '/')
            d++;
    return d;
}

/* `path` absolute and canonical: realpath when it exists, else its directory's plus its name. */
static void canonical(const char *path, char *out, size_t size)
{
    char buf[PATH_MAX];
    if (realpath(path, buf) != NULL) {
        gate_fmt(out, size, "%s", buf);
        return;
    }
    char abs[PATH_MAX];
    if (path[0] != '/' && getcwd(buf, sizeof(buf)) != NULL)
        gate_fmt(abs, sizeof(abs), "%s/%s", buf, path);
    else
        gate_fmt(abs, sizeof(abs), "%s", path);
    char *slash = strrchr(abs, '/');
    if (slash != NULL && slash != abs) {
        *slash = '\0';
        if (realpath(abs, buf) != NULL) {
            gate_fmt(out, size, "%s/%s", buf, slash + 1);
            return;
        }
        *slash = '/';
    }
    gate_fmt(out, size, "%s", abs);
}

keel_status gate_hidden_add(gate_hidden *h, const char *path, bool gate_owned)
{
    KEEL_ASSERT(h != NULL && path != NULL && h->n <= GATE_HIDDEN_MAX);
    if (path[0] == '\0')
        return KEEL_OK;
    char c[GATE_PATH_MAX];
    canonical(path, c, sizeof(c));
    if (strcmp(c, "/") == 0)
        return KEEL_OK; /* never the whole system */
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->e[i].path, c) == 0) {
            h->e[i].gate_owned |= gate_owned;
            return KEEL_OK;
        }
    if (h->n == GATE_HIDDEN_MAX)
        return KEEL_ERR(KEEL_E_FULL, "more than %d paths to hide from jobs, at '%s'",
                        (int)GATE_HIDDEN_MAX, c);
    (void)snprintf(h->e[h->n].path, sizeof(h->e[h->n].path), "%s", c);
    h->e[h->n].gate_owned = gate_owned;
    h->n++;
    return KEEL_OK;
}

/* ---- policy ------------------------------------------------------------------------ */

void gate_job_policy_default(gate_job_policy *p)
{
    KEEL_ASSERT(p != NULL);
    memset(p, 0, sizeof(*p));
    p->sandbox = true;
    gate_limits_default(&p->limits);
}

/* Pack `words` into `buf` (strings, an empty one ends); false when they do not fit. */
static bool pack(const gate_words *w, char *buf, size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < w->n; i++) {
        size_t len = strlen(w->words[i]) + 1;
        if (at + len + 1 > size)
            return false;
        memcpy(buf + at, w->words[i], len);
        at += len;
    }
    buf[at] = '\0';
    return true;
}

keel_status gate_job_policy_from(gate_job_policy *p, const gate_config *target, const char *name)
{
    KEEL_ASSERT(p != NULL && name != NULL);
    gate_job_policy_default(p);
    if (target == NULL)
        return KEEL_OK;
    p->sandbox = !target->sandbox_none;
    p->executor = target->executor;
    p->slurm_srun = target->slurm_srun;
    p->limits = target->limits;
    if (!pack(&target->pass_env, p->pass_env, sizeof(p->pass_env)))
        return KEEL_ERR(KEEL_E_RANGE, "'pass-env' is longer than %zu bytes", sizeof(p->pass_env));
    for (size_t i = 0; i < target->nconfigs; i++) {
        const gate_matrix_config *m = &target->configs[i];
        if (strcmp(m->name, name) != 0)
            continue;
        p->network = m->network;
        p->limits = m->limits;
        if (!pack(&m->writable, p->writable, sizeof(p->writable)))
            return KEEL_ERR(KEEL_E_RANGE,
                            "'writable' of configuration '%s' is longer than %zu bytes", name,
                            sizeof(p->writable));
    }
    return KEEL_OK;
}

keel_status gate_sandbox_check_writable(const gate_hidden *h, const char *path)
{
    KEEL_ASSERT(h != NULL && path != NULL);
    char c[GATE_PATH_MAX];
    canonical(path, c, sizeof(c));
    for (size_t i = 0; i < h->n; i++) {
        const char *hp = h->e[i].path;
        if (under(hp, c) || (h->e[i].gate_owned && under(c, hp)))
            return keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL, "writable path '%s' %s '%s', which no job may %s", path,
                         strcmp(hp, c) == 0 ? "is"
                         : under(hp, c)     ? "contains"
                                            : "is inside",
                         hp, h->e[i].gate_owned ? "write or see (the gate's own files)" : "see"),
                "path", path);
    }
    return KEEL_OK;
}

keel_status gate_sandbox_check_config(const gate_hidden *h, const gate_config *cfg)
{
    KEEL_ASSERT(h != NULL && cfg != NULL);
    for (size_t i = 0; i < cfg->nconfigs; i++)
        for (size_t k = 0; k < cfg->configs[i].writable.n; k++) {
            keel_status s = gate_sandbox_check_writable(h, cfg->configs[i].writable.words[k]);
            if (!keel_ok(s))
                return KEEL_CONTEXT(s, "configuration '%s'", cfg->configs[i].name);
        }
    return KEEL_OK;
}

/* ---- environment ------------------------------------------------------------------- */

const char *gate_env_get(char *const *env, const char *name)
{
    size_t len = strlen(name);
    for (char *const *e = env; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* Is `var` (NAME=value) one the job may get from the gate? */
static bool allowed(const char *var, const char *pass_env)
{
    static const char *const names[] = {"PATH", "LANG",    "LANGUAGE", "TZ",  "TERM",
                                        "USER", "LOGNAME", "SHELL",    "LC_*"};
    const char *eq = strchr(var, '=');
    if (eq == NULL || eq == var)
        return false;
    size_t len = (size_t)(eq - var);
    if (gate_env_forbidden(var, len))
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (names[i][n - 1] == '*' ? strncmp(var, names[i], n - 1) == 0
                                   : (len == n && strncmp(var, names[i], n) == 0))
            return true;
    }
    for (const char *p = pass_env; p != NULL && *p != '\0'; p += strlen(p) + 1)
        if (strlen(p) == len && strncmp(var, p, len) == 0)
            return true;
    return false;
}

/* Does `env` (n entries) set the variable `var` sets?  Its index, or n. */
static size_t find_var(char **env, size_t n, const char *var)
{
    const char *eq = strchr(var, '=');
    size_t len = eq != NULL ? (size_t)(eq - var) : strlen(var);
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], var, len) == 0 && env[i][len] == '=')
            return i;
    return n;
}

keel_status gate_sandbox_env(char *const *env, const char *pass_env, char *const *config_env,
                             const char *home, char ***out)
{
    KEEL_ASSERT(home != NULL && out != NULL);
    static const char default_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    size_t n = 0, extra = 0;
    for (char *const *e = env; e != NULL && *e != NULL; e++)
        n++;
    for (char *const *e = config_env; e != NULL && *e != NULL; e++)
        extra++;
    size_t slots = n + extra + 4; /* + PATH, HOME, TMPDIR, NULL */
    size_t text = strlen(home) + 6 + sizeof("TMPDIR=/tmp") + sizeof(default_path);
    void *mem = NULL;
    keel_status s = keel_heap_alloc(SANDBOX_HEAP, slots * sizeof(char *) + text, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "a job's environment");
    char **v = (char **)mem;
    char *t = (char *)(v + slots);
    size_t k = 0;
    v[k++] = t; /* first: 'pass-env = HOME' passes not the gate's (a second HOME getenv missed) */
    t += sprintf(t, "HOME=%s", home) + 1;
    v[k++] = t;
    t += sprintf(t, "TMPDIR=/tmp") + 1;
    for (size_t i = 0; i < n; i++)
        if (allowed(env[i], pass_env) && find_var(v, k, env[i]) == k)
            v[k++] = env[i];
    if (find_var(v, k, "PATH") == k) {
        memcpy(t, default_path, sizeof(default_path));
        v[k++] = t;
    }
    for (size_t i = 0; i < extra; i++) {
        size_t at = find_var(v, k, config_env[i]);
        v[at] = config_env[i];
        if (at == k)
            k++;
    }
    v[k] = NULL;
    *out = v;
    return KEEL_OK;
}

/* ---- what the sandbox sees --------------------------------------------------------- */

bool gate_sandbox_sees(const gate_job_policy *p, const gate_hidden *h, const char *dir,
                       const char *path)
{
    KEEL_ASSERT(p != NULL && path != NULL);
    if (!p->sandbox)
        return true;
    if (dir != NULL && under(path, dir))
        return true;
    for (const char *w = p->writable; *w != '\0'; w += strlen(w) + 1)
        if (under(path, w))
            return true;
    for (const char *r = p->readonly; *r != '\0'; r += strlen(r) + 1)
        if (under(path, r))
            return true;
    if (under(path, "/tmp"))
        return false;
    for (size_t i = 0; h != NULL && i < h->n; i++)
        if (under(path, h->e[i].path))
            return false;
    return true;
}

/* ---- bwrap's arguments ------------------------------------------------------------- */

/* Two passes: count (v NULL), then fill. */
typedef struct argv_builder {
    char **v;
    char *text;
    size_t n, bytes;
} argv_builder;

static void add(argv_builder *b, const char *arg)
{
    size_t len = strlen(arg) + 1;
    if (b->v != NULL) {
        memcpy(b->text + b->bytes, arg, len);
        b->v[b->n] = b->text + b->bytes;
    }
    b->n++;
    b->bytes += len;
}

static void add2(argv_builder *b, const char *a, const char *c)
{
    add(b, a);
    add(b, c);
}

static void add3(argv_builder *b, const char *a, const char *c, const char *d)
{
    add(b, a);
    add(b, c);
    add(b, d);
}

static void add_size(argv_builder *b, unsigned long long bytes)
{
    char num[32];
    (void)snprintf(num, sizeof(num), "%llu", bytes);
    if (bytes > 0)
        add2(b, "--size", num);
}

typedef struct mount_op {
    const char *path;
    int kind; /* GATE_HIDE_DIR, GATE_HIDE_FILE, BIND_RO, or 0: bound read-write */
} mount_op;

enum {
    BIND_RO = GATE_HIDE_FILE + 1, /* bound again read-only */
    READONLY_MAX = 4,             /* read-only binds at most (a landed compiler cache: one) */
    MAX_OPS = GATE_HIDDEN_MAX + GATE_POLICY_LIST / 2 + READONLY_MAX + 1
};

static void build(const gate_bwrap_spec *s, argv_builder *b, mount_op *ops, size_t nops)
{
    const gate_job_policy *p = s->policy;
    add(b, s->bwrap);
    add3(b, "--die-with-parent", "--unshare-all", "--new-session");
    if (p->network)
        add(b, "--share-net");
    add2(b, "--cap-drop", "ALL");
    add3(b, "--ro-bind", "/", "/");
    add2(b, "--dev", "/dev");
    add_size(b, p->limits.tmp);
    add2(b, "--tmpfs", "/dev/shm");
    add2(b, "--remount-ro", "/dev");
    add2(b, "--proc", "/proc");
    add3(b, "--ro-bind", "/proc/sys", "/proc/sys"); /* bwrap 0.8 leaves it writable to root */
    add_size(b, p->limits.tmp);
    add2(b, "--tmpfs", "/tmp");
    add2(b, "--dir", s->home);
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].kind == GATE_HIDE_DIR)
            add2(b, "--tmpfs", ops[i].path);
        else if (ops[i].kind == GATE_HIDE_FILE)
            add3(b, "--ro-bind", "/dev/null", ops[i].path);
        else if (ops[i].kind == BIND_RO)
            add3(b, "--ro-bind", ops[i].path, ops[i].path);
        else
            add3(b, "--bind", ops[i].path, ops[i].path);
    }
    for (size_t i = 0; i < nops; i++)
        if (ops[i].kind == GATE_HIDE_DIR)
            add2(b, "--remount-ro", ops[i].path);
    add2(b, "--chdir", s->dir);
    char fd[16];
    (void)snprintf(fd, sizeof(fd), "%d", s->status_fd);
    add2(b, "--json-status-fd", fd);
    if (s->block_fd >= 0) {
        (void)snprintf(fd, sizeof(fd), "%d", s->block_fd);
        add2(b, "--block-fd", fd);
    }
    if (s->fail != NULL)
        add3(b, "--ro-bind", s->fail, "/keel-gate-stress");
    add(b, "--");
    for (char *const *a = s->argv; *a != NULL; a++)
        add(b, *a);
}

keel_status gate_bwrap_argv(const gate_bwrap_spec *s, char ***out)
{
    KEEL_ASSERT(s != NULL && s->policy != NULL && s->argv != NULL && s->argv[0] != NULL &&
                out != NULL && s->dir != NULL && s->home != NULL);
    *out = NULL;
    mount_op ops[MAX_OPS];
    size_t nops = 0;
    for (const char *w = s->policy->writable; *w != '\0' && nops < MAX_OPS - 1;
         w += strlen(w) + 1) {
        ops[nops].path = w;
        ops[nops++].kind = 0;
    }
    size_t ro = 0;
    for (const char *r = s->policy->readonly; *r != '\0' && ro++ < READONLY_MAX;
         r += strlen(r) + 1) {
        ops[nops].path = r;
        ops[nops++].kind = BIND_RO;
    }
    for (size_t i = 0; s->hidden != NULL && i < s->hidden->n && nops < MAX_OPS - 1; i++) {
        const char *hp = s->hidden->e[i].path;
        int kind = s->kinds != NULL ? (int)s->kinds[i] : (int)GATE_HIDE_SKIP;
        /* the private /tmp hides what is under it already (unless made writable again) */
        bool in_tmp = under(hp, "/tmp") && gate_sandbox_sees(s->policy, NULL, s->dir, hp) == false;
        if (kind == GATE_HIDE_SKIP || in_tmp || under("/tmp", hp))
            continue;
        ops[nops].path = hp;
        ops[nops++].kind = kind;
    }
    ops[nops].path = s->dir;
    ops[nops++].kind = 0;
    /* shallower first (stable: insertion sort), so a deeper mount is not covered by one above it */
    for (size_t i = 1; i < nops; i++) {
        mount_op op = ops[i];
        size_t j = i;
        while (j > 0 && depth(ops[j - 1].path) > depth(op.path)) {
            ops[j] = ops[j - 1];
            j--;
        }
        ops[j] = op;
    }
    argv_builder b;
    memset(&b, 0, sizeof(b));
    build(s, &b, ops, nops);
    size_t table = (b.n + 1) * sizeof(char *);
    void *mem = NULL;
    keel_status st = keel_heap_alloc(SANDBOX_HEAP, table + b.bytes, &mem);
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "bwrap's arguments for '%s'", s->argv[0]);
    b.v = (char **)mem;
    b.text = (char *)mem + table;
    b.n = b.bytes = 0;
    build(s, &b, ops, nops);
    b.v[b.n] = NULL;
    *out = b.v;
    return KEEL_OK;
}

bool gate_find_program(const char *name, const char *skip, char *buf, size_t size)
{
    KEEL_ASSERT(name != NULL && buf != NULL && size > 0);
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int n = snprintf(buf, size, "%.*s%s%s", (int)len, p, len > 0 ? "/" : "", name);
        bool skipped = skip != NULL && strlen(skip) == len && strncmp(p, skip, len) == 0;
        if (len > 0 && !skipped && n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
            return true;
        if (end == NULL)
            break;
        p = end;
    }
    buf[0] = '\0';
    return false;
}

keel_status gate_bwrap_find(char *buf, size_t size)
{
    if (gate_find_program("bwrap", NULL, buf, size))
        return KEEL_OK;
    buf[0] = '\0';
    return KEEL_ERR(KEEL_E_NOTFOUND,
                    "bubblewrap ('bwrap') is not installed, and every job runs in its sandbox: "
                    "install it (Debian: apt-get install bubblewrap; `make deps`), or set "
                    "'sandbox = none' in [gate] of the target's .keel/gate.conf to run jobs "
                    "without one (docs/gate.md, Sandbox)");
}

keel_status gate_sandbox_ready(const gate_config *target)
{
    if (target != NULL && target->sandbox_none)
        return KEEL_OK;
    char path[GATE_PATH_MAX];
    return gate_bwrap_find(path, sizeof(path));
}

void gate_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(buf, size, fmt, ap); /* truncation is fine: a message or a bounded path */
    va_end(ap);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

void gate_rm_tree(const char *dir)
{
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int gate_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void gate_size_text(unsigned long long bytes, char *buf, size_t size)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    unsigned long long v = bytes;
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u > 0 || bytes < 1024) {
        (void)snprintf(buf, size, "%llu %s", v, units[u]);
        return;
    }
    double d = (double)bytes; /* not a whole number of KiB: one decimal of the largest unit */
    while (u < 4 && d >= 1024.0) {
        d /= 1024.0;
        u++;
    }
    (void)snprintf(buf, size, "%.1f %s", d, units[u]);
}
