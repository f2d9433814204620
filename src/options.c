/*
 * options.c - KEEL_OPTIONS: the one table of runtime options, its parser and
 * its values.  Parsing is all or nothing: items are staged, and applied only
 * when the whole text is valid.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum opt_type { TYPE_BOOL, TYPE_INT, TYPE_STR, TYPE_POLICY } opt_type;

typedef struct opt_desc {
    const char *name;
    opt_type type;
    long long def;
    long long lo;
    long long hi;
    keel_status (*check)(const char *value);
    const char *help;
} opt_desc;

#define ROW(id, name, type, def, lo, hi, check, help) {name, TYPE_##type, def, lo, hi, check, help},
static const opt_desc table[KEEL__OPT_COUNT] = {KEEL__OPTIONS(ROW)};
#undef ROW
#define DEF(id, name, type, def, lo, hi, check, help) def,
static long long ivals[KEEL__OPT_COUNT] = {KEEL__OPTIONS(DEF)};
#undef DEF
static const char *svals[KEEL__OPT_COUNT];

unsigned keel__options_generation;

/* Replaced string values stay reachable (a reader may still hold one). */
typedef struct retired {
    struct retired *next;
    const char *value;
} retired;
static retired *retired_list;
static pthread_mutex_t options_lock = PTHREAD_MUTEX_INITIALIZER;

/* Ids past the table are the per-kind report policies: report.<kind>. */
enum {
    POLICY_BASE = (int)KEEL__OPT_COUNT,
    ID_COUNT = (int)KEEL__OPT_COUNT + (int)KEEL_REPORT_KIND_COUNT
};

static const char *const policy_names[] = {"abort", "report", "count"};

/* ---- readers ------------------------------------------------------------------ */

long long keel__opt_int(keel__opt_id id)
{
    KEEL_ASSERT((unsigned)id < (unsigned)KEEL__OPT_COUNT);
    return __atomic_load_n(&ivals[id], __ATOMIC_RELAXED);
}

bool keel__opt_bool(keel__opt_id id)
{
    return keel__opt_int(id) != 0;
}

const char *keel__opt_str(keel__opt_id id)
{
    KEEL_ASSERT((unsigned)id < (unsigned)KEEL__OPT_COUNT && table[id].type == TYPE_STR);
    const char *v = __atomic_load_n(&svals[id], __ATOMIC_ACQUIRE);
    return v != NULL ? v : "";
}

/* ---- names ----------------------------------------------------------------------- */

static void id_name(int id, char *buf, size_t size)
{
    if (id < POLICY_BASE)
        (void)snprintf(buf, size, "%s", table[id].name);
    else
        (void)snprintf(buf, size, "report.%s",
                       keel_report_kind_name((keel_report_kind)(id - POLICY_BASE)));
}

static opt_type id_type(int id)
{
    return id < POLICY_BASE ? table[id].type : TYPE_POLICY;
}

static int find_id(const char *name, size_t len)
{
    char buf[96];
    for (int id = 0; id < ID_COUNT; id++) {
        id_name(id, buf, sizeof(buf));
        if (strlen(buf) == len && memcmp(buf, name, len) == 0)
            return id;
    }
    return -1;
}

const char *keel_suggest(const char *word, const char *const *words, size_t n)
{
    if (word == NULL || (words == NULL && n > 0))
        return NULL;
    size_t best = (size_t)-1;
    const char *best_word = NULL;
    size_t len = strlen(word);
    size_t limit = len < 4 ? 1 : (len < 9 ? 2 : len / 4 + 1);
    for (size_t i = 0; i < n; i++) {
        size_t d = keel__edit_distance(word, words[i]);
        if (d < best) {
            best = d;
            best_word = words[i];
        }
    }
    return best <= limit ? best_word : NULL;
}

