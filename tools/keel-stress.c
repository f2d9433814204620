/*
 * keel-stress - the fault-injection sweep driver.
 *
 *   keel-stress sweep [options] -- PROG [ARGS...]
 *   keel-stress list [--timeout S] -- PROG [ARGS...]
 *
 * A learning run (KEEL_OPTIONS "stress.count;stress.json=...") tells which
 * stress points PROG has and how often each is evaluated.  The sweep then runs
 * PROG once per point P and evaluation k with "stress=P:nth=k" (or
 * "P:after=k-1" in persist mode), in parallel, each run in its own process
 * group with a timeout, and classifies every run from its wait status and its
 * report file: crashed, hung, leaked, violation, exit N, ok or not-fired.
 * Failed runs are listed with the command line that replays them.
 * docs/keel-stress.md describes it for users.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clidoc.h"
#include "run_path.h"
#include "keel/keel.h"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };
enum { MODE_ONCE = 1, MODE_PERSIST = 2 };

typedef struct option_def {
    const char *name;
    const char *arg; /* NULL: a flag */
    bool in_list;    /* also accepted by `list` */
    const char *help;
} option_def;

static const option_def option_table[] = {
    {"jobs", "N", false, "parallel runs (default: number of online CPUs)"},
    {"timeout", "S", true, "seconds per run before it counts as hung (default 30)"},
    {"max-nth", "N", false, "per point, fail evaluations 1..N at most (default 100)"},
    {"budget", "RUNS", false, "stop scheduling after this many fault runs (default 10000)"},
    {"mode", "once|persist|both", false, "fail one evaluation, or every one from it on"},
    {"only", "GLOB", true, "only points whose name matches (may repeat; keel.* only so)"},
    {"allow-exit", "LIST", false,
     "comma-separated exit codes that count as ok (default 0; any: every exit, no signal)"},
    {"seed", "N", false, "stress.seed for every run (default 1)"},
    {"json", "FILE", false, "write the full result as JSON"},
    {"keep", "DIR", false, "keep every run's output and report files in DIR"},
    {"quiet", NULL, false, "no progress line"},
};
enum { OPTION_COUNT = (int)(sizeof(option_table) / sizeof(option_table[0])) };

typedef struct command_def {
    const char *name;
    const char *args;
    const char *help;
} command_def;

static const command_def command_table[] = {
    {"sweep", "[options] -- PROG [ARGS...]",
     "learn PROG's stress points, then run PROG once per point and evaluation with that "
     "evaluation failing; list failed runs and how to replay them"},
    {"list", "[--timeout S] [--only GLOB] -- PROG [ARGS...]",
     "the learning run only: points, evaluations, points never reached"},
    {"help", "", "the usage, the commands and the options"},
};
enum { COMMAND_COUNT = (int)(sizeof(command_table) / sizeof(command_table[0])) };

typedef struct config {
    bool list;
    long jobs;
    double timeout;
    long max_nth;
    long budget;
    int mode;
    const char **only;
    size_t only_count;
    int allow[256];
    size_t allow_count;
    unsigned long long seed;
    const char *json;
    const char *keep;
    bool quiet;
    char **prog;              /* NULL-terminated, from argv */
    const char *user_options; /* the caller's KEEL_OPTIONS, "" if none */
    const char *sep;          /* ";" after user_options, or "" */
} config;

/* Decimal digits, as KEEL_OPTIONS's integers (not strtol's '+' or leading blanks). */
static bool digits_first(const char *v)
{
    return v[0] >= '0' && v[0] <= '9';
}

static keel_status parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!digits_first(v) || *end != '\0' || errno != 0 || n < lo || n > hi)
        return KEEL_ERR(KEEL_E_INVAL, "bad value '%s' for '--%s' (a whole number %ld..%ld)", v, opt,
                        lo, hi);
    *out = n;
    return KEEL_OK;
}

static keel_status parse_allow(config *c, const char *v)
{
    c->allow_count = 0;
    if (strcmp(v, "any") == 0) { /* every exit status: only signals, hangs, leaks fail */
        for (int code = 0; code < 256; code++)
            c->allow[c->allow_count++] = code;
        return KEEL_OK;
    }
    const char *p = v;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long n = strtol(p, &end, 10);
        if (!digits_first(p) || errno != 0 || n > 255 || (*end != ',' && *end != '\0') ||
            c->allow_count >= sizeof(c->allow) / sizeof(c->allow[0]))
            return KEEL_ERR(KEEL_E_INVAL,
                            "bad value '%s' for '--allow-exit' (exit codes 0..255 joined by ',')",
                            v);
        c->allow[c->allow_count++] = (int)n;
        if (*end == '\0')
            return KEEL_OK;
        p = end + 1;
    }
}

static keel_status apply_option(config *c, const char *name, const char *v)
{
    if (strcmp(name, "quiet") == 0) {
        c->quiet = true;
        return KEEL_OK;
    }
    if (v == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "option '--%s' needs a value", name);
    long n = 0;
    keel_status s = KEEL_OK;
    if (strcmp(name, "jobs") == 0) {
        s = parse_long(name, v, 1, 4096, &n);
        c->jobs = n;
    } else if (strcmp(name, "max-nth") == 0) {
        s = parse_long(name, v, 1, LONG_MAX, &n);
        c->max_nth = n;
    } else if (strcmp(name, "budget") == 0) {
        s = parse_long(name, v, 0, LONG_MAX, &n);
        c->budget = n;
    } else if (strcmp(name, "timeout") == 0) {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        /* digits and a '.' (not strtod's blanks, sign, exponent, hex, inf or nan) */
        if (v[strspn(v, "0123456789.")] != '\0' || *end != '\0' || errno != 0 ||
            !(d > 0 && d < 1e7))
            return KEEL_ERR(KEEL_E_INVAL, "bad value '%s' for '--timeout' (seconds above 0)", v);
        c->timeout = d;
    } else if (strcmp(name, "mode") == 0) {
        if (strcmp(v, "once") == 0)
            c->mode = MODE_ONCE;
        else if (strcmp(v, "persist") == 0)
            c->mode = MODE_PERSIST;
        else if (strcmp(v, "both") == 0)
            c->mode = MODE_ONCE | MODE_PERSIST;
        else
            return KEEL_ERR(KEEL_E_INVAL, "bad value '%s' for '--mode' (once, persist or both)", v);
    } else if (strcmp(name, "only") == 0) {
        const char **grown = (const char **)realloc(c->only, (c->only_count + 1) * sizeof(*grown));
        if (grown == NULL)
            return KEEL_ERR(KEEL_E_NOMEM, "no memory for '--only'");
        c->only = grown;
        c->only[c->only_count++] = v;
    } else if (strcmp(name, "allow-exit") == 0) {
        s = parse_allow(c, v);
    } else if (strcmp(name, "seed") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long seed = strtoull(v, &end, 10);
        /* stress.seed's range; 0 (a new seed in every run) would make no replay line replay */
        if (!digits_first(v) || *end != '\0' || errno != 0 || seed < 1 ||
            seed > 1000000000000000000ull)
            return KEEL_ERR(KEEL_E_INVAL,
                            "bad value '%s' for '--seed' (a whole number from 1 to 10^18: "
                            "stress.seed's, the same in every run)",
                            v);
        c->seed = seed;
    } else if (strcmp(name, "json") == 0) {
        c->json = v;
    } else if (strcmp(name, "keep") == 0) {
        c->keep = v;
    }
    return s;
}

