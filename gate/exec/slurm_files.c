/*
 * slurm_files.c - the files between keel-gate's Slurm executor and its steps
 * (slurm.h), and the node's side: a step reads its job's spec, runs the job
 * as the local executor does, and writes its result.
 *
 * The spec and the result are text files of `key<TAB>value` lines, the
 * value with `\\`, `\n` and `\t` escaped; a key may repeat (argv, env, the
 * lists of the policy).  Both are written to a temporary name and renamed, so
 * each is whole or absent.  The gate's side (slurm.c) writes the spec and
 * reads the result with gate_slurm__spec_write and gate_slurm__result_read.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gate.h"
#include "heaps.h"
#include "pool.h"
#include "slurm_int.h"

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

/* ---- what the gate's side reads and writes ------------------------------------------ */

keel_status gate_slurm__spec_write(const char *path, const gate_job_run *j)
{
    return write_file(path, fill_spec, j);
}

keel_status gate_slurm__result_read(const char *path, gate_job_run *j)
{
    char *text = NULL;
    keel_status s = read_file(path, &text);
    if (keel_ok(s))
        s = parse_result(text, j); /* read once: the caller removes the file */
    keel_heap_free(SLURM_HEAP, text);
    return s;
}
