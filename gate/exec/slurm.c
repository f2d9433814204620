/*
 * slurm.c - keel-gate's Slurm executor: a step as one srun job running
 * keel-gate's own job runner on the node (slurm.h).
 *
 * The spec and the result are text files of `key<TAB>value` lines, the
 * value with `\\`, `\n` and `\t` escaped; a key may repeat (argv, env, the
 * lists of the policy).  Both are written to a temporary name and renamed, so
 * each is whole or absent.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "heaps.h"
#include "pool.h"
#include "slurm_int.h"

/*
 * A literal as an element of an argument vector: posix_spawn and execv take
 * `char *const[]` for C's history, and never write through it.
 */
static char *arg(const char *literal)
{
    char *mutable_view = NULL;
    memcpy(&mutable_view, &literal, sizeof(mutable_view)); /* no cast: the pointer as it is */
    return mutable_view;
}

extern char **environ;

#define SLURM_HEAP KEEL_MODULE_REF(gate_exec)

enum { SPEC_MAX = 1 << 20, SPEC_WORDS = 4096 };

/* ---- the files -------------------------------------------------------------------- */

static void put(FILE *f, const char *key, const char *value)
{
    (void)fprintf(f, "%s\t", key);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\')
            (void)fputs("\\\\", f);
        else if (*p == '\n')
            (void)fputs("\\n", f);
        else if (*p == '\t')
            (void)fputs("\\t", f);
        else
            (void)fputc(*p, f);
    }
    (void)fputc('\n', f);
}

static void put_ull(FILE *f, const char *key, unsigned long long v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%llu", v);
    put(f, key, buf);
}

/* Each string of a packed list (strings one after the other, an empty one ends). */
static void put_packed(FILE *f, const char *key, const char *list)
{
    for (const char *p = list; *p != '\0'; p += strlen(p) + 1)
        put(f, key, p);
}