/*
 * --json FILE is written when the sweep ends: that it can be is known before its first run (an
 * existing file that is writable and no directory, or a new one in a writable directory).
 */
static keel_status check_json_file(const char *path)
{
    if (path[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "bad value '' for '--json' (a file name)");
    char dir[PATH_MAX];
    bool in_dir;
    int err = run_path_unwritable(path, dir, sizeof(dir), &in_dir);
    if (err == EISDIR && !in_dir)
        return KEEL_ERR(KEEL_E_INVAL, "bad value '%s' for '--json': it is a directory", path);
    if (in_dir)
        return KEEL_ERR_SYS(err, "bad value '%s' for '--json': cannot create it in '%s'", path,
                            dir);
    if (err != 0)
        return KEEL_ERR_SYS(err, "bad value '%s' for '--json': cannot write it", path);
    return KEEL_OK;
}

/* argv[0] is the command ("sweep" or "list"). */
static keel_status parse_args(config *c, int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-')
            break;
        if (a[1] != '-' || a[2] == '\0')
            return KEEL_ERR(KEEL_E_INVAL, "unknown option '%s'", a);
        const char *eq = strchr(a + 2, '=');
        char name[64];
        (void)snprintf(name, sizeof(name), "%.*s",
                       (int)(eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2)), a + 2);
        const option_def *d = NULL;
        for (int k = 0; k < OPTION_COUNT; k++)
            if (strcmp(option_table[k].name, name) == 0)
                d = &option_table[k];
        if (d == NULL || (c->list && !d->in_list))
            return KEEL_ERR(KEEL_E_INVAL, "unknown option '--%s' for '%s'", name, argv[0]);
        const char *v = NULL;
        if (d->arg == NULL) {
            if (eq != NULL)
                return KEEL_ERR(KEEL_E_INVAL, "option '--%s' takes no value", d->name);
        } else if (eq != NULL) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return KEEL_ERR(KEEL_E_INVAL, "option '--%s' needs a value (%s)", d->name, d->arg);
        }
        keel_status s = apply_option(c, d->name, v);
        if (!keel_ok(s))
            return s;
    }
    if (i >= argc)
        return KEEL_ERR(KEEL_E_INVAL, "no program to run (put it after '--')");
    c->prog = argv + i;
    return c->json != NULL ? check_json_file(c->json) : KEEL_OK;
}

static void print_help(FILE *f)
{
    for (int k = 0; k < COMMAND_COUNT; k++)
        (void)fprintf(f, "%s keel-stress %s%s%s\n", k == 0 ? "usage:" : "      ",
                      command_table[k].name, command_table[k].args[0] != '\0' ? " " : "",
                      command_table[k].args);
    (void)fputc('\n', f);
    for (int k = 0; k < COMMAND_COUNT; k++)
        (void)fprintf(f, "%s: %s.\n", command_table[k].name, command_table[k].help);
    (void)fprintf(f, "\noptions:\n");
    for (int k = 0; k < OPTION_COUNT; k++) {
        char left[64];
        (void)snprintf(left, sizeof(left), "--%s%s%s", option_table[k].name,
                       option_table[k].arg != NULL ? " " : "",
                       option_table[k].arg != NULL ? option_table[k].arg : "");
        (void)fprintf(f, "  %-28s %s\n", left, option_table[k].help);
    }
    (void)fprintf(f, "\nexit status: 0 no run failed, 1 some did, 2 usage or learning error\n");
}

/*
 * The manual page (`--help-man`) or bash completion (`--completion`) from the
 * tables above (gate/cli/clidoc.h): hidden options, for the build, which
 * installs them.
 */
static void print_doc(FILE *f, bool man)
{
    gate_clidoc_item cmds[COMMAND_COUNT], opts[OPTION_COUNT];
    for (int k = 0; k < COMMAND_COUNT; k++) {
        cmds[k].name = command_table[k].name;
        cmds[k].value = command_table[k].args;
        cmds[k].help = command_table[k].help;
        cmds[k].where = NULL;
    }
    for (int k = 0; k < OPTION_COUNT; k++) {
        opts[k].name = option_table[k].name;
        opts[k].value = option_table[k].arg;
        opts[k].help = option_table[k].help;
        opts[k].where = option_table[k].in_list ? "sweep list" : "sweep";
    }
    gate_clidoc d;
    memset(&d, 0, sizeof(d));
    d.prog = "keel-stress";
    d.title = "the fault-injection sweep: fail each stress point of a program in turn";
    d.synopsis = "keel-stress sweep [options] -- PROG [ARGS...]\n"
                 "keel-stress list [--timeout S] [--only GLOB] -- PROG [ARGS...]";
    d.description =
        "keel-stress runs a program built with keel's stress points many times, each time making "
        "one evaluation of one point fail, and tells which of those failures the program does "
        "not survive: a crash, a hang, a leak, a keel report, or an unexpected exit status.  "
        "Every failed run comes with the command line that replays it.\n\n"
        "A learning run (KEEL_OPTIONS stress.count;stress.json=FILE added to yours) tells which "
        "points PROG has and how often each is evaluated; the sweep then runs PROG once per "
        "point P and evaluation k with stress=P:nth=k (or P:after=k-1 in persist mode), --jobs "
        "at a time, each in its own process group with a timeout.\n\n"
        "  keel-stress sweep -- ./myserver --self-test\n"
        "  keel-stress list -- ./myserver --self-test";
    d.cmds = cmds;
    d.ncmds = COMMAND_COUNT;
    d.opts = opts;
    d.nopts = OPTION_COUNT;
    d.rest = "PROG";
    d.exit_status = "0: no run failed.  1: some did.  2: usage, or the learning run failed.";
    d.environment = "KEEL_OPTIONS: kept in every run, the stress options added to it.";
    d.see_also = "keel-gate(1); docs/keel-stress.md and docs/stress.md in keel's sources";
    if (man)
        gate_clidoc_man(f, &d);
    else
        gate_clidoc_bash(f, &d);
}

