/*
 * config.c - parse and validate .keel/gate.conf: its lines and sections, the
 * whole file's rules, gate_config_parse / gate_config_check and the config's
 * life (the parts: config_int.h).
 */
#define _GNU_SOURCE 1
#include "config_int.h"

#include "heaps.h"
#include "text.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_HEAP KEEL_MODULE_REF(gate_config)

keel_status gate__config_errf(const gate_config_state *st, keel_code code, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    gate_text_vfit(CONFIG_HEAP, what, sizeof(what), fmt, ap);
    va_end(ap);
    return keel_status_with_uint(
        KEEL_ERR((int)code, "%s:%zu: %s%s", st->origin, st->line, st->key_of, what), "line",
        (unsigned long long)st->line);
}

/* Blanks off both ends (and a CR off the end), but a blank a backslash escapes: it is a word's. */
char *gate__config_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
        size_t backslashes = 0;
        while (end - 1 - backslashes > s && end[-2 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (end[-1] != '\r' && backslashes % 2 == 1)
            break;
        end--;
    }
    *end = '\0';
    return s;
}

/*
 * Strip a comment: '#' at the start of a word (the line's start, or after a
 * blank), outside quotes, read as the splitter reads words (split_pass): a
 * backslash outside '...' escapes the next character, so neither an escaped
 * quote nor an escaped blank changes where a comment starts.
 */
static void strip_comment(char *s)
{
    char quote = '\0';
    bool word_start = true;
    for (char *p = s; *p != '\0'; p++) {
        bool blank = false;
        if (*p == '\\' && quote != '\'' && p[1] != '\0')
            p++;
        else if (quote == '\0' && (*p == '\'' || *p == '"'))
            quote = *p;
        else if (quote != '\0' && *p == quote)
            quote = '\0';
        else if (quote == '\0' && *p == '#' && word_start) {
            *p = '\0';
            return;
        } else
            blank = quote == '\0' && (*p == ' ' || *p == '\t');
        word_start = blank;
    }
}

static keel_status open_section(gate_config_state *st, char *head)
{
    size_t len = strlen(head);
    if (len < 2 || head[len - 1] != ']')
        return gate__config_errf(st, KEEL_E_PARSE, "section header '%s' lacks its closing ']'",
                                 head);
    head[len - 1] = '\0';
    char *name = gate__config_trim(head + 1);
    if (strcmp(name, "gate") == 0) {
        if (st->seen_gate)
            return gate__config_errf(st, KEEL_E_EXISTS,
                                     "a second [gate] section (the first at line %zu): give its "
                                     "keys in one",
                                     st->gate_line);
        st->seen_gate = true;
        st->gate_line = st->line;
        st->section = SECTION_GATE;
        return KEEL_OK;
    }
    if (strncmp(name, "config", 6) == 0 && (name[6] == ' ' || name[6] == '\t')) {
        char *cname = gate__config_trim(name + 6);
        if (!gate__config_good_name(cname))
            return gate__config_errf(st, KEEL_E_PARSE, "configuration name '%s' %s", cname,
                                     gate__config_bad_name_why(cname));
        gate_config *c = st->cfg;
        for (size_t i = 0; i < c->nconfigs; i++)
            if (strcmp(c->configs[i].name, cname) == 0)
                return gate__config_errf(st, KEEL_E_EXISTS,
                                         "configuration '%s' is defined twice (first at line %zu)",
                                         cname, st->config_line[i]);
        if (c->nconfigs == GATE_MAX_CONFIGS)
            return gate__config_errf(
                st, KEEL_E_FULL,
                "configuration '%s' is one more than the %d a gate.conf may have (its keys "
                "are not read)",
                cname, (int)GATE_MAX_CONFIGS);
        gate_matrix_config *m = &c->configs[c->nconfigs];
        memset(m, 0, sizeof(*m));
        (void)snprintf(m->name, sizeof(m->name), "%s",
                       cname); /* gate__config_good_name() bounds it */
        m->timeout_s = 3600;
        m->required = true;
        m->levels = GATE_LEVELS_DEFAULT;
        m->tier = GATE_TIER_DEFAULT;
        m->backout = -1;
        keel_status cs = gate_cron_parse(GATE_SCHEDULE_DEFAULT, &m->schedule);
        KEEL_ASSERT(keel_ok(cs));
        keel_status_ignore(cs, "the default schedule parses");
        (void)snprintf(m->schedule_text, sizeof(m->schedule_text), "%s", GATE_SCHEDULE_DEFAULT);
        m->jitter_s = GATE_JITTER_DEFAULT;
        st->config_line[c->nconfigs] = st->line;
        c->nconfigs++;
        st->section = SECTION_CONFIG;
        return KEEL_OK;
    }
    if (strncmp(name, "flow", 4) == 0 && (name[4] == ' ' || name[4] == '\t'))
        return gate__config_open_flow(st, name);
    if (strcmp(name, "config") == 0 || strcmp(name, "flow") == 0)
        return gate__config_errf(st, KEEL_E_PARSE, "section [%s] needs %s", name,
                                 name[0] == 'c' ? "a name: [config NAME]"
                                                : "two branches: [flow A -> B]");
    static const char *const sections[] = {"gate", "config", "flow"};
    size_t first = strcspn(name, " \t"); /* [confg x]: did you mean [config x]? */
    char word[16];
    (void)snprintf(word, sizeof(word), "%.*s", (int)(first < 15 ? first : 15), name);
    const char *near = first < 15 ? keel_suggest(word, sections, 3) : NULL;
    return gate__config_errf(
        st, KEEL_E_NOTFOUND, "unknown section [%s]%s%s%s%s", name,
        near != NULL ? " (did you mean [" : " (sections: [gate], [config NAME], [flow A -> B])",
        near != NULL ? near : "", near != NULL ? name + first : "", near != NULL ? "]?)" : "");
}