static void nearest_name(const char *word, char *out, size_t size)
{
    static KEEL__TLS char names[ID_COUNT][96];
    const char *ptrs[ID_COUNT];
    for (int id = 0; id < ID_COUNT; id++) {
        id_name(id, names[id], sizeof(names[id]));
        ptrs[id] = names[id];
    }
    const char *n = keel_suggest(word, ptrs, (size_t)ID_COUNT);
    (void)snprintf(out, size, "%s", n != NULL ? n : "");
}

/* ---- the parser -------------------------------------------------------------------------- */

typedef struct staged {
    int id;
    long long ival;
    char *sval;
} staged;

typedef struct parser {
    const char *text;
    size_t len;
    size_t pos;
    const char *origin;
    bool lines; /* a file: report line and column */
    staged *items;
    size_t n;
    size_t cap;
} parser;

static void where(const parser *p, size_t at, char *buf, size_t size)
{
    if (!p->lines) {
        (void)snprintf(buf, size, "position %zu", at + 1);
        return;
    }
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    (void)snprintf(buf, size, "line %zu, column %zu", line, col);
}

static keel_status perr(const parser *p, keel_code code, size_t at, size_t toklen,
                        const char *suggest, const char *fmt, ...) KEEL_PRINTF(6, 7);

static keel_status perr(const parser *p, keel_code code, size_t at, size_t toklen,
                        const char *suggest, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char loc[64];
    where(p, at, loc, sizeof(loc));
    char token[128];
    size_t tl = toklen < sizeof(token) - 1 ? toklen : sizeof(token) - 1;
    if (at + tl > p->len)
        tl = at < p->len ? p->len - at : 0;
    memcpy(token, p->text + at, tl);
    token[tl] = '\0';
    keel_status s;
    if (suggest != NULL && suggest[0] != '\0')
        s = KEEL_ERR((int)code, "%s: %s at %s (did you mean '%s'?)", p->origin, what, loc, suggest);
    else
        s = KEEL_ERR((int)code, "%s: %s at %s", p->origin, what, loc);
    s = keel_status_with_str(s, "token", token);
    s = keel_status_with_uint(s, "position", (unsigned long long)at + 1);
    if (suggest != NULL && suggest[0] != '\0')
        s = keel_status_with_str(s, "suggestion", suggest);
    return s;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static void skip_blanks(parser *p)
{
    while (p->pos < p->len && is_blank(p->text[p->pos]))
        p->pos++;
}

static bool at_item_end(const parser *p)
{
    return p->pos >= p->len || p->text[p->pos] == ';' || p->text[p->pos] == '\n';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static keel_status stage(parser *p, int id, long long ival, char *sval)
{
    if (p->n == p->cap) {
        size_t cap = p->cap != 0 ? p->cap * 2 : 8;
        staged *items = (staged *)realloc(p->items, cap * sizeof(*items));
        if (items == NULL) {
            free(sval);
            return KEEL_ERR(KEEL_E_NOMEM, "%s: out of memory staging options", p->origin);
        }
        p->items = items;
        p->cap = cap;
    }
    p->items[p->n].id = id;
    p->items[p->n].ival = ival;
    p->items[p->n].sval = sval;
    p->n++;
    return KEEL_OK;
}

static bool word_is(const char *v, const char *w)
{
    return strcmp(v, w) == 0;
}

/*
 * A value as an error message quotes it: cut after 64 bytes (not inside a UTF-8 character),
 * with "...", so that a long one leaves room for the option's name.
 */
static const char *shown(const char *value, char *buf, size_t size)
{
    enum { MAX_SHOWN = 64 };
    size_t n = strlen(value);
    if (n <= MAX_SHOWN || size < MAX_SHOWN + 4)
        return value;
    n = MAX_SHOWN;
    while (n > 0 && ((unsigned char)value[n] & 0xC0u) == 0x80u)
        n--;
    (void)snprintf(buf, size, "%.*s...", (int)n, value);
    return buf;
}

/*
 * A value its option's check refused: one line that says where and why (the
 * check's message, with the errno name of a file that could not be read), the
 * origin named once, and the details of both.  Takes `why`.
 */
static keel_status bad_checked_value(const parser *p, const char *name, const char *value,
                                     size_t at, keel_status why)
{
    char loc[64];
    where(p, at, loc, sizeof(loc));
    keel_status s = KEEL_ERR(KEEL_E_PARSE, "%s: bad value for option '%s' at %s: %s", p->origin,
                             name, loc, keel_status_message(why));
    s = keel_status_with_str(s, "token", value);
    s = keel_status_with_uint(s, "position", (unsigned long long)at + 1);
    long long err = 0;
    if (keel_status_get_int(why, "errno", &err)) {
        const char *ename = keel_status_get_str(why, "errno_name");
        s = keel_status_with_str(keel_status_with_int(s, "errno", err), "errno_name",
                                 ename != NULL ? ename : "?");
    }
    keel_status_free(why);
    return s;
}

/* Convert and check one value; stages it on success. */
static keel_status take_value(parser *p, int id, const char *name, const char *value, size_t at,
                              size_t vlen)
{
    char cut[80];
    switch (id_type(id)) {
    case TYPE_BOOL: {
        long long b;
        if (word_is(value, "1") || word_is(value, "true") || word_is(value, "yes") ||
            word_is(value, "on"))
            b = 1;
        else if (word_is(value, "0") || word_is(value, "false") || word_is(value, "no") ||
                 word_is(value, "off"))
            b = 0;
        else
            return perr(p, KEEL_E_PARSE, at, vlen, NULL,
                        "bad value '%s' for boolean option '%s' (use 1/0, true/false, yes/no, "
                        "on/off)",
                        shown(value, cut, sizeof(cut)), name);
        return stage(p, id, b, NULL);
    }
    case TYPE_INT: {
        /* decimal digits, '-' before a negative one: not strtoll's '+', blanks or nothing */
        const opt_desc *d = &table[id];
        const char *digits = value[0] == '-' ? value + 1 : value;
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!(digits[0] >= '0' && digits[0] <= '9') || end == NULL || *end != '\0')
            return perr(p, KEEL_E_PARSE, at, vlen, NULL,
                        "bad value '%s' for option '%s': expected an integer (decimal digits, "
                        "no '+' or blanks)",
                        shown(value, cut, sizeof(cut)), name);
        if (errno == ERANGE || v < d->lo || v > d->hi)
            return keel_status_with_int(
                keel_status_with_int(perr(p, KEEL_E_RANGE, at, vlen, NULL,
                                          "value '%s' for option '%s' is out of range [%lld, %lld]",
                                          shown(value, cut, sizeof(cut)), name, d->lo, d->hi),
                                     "min", d->lo),
                "max", d->hi);
        return stage(p, id, v, NULL);
    }
    case TYPE_POLICY: {
        for (size_t i = 0; i < KEEL__ARRAY_LEN(policy_names); i++)
            if (word_is(value, policy_names[i]))
                return stage(p, id, (long long)i, NULL);
        const char *near = keel_suggest(value, policy_names, KEEL__ARRAY_LEN(policy_names));
        return perr(p, KEEL_E_PARSE, at, vlen, near,
                    "bad value '%s' for option '%s' (use abort, report or count)",
                    shown(value, cut, sizeof(cut)), name);
    }
    case TYPE_STR: {
        if (id < POLICY_BASE && table[id].check != NULL) {
            keel_status s = table[id].check(value);
            if (!keel_ok(s))
                return bad_checked_value(p, name, value, at, s);
        }
        char *copy = strdup(value);
        if (copy == NULL)
            return KEEL_ERR(KEEL_E_NOMEM, "%s: out of memory copying option '%s'", p->origin, name);
        return stage(p, id, 0, copy);
    }
    }
    return KEEL_ERR(KEEL_E_INTERNAL, "option '%s' has no type", name);
}

/* A double-quoted value of option `name`: \" and \\ are escapes.  p->pos is at the opening quote. */
static keel_status quoted_value(parser *p, const char *name, char *out, size_t size, size_t *vlen)
{
    size_t start = p->pos;
    size_t n = 0;
    p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return perr(p, KEEL_E_PARSE, start, p->len - start, NULL,
                        "unterminated quoted value of option '%s'", name);
        char c = p->text[p->pos++];
        if (c == '"')
            break;
        if (c == '\\' && p->pos < p->len && (p->text[p->pos] == '"' || p->text[p->pos] == '\\'))
            c = p->text[p->pos++];
        if (n + 1 >= size)
            return perr(p, KEEL_E_PARSE, start, 16, NULL,
                        "value of option '%s' is longer than %zu bytes", name, size - 1);
        out[n++] = c;
    }
    out[n] = '\0';
    *vlen = p->pos - start;
    skip_blanks(p);
    if (!at_item_end(p))
        return perr(p, KEEL_E_PARSE, p->pos, 1, NULL,
                    "unexpected '%c' after a quoted value (expected ';')", p->text[p->pos]);
    return KEEL_OK;
}