/* Write `path` whole or not at all for its readers: `fill` into path.tmp, then renamed. */
static keel_status write_file(const char *path, void (*fill)(FILE *, const void *), const void *arg)
{
    char tmp[GATE_PATH_MAX + 16];
    gate_fmt(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot write '%s'", tmp);
    fill(f, arg);
    int e = ferror(f) ? EIO : 0;
    /*
     * No fsync: the rename makes it whole or absent for readers; after a crash of its host
     * the job runs again anyway (the store is the truth), and an fsync cost a job 10-15 ms.
     */
    if (fflush(f) != 0)
        e = errno != 0 ? errno : EIO;
    if (fclose(f) != 0 && e == 0)
        e = errno != 0 ? errno : EIO;
    if (e == 0 && rename(tmp, path) != 0)
        e = errno;
    if (e != 0) {
        (void)unlink(tmp);
        return KEEL_ERR_SYS(e, "cannot write '%s'", path);
    }
    return KEEL_OK;
}

/* A file read whole into a NUL-terminated heap block; KEEL_E_NOTFOUND when absent. */
static keel_status read_file(const char *path, char **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? KEEL_ERR(KEEL_E_NOTFOUND, "no file '%s'", path)
                               : KEEL_ERR_SYS(errno, "cannot read '%s'", path);
    /* its size now, plus one byte to see it grew (a block of SPEC_MAX costs a job its faults) */
    struct stat sb;
    size_t cap = fstat(fd, &sb) == 0 && sb.st_size >= 0 && sb.st_size < SPEC_MAX
                     ? (size_t)sb.st_size + 1
                     : (size_t)SPEC_MAX;
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, cap + 1, &mem);
    size_t n = 0;
    while (keel_ok(s) && n < cap) {
        ssize_t got = read(fd, (char *)mem + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            s = KEEL_ERR_SYS(errno, "cannot read '%s'", path);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    (void)close(fd);
    if (keel_ok(s) && n == cap)
        s = n == SPEC_MAX
                ? KEEL_ERR(KEEL_E_RANGE, "'%s' is larger than %d bytes", path, (int)SPEC_MAX)
                : KEEL_ERR(KEEL_E_STATE, "'%s' grew while it was read", path);
    if (!keel_ok(s)) {
        keel_heap_free(SLURM_HEAP, mem);
        return s;
    }
    *out = (char *)mem;
    return KEEL_OK;
}

/*
 * The next `key<TAB>value` line of *at, split and unescaped in place;
 * false at the end or at a line without a tab.
 */
static bool next_line(char **at, char **key, char **value)
{
    char *p = *at;
    if (p == NULL || *p == '\0')
        return false;
    char *nl = strchr(p, '\n');
    if (nl == NULL)
        return false; /* a line cut short: the file was not written whole */
    *nl = '\0';
    *at = nl + 1;
    char *tab = strchr(p, '\t');
    if (tab == NULL)
        return false;
    *tab = '\0';
    *key = p;
    *value = tab + 1;
    char *w = tab + 1;
    for (char *r = tab + 1; *r != '\0'; r++) {
        if (*r == '\\' && r[1] != '\0') {
            r++;
            char c = *r;
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            *w++ = c;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return true;
}

static unsigned long long to_ull(const char *v)
{
    return strtoull(v, NULL, 10);
}

/* ---- the spec ----------------------------------------------------------------------- */

/* The spec's limits: where each goes in the policy. */
static const struct {
    const char *key;
    size_t offset; /* in gate_limits */
} limit_fields[] = {
    {"memory", offsetof(gate_limits, memory)}, {"processes", offsetof(gate_limits, processes)},
    {"cpu", offsetof(gate_limits, cpu)},       {"output", offsetof(gate_limits, output)},
    {"disk", offsetof(gate_limits, disk)},     {"tmp", offsetof(gate_limits, tmp)}};

static void put_words(FILE *f, const char *key, char *const *words)
{
    for (char *const *w = words; w != NULL && *w != NULL; w++)
        put(f, key, *w);
}

static void fill_spec(FILE *f, const void *arg)
{
    const gate_job_run *j = (const gate_job_run *)arg;
    put(f, "version", "2");
    put(f, "config", j->config);
    put_words(f, "build", j->build);
    put_words(f, "test", j->test);
    put_words(f, "env", j->env);
    put(f, "dir", j->dir);
    put(f, "log", j->log);
    put_ull(f, "timeout_ms", j->timeout_ms);
    const gate_job_policy *p = &j->policy;
    put_ull(f, "sandbox", p->sandbox);
    put_ull(f, "network", p->network);
    for (size_t i = 0; i < sizeof(limit_fields) / sizeof(limit_fields[0]); i++) {
        unsigned long long v = 0;
        memcpy(&v, (const char *)&p->limits + limit_fields[i].offset, sizeof(v));
        put_ull(f, limit_fields[i].key, v);
    }
    put_packed(f, "writable", p->writable);
    put_packed(f, "pass_env", p->pass_env);
    for (size_t i = 0; j->hidden != NULL && i < j->hidden->n; i++)
        put(f, j->hidden->e[i].gate_owned ? "hidden_owned" : "hidden", j->hidden->e[i].path);
    put(f, "end", "");
}

/* Append `v` to a packed list; false when it does not fit. */
static bool pack_add(char *list, size_t size, const char *v)
{
    size_t at = 0;
    while (list[at] != '\0')
        at += strlen(list + at) + 1;
    size_t len = strlen(v) + 1;
    if (len == 1 || at + len + 1 > size)
        return false;
    memcpy(list + at, v, len);
    list[at + len] = '\0';
    return true;
}

/* A word list of the spec: its words point into the spec's text. */
typedef struct spec_words {
    char *w[SPEC_WORDS + 1];
    size_t n;
} spec_words;

struct gate_slurm__node_job {
    gate_job_run job;
    char *text; /* the spec's, which the lists point into */
    gate_hidden hidden;
    spec_words build, test, env;
};
typedef struct gate_slurm__node_job node_spec;

/* A number or flag of the spec; false when `k` is none. */
static bool spec_number(node_spec *ns, const char *k, const char *v)
{
    unsigned long long n = to_ull(v);
    gate_job_policy *p = &ns->job.policy;
    if (strcmp(k, "timeout_ms") == 0)
        ns->job.timeout_ms = (unsigned)n;
    else if (strcmp(k, "sandbox") == 0)
        p->sandbox = n != 0;
    else if (strcmp(k, "network") == 0)
        p->network = n != 0;
    else {
        for (size_t i = 0; i < sizeof(limit_fields) / sizeof(limit_fields[0]); i++)
            if (strcmp(k, limit_fields[i].key) == 0) {
                memcpy((char *)&p->limits + limit_fields[i].offset, &n, sizeof(n));
                return true;
            }
        return false;
    }
    return true;
}

/* A list entry or a path of the spec; false when it does not fit (an unknown key is skipped). */
static bool spec_entry(node_spec *ns, const char *k, char *v)
{
    spec_words *w = strcmp(k, "build") == 0  ? &ns->build
                    : strcmp(k, "test") == 0 ? &ns->test
                    : strcmp(k, "env") == 0  ? &ns->env
                                             : NULL;
    if (w != NULL) {
        if (w->n >= SPEC_WORDS)
            return false;
        w->w[w->n++] = v;
        return true;
    }
    gate_job_run *j = &ns->job;
    char *field = strcmp(k, "dir") == 0 ? j->dir : strcmp(k, "log") == 0 ? j->log : NULL;
    if (field != NULL) {
        size_t size = strcmp(k, "dir") == 0 ? sizeof(j->dir) : sizeof(j->log);
        if (strlen(v) >= size)
            return false;
        gate_fmt(field, size, "%s", v);
        return true;
    }
    if (strcmp(k, "config") == 0) {
        gate_fmt(j->config, sizeof(j->config), "%s", v);
        return true;
    }
    if (strcmp(k, "writable") == 0)
        return pack_add(j->policy.writable, sizeof(j->policy.writable), v);
    if (strcmp(k, "pass_env") == 0)
        return pack_add(j->policy.pass_env, sizeof(j->policy.pass_env), v);
    if (strcmp(k, "hidden") == 0 || strcmp(k, "hidden_owned") == 0) {
        if (ns->hidden.n >= GATE_HIDDEN_MAX || strlen(v) >= GATE_PATH_MAX)
            return false;
        gate_fmt(ns->hidden.e[ns->hidden.n].path, GATE_PATH_MAX, "%s", v);
        ns->hidden.e[ns->hidden.n++].gate_owned = k[6] != '\0';
    }
    return true;
}

/* The job a spec describes, to run on this node as locally. */
static keel_status parse_spec(char *text, node_spec *ns)
{
    bool end = false;
    gate_job_policy_default(&ns->job.policy);
    char *at = text, *k = NULL, *v = NULL;
    while (!end && next_line(&at, &k, &v)) {
        if (strcmp(k, "end") == 0)
            end = true;
        else if (!spec_number(ns, k, v) && !spec_entry(ns, k, v))
            return KEEL_ERR(KEEL_E_RANGE, "the spec's '%s' entries do not fit", k);
    }
    gate_job_run *j = &ns->job;
    if (!end || (ns->build.n == 0 && ns->test.n == 0) || j->dir[0] == '\0' || j->log[0] == '\0')
        return KEEL_ERR(KEEL_E_PARSE, "the spec is incomplete");
    j->build = ns->build.w;
    j->test = ns->test.w;
    j->env = ns->env.w;
    j->hidden = &ns->hidden;
    j->records = NULL;                        /* Slurm ends whatever the job started */
    j->policy.executor = GATE_EXECUTOR_LOCAL; /* here, on the node */
    return KEEL_OK;
}

/* ---- the result --------------------------------------------------------------------- */

typedef struct node_result {
    const gate_job_run *job; /* NULL: the runner's error */
    const char *error;
} node_result;

static void fill_result(FILE *f, const void *arg)
{
    const node_result *r = (const node_result *)arg;
    const gate_job_run *j = r->job;
    if (j == NULL || j->error[0] != '\0') {
        put(f, "error", j == NULL ? r->error : j->error);
    } else {
        put_ull(f, "result", (unsigned long long)j->result);
        char code[32];
        (void)snprintf(code, sizeof(code), "%d", j->exit_code);
        put(f, "exit_code", code);
        put_ull(f, "elapsed_ms", j->elapsed_ms);
        put_ull(f, "output", j->output);
        put(f, "reason", j->reason);
    }
    put(f, "end", "");
}

/*
 * A result file's text into `j`; KEEL_E_IO with the node's error, KEEL_E_PARSE when cut,
 * KEEL_E_NOTFOUND (no result) when the node cancelled a job the gate did not.
 */
static keel_status parse_result(char *text, gate_job_run *j)
{
    bool end = false, result = false;
    char *at = text, *k = NULL, *v = NULL;
    while (!end && next_line(&at, &k, &v)) {
        if (strcmp(k, "error") == 0)
            return KEEL_ERR(KEEL_E_IO, "on the node: %s", v);
        if (strcmp(k, "result") == 0) {
            unsigned long long r = to_ull(v);
            if (r > (unsigned long long)GATE_EXEC_LIMIT)
                return KEEL_ERR(KEEL_E_PARSE, "an unknown result %llu", r);
            j->result = (gate_exec_result)r;
            result = true;
            if (j->result == GATE_EXEC_CANCELLED && !__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE))
                return KEEL_ERR(KEEL_E_NOTFOUND, "the node cancelled the job itself"); /* none */
        } else if (strcmp(k, "exit_code") == 0)
            j->exit_code = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "elapsed_ms") == 0)
            j->elapsed_ms = to_ull(v);
        else if (strcmp(k, "output") == 0)
            j->output = to_ull(v);
        else if (strcmp(k, "reason") == 0)
            gate_fmt(j->reason, sizeof(j->reason), "%s", v);
        else if (strcmp(k, "end") == 0)
            end = true;
    }
    if (!end || !result)
        return KEEL_ERR(KEEL_E_PARSE, "the result is incomplete");
    return KEEL_OK;
}

/* ---- the node's side ---------------------------------------------------------------- */

/* keel and the gate's modules, without their self tests: the gate ran them, a job is short. */
static keel_status step_start(void)
{
    keel_status s = keel_init();
    if (keel_ok(s))
        s = keel_options_set("module.post=none");
    if (keel_ok(s)) {
        gate_modules_link();
        s = keel_modules_start();
    }
    return s;
}

static int step_run(const char *path);

int gate_slurm_step_main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], GATE_SLURM_STEP_COMMAND) != 0) {
        (void)fprintf(stderr, "usage: %s %s <spec>\n", argc > 0 ? argv[0] : "keel-gate",
                      GATE_SLURM_STEP_COMMAND);
        return 2;
    }
    gate_slurm__step_watch(); /* before keel's threads start: they inherit the mask */
    keel_status s = step_start();
    if (!keel_ok(s)) {
        char msg[1024];
        gate_status_line(s, msg, sizeof(msg));
        keel_status_free(s);
        (void)fprintf(stderr, "keel-gate %s: error: %s\n", GATE_SLURM_STEP_COMMAND, msg);
        keel_modules_stop();
        return 3;
    }
    int rc = strcmp(argv[2], GATE_SLURM_RUNNER_SPEC) == 0 ? gate_slurm__runner_main()
                                                          : step_run(argv[2]);
    keel_modules_stop();
    return rc;
}

