/*
 * ccache.c - a persistent compiler cache per configuration (ccache.h): a job's cache, its
 * environment, the counters.  The layers' merge and removal: ccache_layers.c.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_exec"
#include "ccache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
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
                               const char *name, const char *key, bool writes_landed)
{
    KEEL_ASSERT(p != NULL && work != NULL && name != NULL && key != NULL && key[0] != '\0');
    p->ccache_dir[0] = p->ccache_layer[0] = p->ccache_landed[0] = p->ccache_note[0] = '\0';
    p->ccache_size = 0;
    p->ccache_writes_landed = false;
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
    char root[GATE_PATH_MAX], dir[GATE_PATH_MAX], layers[GATE_PATH_MAX];
    gate_fmt(root, sizeof(root), "%s/ccache", work);
    gate_ccache_dir(work, name, dir, sizeof(dir));
    gate_fmt(layers, sizeof(layers), "%s/layers", dir);
    gate_fmt(p->ccache_landed, sizeof(p->ccache_landed), "%s/landed", dir);
    gate_fmt(p->ccache_layer, sizeof(p->ccache_layer), "%s/%s", layers, key);
    gate_fmt(p->ccache_dir, sizeof(p->ccache_dir), "%s/stats", p->ccache_layer);
    const char *const make[] = {root, dir, p->ccache_landed, layers, p->ccache_layer};
    for (size_t i = 0; keel_ok(s) && i < sizeof(make) / sizeof(make[0]); i++)
        s = make_dir(make[i]);
    if (keel_ok(s) &&
        (!pack_append(p->writable, sizeof(p->writable), p->ccache_layer) ||
         !pack_append(writes_landed ? p->writable : p->readonly,
                      writes_landed ? sizeof(p->writable) : sizeof(p->readonly), p->ccache_landed)))
        s = KEEL_ERR(KEEL_E_RANGE,
                     "'writable' of configuration '%s' and its compiler cache '%s' are longer "
                     "than %zu bytes",
                     name, dir, sizeof(p->writable));
    if (!keel_ok(s)) {
        p->ccache_dir[0] = p->ccache_layer[0] = p->ccache_landed[0] = '\0';
        return KEEL_CONTEXT(s, "the compiler cache of configuration '%s'", name);
    }
    p->ccache_size = size;
    p->ccache_writes_landed = writes_landed;
    return KEEL_OK;
}

/* "file:" and `path` for ccache's remote_storage: bytes other than [A-Za-z0-9/._-] as %XX. */
static size_t file_url(char *buf, size_t size, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(buf, size, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c != '\0' && n + 4 < size; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/._-", *c) != NULL) {
            buf[n++] = (char)*c;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[*c >> 4];
            buf[n++] = hex[*c & 15];
        }
    }
    buf[n] = '\0';
    return n;
}