static keel_status parse_item(parser *p)
{
    size_t name_at = p->pos;
    while (p->pos < p->len && !is_blank(p->text[p->pos]) && p->text[p->pos] != '=' &&
           !at_item_end(p))
        p->pos++;
    size_t name_len = p->pos - name_at;
    char name[96];
    if (name_len == 0)
        return perr(p, KEEL_E_PARSE, name_at, 1, NULL, "empty option name before '='");
    if (name_len >= sizeof(name))
        return perr(p, KEEL_E_PARSE, name_at, name_len, NULL, "option name too long");
    memcpy(name, p->text + name_at, name_len);
    name[name_len] = '\0';
    for (size_t i = 0; i < name_len; i++) {
        if (!name_char(name[i]) || (i == 0 && !(name[0] >= 'a' && name[0] <= 'z')))
            return perr(p, KEEL_E_PARSE, name_at + i, 1, NULL,
                        "bad character '%c' in option name '%s' (names are lower-case words "
                        "joined by '.')",
                        name[i], name);
    }
    int id = find_id(name, name_len);
    if (id < 0) {
        char near[96];
        nearest_name(name, near, sizeof(near));
        return perr(p, KEEL_E_NOTFOUND, name_at, name_len, near, "unknown option '%s'", name);
    }
    skip_blanks(p);
    if (at_item_end(p)) {
        if (id_type(id) != TYPE_BOOL)
            return perr(p, KEEL_E_PARSE, name_at, name_len, NULL,
                        "option '%s' needs a value ('%s=...')", name, name);
        return stage(p, id, 1, NULL);
    }
    if (p->text[p->pos] != '=')
        return perr(p, KEEL_E_PARSE, p->pos, 1, NULL,
                    "expected '=' or ';' after option name '%s', found '%c'", name,
                    p->text[p->pos]);
    p->pos++;
    skip_blanks(p);
    char value[4096];
    value[0] = '\0';
    size_t value_at = p->pos;
    size_t vlen = 0;
    if (p->pos < p->len && p->text[p->pos] == '"') {
        keel_status s = quoted_value(p, name, value, sizeof(value), &vlen);
        if (!keel_ok(s))
            return s;
    } else {
        if (at_item_end(p))
            return perr(p, KEEL_E_PARSE, value_at, 1, NULL, "missing value for option '%s'", name);
        while (!at_item_end(p))
            p->pos++;
        size_t end = p->pos;
        while (end > value_at && is_blank(p->text[end - 1]))
            end--;
        vlen = end - value_at;
        if (vlen >= sizeof(value))
            return perr(p, KEEL_E_PARSE, value_at, 16, NULL,
                        "value of option '%s' is longer than %zu bytes", name, sizeof(value) - 1);
        memcpy(value, p->text + value_at, vlen);
        value[vlen] = '\0';
        const char *quote = (const char *)memchr(value, '"', vlen);
        if (quote != NULL)
            return perr(p, KEEL_E_PARSE, value_at + (size_t)(quote - value), 1, NULL,
                        "stray '\"' in the value of option '%s' (quote the whole value)", name);
    }
    return take_value(p, id, name, value, value_at, vlen);
}