static double now_seconds(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static keel_status str_printf(char **out, const char *fmt, ...) KEEL_PRINTF(2, 3);
static keel_status str_printf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KEEL_ERR(KEEL_E_INTERNAL, "cannot format '%s'", fmt);
    char *p = (char *)malloc((size_t)n + 1);
    if (p == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "no memory for %d bytes of text", n + 1);
    va_start(ap, fmt);
    (void)vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *out = p;
    return KEEL_OK;
}

/* "SIGABRT"; one buffer, so one call per statement. */
static const char *signal_name(int sig)
{
    static char name[32];
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev != NULL)
        (void)snprintf(name, sizeof(name), "SIG%s", abbrev);
    else
        (void)snprintf(name, sizeof(name), "signal %d", sig);
    return name;
}

/* Shell-quote `w` into f: as is when it is plainly safe, else in single quotes. */
static void put_shell_word(FILE *f, const char *w)
{
    bool plain = w[0] != '\0';
    for (const char *p = w; *p != '\0'; p++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+-@%",
                   *p) == NULL)
            plain = false;
    if (plain) {
        (void)fputs(w, f);
        return;
    }
    (void)fputc('\'', f);
    for (const char *p = w; *p != '\0'; p++) {
        if (*p == '\'')
            (void)fputs("'\\''", f);
        else
            (void)fputc(*p, f);
    }
    (void)fputc('\'', f);
}

static void put_json_str(FILE *f, const char *s)
{
    (void)fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            (void)fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            (void)fprintf(f, "\\u%04x", *p);
        else
            (void)fputc(*p, f);
    }
    (void)fputc('"', f);
}

/* Where the value after the first `"key":` in line starts, or NULL. */
static const char *json_value(const char *line, const char *key)
{
    char needle[64];
    (void)snprintf(needle, sizeof(needle), "\"%s\":", key);
    const char *p = strstr(line, needle);
    if (p == NULL)
        return NULL;
    for (p += strlen(needle); *p == ' ' || *p == '\t';)
        p++;
    return p;
}

/*
 * The JSON string value after the first `"key":` in line, decoded into out
 * (cut to size).  False when the key is absent or its value is no string.
 */
static bool json_str_field(const char *line, const char *key, char *out, size_t size)
{
    const char *p = json_value(line, key);
    if (p == NULL || size == 0 || *p++ != '"')
        return false;
    size_t n = 0;
    for (; *p != '\0' && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p[1] != '\0') {
            p++;
            static const char from[] = "ntrbf", to[] = "\n\t\r\b\f";
            const char *e = strchr(from, *p);
            c = *p;
            if (e != NULL)
                c = to[e - from];
            unsigned v = 0;
            for (int k = 0; c == 'u' && k < 4 && p[1] != '\0' && isxdigit((unsigned char)p[1]);
                 k++, p++)
                v = v * 16 + (unsigned)(p[1] <= '9' ? p[1] - '0' : (p[1] | 0x20) - 'a' + 10);
            if (c == 'u')
                c = (char)(v < 0x80 ? v : (unsigned)'?');
        }
        if (n + 1 < size)
            out[n++] = c;
    }
    out[n] = '\0';
    return *p == '"';
}

/* The integer after the first `"key":` in line. */
static bool json_int_field(const char *line, const char *key, long long *out)
{
    const char *p = json_value(line, key);
    if (p == NULL)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno != 0)
        return false;
    *out = v;
    return true;
}

/* The last `max` bytes of a file, from the start of a line, into buf (empty if none). */
static void file_tail(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= size)
        (void)lseek(fd, st.st_size - (off_t)size + 1, SEEK_SET);
    ssize_t n = read(fd, buf, size - 1);
    (void)close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (n > 0 && (size_t)st.st_size >= size) {
        char *nl = strchr(buf, '\n');
        if (nl != NULL)
            memmove(buf, nl + 1, strlen(nl + 1) + 1);
    }
}

/* Append src to the string in dst, cut to size. */
static void text_append(char *dst, size_t size, const char *src)
{
    size_t at = strnlen(dst, size);
    size_t n = strlen(src);
    if (at + 1 >= size)
        return;
    if (n > size - 1 - at)
        n = size - 1 - at;
    memcpy(dst + at, src, n);
    dst[at + n] = '\0';
}

/* The last non-empty line of a file, cut to size. */
static void last_line(const char *path, char *out, size_t size)
{
    char tail[1024];
    file_tail(path, tail, sizeof(tail));
    size_t len = strlen(tail);
    while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r'))
        tail[--len] = '\0';
    const char *nl = strrchr(tail, '\n');
    const char *from = nl != NULL ? nl + 1 : tail;
    if (size == 0)
        return;
    size_t n = strlen(from);
    if (n >= size)
        n = size - 1; /* cut to size */
    memcpy(out, from, n);
    out[n] = '\0';
}

/* ---- points: the learning run's stress.json -------------------------------------------- */

typedef struct point {
    char *name;
    long long evaluations;
    long long fires;
    char *where; /* "file:line function()" of its one site (keel-run's libc.*), else NULL */
} point;

typedef struct point_list {
    point *v;
    size_t n;
} point_list;

static void points_free(point_list *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        free(pl->v[i].name);
        free(pl->v[i].where);
    }
    free(pl->v);
    pl->v = NULL;
    pl->n = 0;
}

