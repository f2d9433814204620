/*
 * stress_spec.c - the syntax of stress specs: "disk_error:1/1000,net.*:p=0.01".
 * Parsing is all or nothing; an error names the entry and the token.
 */
#include "stress.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rule_ids;

static const char *const term_names[] = {"p",   "every",  "nth",   "first", "after",
                                         "max", "thread", "delay", "off"};

void keel__stress_trigger_free(keel__stress_trigger *t)
{
    KEEL_ASSERT(t != NULL);
    free(t->thread);
    t->thread = NULL;
}

keel_status keel__stress_trigger_copy(keel__stress_trigger *dst, const keel__stress_trigger *src)
{
    KEEL_ASSERT(dst != NULL && src != NULL);
    *dst = *src;
    if (src->thread != NULL) {
        dst->thread = strdup(src->thread);
        if (dst->thread == NULL)
            return KEEL_ERR(KEEL_E_NOMEM, "out of memory copying a stress trigger");
    }
    return KEEL_OK;
}

void keel__stress_rules_free(keel__stress_rules *r)
{
    KEEL_ASSERT(r != NULL);
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].pattern);
        free(r->v[i].text);
        keel__stress_trigger_free(&r->v[i].t);
    }
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

bool keel__stress_glob(const char *pattern, const char *name)
{
    KEEL_ASSERT(pattern != NULL && name != NULL);
    /* Iterative matcher with one backtracking point for the last '*'. */
    const char *star = NULL;
    const char *resume = NULL;
    while (*name != '\0') {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern == '?' || *pattern == *name) {
            pattern++;
            name++;
        } else if (star != NULL) {
            pattern = star + 1;
            name = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

/* ---- one entry ------------------------------------------------------------------ */

typedef struct entry_ctx {
    const char *origin;
    const char *entry; /* NUL-terminated copy of the entry */
} entry_ctx;

static keel_status bad(const entry_ctx *c, const char *token, const char *near, const char *fmt,
                       ...) KEEL_PRINTF(4, 5);
static keel_status bad(const entry_ctx *c, const char *token, const char *near, const char *fmt,
                       ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    keel_status s = KEEL_ERR(KEEL_E_PARSE, "%s: bad stress entry '%s': %s%s%s%s", c->origin,
                             c->entry, why, near != NULL ? " (did you mean '" : "",
                             near != NULL ? near : "", near != NULL ? "'?)" : "");
    s = keel_status_with_str(s, "entry", c->entry);
    return keel_status_with_str(s, "token", token);
}

static bool pattern_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '*' || ch == '?';
}

/* A whole number from `min` (0 or 1) to 10^18. */
static keel_status parse_count(const entry_ctx *c, const char *term, const char *v,
                               unsigned long long min, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    if (v[0] < '0' || v[0] > '9')
        return bad(c, term, NULL, "'%s' needs a whole number", term);
    unsigned long long n = strtoull(v, &end, 10);
    if (end == NULL || *end != '\0')
        return bad(c, term, NULL, "'%s' needs a whole number", term);
    if (errno == ERANGE || n > 1000000000000000000ull)
        return bad(c, term, NULL, "'%s' is too large", term);
    if (n < min)
        return bad(c, term, NULL, "'%s' must be at least %llu", term, min);
    *out = n;
    return KEEL_OK;
}

/* 2^64 * fraction, saturating (a draw below it fires). */
static unsigned long long threshold(double fraction)
{
    if (fraction >= 1.0)
        return ~0ull;
    return (unsigned long long)ldexp(fraction, 64);
}

static keel_status parse_delay(const entry_ctx *c, const char *term, const char *v, long long *ns)
{
    char *end = NULL;
    errno = 0;
    if (v[0] < '0' || v[0] > '9')
        return bad(c, term, NULL, "'delay' needs a duration such as 500us, 10ms or 2s");
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long unit = 1000000ull; /* ms */
    if (end != NULL && strcmp(end, "ns") == 0)
        unit = 1;
    else if (end != NULL && strcmp(end, "us") == 0)
        unit = 1000ull;
    else if (end != NULL && strcmp(end, "s") == 0)
        unit = 1000000000ull;
    else if (end == NULL || (*end != '\0' && strcmp(end, "ms") != 0))
        return bad(c, term, NULL, "'delay' needs a duration such as 500us, 10ms or 2s");
    if (errno == ERANGE || n > 60000000000ull / unit)
        return bad(c, term, NULL, "'delay' is longer than 60s");
    if (n == 0)
        return bad(c, term, NULL, "'delay' must be longer than 0");
    *ns = (long long)(n * unit);
    return KEEL_OK;
}

static keel_status parse_term(const entry_ctx *c, char *term, keel__stress_rule *r, unsigned *seen)
{
    keel__stress_trigger *t = &r->t;
    if (term[0] >= '0' && term[0] <= '9' && strchr(term, '/') != NULL) {
        /* K/N */
        char *slash = strchr(term, '/');
        *slash = '\0';
        unsigned long long k = 0;
        unsigned long long n = 0;
        keel_status s = parse_count(c, "K/N", term, 1, &k);
        if (keel_ok(s))
            s = parse_count(c, "K/N", slash + 1, 1, &n);
        *slash = '/';
        if (!keel_ok(s))
            return s;
        if (k > n)
            return bad(c, term, NULL, "'%s' fires more often than always", term);
        if (t->random)
            return bad(c, term, NULL, "two random triggers ('%s')", term);
        t->random = true;
        t->thresh = k == n ? ~0ull : threshold((double)k / (double)n);
        return KEEL_OK;
    }
    char *eq = strchr(term, '=');
    if (eq != NULL)
        *eq = '\0';
    const char *name = term;
    const char *value = eq != NULL ? eq + 1 : NULL;
    int which = -1;
    for (size_t i = 0; i < KEEL__ARRAY_LEN(term_names); i++)
        if (strcmp(name, term_names[i]) == 0)
            which = (int)i;
    if (which < 0) {
        const char *near = keel_suggest(name, term_names, KEEL__ARRAY_LEN(term_names));
        return bad(c, name, near,
                   "unknown term '%s' (terms: K/N, p=, every=, nth=, first=, "
                   "after=, max=, thread=, delay=, off)",
                   name);
    }
    if ((*seen & (1u << which)) != 0)
        return bad(c, name, NULL, "'%s' given twice", name);
    *seen |= 1u << which;
    if (strcmp(name, "off") == 0) {
        if (value != NULL)
            return bad(c, name, NULL, "'off' takes no value");
        t->off = true;
        return KEEL_OK;
    }
    if (value == NULL || value[0] == '\0')
        return bad(c, name, NULL, "'%s' needs a value ('%s=...')", name, name);
    if (strcmp(name, "p") == 0) {
        char *end = NULL;
        errno = 0;
        double p = strtod(value, &end);
        if (end == NULL || *end != '\0' || errno != 0 || !isfinite(p) || p < 0.0 || p > 1.0 ||
            value[0] == '-' || value[0] == '+' || value[0] == ' ')
            return bad(c, name, NULL, "'p' needs a probability from 0 to 1, got '%s'", value);
        if (t->random)
            return bad(c, name, NULL, "two random triggers ('p=%s')", value);
        t->random = true;
        t->thresh = threshold(p);
        return KEEL_OK;
    }
    if (strcmp(name, "thread") == 0) {
        for (const char *q = value; *q != '\0'; q++)
            if ((unsigned char)*q < 0x20 || *q == ',' || *q == ':')
                return bad(c, name, NULL, "bad character in thread pattern '%s'", value);
        t->thread = strdup(value);
        if (t->thread == NULL)
            return KEEL_ERR(KEEL_E_NOMEM, "out of memory parsing stress entry '%s'", c->entry);
        return KEEL_OK;
    }
    if (strcmp(name, "delay") == 0)
        return parse_delay(c, name, value, &t->delay_ns);
    unsigned long long *slot = strcmp(name, "every") == 0   ? &t->every
                               : strcmp(name, "nth") == 0   ? &t->nth
                               : strcmp(name, "first") == 0 ? &t->first
                               : strcmp(name, "after") == 0 ? &t->after
                                                            : &t->max;
    /* after=0 skips none (keel-stress --mode persist fails the first evaluation on with it) */
    return parse_count(c, name, value, slot == &t->after ? 0 : 1, slot);
}

static void rule_clear(keel__stress_rule *r)
{
    free(r->pattern);
    free(r->text);
    keel__stress_trigger_free(&r->t);
    r->pattern = NULL;
    r->text = NULL;
}

/* Append r to out, which then owns its strings (false: out of memory, r unchanged). */
static bool push(keel__stress_rules *out, const keel__stress_rule *r)
{
    if (out->n == out->cap) {
        size_t cap = out->cap != 0 ? out->cap * 2 : 8;
        keel__stress_rule *v = (keel__stress_rule *)realloc(out->v, cap * sizeof(*v));
        if (v == NULL)
            return false;
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = *r;
    return true;
}

static keel_status check_terms(const entry_ctx *c, const keel__stress_trigger *t, unsigned seen)
{
    /* (K/N sets no bit of `seen`: it is no named term, but it is random) */
    if (t->off && (seen != (1u << 8) || t->random))
        return bad(c, "off", NULL, "'off' cannot be combined with other terms");
    if (t->nth != 0 && (t->every != 0 || t->first != 0))
        return bad(c, "nth", NULL, "'nth' fires once: it cannot be combined with '%s'",
                   t->every != 0 ? "every" : "first");
    return KEEL_OK;
}

/* Parse one entry (text is modified) and append it to out. */
static keel_status parse_entry(const entry_ctx *c, char *text, keel__stress_rules *out)
{
    KEEL_ASSERT(c != NULL && text != NULL && out != NULL);
    char *colon = strchr(text, ':');
    if (colon != NULL)
        *colon = '\0';
    if (text[0] == '\0')
        return bad(c, "", NULL, "no name before ':'");
    for (const char *q = text; *q != '\0'; q++)
        if (!pattern_char(*q))
            return bad(c, text, NULL,
                       "bad character '%c' in name '%s' (names are C identifiers "
                       "with dots; * and ? are wildcards)",
                       *q, text);
    keel__stress_rule r;
    memset(&r, 0, sizeof(r));
    unsigned seen = 0;
    char *term = colon != NULL ? colon + 1 : NULL;
    while (term != NULL) {
        char *next = strchr(term, ':');
        if (next != NULL)
            *next++ = '\0';
        keel_status s =
            term[0] == '\0' ? bad(c, "", NULL, "empty term") : parse_term(c, term, &r, &seen);
        if (!keel_ok(s)) {
            rule_clear(&r);
            return s;
        }
        term = next;
    }
    keel_status s = check_terms(c, &r.t, seen);
    if (!keel_ok(s)) {
        rule_clear(&r);
        return s;
    }
    r.t.counted = r.t.nth != 0 || r.t.every != 0 || r.t.first != 0 || r.t.after != 0;
    r.pattern = strdup(text);
    r.text = strdup(c->entry);
    if (r.pattern == NULL || r.text == NULL || !push(out, &r)) {
        rule_clear(&r);
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory parsing stress entry '%s'", c->entry);
    }
    out->v[out->n - 1].id = __atomic_add_fetch(&rule_ids, 1, __ATOMIC_RELAXED);
    return KEEL_OK;
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

keel_status keel__stress_parse(const char *spec, bool lines, const char *origin,
                               keel__stress_rules *out)
{
    if (spec == NULL || out == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel__stress_parse: no spec or output");
    size_t len = strlen(spec);
    char *buf = (char *)malloc(len + 1);
    if (buf == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory parsing a stress spec");
    size_t first = out->n;
    keel_status s = KEEL_OK;
    int line = 1;
    size_t i = 0;
    char prev = '\0'; /* the separator before this entry */
    while (i <= len && keel_ok(s)) {
        /* one entry: up to ',' (or a newline / '#' in a file) */
        size_t start = i;
        while (i < len && spec[i] != ',' && !(lines && (spec[i] == '\n' || spec[i] == '#')))
            i++;
        size_t end = i;
        while (start < end && blank(spec[start]))
            start++;
        while (end > start && blank(spec[end - 1]))
            end--;
        char sep = '\0';
        if (i < len)
            sep = spec[i];
        if (lines && sep == '#') {
            while (i < len && spec[i] != '\n')
                i++;
            sep = '\0';
            if (i < len)
                sep = '\n';
        }
        memcpy(buf, spec + start, end - start);
        buf[end - start] = '\0';
        char where[160];
        if (lines)
            (void)snprintf(where, sizeof(where), "%s line %d", origin, line);
        else
            (void)snprintf(where, sizeof(where), "%s", origin);
        if (end > start) {
            char *entry = strdup(buf);
            if (entry == NULL) {
                s = KEEL_ERR(KEEL_E_NOMEM, "out of memory parsing a stress spec");
                break;
            }
            entry_ctx c = {where, entry};
            s = parse_entry(&c, buf, out);
            free(entry);
        } else if (sep == ',' || prev == ',') {
            /* shown: the line it is on (a file), or the whole value */
            size_t from = 0, to = len;
            if (lines) {
                from = to = start;
                while (from > 0 && spec[from - 1] != '\n')
                    from--;
                while (to < len && spec[to] != '\n')
                    to++;
            }
            char *shown = strndup(spec + from, to - from);
            entry_ctx c = {where, shown != NULL ? shown : spec};
            s = bad(&c, ",", NULL, "empty entry (two commas, or a comma at an end)");
            free(shown);
        }
        if (sep == '\n')
            line++;
        prev = sep;
        i++;
    }
    free(buf);
    if (!keel_ok(s)) {
        /* all or nothing */
        for (size_t k = first; k < out->n; k++)
            rule_clear(&out->v[k]);
        out->n = first;
    }
    return s;
}

keel_status keel__stress_read_file(const char *path, char **out)
{
    KEEL_ASSERT(path != NULL && out != NULL);
    size_t len = 0;
    keel_status s = keel__read_text_file(path, (size_t)1 << 20, "stress file", out, &len);
    if (keel_ok(s) && memchr(*out, '\0', len) != NULL) {
        free(*out);
        *out = NULL;
        return KEEL_ERR(KEEL_E_PARSE, "stress file '%s' is not text (it holds a NUL byte)", path);
    }
    return s;
}

/* ---- checks for the option table ---------------------------------------------------- */

keel_status keel__stress_check_spec(const char *value)
{
    keel__stress_rules r = {NULL, 0, 0};
    keel_status s = keel__stress_parse(value != NULL ? value : "", false, "stress", &r);
    keel__stress_rules_free(&r);
    return s;
}

keel_status keel__stress_check_file(const char *value)
{
    if (value == NULL || value[0] == '\0')
        return KEEL_OK;
    char *text = NULL;
    keel_status s = keel__stress_read_file(value, &text);
    if (!keel_ok(s))
        return s;
    char origin[300];
    (void)snprintf(origin, sizeof(origin), "stress file '%s'", value);
    keel__stress_rules r = {NULL, 0, 0};
    s = keel__stress_parse(text, true, origin, &r);
    keel__stress_rules_free(&r);
    free(text);
    return s;
}
