/*
 * keel-run - run an unmodified, dynamically linked program with keel's lock checks
 * (docs/keel-run.md).
 *
 *   keel-run [options] -- PROGRAM ARGS...
 *
 * Sets LD_PRELOAD to libkeel-run.so (the interposer, run/run_locks.c) and the keel variables
 * the options name, then execs the program.  A program the preload cannot reach (statically
 * linked: no program interpreter; setuid or setgid: the dynamic loader ignores LD_PRELOAD for
 * it) is refused with exit status 126, never run without its checks.
 *
 * The keel options the program gets (KEEL_OPTIONS, --options, --stress, --suppressions) are
 * checked by the preload's start in the program this launcher execs (KEEL_RUN_PID: its pid,
 * which the exec keeps), with the parser the program uses: a malformed string ends it with
 * exit status 2 before its main, never a program run with none of its options applied
 * (run/run_faults.c).
 *
 * Exit status: the program's own; 126 refused or not executable, 127 not found, 2 usage.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_calls.h"
#include "run_path.h"

#ifndef KEEL_RUN_VERSION
#define KEEL_RUN_VERSION "?"
#endif
#ifndef KEEL_RUN_LIB_RELATIVE
#define KEEL_RUN_LIB_RELATIVE "../lib/keel/libkeel-run.so"
#endif
#ifndef KEEL_RUN_LIB_INSTALLED
#define KEEL_RUN_LIB_INSTALLED "/usr/local/lib/keel/libkeel-run.so"
#endif

#define EXIT_USAGE   2
#define EXIT_REFUSED 126
#define EXIT_MISSING 127

/* The option table (git style): name, argument, what it does. */
typedef struct run_option {
    const char *name;
    const char *arg; /* NULL: a flag */
    const char *help;
} run_option;

static const run_option options[] = {
    {"lock-graph", "FILE",
     "write the learned lock-order graph to FILE as DOT when the program exits"},
    {"locks", "on|off", "the lock checks (default on; off: the program's locks run unchecked)"},
    {"deadlock-after", "MS",
     "examine a lock wait longer than MS ms for a deadlock (default 1000; 0: never)"},
    {"hang-after", "MS",
     "report a hang when every thread is blocked (read, poll, sigwait, join...) for MS ms "
     "(default 0: never)"},
    {"rank", "CLASS=N",
     "give lock class CLASS (its name in reports, 'file.c:12') rank N, 1..1000000 (repeatable)"},
    {"heap", "on|off",
     "the malloc family on keel's checked heap (default on; off: the C library's allocator)"},
    {"report", "FILE", "append every report to FILE as one JSON line (sets KEEL_REPORT)"},
    {"options", "STR", "keel options for the program, as KEEL_OPTIONS (docs/options.md)"},
    {"stress", "SPEC",
     "fail libc calls: stress entries such as 'libc.write.*:nth=2' (docs/keel-run.md)"},
    {"errno", "LIST",
     "the errno of a failed call: CALL=ERRNO,... ('write=EINTR,open=EMFILE', 'write=short')"},
    {"suppressions", "FILE",
     "reports matched by FILE's entries are neither printed nor counted (docs/reports.md)"},
    {"gen-suppressions", NULL, "print after each report the suppression entry that matches it"},
    {"help", NULL, "print this help and exit"},
    {"version", NULL, "print keel-run's version and exit"},
};

static void usage(FILE *f)
{
    (void)fprintf(f, "usage: keel-run [options] -- PROGRAM [ARGS...]\n\n"
                     "Run an unmodified, dynamically linked program with keel's lock and heap "
                     "checks.\n\n");
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        char left[64];
        if (options[i].arg != NULL)
            (void)snprintf(left, sizeof(left), "--%s %s", options[i].name, options[i].arg);
        else
            (void)snprintf(left, sizeof(left), "--%s", options[i].name);
        (void)fprintf(f, "  %-22s %s\n", left, options[i].help);
    }
    (void)fprintf(f, "\nExit status: the program's; 126 when it cannot be run with the checks "
                     "(static, setuid), 127 not found, 2 usage.\n");
}

static const run_option *option_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

