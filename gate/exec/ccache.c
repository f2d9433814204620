/*
 * ccache.c - a persistent compiler cache per configuration (ccache.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_exec"
#include "ccache.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Debian's directory of compiler names that run ccache (gcc, cc, clang, <triple>-gcc...). */
#define CCACHE_MASQUERADE "/usr/lib/ccache"

keel_status gate_ccache_find(char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL && size > 0);
    if (gate_find_program("ccache", CCACHE_MASQUERADE, buf, size))
        return KEEL_OK;
    buf[0] = '\0';
    return KEEL_ERR(KEEL_E_NOTFOUND,
                    "'ccache' is not installed, so configurations with 'ccache-size' build "
                    "without a compiler cache: install it (Debian: apt-get install ccache; "
                    "`make deps`)");
}

void gate_ccache_dir(const char *work, const char *name, char *buf, size_t size)
{
    KEEL_ASSERT(work != NULL && name != NULL && buf != NULL);
    gate_fmt(buf, size, "%s/ccache/%s", work, name);
}

/* mkdir `path` (0700) unless it is a directory already. */
static keel_status make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return KEEL_OK;
        return KEEL_ERR(KEEL_E_EXISTS, "compiler cache '%s' is not a directory", path);
    }
    return KEEL_ERR_SYS(errno, "cannot make the compiler cache '%s'", path);
}

/* <dir>/ccache.conf: max_size, rewritten when it differs (a job may have changed it). */
static keel_status write_conf(const char *dir, unsigned long long size)
{
    char conf[GATE_PATH_MAX + 16], want[64];
    gate_fmt(conf, sizeof(conf), "%s/ccache.conf", dir);
    (void)snprintf(want, sizeof(want), "max_size = %lluK\n", size / 1024);
    FILE *f = fopen(conf, "r");
    if (f != NULL) {
        char have[64];
        size_t n = fread(have, 1, sizeof(have) - 1, f);
        have[n] = '\0';
        (void)fclose(f);
        if (strcmp(have, want) == 0)
            return KEEL_OK;
    }
    char tmp[GATE_PATH_MAX + 32];
    gate_fmt(tmp, sizeof(tmp), "%s.keel-gate.%d", conf, (int)getpid());
    f = fopen(tmp, "w");
    bool ok = f != NULL && fputs(want, f) >= 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (ok && rename(tmp, conf) == 0)
        return KEEL_OK;
    int e = errno;
    (void)unlink(tmp);
    return KEEL_ERR_SYS(e, "cannot write the compiler cache's settings '%s'", conf);
}

/* Append `path` to the packed list `buf` (strings, an empty one ends); false: no room. */
static bool pack_append(char *buf, size_t size, const char *path)
{
    size_t at = 0;
    while (buf[at] != '\0')
        at += strlen(buf + at) + 1;
    size_t len = strlen(path) + 1;
    if (at + len + 1 > size)
        return false;
    memcpy(buf + at, path, len);
    buf[at + len] = '\0';
    return true;
}

keel_status gate_ccache_attach(gate_job_policy *p, const char *work, const gate_config *target,
                               const char *name)
{
    KEEL_ASSERT(p != NULL && work != NULL && name != NULL);
    p->ccache_dir[0] = p->ccache_note[0] = '\0';
    if (target == NULL)
        return KEEL_OK;
    unsigned long long size = 0;
    for (size_t i = 0; i < target->nconfigs; i++)
        if (strcmp(target->configs[i].name, name) == 0)
            size = target->configs[i].ccache_size;
    if (size == 0)
        return KEEL_OK;
    if (target->executor != GATE_EXECUTOR_LOCAL) {
        gate_fmt(p->ccache_note, sizeof(p->ccache_note),
                 "no compiler cache: 'ccache-size' applies to executor = local only");
        return KEEL_OK;
    }
    char prog[GATE_PATH_MAX];
    keel_status s = gate_ccache_find(prog, sizeof(prog));
    if (!keel_ok(s)) {
        gate_fmt(p->ccache_note, sizeof(p->ccache_note), "no compiler cache: %s",
                 keel_status_message(s));
        keel_status_free(s);
        return KEEL_OK;
    }
    char root[GATE_PATH_MAX], dir[GATE_PATH_MAX];
    gate_fmt(root, sizeof(root), "%s/ccache", work);
    gate_ccache_dir(work, name, dir, sizeof(dir));
    s = make_dir(root);
    if (keel_ok(s))
        s = make_dir(dir);
    if (keel_ok(s))
        s = write_conf(dir, size);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "the compiler cache of configuration '%s'", name);
    if (!pack_append(p->writable, sizeof(p->writable), dir))
        return KEEL_ERR(KEEL_E_RANGE,
                        "'writable' of configuration '%s' and its compiler cache '%s' are "
                        "longer than %zu bytes",
                        name, dir, sizeof(p->writable));
    gate_fmt(p->ccache_dir, sizeof(p->ccache_dir), "%s", dir);
    return KEEL_OK;
}

