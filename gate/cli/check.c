/*
 * check.c - `keel-gate check [FILE|BRANCH|-]`: a configuration checked
 * without committing or running it, every error at once (gate_config_check),
 * for editors and pre-commit hooks.  It opens no store and takes no lock:
 * a file is read as it is, a branch's `.keel/gate.conf` from git (no
 * checkout), and with no argument the target's.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "gate_int.h"
#include "remote.h"
#include "text.h"

/* The errors found, to be said in the order of their lines (the file's own checks come last). */
typedef struct check_error {
    unsigned long long line; /* ~0: about the whole file */
    char *text;
} check_error;

typedef struct check_errors {
    check_error *e;
    size_t n, cap;
    keel_status failed; /* the gate's own failure while keeping them (memory) */
} check_errors;

static void keep_error(keel_status err, void *ctx)
{
    check_errors *c = (check_errors *)ctx;
    if (!keel_ok(c->failed))
        return;
    char line[2048];
    gate_status_line(err, line, sizeof(line));
    void *mem = NULL;
    if (c->n == c->cap) {
        size_t cap = c->cap > 0 ? c->cap * 2 : 16;
        c->failed = keel_heap_realloc(GATE_HEAP, (void **)&c->e, cap * sizeof(*c->e));
        if (!keel_ok(c->failed))
            return;
        c->cap = cap;
    }
    c->failed = keel_heap_alloc(GATE_HEAP, strlen(line) + 1, &mem);
    if (!keel_ok(c->failed))
        return;
    memcpy(mem, line, strlen(line) + 1);
    c->e[c->n].line = 0;
    (void)keel_status_get_uint(err, "line", &c->e[c->n].line);
    if (c->e[c->n].line == 0)
        c->e[c->n].line = ~0ull; /* the whole file's: after the lines' */
    c->e[c->n++].text = (char *)mem;
}

/* Each error a line of its own, by line (stable: insertion), escaped: the text is anyone's. */
static void say_errors(check_errors *c, FILE *out)
{
    for (size_t i = 1; i < c->n; i++)
        for (size_t j = i; j > 0 && c->e[j - 1].line > c->e[j].line; j--) {
            check_error t = c->e[j];
            c->e[j] = c->e[j - 1];
            c->e[j - 1] = t;
        }
    for (size_t i = 0; i < c->n; i++) {
        if (out != NULL)
            gate_text_printf(out, "%s\n", c->e[i].text);
        keel_heap_free(GATE_HEAP, c->e[i].text);
    }
    keel_heap_free(GATE_HEAP, c->e);
    c->e = NULL;
    c->n = c->cap = 0;
}

/* `.keel/gate.conf` of `branch` (the target's when NULL) in the guarded repository. */
static keel_status read_branch(const gate_options *o, const char *branch, char *origin,
                               size_t origin_size, char **text, size_t *len)
{
    gate_repo *repo = NULL;
    const char *where = o->repo != NULL ? o->repo : ".";
    keel_status s = gate_remote_is_url(where) ? gate_repo_open_remote(where, o->mirror, &repo)
                                              : gate_repo_open(where, &repo);
    char name[GATE_BRANCH_MAX], tip[GATE_HEX];
    if (keel_ok(s) && branch == NULL && o->target == NULL)
        s = gate_repo_head_branch(repo, name, sizeof(name));
    else if (keel_ok(s)) { /* checked whole: a name cut to fit could be another branch */
        s = gate_branch_check(branch != NULL ? branch : o->target);
        if (keel_ok(s))
            gate_fmt(name, sizeof(name), "%s", branch != NULL ? branch : o->target);
    }
    if (keel_ok(s))
        s = gate_branch_head(repo, name, tip);
    char *data = NULL;
    if (keel_ok(s))
        s = gate_read_file(repo, tip, ".keel/gate.conf", &data, len);
    if (keel_ok(s)) { /* a copy on this module's heap: the caller frees one kind */
        void *mem = NULL;
        s = keel_heap_alloc(GATE_HEAP, *len + 1, &mem);
        if (keel_ok(s)) {
            memcpy(mem, data, *len + 1);
            *text = (char *)mem;
        }
        gate_fmt(origin, origin_size, "%s:.keel/gate.conf", name);
    }
    gate_file_free(data);
    gate_repo_close(repo);
    return s;
}

keel_status gate_check(const gate_options *o, const char *what, size_t *errors)
{
    KEEL_ASSERT(o != NULL && errors != NULL);
    *errors = 0;
    char origin[GATE_BRANCH_MAX + 32];
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    keel_status s;
    if (what != NULL && strcmp(what, "-") == 0) {
        gate_fmt(origin, sizeof(origin), "<stdin>");
        s = gate_read_stream(stdin, origin, &text, &len);
    } else if (what != NULL && stat(what, &st) == 0 && S_ISDIR(st.st_mode)) {
        s = KEEL_ERR(KEEL_E_INVAL,
                     "'%s' is a directory: give the file ('%s/.keel/gate.conf'), a branch or '-'",
                     what, what);
    } else if (what != NULL && stat(what, &st) == 0) {
        gate_fmt(origin, sizeof(origin), "%s", what);
        s = gate_read_path(what, &text, &len);
    } else {
        /* not a file: a branch (a name a file could not be is refused as a branch) */
        s = what != NULL ? gate_branch_check(what) : KEEL_OK;
        if (keel_ok(s))
            s = read_branch(o, what, origin, sizeof(origin), &text, &len);
        if (!keel_ok(s) && what != NULL)
            s = KEEL_CONTEXT(s, "'%s' is neither a file nor a branch with a .keel/gate.conf", what);
    }
    gate_config *cfg = NULL;
    check_errors c;
    memset(&c, 0, sizeof(c));
    if (keel_ok(s))
        s = gate_config_check(text, len, origin, keep_error, &c, errors, &cfg);
    if (keel_ok(s))
        s = c.failed;
    else
        keel_status_free(c.failed);
    say_errors(&c, keel_ok(s) ? o->out : NULL);
    if (keel_ok(s) && o->out != NULL && *errors > 0)
        gate_text_printf(o->out, "%s: %zu error%s\n", origin, *errors, *errors == 1 ? "" : "s");
    if (keel_ok(s) && o->out != NULL && cfg != NULL) { /* every name, however many and long */
        gate_text_printf(o->out, "%s: ok: %zu configuration%s: ", origin, cfg->nconfigs,
                         cfg->nconfigs == 1 ? "" : "s");
        for (size_t i = 0; i < cfg->nconfigs; i++)
            gate_text_printf(o->out, "%s%s%s", i > 0 ? ", " : "", cfg->configs[i].name,
                             cfg->configs[i].required ? "" : " (not required)");
        (void)fputc('\n', o->out);
    }
    gate_config_free(cfg);
    keel_heap_free(GATE_HEAP, text);
    return s;
}
