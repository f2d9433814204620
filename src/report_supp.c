/*
 * report_supp.c - suppressions: reports a user has decided to live with
 * (option report.suppressions, a file in the spirit of valgrind's), and the
 * entry that would suppress a report (report.gen-suppressions).
 *
 *   # a comment
 *   {
 *      a-name-for-it
 *      keel:lock-order          the kind (a glob: keel:lock-*, keel:*)
 *      message:*'cache'*        optional: a glob on the report's message
 *      fun:take_b               the stack, innermost frame first (keel's own
 *      src:worker.c:42          frames are not in it): fun: a glob on the
 *      obj:libfoo.so*           function, src: on the file (its base name
 *      ...                      unless the glob holds a '/') with an optional
 *   }                           line, obj: on the object; ... any frames
 *
 * The frame lines match the stack from its innermost frame; frames past the
 * last line are not looked at.  A report matched is not printed, not written
 * to the report file, not seen by the handler and not counted by
 * keel_report_count; its policy is count (never abort).  Each suppression
 * counts its hits, and the counts are printed at exit when any is nonzero.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { MAX_LINES = 64, LINE_MAX_LEN = 512 };

typedef enum pat_kind { PAT_FUN, PAT_SRC, PAT_OBJ, PAT_ANY } pat_kind;

typedef struct pat {
    pat_kind kind;
    char *glob;
    int line; /* src: 0 for any line */
} pat;

typedef struct supp {
    char *name, *kind, *message; /* message: NULL for any */
    pat *pats;
    size_t npats;
    unsigned long long hits;
} supp;

struct keel__supp_set {
    supp *v;
    size_t n;
    char *path;
    struct keel__supp_set *older; /* replaced sets stay allocated: a report may be reading them */
};

static keel__supp_set *current;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static bool exit_registered;

static void set_free(keel__supp_set *s)
{
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].kind);
        free(s->v[i].message);
        for (size_t k = 0; k < s->v[i].npats; k++)
            free(s->v[i].pats[k].glob);
        free(s->v[i].pats);
    }
    if (s != NULL) {
        free(s->v);
        free(s->path);
    }
    free(s);
}

static char *trimmed(char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r' ||
                     line[n - 1] == '\n'))
        line[--n] = '\0';
    return line;
}

static keel_status bad_line(const char *path, int lineno, const char *what, const char *text)
{
    return KEEL_ERR(KEEL_E_PARSE, "suppressions file '%s': line %d: %s '%s'", path, lineno, what,
                    text);
}

/* One frame line of an entry into p. */
static keel_status parse_frame(const char *path, int lineno, char *text, pat *p)
{
    memset(p, 0, sizeof(*p));
    if (strcmp(text, "...") == 0) {
        p->kind = PAT_ANY;
        return KEEL_OK;
    }
    const char *glob = NULL;
    if (strncmp(text, "fun:", 4) == 0) {
        p->kind = PAT_FUN;
        glob = text + 4;
    } else if (strncmp(text, "obj:", 4) == 0) {
        p->kind = PAT_OBJ;
        glob = text + 4;
    } else if (strncmp(text, "src:", 4) == 0) {
        p->kind = PAT_SRC;
        glob = text + 4;
        char *colon = strrchr(text + 4, ':');
        if (colon != NULL && colon[1] != '\0' &&
            strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
            long line = strtol(colon + 1, NULL, 10);
            if (line <= 0 || line > 100000000)
                return bad_line(path, lineno, "a line number from 1 on, not", colon + 1);
            p->line = (int)line;
            *colon = '\0';
        }
    } else {
        return bad_line(path, lineno, "a frame is fun:, src:, obj: or ..., not", text);
    }
    if (glob[0] == '\0')
        return bad_line(path, lineno, "an empty pattern in", text);
    p->glob = strdup(glob);
    return p->glob != NULL ? KEEL_OK : KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
}