/* The job spec `path` describes, read and parsed (the text it points into kept with it). */
keel_status gate_slurm__spec_load(const char *path, gate_slurm__node_job **out)
{
    *out = NULL;
    char *text = NULL;
    void *mem = NULL;
    keel_status s = read_file(path, &text);
    if (keel_ok(s))
        s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(node_spec), &mem);
    node_spec *ns = (node_spec *)mem;
    if (keel_ok(s) && ns != NULL)
        s = parse_spec(text, ns);
    if (!keel_ok(s) || ns == NULL) {
        keel_heap_free(SLURM_HEAP, mem);
        keel_heap_free(SLURM_HEAP, text);
        return s;
    }
    ns->text = text;
    *out = ns;
    return KEEL_OK;
}

gate_job_run *gate_slurm__node_job_run(gate_slurm__node_job *nj)
{
    return &nj->job;
}

void gate_slurm__node_job_free(gate_slurm__node_job *nj)
{
    if (nj == NULL)
        return;
    keel_heap_free(SLURM_HEAP, nj->text);
    keel_heap_free(SLURM_HEAP, nj);
}

int gate_slurm__result_write(const char *path, const gate_slurm__node_job *nj, keel_status s)
{
    char result[GATE_PATH_MAX + 16];
    gate_fmt(result, sizeof(result), "%s.result", path);
    node_result r = {keel_ok(s) && nj != NULL ? &nj->job : NULL, ""};
    char msg[1024];
    if (!keel_ok(s)) {
        gate_status_line(s, msg, sizeof(msg));
        keel_status_free(s);
        r.error = msg;
    }
    s = write_file(result, fill_result, &r);
    if (!keel_ok(s)) {
        gate_status_line(s, msg, sizeof(msg));
        keel_status_free(s);
        (void)fprintf(stderr, "keel-gate %s: error: %s\n", GATE_SLURM_STEP_COMMAND, msg);
        return 3;
    }
    return 0;
}

static int step_run(const char *path)
{
    gate_slurm__stop_on_signals(); /* before the job starts: a cancel ends all of it */
    gate_slurm__node_job *nj = NULL;
    keel_status s = gate_slurm__spec_load(path, &nj);
    gate_slurm__input *in = NULL;
    if (keel_ok(s) && nj != NULL)
        s = gate_slurm__input_start(&nj->job.cancel, &in);
    if (keel_ok(s) && nj != NULL) {
        gate_job_execute(&nj->job); /* as the local executor runs it */
        if (gate_slurm__step_ending())
            gate_slurm__step_end();       /* its end may be Slurm's doing: no verdict */
        if (gate_slurm__input_stop(in)) { /* the gate's cancel: no result, as on a signal */
            gate_slurm__node_job_free(nj);
            return 143;
        }
    }
    int rc = gate_slurm__result_write(path, nj, s);
    gate_slurm__node_job_free(nj);
    return rc;
}

/* ---- the gate's side ---------------------------------------------------------------- */

/*
 * Start `argv` (a Slurm client) with the gate's environment, its input from `in` (-1:
 * /dev/null), its output into `out`.
 */
static keel_status spawn(char *const *argv, int in, const char *out, pid_t *pid)
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

static void nap_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Wait for `pid`: its wait status; polls *cancel (then on_cancel once) when given.  A pidfd
 * wakes it when the process exits (-1 on an old kernel: a poll every few ms).
 */
static int wait_for(pid_t pid, const int *cancel, void (*on_cancel)(void *), void *arg)
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
            nap_ms(5);
    }
    if (pidfd >= 0)
        (void)close(pidfd);
    return status;
}