size_t gate_ccache_env(const gate_job_policy *p, const char *tree, const char *path,
                       char (*vars)[1200])
{
    KEEL_ASSERT(p != NULL && p->ccache_dir[0] != '\0' && tree != NULL && vars != NULL);
    size_t n = 0;
    (void)snprintf(vars[n++], 1200, "CCACHE_DIR=%s", p->ccache_dir);
    /* the landed layer first (read), then the job's own (every new entry goes there only) */
    char *remote = vars[n++];
    size_t len = (size_t)snprintf(remote, 1200, "CCACHE_REMOTE_STORAGE=");
    len += file_url(remote + len, 1200 - len, p->ccache_landed);
    if (!p->ccache_writes_landed) {
        char new_dir[GATE_PATH_MAX + 8];
        gate_fmt(new_dir, sizeof(new_dir), "%s/new", p->ccache_layer);
        len += (size_t)snprintf(remote + len, 1200 - len, "|layout=subdirs|read-only ");
        if (len < 1200)
            len += file_url(remote + len, 1200 - len, new_dir);
    }
    if (len < 1200)
        (void)snprintf(remote + len, 1200 - len, "|layout=subdirs");
    (void)snprintf(vars[n++], 1200, "CCACHE_REMOTE_ONLY=true");
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

keel_status gate_ccache_run(const char *const *args, char *out, size_t size)
{
    KEEL_ASSERT(args != NULL && (out == NULL || size > 0));
    if (out != NULL)
        out[0] = '\0';
    char prog[GATE_PATH_MAX];
    keel_status s = gate_ccache_find(prog, sizeof(prog));
    if (!keel_ok(s))
        return s;
    char text[4 * GATE_PATH_MAX], *argv[16]; /* posix_spawn's vector: copies of the strings */
    size_t n = 0, used = 0;
    for (size_t i = 0; (i == 0 || args[i - 1] != NULL) && n < sizeof(argv) / sizeof(argv[0]) - 1;
         i++) {
        const char *a = i == 0 ? "ccache" : args[i - 1];
        size_t len = strlen(a) + 1;
        if (used + len > sizeof(text))
            return KEEL_ERR(KEEL_E_RANGE, "the arguments of '%s %s' are too long", prog, args[0]);
        memcpy(text + used, a, len);
        argv[n++] = text + used;
        used += len;
    }
    argv[n] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return KEEL_ERR_SYS(errno, "cannot run '%s %s'", prog, args[0]);
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    int e = posix_spawn_file_actions_init(&fa);
    if (e == 0) {
        (void)posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        (void)posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        (void)posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        e = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
        (void)posix_spawn_file_actions_destroy(&fa);
    }
    (void)close(fds[1]);
    if (e != 0) {
        (void)close(fds[0]);
        return KEEL_ERR_SYS(e, "cannot run '%s %s'", prog, args[0]);
    }
    size_t got = 0;
    for (;;) { /* read to the end (past a full buffer: the rest is dropped) */
        char chunk[512];
        ssize_t r = read(fds[0], chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t room = out != NULL && got + 1 < size ? size - 1 - got : 0;
        size_t keep = (size_t)r < room ? (size_t)r : room;
        if (keep > 0)
            memcpy(out + got, chunk, keep);
        got += keep;
    }
    if (out != NULL)
        out[got] = '\0';
    (void)close(fds[0]);
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
        return KEEL_ERR(KEEL_E_IO, "'%s %s' failed (%s %d)", prog, args[0],
                        WIFEXITED(wst) ? "exit" : "signal",
                        WIFEXITED(wst) ? WEXITSTATUS(wst) : WTERMSIG(wst));
    return KEEL_OK;
}

keel_status gate_ccache_stats_of(const char *dir, gate_ccache_stats *out)
{
    KEEL_ASSERT(dir != NULL && out != NULL);
    char text[8192];
    const char *const args[] = {"--dir", dir, "--print-stats", NULL};
    keel_status s = gate_ccache_run(args, text, sizeof(text));
    if (keel_ok(s))
        s = gate_ccache_stats_parse(text, out);
    return keel_ok(s) ? KEEL_OK : KEEL_CONTEXT(s, "compiler cache '%s'", dir);
}

/* The entries of landed layer `dir` (<dir>/<2 chars>/<name>) and their disk usage. */
static void landed_usage(const char *dir, gate_ccache_stats *st)
{
    DIR *top = opendir(dir);
    for (struct dirent *d; top != NULL && (d = readdir(top)) != NULL;) {
        if (d->d_name[0] == '.' || strlen(d->d_name) != 2)
            continue;
        char sub[GATE_PATH_MAX];
        gate_fmt(sub, sizeof(sub), "%s/%s", dir, d->d_name);
        DIR *in = opendir(sub);
        for (struct dirent *f; in != NULL && (f = readdir(in)) != NULL;) {
            struct stat sb;
            if (f->d_name[0] != '.' &&
                fstatat(dirfd(in), f->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(sb.st_mode)) {
                st->files++;
                st->bytes += (unsigned long long)sb.st_blocks * 512u;
            }
        }
        if (in != NULL)
            (void)closedir(in);
    }
    if (top != NULL)
        (void)closedir(top);
}

keel_status gate_ccache_stats_read(const char *work, const char *name, gate_ccache_stats *out)
{
    KEEL_ASSERT(work != NULL && name != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    char dir[GATE_PATH_MAX], path[GATE_PATH_MAX + 16];
    gate_ccache_dir(work, name, dir, sizeof(dir));
    gate_fmt(path, sizeof(path), "%s/landed", dir);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return KEEL_ERR(KEEL_E_NOTFOUND, "configuration '%s' has no compiler cache in '%s'", name,
                        dir);
    landed_usage(path, out);
    gate_fmt(path, sizeof(path), "%s/counters", dir);
    gate_ccache_counters_read(path, &out->hits, &out->misses);
    return KEEL_OK;
}

/* "<word> <number>" at *p: the number, *p past it; 0 when it is not there. */
static unsigned long long counter(const char **p, const char *word)
{
    size_t len = strlen(word);
    while (**p == ' ' || **p == '\n')
        (*p)++;
    if (strncmp(*p, word, len) != 0 || (*p)[len] != ' ')
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(*p + len + 1, &end, 10);
    *p = end;
    return v;
}

void gate_ccache_counters_read(const char *path, unsigned long long *hits,
                               unsigned long long *misses)
{
    KEEL_ASSERT(path != NULL && hits != NULL && misses != NULL);
    *hits = *misses = 0; /* none yet; written whole (renamed into place): never seen half */
    char text[128];
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[n] = '\0';
    const char *p = text;
    *hits = counter(&p, "hits");
    *misses = counter(&p, "misses");
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
        gate_ccache_stats st;
        if (name[0] != '.') {
            keel_status s = gate_ccache_stats_read(work, name, &st);
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