static keel_status parse(parser *p)
{
    KEEL_ASSERT(p != NULL && (p->text != NULL || p->len == 0));
    for (size_t i = 0; i < p->len; i++)
        if (p->text[i] == '\0')
            return perr(p, KEEL_E_PARSE, i, 0, NULL, "unexpected NUL byte");
    while (p->pos < p->len) {
        skip_blanks(p);
        if (p->pos >= p->len)
            break;
        char c = p->text[p->pos];
        if (c == ';' || c == '\n') {
            p->pos++;
            continue;
        }
        if (c == '#') { /* a comment, to the end of the line */
            while (p->pos < p->len && p->text[p->pos] != '\n')
                p->pos++;
            continue;
        }
        keel_status s = parse_item(p);
        if (!keel_ok(s))
            return s;
    }
    return KEEL_OK;
}

static void parser_free(parser *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].sval);
    free(p->items);
    p->items = NULL;
    p->n = p->cap = 0;
}

static void parser_init(parser *p, const char *text, size_t len, const char *origin, bool lines)
{
    memset(p, 0, sizeof(*p));
    p->text = text;
    p->len = len;
    p->origin = origin != NULL ? origin : "options";
    p->lines = lines;
}

keel_status keel__options_parse_only(const char *text, size_t len, const char *origin)
{
    parser p;
    parser_init(&p, text, len, origin, false);
    keel_status s = parse(&p);
    parser_free(&p);
    return s;
}