static keel_status parse_line(gate_config_state *st, char *line)
{
    st->line_text = line;
    strip_comment(line);
    char *t = gate__config_trim(line);
    if (t[0] == '\0')
        return KEEL_OK;
    if (t[0] == '[') {
        (void)snprintf(st->header, sizeof(st->header), "%s", t);
        st->nkeys = 0;
        keel_status s = open_section(st, t);
        if (!keel_ok(s))
            st->section = SECTION_SKIP; /* its keys would be taken for another section's */
        return s;
    }
    char *eq = strchr(t, '=');
    if (eq == NULL)
        return gate__config_errf(st, KEEL_E_PARSE, "expected 'key = value', found '%s'", t);
    *eq = '\0';
    char *key = gate__config_trim(t);
    char *value = gate__config_trim(eq + 1);
    if (key[0] == '\0')
        return gate__config_errf(st, KEEL_E_PARSE, "a value without a key");
    for (size_t i = 0; st->section != SECTION_SKIP && i < st->nkeys; i++)
        if (strcmp(st->keys[i], key) == 0) /* the first would be lost without a word */
            return gate__config_errf(st, KEEL_E_EXISTS,
                                     "'%s' is given twice in %s (first at line %zu)", key,
                                     st->header, st->key_line[i]);
    if (st->nkeys < SECTION_KEYS_MAX && strlen(key) < sizeof(st->keys[0])) {
        (void)snprintf(st->keys[st->nkeys], sizeof(st->keys[0]), "%s", key);
        st->key_line[st->nkeys++] = st->line;
    }
    switch (st->section) {
    case SECTION_GATE:
        return gate__config_gate_key(st, key, value);
    case SECTION_CONFIG:
        return gate__config_config_key(st, key, value);
    case SECTION_FLOW:
        return gate__config_flow_key(st, key, value);
    case SECTION_SKIP:
        return KEEL_OK;
    case SECTION_NONE:
        break;
    }
    return gate__config_errf(st, KEEL_E_PARSE,
                             "key '%s' before any section ([gate] or [config NAME])", key);
}

/*
 * An error of the configuration's (`s`, taken): gate_config_parse's result;
 * gate_config_check reports it and goes on (KEEL_OK).  The gate's own
 * failures (memory) end both.
 */
keel_status gate__config_found(gate_config_state *st, keel_status s)
{
    if (keel_ok(s) || st->report == NULL || KEEL_HAS(s, KEEL_E_NOMEM) ||
        KEEL_HAS(s, KEEL_E_INJECTED))
        return s;
    st->errors++;
    st->report(s, st->report_ctx);
    keel_status_free(s);
    return KEEL_OK;
}

static keel_status validate(gate_config_state *st)
{
    gate_config *c = st->cfg;
    st->line = 0;
    if (c->nconfigs == 0)
        return gate__config_found(
            st, KEEL_ERR(KEEL_E_PARSE, "%s: no [config NAME] section: nothing to build or test",
                         st->origin));
    bool any_required = false;
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < c->nconfigs; i++) {
        gate_matrix_config *m = &c->configs[i];
        gate__config_limits_inherit(m, &c->limits);
        if (!m->ccache_set)
            m->ccache_size = c->ccache_size;
        if (m->test.n == 0 && m->build.n == 0 && !st->command_refused[i]) {
            st->line = st->config_line[i]; /* the error names its section's line */
            s = gate__config_found(
                st,
                gate__config_errf(st, KEEL_E_PARSE,
                                  "configuration '%s' has neither 'build' nor 'test'", m->name));
        }
        any_required |= m->required && gate_config_at(m, GATE_LEVEL_GATE);
    }
    if (keel_ok(s) && !any_required)
        s = gate__config_found(
            st, KEEL_ERR(KEEL_E_PARSE,
                         "%s: no configuration at level 'gate' is required: nothing would "
                         "stop a broken change",
                         st->origin));
    if (keel_ok(s))
        s = gate__config_validate_flows(st);
    return s;
}