/* The program's path: as given when it has a slash, else the first executable on PATH. */
static bool find_program(const char *name, char *out, size_t size)
{
    if (strchr(name, '/') != NULL) {
        (void)snprintf(out, size, "%s", name);
        return access(out, F_OK) == 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *end = strchr(path, ':');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
        (void)snprintf(out, size, "%.*s/%s", (int)len, len > 0 ? path : ".", name);
        struct stat st;
        if (name[0] != '\0' && stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return true; /* (a shell passes over a directory of that name) */
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

/* NULL when the preload can reach the program, else why not. */
static const char *why_unreachable(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return strerror(errno);
    if ((st.st_mode & S_ISUID) != 0)
        return "it is setuid (the dynamic loader ignores LD_PRELOAD for it)";
    if ((st.st_mode & S_ISGID) != 0 && (st.st_mode & S_IXGRP) != 0)
        return "it is setgid (the dynamic loader ignores LD_PRELOAD for it)";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strerror(errno);
    unsigned char ident[EI_NIDENT];
    const char *why = NULL;
    if (read(fd, ident, sizeof(ident)) != (ssize_t)sizeof(ident) ||
        memcmp(ident, ELFMAG, SELFMAG) != 0) {
        (void)close(fd);
        return NULL; /* a script: its interpreter is checked when it runs */
    }
    bool interp = false, dynamic = false;
    /* the program headers of an ELF file of either class: their types */
#define SCAN_PHDRS(Ehdr, Phdr)                                         \
    do {                                                               \
        Ehdr eh;                                                       \
        Phdr ph;                                                       \
        if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))      \
            why = "its ELF header cannot be read";                     \
        for (unsigned i = 0; why == NULL && i < eh.e_phnum; i++) {     \
            off_t at = (off_t)eh.e_phoff + (off_t)i * eh.e_phentsize;  \
            if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph)) \
                why = "its program headers cannot be read";            \
            interp = interp || ph.p_type == PT_INTERP;                 \
            dynamic = dynamic || ph.p_type == PT_DYNAMIC;              \
        }                                                              \
    } while (0)
    if (ident[EI_CLASS] == ELFCLASS64)
        SCAN_PHDRS(Elf64_Ehdr, Elf64_Phdr);
    else if (ident[EI_CLASS] == ELFCLASS32)
        SCAN_PHDRS(Elf32_Ehdr, Elf32_Phdr);
    else
        why = "its ELF class is unknown";
#undef SCAN_PHDRS
    (void)close(fd);
    if (why == NULL && !interp)
        why = dynamic ? "it is statically linked (static-pie: no dynamic loader to preload with)"
                      : "it is statically linked (no dynamic section, no program interpreter)";
    return why;
}

/* libkeel-run.so: $KEEL_RUN_LIB, beside this program (the build tree), in the library directory
 * next to this program's (an installed tree, wherever it was moved), or where it was installed. */
static bool find_library(char *out, size_t size)
{
    const char *env = getenv("KEEL_RUN_LIB");
    if (env != NULL && env[0] != '\0') {
        (void)snprintf(out, size, "%s", env);
        return access(out, R_OK) == 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            static const char *const beside[] = {"libkeel-run.so", KEEL_RUN_LIB_RELATIVE};
            for (size_t i = 0; i < sizeof(beside) / sizeof(beside[0]); i++) {
                int len = snprintf(out, size, "%s/%s", self, beside[i]);
                if (len > 0 && (size_t)len < size && access(out, R_OK) == 0)
                    return true;
            }
        }
    }
    (void)snprintf(out, size, "%s", KEEL_RUN_LIB_INSTALLED);
    return access(out, R_OK) == 0;
}

/* A file the program writes, named from here: absolute, so that the program may chdir. */
static const char *absolute(const char *file, char *buf, size_t size)
{
    char cwd[PATH_MAX];
    if (file[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
        return file;
    (void)snprintf(buf, size, "%s/%s", cwd, file);
    return buf;
}

/*
 * --report and --lock-graph name a file the program writes (at its first report, at its exit):
 * one it cannot write is said now, with exit status 2, not after the run.  (true: refused)
 */
static bool file_refused(const char *opt, const char *file)
{
    char dir[PATH_MAX];
    bool in_dir;
    int err = run_path_unwritable(file, dir, sizeof(dir), &in_dir);
    if (err == EISDIR && !in_dir)
        (void)fprintf(stderr, "keel-run: bad value '%s' for '--%s': it is a directory\n", file,
                      opt);
    else if (in_dir)
        (void)fprintf(stderr, "keel-run: bad value '%s' for '--%s': cannot create it in '%s': %s\n",
                      file, opt, dir, strerror(err));
    else if (err != 0)
        (void)fprintf(stderr, "keel-run: bad value '%s' for '--%s': %s\n", file, opt,
                      strerror(err));
    return err != 0;
}

static int set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1) != 0) {
        (void)fprintf(stderr, "keel-run: cannot set '%s': %s\n", name, strerror(errno));
        return EXIT_REFUSED;
    }
    return 0;
}

/* The classes KEEL_RUN_RANKS holds at most (run_table.c's RANKS). */
enum { RANKS_MAX = 64 };