/* Run a Slurm client to its end: its exit code (-1: it did not run), its output into `out`. */
static int run_client(char *const *argv, const char *out)
{
    pid_t pid = 0;
    keel_status s = spawn(argv, -1, out, &pid);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return -1;
    }
    int st = wait_for(pid, NULL, NULL, NULL);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The last non-empty line of `path` (what a Slurm client said last), or "". */
static void last_line(const char *path, char *buf, size_t size)
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
static bool file_says(const char *path, const char *needle)
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

/* ---- the slots' allocations ------------------------------------------------------------ */

/*
 * The allocation of each slot of this process that has one, by its entry: 0 none, > 0 its
 * Slurm job id, < 0 the id was granted again to another of this process's allocations (a
 * slurmctld killed within seconds of granting it forgets it and issues its id anew): the slot
 * forgets it, cancelling nothing.  Atomics: a slot writes its own entry, any slot's grant may
 * negate another's.
 */
enum { MAX_ALLOCS = 256 };
static long long alloc_ids[MAX_ALLOCS];
static int alloc_taken[MAX_ALLOCS];

struct gate_slurm_slot {
    unsigned index;        /* the pool's slot */
    size_t entry;          /* in alloc_ids; MAX_ALLOCS: none free, so no reuse check */
    long long alloc;       /* when alloc_ids has no entry for it */
    gate_slurm_request rq; /* what its allocation was asked with */
    /* slurm-launch = runner: the srun of the runner standing in the allocation (0: none) */
    pid_t runner;
    int chan;       /* the gate's end of the socket pair that is that srun's stdin and output */
    size_t have;    /* bytes in buf not yet a whole line */
    char buf[2048]; /* what the runner (or srun) said */
    char said[512]; /* its last line that was not an answer (an error of srun's, say) */
};

static long long slot_alloc(const gate_slurm_slot *sl)
{
    return sl->entry < MAX_ALLOCS ? __atomic_load_n(&alloc_ids[sl->entry], __ATOMIC_ACQUIRE)
                                  : sl->alloc;
}

static keel_status slot_new(unsigned index, gate_slurm_slot **out)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(gate_slurm_slot), &mem);
    if (!keel_ok(s))
        return s;
    gate_slurm_slot *sl = (gate_slurm_slot *)mem;
    sl->index = index;
    sl->chan = -1;
    sl->entry = MAX_ALLOCS;
    for (size_t i = 0; i < MAX_ALLOCS && sl->entry == MAX_ALLOCS; i++) {
        int free_entry = 0;
        if (__atomic_compare_exchange_n(&alloc_taken[i], &free_entry, 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&alloc_ids[i], 0, __ATOMIC_RELEASE);
            sl->entry = i;
        }
    }
    *out = sl;
    return KEEL_OK;
}

/* `id` is the slot's allocation now; another slot holding the same id lost its own. */
static void slot_set(gate_slurm_slot *sl, long long id)
{
    if (sl->entry == MAX_ALLOCS) {
        sl->alloc = id;
        return;
    }
    for (size_t i = 0; id > 0 && i < MAX_ALLOCS; i++) {
        long long same = id;
        if (i != sl->entry)
            (void)__atomic_compare_exchange_n(&alloc_ids[i], &same, -id, false, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE);
    }
    __atomic_store_n(&alloc_ids[sl->entry], id, __ATOMIC_RELEASE);
}

/* End the slot's allocation (scancel; `out` takes what it said) and forget it. */
static void slot_drop(gate_slurm_slot *sl, const char *out)
{
    long long id = slot_alloc(sl);
    slot_set(sl, 0);
    if (id <= 0)
        return; /* none, or its id is another allocation's now */
    char idbuf[32];
    (void)snprintf(idbuf, sizeof(idbuf), "%lld", id);
    char scancel[] = "scancel", quiet[] = "--quiet";
    char *const argv[] = {scancel, quiet, idbuf, NULL};
    (void)run_client(argv, out);
}

/* ---- the runner standing in a slot's allocation (slurm-launch = runner) ---------------- */

enum {
    RUNNER_READY_MS = 120000, /* its step's launch and keel's start */
    RUNNER_STOP_MS = 3000,    /* its end once told (its input closed) */
    RUNNER_CANCEL_MS = 10000, /* a cancelled job's end (the job's grace is 2 s) */
    RUNNER_SLACK_MS = 60000   /* past the job's timeout: the runner is lost */
};

/*
 * The slot's runner told to end (its input closed: it cancels its job and exits), waited for
 * a few seconds, then its srun killed; nothing when it has none.  The allocation stays.
 */
static void runner_stop(gate_slurm_slot *sl)
{
    if (sl->runner <= 0) {
        if (sl->chan >= 0)
            (void)close(sl->chan);
        sl->chan = -1;
        return;
    }
    if (sl->chan >= 0)
        (void)shutdown(sl->chan, SHUT_WR);
    unsigned long long until = gate_now_ms() + RUNNER_STOP_MS;
    int st = 0;
    pid_t got = 0;
    while ((got = waitpid(sl->runner, &st, WNOHANG)) == 0 && gate_now_ms() < until) {
        struct pollfd pf = {sl->chan, POLLIN, 0}; /* drained: srun must not block writing */
        if (sl->chan >= 0 && poll(&pf, 1, 20) > 0) {
            char sink[512];
            if (read(sl->chan, sink, sizeof(sink)) <= 0) {
                (void)close(sl->chan);
                sl->chan = -1;
            }
        } else if (sl->chan < 0) {
            nap_ms(20);
        }
    }
    if (got == 0) {
        (void)kill(sl->runner, SIGKILL); /* the allocation's scancel ends its step */
        (void)waitpid(sl->runner, &st, 0);
    }
    if (sl->chan >= 0)
        (void)close(sl->chan);
    sl->chan = -1;
    sl->runner = 0;
    sl->have = 0;
}