/* ---- applying ------------------------------------------------------------------------------ */

static void set_str_locked(int id, char *value)
{
    const char *old = svals[id];
    __atomic_store_n(&svals[id], value, __ATOMIC_RELEASE);
    if (old != NULL) {
        retired *r = (retired *)malloc(sizeof(*r));
        if (r != NULL) {
            r->value = old;
            r->next = retired_list;
            retired_list = r;
        }
        /* else: keep it allocated anyway; a reader may hold it */
    }
}

static void apply_locked(parser *p)
{
    for (size_t i = 0; i < p->n; i++) {
        staged *it = &p->items[i];
        if (it->id >= POLICY_BASE) {
            keel_report_set_policy((keel_report_kind)(it->id - POLICY_BASE), (keel_policy)it->ival);
        } else if (table[it->id].type == TYPE_STR) {
            set_str_locked(it->id, it->sval);
            it->sval = NULL; /* now owned by the table */
        } else {
            __atomic_store_n(&ivals[it->id], it->ival, __ATOMIC_RELAXED);
        }
    }
    __atomic_store_n(&keel__assert_expensive_on, (int)ivals[KEEL__OPT_ASSERT_EXPENSIVE],
                     __ATOMIC_RELAXED);
    __atomic_add_fetch(&keel__options_generation, 1, __ATOMIC_RELEASE);
}

static keel_status parse_and_apply(const char *text, size_t len, const char *origin, bool lines)
{
    parser p;
    parser_init(&p, text, len, origin, lines);
    keel_status s = parse(&p);
    if (keel_ok(s)) {
        KEEL_VERIFY(pthread_mutex_lock(&options_lock) == 0);
        apply_locked(&p);
        KEEL_VERIFY(pthread_mutex_unlock(&options_lock) == 0);
        keel__stress_options_changed();
        keel__supp_options_changed();
    }
    parser_free(&p);
    return s;
}

keel_status keel__options_apply(const char *text, size_t len, const char *origin)
{
    return parse_and_apply(text, len, origin, false);
}

void keel__options_set_str(keel__opt_id id, const char *value)
{
    KEEL_ASSERT((unsigned)id < (unsigned)KEEL__OPT_COUNT && table[id].type == TYPE_STR);
    char *copy = strdup(value != NULL ? value : "");
    if (copy == NULL)
        return;
    KEEL_VERIFY(pthread_mutex_lock(&options_lock) == 0);
    set_str_locked((int)id, copy);
    __atomic_add_fetch(&keel__options_generation, 1, __ATOMIC_RELEASE);
    KEEL_VERIFY(pthread_mutex_unlock(&options_lock) == 0);
}