/* gate_config_parse, or with `report` gate_config_check (*out: NULL when it found any). */
static keel_status parse(const char *text, size_t len, const char *origin,
                         gate_config_error_fn report, void *ctx, size_t *errors, gate_config **out)
{
    *out = NULL;
    *errors = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* a UTF-8 byte order mark (editors */
        text += 3;                                          /* on Windows write one): not text */
        len -= 3;
    }
    const char *nul = (const char *)memchr(text, '\0', len);
    if (nul != NULL) {
        gate_config_state at; /* the error names the line that holds it */
        memset(&at, 0, sizeof(at));
        at.origin = origin != NULL ? origin : "gate.conf";
        at.line = 1;
        at.report = report;
        at.report_ctx = ctx;
        for (const char *p = text; p < nul; p++)
            at.line += *p == '\n';
        keel_status s =
            gate__config_found(&at, gate__config_errf(&at, KEEL_E_PARSE, "contains a NUL byte"));
        *errors = at.errors; /* what follows a NUL byte is nobody's text: not read */
        return s;
    }
    void *cmem = NULL, *tmem = NULL;
    keel_status s = keel_heap_calloc(CONFIG_HEAP, 1, sizeof(gate_config), &cmem);
    if (keel_ok(s))
        s = keel_heap_alloc(CONFIG_HEAP, len + 1, &tmem);
    if (!keel_ok(s)) {
        keel_heap_free(CONFIG_HEAP, cmem);
        return KEEL_CONTEXT(s, "reading %s", origin);
    }
    gate_config *c = (gate_config *)cmem;
    char *copy = (char *)tmem;
    memcpy(copy, text, len);
    copy[len] = '\0';
    (void)snprintf(c->target, sizeof(c->target), "main");
    c->strategy = (gate_strategy)GATE_DEFAULT_STRATEGY;
    c->max_batch = GATE_DEFAULT_MAX_BATCH;
    c->max_depth = GATE_DEFAULT_MAX_DEPTH;
    c->retries = GATE_DEFAULT_RETRIES;
    c->flaky_alike = GATE_DEFAULT_FLAKY_ALIKE;
    c->blame_max = 3;
    c->crash_limit = 3;
    c->backout = true;
    c->backout_budget = 3;
    c->backout_max_age_s = 7LL * 86400;
    c->tier2_fix_s = 4LL * 3600;
    c->revert_near = 3;
    gate_limits_default(&c->limits);
    c->log_days = GATE_DEFAULT_LOG_DAYS;
    c->log_max = GATE_DEFAULT_LOG_MAX;
    gate_config_state st;
    memset(&st, 0, sizeof(st));
    st.origin = origin != NULL ? origin : "gate.conf";
    st.cfg = c;
    st.report = report;
    st.report_ctx = ctx;
    char *p = copy;
    /* strtok_r would merge empty lines and lose line numbers: split by hand */
    while (keel_ok(s) && p != NULL) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        st.line++;
        s = gate__config_found(&st, parse_line(&st, p));
        p = nl != NULL ? nl + 1 : NULL;
    }
    if (keel_ok(s))
        s = validate(&st);
    keel_heap_free(CONFIG_HEAP, copy);
    *errors = st.errors;
    if (!keel_ok(s) || st.errors > 0) {
        gate_config_free(c);
        return s;
    }
    *out = c;
    return KEEL_OK;
}

keel_status gate_config_parse(const char *text, size_t len, const char *origin, gate_config **out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    size_t errors = 0;
    return parse(text, len, origin, NULL, NULL, &errors, out);
}

keel_status gate_config_check(const char *text, size_t len, const char *origin,
                              gate_config_error_fn report, void *ctx, size_t *errors,
                              gate_config **out)
{
    KEEL_ASSERT(text != NULL && report != NULL && errors != NULL && out != NULL);
    return parse(text, len, origin, report, ctx, errors, out);
}

static void matrix_config_free(gate_matrix_config *m)
{
    gate_words_free(&m->writable);
    gate_words_free(&m->build);
    gate_words_free(&m->test);
    gate_words_free(&m->env);
}

void gate_config_keep_level(gate_config *c, gate_level l)
{
    KEEL_ASSERT(c != NULL);
    size_t kept = 0;
    for (size_t i = 0; i < c->nconfigs; i++) {
        if (!gate_config_at(&c->configs[i], l)) {
            matrix_config_free(&c->configs[i]);
            continue;
        }
        if (kept != i)
            c->configs[kept] = c->configs[i]; /* its words move with it */
        kept++;
    }
    for (size_t i = kept; i < c->nconfigs; i++)
        memset(&c->configs[i], 0, sizeof(c->configs[i]));
    c->nconfigs = kept;
}

void gate_config_free(gate_config *c)
{
    if (c == NULL)
        return;
    gate_words_free(&c->notify);
    gate_words_free(&c->pass_env);
    gate_words_free(&c->targets);
    for (size_t i = 0; i < c->nconfigs; i++)
        matrix_config_free(&c->configs[i]);
    keel_heap_free(CONFIG_HEAP, c);
}