size_t gate_ccache_env(const char *dir, const char *tree, const char *path, char (*vars)[1200])
{
    KEEL_ASSERT(dir != NULL && tree != NULL && vars != NULL);
    size_t n = 0;
    (void)snprintf(vars[n++], 1200, "CCACHE_DIR=%s", dir);
    (void)snprintf(vars[n++], 1200, "CCACHE_BASEDIR=%s", tree);
    (void)snprintf(vars[n++], 1200, "CCACHE_NOHASHDIR=1");
    struct stat sb;
    if (stat(CCACHE_MASQUERADE, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        const char *rest = path != NULL && path[0] != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
        (void)snprintf(vars[n++], 1200, "PATH=" CCACHE_MASQUERADE ":%s", rest);
    }
    return n;
}

keel_status gate_ccache_stats_parse(const char *text, gate_ccache_stats *out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    bool any = false;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *tab = (const char *)memchr(line, '\t', len);
        if (tab != NULL) {
            size_t klen = (size_t)(tab - line);
            char *num_end = NULL;
            unsigned long long v = strtoull(tab + 1, &num_end, 10);
            static const char *const keys[] = {"direct_cache_hit", "preprocessed_cache_hit",
                                               "cache_miss", "files_in_cache",
                                               "cache_size_kibibyte"};
            for (size_t k = 0; num_end != tab + 1 && k < sizeof(keys) / sizeof(keys[0]); k++) {
                if (strlen(keys[k]) != klen || strncmp(line, keys[k], klen) != 0)
                    continue;
                any = true;
                if (k < 2)
                    out->hits += v;
                else if (k == 2)
                    out->misses = v;
                else if (k == 3)
                    out->files = v;
                else
                    out->bytes = v * 1024;
            }
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    return any ? KEEL_OK
               : KEEL_ERR(KEEL_E_PARSE, "no counters in ccache's statistics ('ccache "
                                        "--print-stats')");
}

keel_status gate_ccache_stats_read(const char *dir, gate_ccache_stats *out)
{
    KEEL_ASSERT(dir != NULL && out != NULL);
    char prog[GATE_PATH_MAX];
    keel_status s = gate_ccache_find(prog, sizeof(prog));
    if (!keel_ok(s))
        return s;
    int fds[2];
    if (pipe(fds) != 0)
        return KEEL_ERR_SYS(errno, "cannot read the statistics of compiler cache '%s'", dir);
    pid_t pid = fork();
    if (pid == 0) {
        (void)dup2(fds[1], 1);
        (void)close(fds[0]);
        (void)close(fds[1]);
        (void)setenv("CCACHE_DIR", dir, 1);
        execl(prog, "ccache", "--print-stats", (char *)NULL);
        _exit(127);
    }
    (void)close(fds[1]);
    if (pid < 0) {
        int e = errno;
        (void)close(fds[0]);
        return KEEL_ERR_SYS(e, "cannot run '%s --print-stats'", prog);
    }
    char text[8192];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], text + n, sizeof(text) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(text) - 1)
            break;
    }
    text[n] = '\0';
    (void)close(fds[0]);
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
        return KEEL_ERR(KEEL_E_IO, "'%s --print-stats' failed on compiler cache '%s'", prog, dir);
    return KEEL_CONTEXT(gate_ccache_stats_parse(text, out), "compiler cache '%s'", dir);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

size_t gate_ccache_each(const char *work,
                        void (*fn)(void *arg, const char *name, const gate_ccache_stats *st),
                        void *arg)
{
    KEEL_ASSERT(work != NULL && fn != NULL);
    char root[GATE_PATH_MAX];
    gate_fmt(root, sizeof(root), "%s/ccache", work);
    struct dirent **names = NULL;
    int n = scandir(root, &names, NULL, by_name);
    size_t shown = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char dir[GATE_PATH_MAX];
        gate_ccache_dir(work, name, dir, sizeof(dir));
        struct stat sb;
        gate_ccache_stats st;
        if (name[0] != '.' && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            keel_status s = gate_ccache_stats_read(dir, &st);
            if (keel_ok(s)) {
                fn(arg, name, &st);
                shown++;
            }
            keel_status_free(s);
        }
        free(names[i]);
    }
    free(names);
    return shown;
}