/* --rank CLASS=N: checked, and added to the list (CLASS=N,CLASS=N) of KEEL_RUN_RANKS. */
static bool rank_add(char *list, size_t size, const char *value)
{
    const char *eq = strrchr(value, '=');
    char *end = NULL;
    errno = 0;
    long n = eq != NULL ? strtol(eq + 1, &end, 10) : 0;
    if (eq == NULL || eq == value || strchr(value, ',') != NULL || eq[1] < '0' || eq[1] > '9' ||
        *end != '\0' || errno != 0 || n < 1 || n > 1000000) {
        (void)fprintf(stderr,
                      "keel-run: bad value '%s' for '--rank': CLASS=N, N from 1 to 1000000, no "
                      "comma in CLASS\n",
                      value);
        return false;
    }
    size_t len = strlen(list), classes = len > 0;
    for (const char *c = list; *c != '\0'; c++)
        classes += *c == ',';
    if (classes >= RANKS_MAX) { /* the library reads no more (run_table.c) */
        (void)fprintf(stderr, "keel-run: too many '--rank' options (%d classes at most)\n",
                      RANKS_MAX);
        return false;
    }
    int w = snprintf(list + len, size - len, "%s%s", len > 0 ? "," : "", value);
    if (w < 0 || (size_t)w >= size - len) {
        (void)fprintf(stderr, "keel-run: too many '--rank' options (%zu bytes at most)\n",
                      size - 1);
        return false;
    }
    return true;
}

/* Append `value` to all[*n] double-quoted, '"' and '\\' escaped: any text passes through
 * KEEL_OPTIONS as one value.  *n may pass size (the caller then says it is too long). */
static void put_quoted(char *all, size_t size, size_t *n, const char *name, const char *value)
{
    if (*n < size)
        *n += (size_t)snprintf(all + *n, size - *n, "%s=\"", name);
    for (const char *c = value; *c != '\0' && *n + 2 < size; c++) {
        if (*c == '"' || *c == '\\')
            all[(*n)++] = '\\';
        all[(*n)++] = *c;
    }
    if (*n < size)
        *n += (size_t)snprintf(all + *n, size - *n, "\"; ");
}