/* The kind glob of an entry must match some kind of report: a typo would suppress nothing. */
static keel_status check_kind(const char *path, int lineno, const char *line)
{
    const char *names[KEEL_REPORT_KIND_COUNT];
    for (int k = 0; k < (int)KEEL_REPORT_KIND_COUNT; k++) {
        names[k] = keel_report_kind_name((keel_report_kind)k);
        if (fnmatch(line + 5, names[k], 0) == 0)
            return KEEL_OK;
    }
    const char *near = keel_suggest(line + 5, names, KEEL__ARRAY_LEN(names));
    if (near != NULL)
        return KEEL_ERR(KEEL_E_PARSE,
                        "suppressions file '%s': line %d: '%s' matches no kind of report (did "
                        "you mean '%s'?)",
                        path, lineno, line, near);
    return KEEL_ERR(KEEL_E_PARSE, "suppressions file '%s': line %d: '%s' matches no kind of report",
                    path, lineno, line);
}

/*
 * Adds the entry of lines[0..n) (name, kind, then message and frames); linenos[i] is the line
 * of the file lines[i] was read from (comments and blank lines between them).
 */
static keel_status add_entry(keel__supp_set *s, const char *path, int first,
                             char lines[][LINE_MAX_LEN], const int *linenos, size_t n)
{
    if (n < 2)
        return bad_line(path, first, "an entry needs a name and a kind (keel:KIND) after", "{");
    if (strncmp(lines[1], "keel:", 5) != 0 || lines[1][5] == '\0')
        return bad_line(path, linenos[1], "the second line of an entry is keel:KIND, not",
                        lines[1]);
    keel_status kind = check_kind(path, linenos[1], lines[1]);
    if (!keel_ok(kind))
        return kind;
    supp *grown = (supp *)realloc(s->v, (s->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
    s->v = grown;
    supp *e = &s->v[s->n++];
    memset(e, 0, sizeof(*e));
    e->name = strdup(lines[0]);
    e->kind = strdup(lines[1] + 5);
    e->pats = (pat *)calloc(n, sizeof(pat));
    if (e->name == NULL || e->kind == NULL || e->pats == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
    for (size_t i = 2; i < n; i++) {
        if (strncmp(lines[i], "message:", 8) == 0 && e->npats == 0 && e->message == NULL) {
            if (lines[i][8] == '\0')
                return bad_line(path, linenos[i], "an empty pattern in", lines[i]);
            e->message = strdup(lines[i] + 8);
            if (e->message == NULL)
                return KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
            continue;
        }
        keel_status st = parse_frame(path, linenos[i], lines[i], &e->pats[e->npats]);
        if (!keel_ok(st))
            return st;
        e->npats++;
    }
    return KEEL_OK;
}

static keel_status parse_lines(FILE *f, const char *path, keel__supp_set *s,
                               char lines[][LINE_MAX_LEN])
{
    char buf[LINE_MAX_LEN + 2];
    int linenos[MAX_LINES];
    size_t n = 0;
    int lineno = 0, open_at = 0;
    bool open = false;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        lineno++;
        if (strchr(buf, '\n') == NULL && !feof(f))
            return KEEL_ERR(KEEL_E_PARSE, "suppressions file '%s': line %d is longer than %d bytes",
                            path, lineno, LINE_MAX_LEN);
        char *t = trimmed(buf);
        if (t[0] == '\0' || t[0] == '#')
            continue;
        if (!open) {
            if (strcmp(t, "{") != 0)
                return bad_line(path, lineno, "an entry starts with '{', not", t);
            open = true;
            open_at = lineno;
            n = 0;
        } else if (strcmp(t, "}") == 0) {
            keel_status st = add_entry(s, path, open_at, lines, linenos, n);
            if (!keel_ok(st))
                return st;
            open = false;
        } else if (strcmp(t, "{") == 0) {
            return bad_line(path, lineno, "an entry is not closed with '}' before", t);
        } else if (n == MAX_LINES) {
            return bad_line(path, lineno, "an entry has at most 64 lines; too many at", t);
        } else {
            linenos[n] = lineno;
            (void)snprintf(lines[n++], LINE_MAX_LEN, "%s", t);
        }
    }
    if (ferror(f))
        return KEEL_ERR(KEEL_E_IO, "suppressions file '%s': cannot read it", path);
    if (open)
        return KEEL_ERR(KEEL_E_PARSE,
                        "suppressions file '%s': the entry opened at line %d is not "
                        "closed with '}'",
                        path, open_at);
    return KEEL_OK;
}

static keel_status parse(FILE *f, const char *path, keel__supp_set *s)
{
    char(*lines)[LINE_MAX_LEN] = (char(*)[LINE_MAX_LEN])calloc(MAX_LINES, LINE_MAX_LEN);
    if (lines == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
    keel_status st = parse_lines(f, path, s, lines);
    free(lines);
    return st;
}

/* Parse len bytes of text (named origin in errors) into s; empty text is an empty set. */
static keel_status parse_text(const char *text, size_t len, const char *origin, keel__supp_set *s)
{
    if (len == 0)
        return KEEL_OK;
    void *buf = NULL;
    memcpy(&buf, &text, sizeof(buf)); /* fmemopen takes no const; "r" only reads it */
    FILE *f = fmemopen(buf, len, "r");
    if (f == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "suppressions '%s'", origin);
    keel_status st = parse(f, origin, s);
    (void)fclose(f);
    return st;
}

/* A suppressions file is read like an option file (keel__read_text_file): a regular file only, of
 * at most 1 MiB, and an error says why with the errno name; a FIFO is an error, not a hang. */
static keel_status load(const char *path, keel__supp_set **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel__read_text_file(path, (size_t)1 << 20, "suppressions file", &text, &len);
    if (!keel_ok(st))
        return st;
    keel__supp_set *s = (keel__supp_set *)calloc(1, sizeof(*s));
    if (s == NULL) {
        free(text);
        return KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
    }
    st = parse_text(text, len, path, s);
    free(text);
    if (keel_ok(st) && (s->path = strdup(path)) == NULL)
        st = KEEL_ERR(KEEL_E_NOMEM, "suppressions file '%s'", path);
    if (!keel_ok(st)) {
        set_free(s);
        return st;
    }
    *out = s;
    return KEEL_OK;
}

keel_status keel__supp_parse_only(const char *text, size_t len, const char *origin)
{
    keel__supp_set *s = (keel__supp_set *)calloc(1, sizeof(*s));
    keel_status st =
        s != NULL ? parse_text(text, len, origin, s) : KEEL_ERR(KEEL_E_NOMEM, "suppressions");
    set_free(s);
    return st;
}

keel_status keel__supp_check_file(const char *value)
{
    if (value == NULL || value[0] == '\0')
        return KEEL_OK;
    keel__supp_set *s = NULL;
    keel_status st = load(value, &s);
    set_free(s);
    return st;
}

static void at_exit_hits(void)
{
    keel__supp_set *s = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    unsigned long long total = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++)
        total += __atomic_load_n(&s->v[i].hits, __ATOMIC_RELAXED);
    if (total == 0)
        return;
    (void)fprintf(stderr, "keel: %llu report%s suppressed by '%s':", total, total == 1 ? "" : "s",
                  s->path);
    for (size_t i = 0; i < s->n; i++) {
        unsigned long long h = __atomic_load_n(&s->v[i].hits, __ATOMIC_RELAXED);
        if (h > 0)
            (void)fprintf(stderr, " '%s' %llu", s->v[i].name, h);
    }
    (void)fputc('\n', stderr);
}

void keel__supp_options_changed(void)
{
    const char *path = keel__opt_str(KEEL__OPT_REPORT_SUPPRESSIONS);
    KEEL_VERIFY(pthread_mutex_lock(&load_lock) == 0);
    keel__supp_set *old = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    bool same = (old == NULL && (path == NULL || path[0] == '\0')) ||
                (old != NULL && path != NULL && strcmp(old->path, path) == 0);
    if (!same) {
        keel__supp_set *s = NULL;
        /* checked when the option was set: a file changed since then loads nothing */
        if (path != NULL && path[0] != '\0' && !keel_ok(load(path, &s)))
            s = NULL;
        if (s != NULL) {
            s->older = old;
        } else if (old != NULL) {
            /* keep the replaced set reachable from a new empty one */
            s = (keel__supp_set *)calloc(1, sizeof(*s));
            if (s != NULL && (s->path = strdup("")) != NULL)
                s->older = old;
        }
        if (s != NULL)
            __atomic_store_n(&current, s, __ATOMIC_RELEASE);
        if (!exit_registered) {
            exit_registered = true;
            (void)atexit(at_exit_hits);
        }
    }
    KEEL_VERIFY(pthread_mutex_unlock(&load_lock) == 0);
}

bool keel__supp_active(void)
{
    keel__supp_set *s = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    return s != NULL && s->n > 0;
}

static bool frame_matches(const pat *p, const keel_frame *f)
{
    switch (p->kind) {
    case PAT_FUN:
        return fnmatch(p->glob, f->func[0] != '\0' ? f->func : "?", 0) == 0;
    case PAT_OBJ:
        return fnmatch(p->glob, f->object[0] != '\0' ? f->object : "?", 0) == 0;
    case PAT_SRC: {
        if (f->file[0] == '\0' || (p->line != 0 && p->line != f->line))
            return false;
        const char *base = strrchr(f->file, '/');
        const char *name = strchr(p->glob, '/') != NULL || base == NULL ? f->file : base + 1;
        return fnmatch(p->glob, name, 0) == 0;
    }
    case PAT_ANY:
    default:
        return true;
    }
}

/* Do pats[0..np) match frames[0..nf) from the innermost frame on? */
static bool stack_matches(const pat *pats, size_t np, const keel_frame *frames, size_t nf)
{
    if (np == 0)
        return true;
    if (pats[0].kind == PAT_ANY) {
        for (size_t skip = 0; skip <= nf; skip++)
            if (stack_matches(pats + 1, np - 1, frames + skip, nf - skip))
                return true;
        return false;
    }
    return nf > 0 && frame_matches(&pats[0], &frames[0]) &&
           stack_matches(pats + 1, np - 1, frames + 1, nf - 1);
}

const char *keel__supp_match(const char *kind, const char *message, const keel_frame *frames,
                             int nframes)
{
    keel__supp_set *s = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const supp *e = &s->v[i];
        if (fnmatch(e->kind, kind, 0) != 0)
            continue;
        if (e->message != NULL && fnmatch(e->message, message, 0) != 0)
            continue;
        if (!stack_matches(e->pats, e->npats, frames, nframes > 0 ? (size_t)nframes : 0))
            continue;
        __atomic_fetch_add(&s->v[i].hits, 1, __ATOMIC_RELAXED);
        return e->name;
    }
    return NULL;
}

/* text with the glob characters escaped (a name such as operator[] is matched as it is) */
static void put_escaped(char *buf, size_t size, size_t *pos, const char *text)
{
    for (const char *m = text; *m != '\0' && *m != '\n'; m++)
        keel__buf_printf(buf, size, pos, "%s%c", strchr("*?[\\", *m) != NULL ? "\\" : "", *m);
    keel__buf_printf(buf, size, pos, "\n");
}

void keel__supp_render(const char *kind, const char *message, const keel_frame *frames, int nframes,
                       char *buf, size_t size, size_t *pos)
{
    keel__buf_printf(buf, size, pos, "  suppression:\n  {\n     <a name for it>\n     keel:%s\n",
                     kind);
    if (nframes == 0) {
        /* no stack to tell it by: the message itself, its glob characters escaped */
        keel__buf_printf(buf, size, pos, "     message:");
        put_escaped(buf, size, pos, message);
    }
    for (int i = 0; i < nframes; i++) {
        const keel_frame *f = &frames[i];
        if (f->func[0] != '\0' || f->object[0] != '\0') {
            keel__buf_printf(buf, size, pos, "     %s", f->func[0] != '\0' ? "fun:" : "obj:");
            put_escaped(buf, size, pos, f->func[0] != '\0' ? f->func : f->object);
        } else
            keel__buf_printf(buf, size, pos, "     ...\n");
    }
    keel__buf_printf(buf, size, pos, "  }\n");
}