keel_status keel_options_set(const char *text)
{
    if (text == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_options_set: no option string");
    keel__lazy_init();
    return parse_and_apply(text, strlen(text), "options", false);
}

keel_status keel_options_load(const char *path)
{
    if (path == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_options_load: no path");
    keel__lazy_init();
    char *buf = NULL;
    size_t len = 0;
    keel_status s = keel__read_text_file(path, (size_t)1 << 20, "option file", &buf, &len);
    if (keel_ok(s))
        s = parse_and_apply(buf, len, path, true);
    free(buf);
    return s;
}

keel_status keel_options_get(const char *name, char *buf, size_t size)
{
    if (name == NULL || (buf == NULL && size > 0))
        return KEEL_ERR(KEEL_E_INVAL, "keel_options_get: no name or buffer");
    keel__lazy_init();
    int id = find_id(name, strlen(name));
    if (id < 0) {
        char near[96];
        nearest_name(name, near, sizeof(near));
        keel_status s =
            near[0] != '\0'
                ? KEEL_ERR(KEEL_E_NOTFOUND, "unknown option '%s' (did you mean '%s'?)", name, near)
                : KEEL_ERR(KEEL_E_NOTFOUND, "unknown option '%s'", name);
        return keel_status_with_str(s, "option", name);
    }
    char text[4096];
    switch (id_type(id)) {
    case TYPE_BOOL:
        (void)snprintf(text, sizeof(text), "%s",
                       keel__opt_bool((keel__opt_id)id) ? "true" : "false");
        break;
    case TYPE_INT:
        (void)snprintf(text, sizeof(text), "%lld", keel__opt_int((keel__opt_id)id));
        break;
    case TYPE_STR:
        (void)snprintf(text, sizeof(text), "%s", keel__opt_str((keel__opt_id)id));
        break;
    case TYPE_POLICY:
        (void)snprintf(text, sizeof(text), "%s",
                       policy_names[keel_report_policy((keel_report_kind)(id - POLICY_BASE))]);
        break;
    }
    if (strlen(text) >= size)
        return keel_status_with_uint(
            KEEL_ERR(KEEL_E_RANGE, "value of option '%s' needs %zu bytes, the buffer has %zu", name,
                     strlen(text) + 1, size),
            "needed", (unsigned long long)strlen(text) + 1);
    memcpy(buf, text, strlen(text) + 1);
    return KEEL_OK;
}

void keel_options_print(FILE *f)
{
    KEEL_ASSERT(f != NULL);
    keel__lazy_init();
    static const char *const type_names[] = {"bool", "int", "string", "policy"};
    (void)fprintf(f, "%-24s %-7s %-10s %-12s %s\n", "option", "type", "default", "current",
                  "meaning");
    for (int id = 0; id < ID_COUNT; id++) {
        char name[96], cur[256], def[64];
        id_name(id, name, sizeof(name));
        keel_status s = keel_options_get(name, cur, sizeof(cur));
        if (!keel_ok(s))
            (void)snprintf(cur, sizeof(cur), "(long)");
        keel_status_free(s);
        const char *help;
        if (id < POLICY_BASE) {
            const opt_desc *d = &table[id];
            if (d->type == TYPE_STR)
                (void)snprintf(def, sizeof(def), "\"\"");
            else if (d->type == TYPE_BOOL)
                (void)snprintf(def, sizeof(def), "%s", d->def != 0 ? "true" : "false");
            else
                (void)snprintf(def, sizeof(def), "%lld", d->def);
            help = d->help;
        } else {
            (void)snprintf(def, sizeof(def), "-");
            help = "what to do on a report of this kind: abort, report or count";
        }
        (void)fprintf(f, "%-24s %-7s %-10s %-12s %s\n", name, type_names[id_type(id)], def, cur,
                      help);
    }
}