/* A point line's one site as "file:line function()"; NULL when it has none or several. */
static char *point_where(const char *line)
{
    const char *sites = strstr(line, "\"sites\":[{");
    if (sites == NULL || strstr(sites + 10, "},{") != NULL)
        return NULL;
    char file[256], func[128];
    long long at = 0;
    if (!json_str_field(sites, "file", file, sizeof(file)) || !json_int_field(sites, "line", &at) ||
        !json_str_field(sites, "function", func, sizeof(func)))
        return NULL;
    char *where = NULL;
    keel_status s = str_printf(&where, "%s:%lld %s()", file, at, func);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return NULL;
    }
    return where;
}

/* Read a stress.json: one point per line, each line starting with {"name":. */
static keel_status points_read(const char *path, point_list *pl)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot open stress file '%s'", path);
    char *line = NULL;
    size_t cap = 0;
    keel_status s = KEEL_OK;
    while (getline(&line, &cap, f) > 0) {
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncmp(p, "{\"name\":", 8) != 0)
            continue;
        char name[512];
        point pt = {NULL, 0, 0, NULL};
        if (!json_str_field(p, "name", name, sizeof(name)) ||
            !json_int_field(p, "evaluations", &pt.evaluations) ||
            !json_int_field(p, "fires", &pt.fires)) {
            s = KEEL_ERR(KEEL_E_PARSE, "malformed point line in stress file '%s'", path);
            break;
        }
        pt.name = strdup(name);
        pt.where = point_where(p);
        point *grown =
            pt.name != NULL ? (point *)realloc(pl->v, (pl->n + 1) * sizeof(*grown)) : NULL;
        if (grown == NULL) {
            free(pt.name);
            s = KEEL_ERR(KEEL_E_NOMEM, "no memory reading stress file '%s'", path);
            break;
        }
        pl->v = grown;
        pl->v[pl->n++] = pt;
    }
    free(line);
    (void)fclose(f);
    return s;
}

/*
 * libkeel-devel's own points (keel.*: the lock checker's table-full paths) are
 * keel's business, not the program's: a sweep leaves them out unless an
 * --only pattern names them.
 */
static bool point_selected(const config *c, const char *name)
{
    if (c->only_count == 0)
        return strncmp(name, "keel.", 5) != 0;
    for (size_t i = 0; i < c->only_count; i++)
        if (fnmatch(c->only[i], name, 0) == 0)
            return true;
    return false;
}

/* ", never reached: N: a, b" for the selected points with no evaluation. */
static void put_never(FILE *f, const config *c, const point_list *pl)
{
    size_t never = 0;
    for (size_t i = 0; i < pl->n; i++)
        never += point_selected(c, pl->v[i].name) && pl->v[i].evaluations == 0;
    (void)fprintf(f, ", never reached: %zu", never);
    for (size_t i = 0, k = 0; i < pl->n; i++)
        if (point_selected(c, pl->v[i].name) && pl->v[i].evaluations == 0)
            (void)fprintf(f, "%s%s", k++ == 0 ? ": " : ", ", pl->v[i].name);
    (void)fputc('\n', f);
}

/* In order of precedence: a run gets the last that applies. */
typedef enum result_kind {
    RESULT_OK,
    RESULT_NOT_FIRED,
    RESULT_EXIT,
    RESULT_VIOLATION,
    RESULT_LEAKED,
    RESULT_HUNG,
    RESULT_CRASHED
} result_kind;

static const char *const result_names[] = {"ok",     "not-fired", "exit",   "violation",
                                           "leaked", "hung",      "crashed"};

static const char *result_name(result_kind r)
{
    return result_names[r];
}

static bool is_failure(result_kind r)
{
    return r != RESULT_OK && r != RESULT_NOT_FIRED;
}

typedef struct run {
    size_t point; /* index into the point list */
    long nth;
    int mode; /* MODE_ONCE or MODE_PERSIST */
    size_t id;
    char *options; /* the full KEEL_OPTIONS of the run */
    pid_t pid;
    double started;
    bool timed_out;
    result_kind result;
    int exit_code; /* -1: none */
    int signal;    /* 0: none */
    double seconds;
    char detail[256];
} run;

/* Paths of one run's files: <dir>/<stem>.{out,err,json,jsonl} */
typedef struct run_paths {
    char out[PATH_MAX];
    char err[PATH_MAX];
    char json[PATH_MAX];
    char report[PATH_MAX];
} run_paths;

static void make_paths(const char *dir, const char *stem, run_paths *p)
{
    (void)snprintf(p->out, sizeof(p->out), "%s/%s.out", dir, stem);
    (void)snprintf(p->err, sizeof(p->err), "%s/%s.err", dir, stem);
    (void)snprintf(p->json, sizeof(p->json), "%s/%s.json", dir, stem);
    (void)snprintf(p->report, sizeof(p->report), "%s/%s.jsonl", dir, stem);
}

static void child_fail(int fd, int err)
{
    ssize_t w = write(fd, &err, sizeof(err));
    (void)w;
    _exit(127);
}

static void child_exec(char *const *argv, const char *options, const run_paths *p, int report_fd)
{
    /* exec resets the caught SIGINT/SIGTERM; O_CLOEXEC closes the originals */
    (void)setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        child_fail(report_fd, errno);
    if (setenv("KEEL_OPTIONS", options, 1) != 0)
        child_fail(report_fd, errno);
    execvp(argv[0], argv);
    child_fail(report_fd, errno);
}

/*
 * Start argv in its own process group with KEEL_OPTIONS=options, stdin from
 * /dev/null and its output in p's files.  An error when it could not start.
 */