/* The runner's next line into `line`: 1, 0 when none came within `wait_ms`, -1 at its end. */
static int runner_read(gate_slurm_slot *sl, char *line, size_t size, unsigned wait_ms)
{
    for (;;) {
        char *nl = (char *)memchr(sl->buf, '\n', sl->have);
        if (nl != NULL) {
            size_t len = (size_t)(nl - sl->buf);
            gate_fmt(line, size, "%.*s", (int)len, sl->buf);
            sl->have -= len + 1;
            memmove(sl->buf, nl + 1, sl->have);
            return 1;
        }
        if (sl->have == sizeof(sl->buf))
            sl->have = 0; /* a line longer than any the runner writes: dropped */
        if (sl->chan < 0)
            return -1;
        struct pollfd pf = {sl->chan, POLLIN, 0};
        int rc = poll(&pf, 1, (int)wait_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            return 0;
        ssize_t n = read(sl->chan, sl->buf + sl->have, sizeof(sl->buf) - sl->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        sl->have += (size_t)n;
    }
}

/* A line to the runner; false when it is gone. */
static bool runner_say(gate_slurm_slot *sl, const char *what, const char *spec)
{
    char line[GATE_PATH_MAX + 32];
    int len = snprintf(line, sizeof(line), "%s%s%s\n", what, spec != NULL ? " " : "",
                       spec != NULL ? spec : "");
    if (len <= 0 || (size_t)len >= sizeof(line) || sl->chan < 0)
        return false;
    for (size_t at = 0; at < (size_t)len;) {
        ssize_t n = send(sl->chan, line + at, (size_t)len - at, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        at += (size_t)n;
    }
    return true;
}

typedef enum runner_wait {
    RUNNER_ANSWERED, /* it said `want` */
    RUNNER_ENDED,    /* its srun ended first (its step, its allocation, its node) */
    RUNNER_CANCEL,   /* the job was cancelled and the runner did not answer in time */
    RUNNER_HUNG      /* no answer long past the job's timeout */
} runner_wait;

/*
 * Wait for the runner's line `want`, its other lines kept in sl->said.  A cancel of `j` is
 * passed on ("cancel") when `job` (the job runs), else ends the wait at once; `limit_ms` (0:
 * none): the runner is lost when it has not answered by then.
 */
static runner_wait runner_await(gate_slurm_slot *sl, const gate_job_run *j, const char *want,
                                bool job, unsigned long long limit_ms)
{
    unsigned long long t0 = gate_now_ms(), cancel_at = 0;
    char line[GATE_PATH_MAX + 64];
    for (;;) {
        int rc = runner_read(sl, line, sizeof(line), 50);
        if (rc > 0 && strcmp(line, want) == 0)
            return RUNNER_ANSWERED;
        if (rc > 0 && line[0] != '\0')
            gate_fmt(sl->said, sizeof(sl->said), "%s", line);
        if (rc < 0)
            return RUNNER_ENDED;
        unsigned long long now = gate_now_ms();
        if (cancel_at == 0 && __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE)) {
            if (!job)
                return RUNNER_CANCEL;
            cancel_at = now;
            (void)runner_say(sl, "cancel", NULL);
        }
        if (cancel_at != 0 && now - cancel_at >= RUNNER_CANCEL_MS)
            return RUNNER_CANCEL;
        if (limit_ms > 0 && now - t0 >= limit_ms)
            return RUNNER_HUNG;
    }
}

void gate_slurm_slot_release(gate_slurm_slot **slot)
{
    KEEL_ASSERT(slot != NULL);
    gate_slurm_slot *sl = *slot;
    if (sl == NULL)
        return;
    *slot = NULL;
    runner_stop(sl);
    slot_drop(sl, "/dev/null");
    if (sl->entry < MAX_ALLOCS)
        __atomic_store_n(&alloc_taken[sl->entry], 0, __ATOMIC_RELEASE);
    keel_heap_free(SLURM_HEAP, sl);
}

static bool same_request(const gate_slurm_request *a, const gate_slurm_request *b)
{
    return strcmp(a->partition, b->partition) == 0 && strcmp(a->constraint, b->constraint) == 0 &&
           a->cpus == b->cpus && a->memory == b->memory;
}

/* ---- the Slurm clients' arguments --------------------------------------------------------- */

enum { CANCEL_GRACE_MS = 5000 };

/* `pid` (a child not waited for yet) has ended: it is left to wait_for to reap. */
static bool has_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

typedef struct cancel_ctx {
    pid_t client;     /* srun or salloc */
    const char *name; /* the Slurm job's (one srun job each), or NULL */
    long long alloc;  /* the allocation the step runs in, or 0 */
    const char *out;  /* scancel's output */
    int step;         /* srun's input, of the job's step: told GATE_SLURM_CANCEL_LINE first */
} cancel_ctx;

/*
 * The job is cancelled: srun's input passes GATE_SLURM_CANCEL_LINE on to the step, whose
 * keel-gate kills its job's process groups and ends, and the step with it (CANCEL_GRACE_MS at
 * most: a step not started yet, a node that does not answer); then the client (srun or
 * salloc) told twice (srun aborts the step, salloc its request) and scancel of the job.
 * Not a signal srun passes on: slurmstepd signals every process of the step one by one, the
 * job's own first, and a job's shell whose foreground child died before its turn runs on.
 */
static void cancel_job(void *arg)
{
    const cancel_ctx *c = (const cancel_ctx *)arg;
    if (c->step >= 0) {
        static const char line[] = GATE_SLURM_CANCEL_LINE "\n";
        (void)send(c->step, line, sizeof(line) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        for (unsigned n = 0; n < CANCEL_GRACE_MS && !has_exited(c->client); n += 10)
            nap_ms(10);
    }
    (void)kill(c->client, SIGINT);
    nap_ms(50);
    (void)kill(c->client, SIGINT);
    char target[128] = "";
    if (c->name != NULL)
        gate_fmt(target, sizeof(target), "--name=%s", c->name);
    else if (c->alloc > 0)
        gate_fmt(target, sizeof(target), "%lld", c->alloc);
    if (target[0] == '\0')
        return;
    char scancel[] = "scancel", quiet[] = "--quiet";
    char *const argv[] = {scancel, quiet, target, NULL};
    (void)run_client(argv, c->out);
}

/* A Slurm client's argument vector for job `j` (its strings in *a too) and the time limit. */
typedef struct srun_args {
    char *argv[24];
    char name[64], comment[GATE_PATH_MAX + 64], part[96], cons[300], cpus[32], mem[48], time[32];
    char jobid[40];
    char runner[GATE_PATH_MAX];
    unsigned minutes;
    size_t n;
} srun_args;

static void add(srun_args *a, char *word)
{
    KEEL_ASSERT(a->n + 1 < sizeof(a->argv) / sizeof(a->argv[0]));
    a->argv[a->n++] = word;
    a->argv[a->n] = NULL;
}

/* --comment naming the gate (its pid) and its logs directory, which reconciling reads. */
static void comment_arg(srun_args *a, const gate_job_run *j, const char *what, long long id)
{
    const char *slash = strrchr(j->log, '/');
    gate_fmt(a->comment, sizeof(a->comment), "--comment=keel:%s=%lld,pid=%d,logs=%.*s", what, id,
             (int)getpid(), slash != NULL ? (int)(slash - j->log) : 0, j->log);
    add(a, a->comment);
}

/* What the job's configuration asks of the nodes: partition, features, CPUs, memory. */
static void request_args(srun_args *a, const gate_slurm_request *rq, bool where)
{
    if (where && rq->partition[0] != '\0') {
        gate_fmt(a->part, sizeof(a->part), "--partition=%s", rq->partition);
        add(a, a->part);
    }
    if (where && rq->constraint[0] != '\0') {
        gate_fmt(a->cons, sizeof(a->cons), "--constraint=%s", rq->constraint);
        add(a, a->cons);
    }
    if (rq->cpus > 0) {
        gate_fmt(a->cpus, sizeof(a->cpus), "--cpus-per-task=%u", rq->cpus);
        add(a, a->cpus);
    }
    if (where && rq->memory > 0) {
        gate_fmt(a->mem, sizeof(a->mem), "--mem=%lluM", (rq->memory + (1ull << 20) - 1) >> 20);
        add(a, a->mem);
    }
}

/*
 * srun's arguments: the job as one srun job (alloc 0), or as a step named keel-<job> of the
 * slot's allocation `alloc`.
 */
static keel_status srun_argv(const gate_job_run *j, char *spec, long long alloc, srun_args *a)
{
    ssize_t len = readlink("/proc/self/exe", a->runner, sizeof(a->runner) - 1);
    if (len <= 0)
        return KEEL_ERR_SYS(errno, "cannot find keel-gate's own path for the Slurm nodes");
    a->runner[len] = '\0';
    a->n = 0;
    a->minutes = j->slurm.time_min;
    if (a->minutes == 0)
        a->minutes = j->timeout_ms > 0 ? (j->timeout_ms + 59999u) / 60000u + 1u : 0;
    add(a, arg("srun"));
    if (alloc > 0) {
        gate_fmt(a->jobid, sizeof(a->jobid), "--jobid=%lld", alloc);
        add(a, a->jobid);
        add(a, arg("--overlap")); /* the last step's CPU may not be released yet: no retry loop */
    }
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%lld", j->job_id);
    add(a, a->name);
    if (alloc <= 0)
        comment_arg(a, j, "job", j->job_id);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    add(a, arg("--kill-on-bad-exit=1"));
    request_args(a, &j->slurm, alloc <= 0);
    if (a->minutes > 0) {
        gate_fmt(a->time, sizeof(a->time), "--time=%u", a->minutes);
        add(a, a->time);
    }
    add(a, a->runner);
    add(a, arg(GATE_SLURM_STEP_COMMAND));
    add(a, spec);
    return KEEL_OK;
}

/*
 * A new allocation for the slot (salloc --no-shell: granted, then salloc exits; the
 * allocation lasts until scancel or its partition's time limit): one node, one task, what the
 * job's configuration asks, named keel-<gate pid>-slot<N>.  KEEL_E_IO when Slurm did not
 * grant it; KEEL_E_CANCELLED when the job was cancelled meanwhile.
 */
static keel_status slot_allocate(gate_slurm_slot *sl, gate_job_run *j, const char *out)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    if (!keel_ok(s))
        return s;
    srun_args *a = (srun_args *)mem;
    add(a, arg("salloc"));
    add(a, arg("--no-shell"));
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%d-slot%u", (int)getpid(), sl->index);
    add(a, a->name);
    comment_arg(a, j, "slot", (long long)sl->index);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    request_args(a, &j->slurm, true);
    pid_t pid = 0;
    s = spawn(a->argv, -1, out, &pid);
    keel_heap_free(SLURM_HEAP, mem);
    if (!keel_ok(s))
        return s;
    cancel_ctx cc = {pid, NULL, 0, "/dev/null", -1};
    int st = wait_for(pid, &j->cancel, cancel_job, &cc);
    char said[512];
    last_line(out, said, sizeof(said));
    long long id = 0;
    FILE *f = fopen(out, "re");
    char line[512];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *g = strstr(line, "Granted job allocation ");
        if (g != NULL)
            id = strtoll(g + strlen("Granted job allocation "), NULL, 10);
    }
    if (f != NULL)
        (void)fclose(f);
    bool ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && id > 0;
    if (__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE)) {
        if (id > 0) {
            slot_set(sl, id);
            slot_drop(sl, "/dev/null");
        }
        return KEEL_ERR(KEEL_E_CANCELLED, "cancelled while waiting for a Slurm allocation");
    }
    if (!ok) {
        int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return KEEL_ERR(KEEL_E_IO, "slurm: salloc for slot %u exited %d%s%s", sl->index, code,
                        said[0] != '\0' ? ": " : "", said);
    }
    slot_set(sl, id);
    sl->rq = j->slurm;
    return KEEL_OK;
}