int main(int argc, char **argv)
{
    const char *graph = NULL, *locks = "on", *heap = "on", *report = NULL, *opts = NULL;
    const char *supp = NULL, *stress = NULL;
    char ranks[4096] = "";
    bool gen = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0)
            break; /* the program */
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const run_option *o = option_find(name, len);
        if (o == NULL) {
            (void)fprintf(stderr, "keel-run: unknown option '%s' (see keel-run --help)\n", a);
            return EXIT_USAGE;
        }
        const char *value = ""; /* (a flag has none) */
        if (o->arg != NULL) {
            if (eq != NULL)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                (void)fprintf(stderr, "keel-run: option '--%s' needs %s\n", o->name, o->arg);
                return EXIT_USAGE;
            }
        } else if (eq != NULL) {
            (void)fprintf(stderr, "keel-run: option '--%s' takes no value\n", o->name);
            return EXIT_USAGE;
        }
        if (strcmp(o->name, "help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(o->name, "version") == 0) {
            (void)printf("keel-run %s\n", KEEL_RUN_VERSION);
            return 0;
        }
        if (o->arg != NULL && strcmp(o->arg, "FILE") == 0 && value[0] == '\0') {
            (void)fprintf(stderr, "keel-run: option '--%s' needs a file name, not ''\n", o->name);
            return EXIT_USAGE;
        }
        if ((strcmp(o->name, "lock-graph") == 0 || strcmp(o->name, "report") == 0) &&
            file_refused(o->name, value))
            return EXIT_USAGE;
        if (strcmp(o->name, "lock-graph") == 0)
            graph = value;
        else if (strcmp(o->name, "report") == 0)
            report = value;
        else if (strcmp(o->name, "options") == 0)
            opts = value;
        else if (strcmp(o->name, "suppressions") == 0)
            supp = value;
        else if (strcmp(o->name, "gen-suppressions") == 0)
            gen = true;
        else if (strcmp(o->name, "stress") == 0)
            stress = value;
        else if (strcmp(o->name, "deadlock-after") == 0 || strcmp(o->name, "hang-after") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long ms = strtoul(value, &end, 10);
            if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 || ms > 86400000ul) {
                (void)fprintf(stderr,
                              "keel-run: bad value '%s' for '--%s': milliseconds, 0 to 86400000\n",
                              value, o->name);
                return EXIT_USAGE;
            }
            if (set_env(o->name[0] == 'd' ? "KEEL_RUN_DEADLOCK_MS" : "KEEL_RUN_HANG_MS", value) !=
                0)
                return EXIT_REFUSED;
        } else if (strcmp(o->name, "rank") == 0) {
            if (!rank_add(ranks, sizeof(ranks), value))
                return EXIT_USAGE;
        } else if (strcmp(o->name, "errno") == 0) {
            int errs[RUN_F_COUNT];
            char why[512];
            if (!run_errno_parse(value, errs, why, sizeof(why))) {
                (void)fprintf(stderr, "keel-run: bad value '%s' for '--errno': %s\n", value, why);
                return EXIT_USAGE;
            }
            if (set_env("KEEL_RUN_ERRNO", value) != 0)
                return EXIT_REFUSED;
        } else if (strcmp(o->name, "locks") == 0 || strcmp(o->name, "heap") == 0) {
            if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
                (void)fprintf(stderr, "keel-run: bad value '%s' for '--%s': on or off\n", value,
                              o->name);
                return EXIT_USAGE;
            }
            if (o->name[0] == 'l')
                locks = value;
            else
                heap = value;
        }
    }
    if (ranks[0] != '\0' && set_env("KEEL_RUN_RANKS", ranks) != 0)
        return EXIT_REFUSED;
    if (i >= argc) {
        (void)fprintf(stderr, "keel-run: no program to run (keel-run [options] -- PROGRAM)\n");
        return EXIT_USAGE;
    }
    char path[PATH_MAX];
    if (!find_program(argv[i], path, sizeof(path))) {
        (void)fprintf(stderr, "keel-run: program '%s' not found\n", argv[i]);
        return EXIT_MISSING;
    }
    const char *why = why_unreachable(path);
    if (why != NULL) {
        (void)fprintf(stderr, "keel-run: cannot check '%s': %s\n", path, why);
        return EXIT_REFUSED;
    }
    char lib[PATH_MAX];
    if (!find_library(lib, sizeof(lib))) {
        (void)fprintf(stderr, "keel-run: preload library '%s' not found\n", lib);
        return EXIT_REFUSED;
    }
    const char *old = getenv("LD_PRELOAD");
    char preload[2 * PATH_MAX];
    if (old != NULL && old[0] != '\0')
        (void)snprintf(preload, sizeof(preload), "%s:%s", lib, old);
    else
        (void)snprintf(preload, sizeof(preload), "%s", lib);
    int rc = set_env("LD_PRELOAD", preload);
    if (rc == 0)
        rc = set_env("KEEL_RUN_LOCKS", locks);
    if (rc == 0)
        rc = set_env("KEEL_RUN_HEAP", heap);
    if (rc == 0 && graph != NULL) {
        char abs[2 * PATH_MAX];
        rc = set_env("KEEL_RUN_LOCK_GRAPH", absolute(graph, abs, sizeof(abs)));
    }
    if (rc == 0 && report != NULL) {
        char abs[2 * PATH_MAX];
        rc = set_env("KEEL_REPORT", absolute(report, abs, sizeof(abs)));
    }
    /* the program (this process, after the exec) is the one a malformed KEEL_OPTIONS stops */
    char pid[32];
    (void)snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    if (rc == 0)
        rc = set_env("KEEL_RUN_PID", pid);
    const char *inherited = getenv("KEEL_OPTIONS");
    if (rc == 0 && (opts != NULL || supp != NULL || gen || stress != NULL)) {
        /*
         * The inherited KEEL_OPTIONS first (keel-stress sweep's), then the suppression options
         * and --stress: --options may still override them.
         */
        char all[4 * PATH_MAX];
        size_t n = 0;
        if (inherited != NULL && inherited[0] != '\0')
            n += (size_t)snprintf(all, sizeof(all), "%s; ", inherited);
        if (n >= sizeof(all)) {
            (void)fprintf(stderr, "keel-run: options too long\n");
            return EXIT_USAGE;
        }
        if (supp != NULL) {
            char abs[2 * PATH_MAX];
            const char *file = absolute(supp, abs, sizeof(abs));
            if (access(file, R_OK) != 0) {
                (void)fprintf(stderr, "keel-run: suppressions file '%s': %s\n", supp,
                              strerror(errno));
                return EXIT_USAGE;
            }
            put_quoted(all, sizeof(all), &n, "report.suppressions", file);
        }
        if (stress != NULL)
            put_quoted(all, sizeof(all), &n, "stress", stress);
        if (gen && n < sizeof(all))
            n += (size_t)snprintf(all + n, sizeof(all) - n, "report.gen-suppressions; ");
        if (opts != NULL && n < sizeof(all))
            n += (size_t)snprintf(all + n, sizeof(all) - n, "%s", opts);
        if (n >= sizeof(all)) {
            (void)fprintf(stderr, "keel-run: options too long\n");
            return EXIT_USAGE;
        }
        rc = set_env("KEEL_OPTIONS", all);
    }
    if (rc != 0)
        return rc;
    execv(path, argv + i);
    (void)fprintf(stderr, "keel-run: cannot run '%s': %s\n", path, strerror(errno));
    return errno == ENOENT ? EXIT_MISSING : EXIT_REFUSED;
}