static keel_status spawn(char *const *argv, const char *options, const run_paths *p, pid_t *pid)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return KEEL_ERR_SYS(errno, "cannot make a pipe to start '%s'", argv[0]);
    (void)fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        (void)close(fds[0]);
        (void)close(fds[1]);
        return KEEL_ERR_SYS(e, "cannot fork to start '%s'", argv[0]);
    }
    if (child == 0) {
        (void)close(fds[0]);
        child_exec(argv, options, p, fds[1]);
    }
    (void)setpgid(child, child);
    (void)close(fds[1]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(fds[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    (void)close(fds[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        int st = 0;
        (void)waitpid(child, &st, 0);
        return KEEL_ERR_SYS(child_errno, "cannot run '%s'", argv[0]);
    }
    *pid = child;
    return KEEL_OK;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void nap(void)
{
    struct timespec ts = {0, 5000000L};
    (void)nanosleep(&ts, NULL);
}

/*
 * Has the child ended?  Past `timeout` seconds since `started`, or on an
 * interrupt, kill its process group first.  Once it has ended, kill what it
 * left behind in its group.  True when *status holds its wait status.
 */
static bool reap(pid_t pid, double started, double timeout, int *status, bool *timed_out)
{
    pid_t w = waitpid(pid, status, WNOHANG);
    if (w == 0 && (interrupted || now_seconds() - started > timeout)) {
        *timed_out = !interrupted;
        (void)kill(-pid, SIGKILL);
        do
            w = waitpid(pid, status, 0);
        while (w < 0 && errno == EINTR);
    }
    if (w == 0 || (w < 0 && errno == EINTR))
        return false;
    (void)kill(-pid, SIGKILL);
    if (w < 0)
        *status = 127 << 8; /* lost (cannot happen: it is our child): as if exit 127 */
    return true;
}

static bool exit_allowed(const config *c, int code)
{
    for (size_t i = 0; i < c->allow_count; i++)
        if (c->allow[i] == code)
            return true;
    return false;
}

static keel_status learn_in(const config *c, const run_paths *p, point_list *pl)
{
    char *options = NULL;
    keel_status s =
        str_printf(&options, "%s%sstress.count;stress.json=%s", c->user_options, c->sep, p->json);
    if (!keel_ok(s))
        return s;
    pid_t pid = 0;
    s = spawn(c->prog, options, p, &pid);
    free(options);
    if (!keel_ok(s))
        return s;
    int st = 0;
    bool hung = false;
    double started = now_seconds();
    while (!reap(pid, started, c->timeout, &st, &hung))
        nap();
    if (interrupted)
        return KEEL_ERR(KEEL_E_CANCELLED, "interrupted by %s", signal_name((int)interrupted));
    char tail[2048];
    file_tail(p->err, tail, sizeof(tail));
    if (hung)
        s = KEEL_ERR(KEEL_E_TIMEOUT, "learning run of '%s' hung (over %gs); its stderr ends:\n%s",
                     c->prog[0], c->timeout, tail);
    else if (WIFSIGNALED(st))
        s = KEEL_ERR(KEEL_E_STATE, "learning run of '%s' crashed (%s); its stderr ends:\n%s",
                     c->prog[0], signal_name(WTERMSIG(st)), tail);
    else if (WIFEXITED(st) && !exit_allowed(c, WEXITSTATUS(st)))
        s = KEEL_ERR(KEEL_E_STATE, "learning run of '%s' exited %d; its stderr ends:\n%s",
                     c->prog[0], WEXITSTATUS(st), tail);
    if (!keel_ok(s))
        return s;
    if (access(p->json, R_OK) != 0)
        return KEEL_ERR(KEEL_E_NOTFOUND,
                        "learning run of '%s' wrote no stress file '%s' (is it built with a "
                        "keel that has stress points?); its stderr ends:\n%s",
                        c->prog[0], p->json, tail);
    return points_read(p->json, pl);
}

/* Each --only names points the learning run found: one that matches none would sweep nothing. */
static keel_status check_only(const config *c, const point_list *pl)
{
    for (size_t i = 0; i < c->only_count; i++) {
        bool any = false;
        for (size_t k = 0; k < pl->n && !any; k++)
            any = fnmatch(c->only[i], pl->v[k].name, 0) == 0;
        if (!any)
            return keel_status_with_str(
                KEEL_ERR(
                    KEEL_E_NOTFOUND,
                    "'--only' '%s' matches none of the %zu stress points the learning run found "
                    "('keel-stress list' shows them)",
                    c->only[i], pl->n),
                "only", c->only[i]);
    }
    return KEEL_OK;
}

/* The learning run, its files removed afterwards unless --keep. */
static keel_status learn(const config *c, const char *dir, point_list *pl)
{
    run_paths p = {"", "", "", ""};
    make_paths(dir, "learn", &p);
    keel_status s = learn_in(c, &p, pl);
    if (keel_ok(s))
        s = check_only(c, pl);
    for (int i = 0; i < 3 && c->keep == NULL; i++)
        (void)unlink(i == 0 ? p.out : i == 1 ? p.err : p.json);
    return s;
}

/* ---- the sweep ------------------------------------------------------------------------------ */

typedef struct sweep {
    const config *cfg;
    const char *dir;
    bool keep_all;
    point_list points;
    run *runs;
    size_t planned;
    bool budget_exhausted;
    size_t unplanned; /* runs the budget cut */
    size_t done;
    size_t failed;
    size_t not_fired;
} sweep;

static keel_status plan(sweep *sw)
{
    const config *c = sw->cfg;
    size_t cap = 0;
    for (size_t i = 0; i < sw->points.n; i++) {
        const point *pt = &sw->points.v[i];
        long long n = !point_selected(c, pt->name)   ? 0
                      : pt->evaluations < c->max_nth ? pt->evaluations
                                                     : c->max_nth;
        for (long k = 1; k <= n; k++) {
            for (int mode = MODE_ONCE; mode <= MODE_PERSIST; mode <<= 1) {
                if ((c->mode & mode) == 0)
                    continue;
                if (sw->planned >= (size_t)c->budget) {
                    sw->budget_exhausted = true;
                    sw->unplanned++;
                    continue;
                }
                if (sw->planned == cap) {
                    cap = cap * 2 + 64;
                    run *grown = (run *)realloc(sw->runs, cap * sizeof(*grown));
                    if (grown == NULL)
                        return KEEL_ERR(KEEL_E_NOMEM, "no memory for %zu runs", cap);
                    sw->runs = grown;
                }
                run *r = &sw->runs[sw->planned++];
                memset(r, 0, sizeof(*r));
                r->point = i;
                r->nth = k;
                r->mode = mode;
                r->id = sw->planned;
                r->exit_code = -1;
            }
        }
    }
    return KEEL_OK;
}

/* The stress spec of a run: "P:nth=k" or "P:after=k-1". */
static void run_spec(const sweep *sw, const run *r, char *buf, size_t size)
{
    const char *name = sw->points.v[r->point].name;
    if (r->mode == MODE_ONCE)
        (void)snprintf(buf, size, "%s:nth=%ld", name, r->nth);
    else
        (void)snprintf(buf, size, "%s:after=%ld", name, r->nth - 1);
}

static const char *report_options =
    "report.lost-error=report;report.leaked-error=report;report.leak=report";

static keel_status run_start(sweep *sw, run *r)
{
    const config *c = sw->cfg;
    char stem[32];
    (void)snprintf(stem, sizeof(stem), "run-%zu", r->id);
    run_paths p = {"", "", "", ""};
    make_paths(sw->dir, stem, &p);
    char spec[600];
    run_spec(sw, r, spec, sizeof(spec));
    keel_status s =
        str_printf(&r->options,
                   "%s%sstress=%s;stress.seed=%llu;stress.json=%s;"
                   "report.file=%s;%s",
                   c->user_options, c->sep, spec, c->seed, p.json, p.report, report_options);
    if (!keel_ok(s))
        return s;
    (void)unlink(p.json);
    (void)unlink(p.report);
    r->started = now_seconds();
    return spawn(c->prog, r->options, &p, &r->pid);
}

/* Classify a report file: the first leak kind and the first other violation. */
static void read_report(const char *path, run *r)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char *line = NULL;
    size_t cap = 0;
    char first_violation[256] = "";
    char first_leak[256] = "";
    while (getline(&line, &cap, f) > 0) {
        char kind[64];
        char message[180];
        if (!json_str_field(line, "kind", kind, sizeof(kind)))
            continue;
        if (strcmp(kind, "stress") == 0 || strcmp(kind, "ignored-error") == 0)
            continue;
        if (!json_str_field(line, "message", message, sizeof(message)))
            message[0] = '\0';
        bool leak = strcmp(kind, "leak") == 0 || strcmp(kind, "lost-error") == 0 ||
                    strcmp(kind, "leaked-error") == 0;
        char *slot = leak ? first_leak : first_violation;
        if (slot[0] == '\0')
            (void)snprintf(slot, sizeof(first_leak), "%s: %s", kind, message);
    }
    free(line);
    (void)fclose(f);
    if (first_leak[0] != '\0') {
        r->result = RESULT_LEAKED;
        (void)snprintf(r->detail, sizeof(r->detail), "%s", first_leak);
    } else if (first_violation[0] != '\0') {
        r->result = RESULT_VIOLATION;
        (void)snprintf(r->detail, sizeof(r->detail), "%s", first_violation);
    }
}

/* Did the run's stress.json show the point never fired? */
static bool did_not_fire(const char *path, const char *name)
{
    point_list pl = {NULL, 0};
    keel_status s = points_read(path, &pl);
    bool none = false;
    for (size_t i = 0; keel_ok(s) && i < pl.n; i++)
        none = strcmp(pl.v[i].name, name) == 0 ? pl.v[i].fires == 0 : none;
    keel_status_free(s);
    points_free(&pl);
    return none;
}

static void run_finish(sweep *sw, run *r, int st)
{
    char stem[32];
    (void)snprintf(stem, sizeof(stem), "run-%zu", r->id);
    run_paths p = {"", "", "", ""};
    make_paths(sw->dir, stem, &p);
    r->seconds = now_seconds() - r->started;
    r->result = RESULT_OK;
    char last[160];
    last_line(p.err, last, sizeof(last));
    if (WIFSIGNALED(st))
        r->signal = WTERMSIG(st);
    if (WIFEXITED(st))
        r->exit_code = WEXITSTATUS(st);
    if (r->timed_out || WIFSIGNALED(st)) {
        /* the report written before the crash (an assertion, say) or during the hang (keel-run's
         * deadlock or hang report) says more than stderr's end */
        read_report(p.report, r);
        char why[sizeof(r->detail)];
        why[0] = '\0';
        text_append(why, sizeof(why), r->detail[0] != '\0' || r->timed_out ? r->detail : last);
        r->detail[0] = '\0';
        if (r->timed_out) {
            r->result = RESULT_HUNG;
            (void)snprintf(r->detail, sizeof(r->detail), "over %gs, process group killed",
                           sw->cfg->timeout);
        } else {
            r->result = RESULT_CRASHED;
            text_append(r->detail, sizeof(r->detail), signal_name(r->signal));
        }
        if (why[0] != '\0') {
            text_append(r->detail, sizeof(r->detail), ": ");
            text_append(r->detail, sizeof(r->detail), why);
        }
    } else {
        read_report(p.report, r);
        if (r->result == RESULT_OK && !exit_allowed(sw->cfg, r->exit_code)) {
            r->result = RESULT_EXIT;
            (void)snprintf(r->detail, sizeof(r->detail), "exit %d%s%s", r->exit_code,
                           last[0] != '\0' ? ": " : "", last);
        }
        if (r->result == RESULT_OK && did_not_fire(p.json, sw->points.v[r->point].name))
            r->result = RESULT_NOT_FIRED;
    }
    sw->done++;
    if (is_failure(r->result))
        sw->failed++;
    else if (r->result == RESULT_NOT_FIRED)
        sw->not_fired++;
    if (!sw->keep_all && !is_failure(r->result)) {
        (void)unlink(p.out);
        (void)unlink(p.err);
        (void)unlink(p.json);
        (void)unlink(p.report);
    }
}

static void progress(const sweep *sw, const run *last)
{
    if (sw->cfg->quiet || !isatty(2))
        return;
    (void)fprintf(stderr, "\r[%4zu/%zu] %zu failed  %s %s=%ld\033[K", sw->done, sw->planned,
                  sw->failed, sw->points.v[last->point].name,
                  last->mode == MODE_ONCE ? "nth" : "after",
                  last->mode == MODE_ONCE ? last->nth : last->nth - 1);
    (void)fflush(stderr);
}

static keel_status sweep_run(sweep *sw)
{
    size_t jobs = (size_t)sw->cfg->jobs;
    size_t *active = (size_t *)calloc(jobs, sizeof(size_t));
    if (active == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "no memory for %zu jobs", jobs);
    size_t running = 0;
    size_t next = 0;
    keel_status s = KEEL_OK;
    while ((next < sw->planned || running > 0) && keel_ok(s)) {
        while (running < jobs && next < sw->planned && !interrupted) {
            run *r = &sw->runs[next++];
            s = run_start(sw, r);
            if (!keel_ok(s))
                break;
            active[running++] = (size_t)(r - sw->runs);
        }
        bool any = false;
        for (size_t i = 0; i < running;) {
            run *r = &sw->runs[active[i]];
            int st = 0;
            if (!reap(r->pid, r->started, sw->cfg->timeout, &st, &r->timed_out)) {
                i++;
                continue;
            }
            run_finish(sw, r, st);
            progress(sw, r);
            active[i] = active[--running];
            any = true;
        }
        if (interrupted && running == 0) {
            if (keel_ok(s))
                s = KEEL_ERR(KEEL_E_CANCELLED, "interrupted by %s after %zu runs",
                             signal_name((int)interrupted), sw->done);
            break;
        }
        if (!any)
            nap();
    }
    /* On an error, stop what still runs. */
    for (size_t i = 0; i < running; i++) {
        (void)kill(-sw->runs[active[i]].pid, SIGKILL);
        (void)waitpid(sw->runs[active[i]].pid, NULL, 0);
    }
    free(active);
    if (!sw->cfg->quiet && isatty(2)) {
        (void)fputs("\r\033[K", stderr);
        (void)fflush(stderr);
    }
    return s;
}

/* The replay command: the run's options without its own files, then the program. */
static char *replay_string(const sweep *sw, const run *r)
{
    const config *c = sw->cfg;
    char spec[600];
    run_spec(sw, r, spec, sizeof(spec));
    char *opts = NULL;
    keel_status s = str_printf(&opts, "%s%sstress=%s;stress.seed=%llu;%s", c->user_options, c->sep,
                               spec, c->seed, report_options);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = keel_ok(s) ? open_memstream(&buf, &len) : NULL;
    keel_status_free(s);
    if (m != NULL) {
        (void)fputs("KEEL_OPTIONS=", m);
        put_shell_word(m, opts);
        for (char **a = c->prog; *a != NULL; a++) {
            (void)fputc(' ', m);
            put_shell_word(m, *a);
        }
        (void)fclose(m);
    }
    free(opts);
    return buf;
}

static void print_results(const sweep *sw)
{
    size_t wpoint = strlen("POINT");
    for (size_t i = 0; i < sw->planned; i++)
        if (is_failure(sw->runs[i].result)) {
            size_t n = strlen(sw->points.v[sw->runs[i].point].name);
            wpoint = n > wpoint ? n : wpoint;
        }
    if (sw->failed > 0) {
        printf("%-10s %-*s %5s  %-8s %s\n", "RESULT", (int)wpoint, "POINT", "NTH", "MODE",
               "DETAIL");
        for (size_t i = 0; i < sw->planned; i++) {
            const run *r = &sw->runs[i];
            if (!is_failure(r->result))
                continue;
            printf("%-10s %-*s %5ld  %-8s %s\n", result_name(r->result), (int)wpoint,
                   sw->points.v[r->point].name, r->nth, r->mode == MODE_ONCE ? "once" : "persist",
                   r->detail);
        }
        printf("\nreplay:\n");
        for (size_t i = 0; i < sw->planned; i++) {
            const run *r = &sw->runs[i];
            if (!is_failure(r->result))
                continue;
            const char *where = sw->points.v[r->point].where;
            printf("# %s %s nth=%ld %s%s%s\n", result_name(r->result), sw->points.v[r->point].name,
                   r->nth, r->mode == MODE_ONCE ? "once" : "persist", where != NULL ? ", at " : "",
                   where != NULL ? where : "");
            char *replay = replay_string(sw, r);
            (void)printf("%s\n", replay != NULL ? replay : "(out of memory)");
            free(replay);
        }
        printf("\n");
    }
    size_t selected = 0;
    size_t reached = 0;
    for (size_t i = 0; i < sw->points.n; i++) {
        selected += point_selected(sw->cfg, sw->points.v[i].name);
        reached += point_selected(sw->cfg, sw->points.v[i].name) && sw->points.v[i].evaluations > 0;
    }
    printf("runs: %zu, failed: %zu", sw->done, sw->failed);
    if (sw->not_fired > 0)
        printf(", not fired: %zu (the evaluation was not reached again)", sw->not_fired);
    printf("\npoints: %zu, reached: %zu", selected, reached);
    put_never(stdout, sw->cfg, &sw->points);
    if (sw->budget_exhausted)
        printf("budget: exhausted at %ld runs; %zu more runs were not made (raise --budget)\n",
               sw->cfg->budget, sw->unplanned);
}

static keel_status write_json(const sweep *sw, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot create json file '%s'", path);
    (void)fputs("{\"program\":[", f);
    for (char **a = sw->cfg->prog; *a != NULL; a++) {
        if (a != sw->cfg->prog)
            (void)fputc(',', f);
        put_json_str(f, *a);
    }
    (void)fprintf(f, "],\"seed\":%llu,\"runs\":%zu,\"failed\":%zu,\"not_fired\":%zu,",
                  sw->cfg->seed, sw->done, sw->failed, sw->not_fired);
    (void)fprintf(f, "\"budget_exhausted\":%s,\n\"points\":[",
                  sw->budget_exhausted ? "true" : "false");
    for (size_t i = 0, k = 0; i < sw->points.n; i++) {
        if (!point_selected(sw->cfg, sw->points.v[i].name))
            continue;
        (void)fputs(k++ > 0 ? ",\n{\"name\":" : "\n{\"name\":", f);
        put_json_str(f, sw->points.v[i].name);
        (void)fprintf(f, ",\"evaluations\":%lld}", sw->points.v[i].evaluations);
    }
    (void)fputs("],\n\"never_reached\":[", f);
    for (size_t i = 0, k = 0; i < sw->points.n; i++) {
        if (sw->points.v[i].evaluations != 0 || !point_selected(sw->cfg, sw->points.v[i].name))
            continue;
        if (k++ > 0)
            (void)fputc(',', f);
        put_json_str(f, sw->points.v[i].name);
    }
    (void)fputs("],\n\"results\":[", f);
    for (size_t i = 0, k = 0; i < sw->planned; i++) {
        const run *r = &sw->runs[i];
        if (r->result == RESULT_OK)
            continue;
        (void)fputs(k++ > 0 ? ",\n{\"point\":" : "\n{\"point\":", f);
        put_json_str(f, sw->points.v[r->point].name);
        (void)fprintf(f, ",\"nth\":%ld,\"mode\":\"%s\",\"result\":\"%s\",\"detail\":", r->nth,
                      r->mode == MODE_ONCE ? "once" : "persist", result_name(r->result));
        put_json_str(f, r->detail);
        (void)fprintf(f,
                      ",\"exit\":%d,\"signal\":%d,\"seconds\":%.3f,\"keel_options\":", r->exit_code,
                      r->signal, r->seconds);
        put_json_str(f, r->options != NULL ? r->options : "");
        char *replay = replay_string(sw, r);
        (void)fputs(",\"replay\":", f);
        put_json_str(f, replay != NULL ? replay : "");
        free(replay);
        (void)fputc('}', f);
    }
    (void)fputs("]}\n", f);
    if (ferror(f) != 0) {
        (void)fclose(f);
        return KEEL_ERR(KEEL_E_IO, "cannot write json file '%s'", path);
    }
    if (fclose(f) != 0)
        return KEEL_ERR_SYS(errno, "cannot write json file '%s'", path);
    return KEEL_OK;
}

/* --keep DIR: made with its missing parents (as mkdir -p); a directory keel-stress writes in. */
static keel_status keep_dir(const char *path)
{
    char buf[PATH_MAX];
    if (path[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "bad value '' for '--keep' (a directory)");
    if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
        return KEEL_ERR(KEEL_E_INVAL, "bad value '%.40s...' for '--keep': too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char was = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return KEEL_ERR_SYS(errno, "cannot create directory '%s' for '--keep'", buf);
        *p = was;
        if (was == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return KEEL_ERR(KEEL_E_INVAL, "bad value '%s' for '--keep': it is not a directory", path);
    if (access(path, W_OK | X_OK) != 0)
        return KEEL_ERR_SYS(errno, "bad value '%s' for '--keep': cannot write in it", path);
    return KEEL_OK;
}

static keel_status make_dir(const config *c, char *dir, size_t size)
{
    if (c->keep != NULL) {
        keel_status s = keep_dir(c->keep);
        if (!keel_ok(s))
            return s;
        (void)snprintf(dir, size, "%s", c->keep);
        return KEEL_OK;
    }
    const char *tmp = getenv("TMPDIR");
    (void)snprintf(dir, size, "%s/keel-stress-XXXXXX",
                   tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return KEEL_ERR_SYS(errno, "cannot create a directory like '%s'", dir);
    return KEEL_OK;
}

static int fail(keel_status s, int code)
{
    char text[4096];
    if (keel_status_depth(s) > 1)
        (void)keel_status_format(s, text, sizeof(text));
    else
        (void)snprintf(text, sizeof(text), "%s", keel_status_message(s));
    (void)fprintf(stderr, "keel-stress: %s%s\n", text,
                  KEEL_IS(s, KEEL_E_INVAL) ? " (keel-stress help shows the options)" : "");
    keel_status_free(s);
    return code;
}

static int cmd_list(const config *c, const char *dir)
{
    point_list pl = {NULL, 0};
    keel_status s = learn(c, dir, &pl);
    if (c->keep == NULL)
        (void)rmdir(dir);
    if (!keel_ok(s)) {
        points_free(&pl);
        return fail(s, EXIT_USAGE);
    }
    size_t w = strlen("POINT");
    for (size_t i = 0; i < pl.n; i++)
        w = strlen(pl.v[i].name) > w ? strlen(pl.v[i].name) : w;
    printf("%-*s %12s\n", (int)w, "POINT", "EVALUATIONS");
    size_t shown = 0;
    size_t reached = 0;
    for (size_t i = 0; i < pl.n; i++) {
        if (!point_selected(c, pl.v[i].name))
            continue;
        printf("%-*s %12lld\n", (int)w, pl.v[i].name, pl.v[i].evaluations);
        shown++;
        reached += pl.v[i].evaluations > 0;
    }
    printf("\npoints: %zu, reached: %zu", shown, reached);
    put_never(stdout, c, &pl);
    points_free(&pl);
    return 0;
}

static int cmd_sweep(const config *c, const char *dir)
{
    sweep sw;
    memset(&sw, 0, sizeof(sw));
    sw.cfg = c;
    sw.dir = dir;
    sw.keep_all = c->keep != NULL;
    keel_status s = learn(c, dir, &sw.points);
    if (keel_ok(s))
        s = plan(&sw);
    int code = EXIT_USAGE;
    if (!keel_ok(s)) {
        code = fail(s, EXIT_USAGE);
    } else {
        s = sweep_run(&sw);
        print_results(&sw);
        if (keel_ok(s) && c->json != NULL)
            s = write_json(&sw, c->json);
        code = !keel_ok(s) ? fail(s, EXIT_USAGE) : sw.failed > 0 ? EXIT_FAILED : 0;
    }
    if (sw.failed > 0)
        printf("logs of failed runs (run-N.out, .err, .jsonl): %s\n", dir);
    else if (c->keep == NULL)
        (void)rmdir(dir);
    for (size_t i = 0; i < sw.planned; i++)
        free(sw.runs[i].options);
    free(sw.runs);
    points_free(&sw.points);
    return code;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help-man") == 0 || strcmp(argv[1], "--completion") == 0)) {
        print_doc(stdout, strcmp(argv[1], "--help-man") == 0);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    config c;
    memset(&c, 0, sizeof(c));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c.jobs = cpus > 0 ? cpus : 1;
    c.timeout = 30;
    c.max_nth = 100;
    c.budget = 10000;
    c.mode = MODE_ONCE;
    c.allow_count = 1;
    c.seed = 1;
    const char *user = getenv("KEEL_OPTIONS");
    c.user_options = user != NULL ? user : "";
    c.sep = c.user_options[0] != '\0' ? ";" : "";
    if (strcmp(argv[1], "list") == 0)
        c.list = true;
    else if (strcmp(argv[1], "sweep") != 0) {
        (void)fprintf(stderr, "keel-stress: unknown command '%s' (keel-stress help shows them)\n",
                      argv[1]);
        return EXIT_USAGE;
    }
    keel_status s = parse_args(&c, argc - 1, argv + 1);
    if (!keel_ok(s) || c.prog == NULL) {
        free(c.only);
        return fail(s, EXIT_USAGE);
    }
    (void)signal(SIGINT, on_signal);
    (void)signal(SIGTERM, on_signal);
    char dir[PATH_MAX];
    s = make_dir(&c, dir, sizeof(dir));
    int code = !keel_ok(s) ? fail(s, EXIT_USAGE) : c.list ? cmd_list(&c, dir) : cmd_sweep(&c, dir);
    free(c.only);
    return code;
}