/* A line of the gate's at the end of the job's log (what Slurm did to it). */
static void log_note(const char *log, const char *note)
{
    FILE *f = fopen(log, "ae");
    if (f == NULL)
        return;
    (void)fprintf(f, "keel-gate: %s\n", note);
    (void)fclose(f);
}

/* What one srun of a job came to. */
typedef struct launch {
    keel_status s;         /* reading its result: KEEL_OK, KEEL_E_NOTFOUND none, ... */
    int code;              /* srun's exit code, -1 when killed */
    bool time_limit;       /* Slurm said DUE TO TIME LIMIT */
    unsigned minutes;      /* the time limit asked for the job */
    unsigned long long ms; /* from srun's start to its end */
    char said[512];        /* srun's last line */
} launch;

/* One srun of job `j` (its spec at `spec`), in allocation `alloc` (0: a job of its own). */
static void launch_once(gate_job_run *j, char *spec, long long alloc, const char *srun_out,
                        launch *l)
{
    char result[GATE_PATH_MAX + 32];
    gate_fmt(result, sizeof(result), "%s.result", spec);
    (void)unlink(result); /* a result is only ever this run's */
    memset(l, 0, sizeof(*l));
    l->code = -1;
    void *mem = NULL;
    l->s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    srun_args *a = (srun_args *)mem;
    if (keel_ok(l->s))
        l->s = srun_argv(j, spec, alloc, a);
    unsigned long long t0 = gate_now_ms();
    pid_t pid = 0;
    int in[2] = {-1, -1}; /* srun's input: the cancel's way to the step */
    if (keel_ok(l->s) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
        l->s = KEEL_ERR_SYS(errno, "cannot make a socket pair for 'srun'");
    if (keel_ok(l->s))
        l->s = spawn(a->argv, in[1], srun_out, &pid);
    if (in[1] >= 0)
        (void)close(in[1]);
    if (!keel_ok(l->s)) {
        if (in[0] >= 0)
            (void)close(in[0]);
        keel_heap_free(SLURM_HEAP, mem);
        return;
    }
    cancel_ctx cc = {pid, alloc > 0 ? NULL : a->name + strlen("--job-name="), alloc, srun_out,
                     in[0]};
    int st = wait_for(pid, &j->cancel, cancel_job, &cc);
    (void)close(in[0]);
    l->minutes = a->minutes;
    keel_heap_free(SLURM_HEAP, mem);
    l->ms = gate_now_ms() - t0;
    char *text = NULL;
    l->s = read_file(result, &text);
    if (keel_ok(l->s))
        l->s = parse_result(text, j); /* read once: the file goes */
    keel_heap_free(SLURM_HEAP, text);
    (void)unlink(result);
    last_line(srun_out, l->said, sizeof(l->said));
    l->time_limit = file_says(srun_out, "DUE TO TIME LIMIT");
    (void)unlink(srun_out);
    l->code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The job's worker's slot, made at its first job. */
static keel_status slot_of(gate_job_run *j, gate_slurm_slot **out)
{
    *out = *j->slurm_slot;
    if (*out != NULL)
        return KEEL_OK;
    keel_status s = slot_new(j->slot_index, out);
    if (keel_ok(s))
        *j->slurm_slot = *out;
    return s;
}

/*
 * Run the job in the slot's allocation, allocating one first when the slot has none for its
 * configuration's request.  An allocation that ended under a job (gone, expired, its node
 * lost: no result) is replaced and the job run again once at once.
 */
static void launch_in_slot(gate_job_run *j, char *spec, const char *srun_out, launch *l)
{
    gate_slurm_slot *sl = NULL;
    keel_status s = slot_of(j, &sl);
    for (int attempt = 0; keel_ok(s) && sl != NULL && attempt < 2; attempt++) {
        bool fresh = false;
        if (slot_alloc(sl) <= 0 || !same_request(&sl->rq, &j->slurm)) {
            slot_drop(sl, srun_out); /* another configuration's: nodes for this one */
            s = slot_allocate(sl, j, srun_out);
            fresh = true;
        }
        if (!keel_ok(s))
            break;
        launch_once(j, spec, slot_alloc(sl), srun_out, l);
        bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
        /* a time limit before the job's own (or with none): the allocation's, not the change's */
        if (l->time_limit && !cancelled &&
            (l->minutes == 0 || l->ms + 5000 < (unsigned long long)l->minutes * 60000u))
            l->time_limit = false;
        if (keel_ok(l->s) || l->time_limit)
            return;
        slot_drop(sl, srun_out);
        if (cancelled || fresh || !KEEL_IS(l->s, KEEL_E_NOTFOUND))
            return;
        keel_status_free(l->s); /* an allocation kept from an earlier job ended: a new one */
        l->s = KEEL_OK;
    }
    if (!keel_ok(s)) {
        memset(l, 0, sizeof(*l));
        l->code = -1;
        l->s = s;
    }
}

/*
 * The slot's runner started as a step of its allocation (its srun's stdin and output one end
 * of a socket pair, the gate's the other) and waited for until it is ready.  KEEL_E_IO when it
 * did not start (its srun's last words); KEEL_E_CANCELLED when the job was cancelled meanwhile.
 */
static keel_status runner_start(gate_slurm_slot *sl, const gate_job_run *j)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    if (!keel_ok(s))
        return s;
    srun_args *a = (srun_args *)mem;
    ssize_t len = readlink("/proc/self/exe", a->runner, sizeof(a->runner) - 1);
    if (len <= 0) {
        keel_heap_free(SLURM_HEAP, mem);
        return KEEL_ERR_SYS(errno, "cannot find keel-gate's own path for the Slurm nodes");
    }
    a->runner[len] = '\0';
    add(a, arg("srun"));
    gate_fmt(a->jobid, sizeof(a->jobid), "--jobid=%lld", slot_alloc(sl));
    add(a, a->jobid);
    add(a, arg("--overlap"));
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%d-slot%u", (int)getpid(), sl->index);
    add(a, a->name);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    add(a, arg("--unbuffered"));
    add(a, arg("--quiet"));
    add(a, arg("--kill-on-bad-exit=1"));
    request_args(a, &j->slurm, false);
    add(a, a->runner);
    add(a, arg(GATE_SLURM_STEP_COMMAND));
    add(a, arg(GATE_SLURM_RUNNER_SPEC));
    int sv[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ? errno : 0;
    bool fa_made = rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0;
    for (int fd = 0; fa_made && rc == 0 && fd < 3; fd++)
        rc = posix_spawn_file_actions_adddup2(&fa, sv[1], fd);
    pid_t pid = 0;
    if (rc == 0)
        rc = posix_spawnp(&pid, a->argv[0], &fa, NULL, a->argv, environ);
    if (fa_made)
        (void)posix_spawn_file_actions_destroy(&fa);
    keel_heap_free(SLURM_HEAP, mem);
    if (sv[1] >= 0)
        (void)close(sv[1]);
    if (rc != 0) {
        if (sv[0] >= 0)
            (void)close(sv[0]);
        return KEEL_ERR_SYS(rc, "cannot start 'srun' (is Slurm's client installed?)");
    }
    sl->runner = pid;
    sl->chan = sv[0];
    sl->have = 0;
    sl->said[0] = '\0';
    runner_wait w = runner_await(sl, j, "ready", false, RUNNER_READY_MS);
    if (w == RUNNER_ANSWERED)
        return KEEL_OK;
    if (w == RUNNER_CANCEL)
        return KEEL_ERR(KEEL_E_CANCELLED, "cancelled while the Slurm runner started");
    return KEEL_ERR(KEEL_E_IO, "slurm: the runner of slot %u did not start%s%s", sl->index,
                    sl->said[0] != '\0' ? ": " : "", sl->said);
}

/* The job handed to the slot's standing runner, and its result read (once). */
static void runner_job(gate_slurm_slot *sl, gate_job_run *j, char *spec, launch *l)
{
    char result[GATE_PATH_MAX + 32];
    gate_fmt(result, sizeof(result), "%s.result", spec);
    (void)unlink(result); /* a result is only ever this run's */
    char done[GATE_PATH_MAX + 32];
    gate_fmt(done, sizeof(done), "done %s", spec);
    unsigned long long t0 = gate_now_ms();
    sl->said[0] = '\0';
    runner_wait w = RUNNER_ENDED;
    if (runner_say(sl, "run", spec))
        w = runner_await(sl, j, done, true,
                         j->timeout_ms > 0 ? j->timeout_ms + RUNNER_SLACK_MS : 0);
    l->ms = gate_now_ms() - t0;
    char *text = NULL;
    l->s = read_file(result, &text); /* also after its end: it may have written it */
    if (keel_ok(l->s))
        l->s = parse_result(text, j); /* read once: the file goes */
    keel_heap_free(SLURM_HEAP, text);
    (void)unlink(result);
    gate_fmt(l->said, sizeof(l->said), "%s", sl->said);
    l->code = w == RUNNER_ANSWERED ? 0 : -1;
    if (w != RUNNER_ANSWERED) /* it ended, or it cannot be trusted with the next job */
        runner_stop(sl);
    if (keel_ok(l->s) || w == RUNNER_ANSWERED)
        return;
    if (w == RUNNER_HUNG) {
        keel_status_free(l->s);
        l->s = KEEL_ERR(KEEL_E_IO, "the runner gave no answer %u s past the job's timeout",
                        (unsigned)(RUNNER_SLACK_MS / 1000));
    }
}

/*
 * Run the job through the slot's runner, starting one (in a new allocation) when the slot has
 * none for its configuration's request.  A runner that ended under a job that was not its
 * first (its allocation gone, expired, its node lost: no result) is replaced and the job run
 * again once at once.
 */
static void launch_runner(gate_job_run *j, char *spec, const char *srun_out, launch *l)
{
    memset(l, 0, sizeof(*l));
    l->code = -1;
    gate_slurm_slot *sl = NULL;
    keel_status s = slot_of(j, &sl);
    for (int attempt = 0; keel_ok(s) && sl != NULL && attempt < 2; attempt++) {
        bool fresh = false;
        if (sl->runner <= 0 || slot_alloc(sl) <= 0 || !same_request(&sl->rq, &j->slurm)) {
            runner_stop(sl);
            slot_drop(sl, srun_out); /* another configuration's: nodes for this one */
            s = slot_allocate(sl, j, srun_out);
            if (keel_ok(s))
                s = runner_start(sl, j);
            if (!keel_ok(s)) {
                runner_stop(sl);
                slot_drop(sl, srun_out);
                break;
            }
            fresh = true;
        }
        runner_job(sl, j, spec, l);
        if (keel_ok(l->s))
            return;
        if (sl->runner > 0)
            return; /* it answered: the node's error, its runner still good */
        bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
        slot_drop(sl, srun_out); /* its step ended, or did not answer: its processes go */
        if (cancelled || fresh || !KEEL_IS(l->s, KEEL_E_NOTFOUND))
            return;
        keel_status_free(l->s); /* a runner kept from an earlier job ended: a new one */
        l->s = KEEL_OK;
    }
    if (!keel_ok(s)) {
        keel_status_free(l->s);
        memset(l, 0, sizeof(*l));
        l->code = -1;
        l->s = s;
    }
}

keel_status gate_slurm_run_job(gate_job_run *j)
{
    KEEL_ASSERT(j != NULL);
    char spec[GATE_PATH_MAX + 16], srun_out[GATE_PATH_MAX + 16];
    gate_fmt(spec, sizeof(spec), "%s.spec", j->log);
    gate_fmt(srun_out, sizeof(srun_out), "%s.srun", j->log);
    bool runner = j->slurm_slot != NULL && !j->policy.slurm_srun;
    unsigned timeout_ms = j->timeout_ms;
    unsigned long long limit_ms = (unsigned long long)j->slurm.time_min * 60000u;
    if (runner && limit_ms > 0 && (timeout_ms == 0 || limit_ms < timeout_ms))
        j->timeout_ms = (unsigned)limit_ms; /* no step's --time: the runner ends it there */
    keel_status s = write_file(spec, fill_spec, j);
    if (!keel_ok(s)) {
        j->timeout_ms = timeout_ms;
        return KEEL_CONTEXT(s, "job %lld on Slurm", j->job_id);
    }
    unsigned long long t0 = gate_now_ms();
    launch l;
    if (runner)
        launch_runner(j, spec, srun_out, &l);
    else if (j->slurm_slot != NULL)
        launch_in_slot(j, spec, srun_out, &l);
    else
        launch_once(j, spec, 0, srun_out, &l);
    j->timeout_ms = timeout_ms;
    (void)unlink(spec);
    (void)unlink(srun_out);
    if (keel_ok(l.s))
        return KEEL_OK;
    bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
    if (cancelled || l.time_limit) { /* Slurm's limit came before the gate's timeout */
        keel_status_free(l.s);
        j->result = cancelled ? GATE_EXEC_CANCELLED : GATE_EXEC_TIMEOUT;
        j->exit_code = -1;
        j->elapsed_ms = gate_now_ms() - t0;
        if (!cancelled) {
            gate_fmt(j->reason, sizeof(j->reason), "Slurm time limit %u min reached", l.minutes);
            log_note(j->log, j->reason);
        }
        return KEEL_OK;
    }
    if (KEEL_IS(l.s, KEEL_E_NOTFOUND)) {
        keel_status_free(l.s);
        return KEEL_ERR(KEEL_E_IO, "slurm: job keel-%lld gave no result (srun exited %d%s%s)",
                        j->job_id, l.code, l.said[0] != '\0' ? ": " : "", l.said);
    }
    return KEEL_CONTEXT(l.s, "slurm: job keel-%lld (srun exited %d%s%s)", j->job_id, l.code,
                        l.said[0] != '\0' ? ": " : "", l.said);
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
    int rc = run_client(q, out);
    if (rc != 0) {
        char said[512];
        last_line(out, said, sizeof(said));
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
        rc = run_client(c, out);
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
