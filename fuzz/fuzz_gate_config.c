/*
 * fuzz_gate_config.c - libFuzzer target for what keel-gate reads from a
 * change nobody has reviewed yet: `.keel/gate.conf` (gate/config.h), its
 * command lines split into words, and its sizes.
 *
 * Properties, for any bytes:
 *   - gate_config_parse never crashes, reads out of bounds or leaks, and
 *     gives the same verdict (the same configuration, or the same error)
 *     when it parses the same text again;
 *   - a configuration it accepts is consistent: 1 to GATE_MAX_CONFIGS
 *     configurations, each with a build or a test, names of letters, digits,
 *     '-', '_' and '.' and none twice, at least one required, env entries
 *     NAME=value, pass-env variable names none of them forbidden, writable
 *     paths absolute and outside /, /proc, /sys and /dev however spelled, a
 *     target of a branch name's characters, every number in the range
 *     config.c documents, unset limits the [gate] defaults; flows between
 *     two different branch names, none twice, a schedule with its interval,
 *     reminders and remind-max in their ranges;
 *   - written out again (every word escaped, a comment after it) it parses
 *     to the same configuration: quoting, escapes, comments and the refusal
 *     of shell syntax outside quotes (gate_words_shell) agree;
 *   - an error names the origin, and the line (within the text) where a
 *     line is at fault; the one-line reason a change is rejected with
 *     (gate_status_line) keeps them;
 *   - gate_words_split of the text as one line: words that split the same
 *     way again once escaped, exactly the blank-separated tokens when there
 *     is no quote or backslash; an error only for an unterminated quote;
 *   - gate_size_parse agrees with a plain reading of digits and a unit.
 *
 *   tools/fuzz.sh gate_config     (FUZZ_SECONDS=300 for 5 minutes)
 */
#include "fuzz_gate.h"

#include <limits.h>

#include "config.h"
#include "gate.h"
#include "git.h"

static const char origin[] = "fuzz.conf";

/* ---- writing a configuration out ------------------------------------------------- */

/* A word as the splitter reads it back: specials escaped, a CR quoted (trim would eat it). */
static void put_word(fuzz_str *o, const char *w)
{
    if (*w == '\0')
        fuzz_adds(o, "''");
    for (; *w != '\0'; w++) {
        if (*w == '\r') {
            fuzz_adds(o, "'\r'");
            continue;
        }
        if (strchr(" \t'\"\\#;&|<>$`", *w) != NULL) /* shell syntax refused unless escaped */
            fuzz_add(o, "\\", 1);
        fuzz_add(o, w, 1);
    }
}

/* "key = word word # a comment": a comment after the words must not become one. */
static void put_words(fuzz_str *o, const char *key, const gate_words *w)
{
    if (w->n == 0)
        return;
    fuzz_addf(o, "%s =", key);
    for (size_t i = 0; i < w->n; i++) {
        fuzz_add(o, " ", 1);
        put_word(o, w->words[i]);
    }
    fuzz_adds(o, " # written back\n");
}

static const char *const limit_names[] = {"memory", "processes", "cpu", "output", "disk", "tmp"};

static unsigned long long limit_at(const gate_limits *l, size_t i)
{
    const unsigned long long v[] = {l->memory, l->processes, l->cpu, l->output, l->disk, l->tmp};
    return v[i];
}

static void write_config(fuzz_str *o, const gate_config *c)
{
    fuzz_adds(o, "[gate]\n");
    if (c->target_set)
        fuzz_addf(o, "target = %s\n", c->target);
    if (c->slots != 0)
        fuzz_addf(o, "slots = %u\n", c->slots);
    fuzz_addf(o, "strategy = %s\nmax-batch = %u\nmax-depth = %u\nretries = %u\n",
              gate_strategy_name(c->strategy), c->max_batch, c->max_depth, c->retries);
    fuzz_addf(o, "crash-limit = %u\nsandbox = %s\nlog-days = %u\nlog-max = %llu\n", c->crash_limit,
              c->sandbox_none ? "none" : "bwrap", c->log_days, c->log_max);
    for (size_t i = 0; i < 6; i++)
        fuzz_addf(o, "%s = %llu\n", limit_names[i], limit_at(&c->limits, i));
    put_words(o, "notify", &c->notify);
    put_words(o, "pass-env", &c->pass_env);
    for (size_t k = 0; k < c->nconfigs; k++) {
        const gate_matrix_config *m = &c->configs[k];
        fuzz_addf(o, "\n[config %s]\n", m->name);
        put_words(o, "build", &m->build);
        put_words(o, "test", &m->test);
        put_words(o, "env", &m->env);
        put_words(o, "writable", &m->writable);
        fuzz_addf(o, "timeout = %u\nrequired = %s\nnetwork = %s\n", m->timeout_s,
                  m->required ? "yes" : "no", m->network ? "yes" : "no");
        for (size_t i = 0; i < 6; i++)
            if ((m->limits_set & (1u << i)) != 0)
                fuzz_addf(o, "%s = %llu\n", limit_names[i], limit_at(&m->limits, i));
    }
}

/* ---- comparing two -------------------------------------------------------------- */

static bool words_equal(const gate_words *a, const gate_words *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->words[i], b->words[i]) != 0)
            return false;
    return true;
}

static bool limits_equal(const gate_limits *a, const gate_limits *b)
{
    for (size_t i = 0; i < 6; i++)
        if (limit_at(a, i) != limit_at(b, i))
            return false;
    return true;
}

/* NULL when a and b are the same configuration, else what differs. */
static const char *config_diff(const gate_config *a, const gate_config *b)
{
    if (strcmp(a->target, b->target) != 0 || a->target_set != b->target_set)
        return "target";
    if (a->slots != b->slots || a->strategy != b->strategy || a->max_batch != b->max_batch ||
        a->max_depth != b->max_depth || a->retries != b->retries ||
        a->crash_limit != b->crash_limit || a->sandbox_none != b->sandbox_none ||
        a->log_days != b->log_days || a->log_max != b->log_max)
        return "a [gate] number or choice";
    if (!limits_equal(&a->limits, &b->limits))
        return "[gate] limits";
    if (!words_equal(&a->notify, &b->notify) || !words_equal(&a->pass_env, &b->pass_env))
        return "notify or pass-env";
    if (a->nconfigs != b->nconfigs)
        return "the number of configurations";
    for (size_t k = 0; k < a->nconfigs; k++) {
        const gate_matrix_config *x = &a->configs[k], *y = &b->configs[k];
        if (strcmp(x->name, y->name) != 0)
            return "a configuration's name";
        if (!words_equal(&x->build, &y->build) || !words_equal(&x->test, &y->test) ||
            !words_equal(&x->env, &y->env) || !words_equal(&x->writable, &y->writable))
            return "a configuration's build, test, env or writable words";
        if (x->timeout_s != y->timeout_s || x->required != y->required ||
            x->network != y->network || x->limits_set != y->limits_set ||
            !limits_equal(&x->limits, &y->limits))
            return "a configuration's timeout, required, network or limits";
    }
    return NULL;
}

/* ---- what an accepted configuration holds ------------------------------------------ */

static bool words_sane(const gate_words *w)
{
    if (w->n == 0)
        return w->words == NULL || w->words[0] == NULL;
    for (size_t i = 0; i < w->n; i++)
        if (w->words[i] == NULL || strchr(w->words[i], '\n') != NULL)
            return false;
    return w->words[w->n] == NULL;
}

static bool config_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || n[0] == '.' || n[0] == '-')
        return false;
    return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len;
}

static bool variable_name_ok(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && !(n[0] >= '0' && n[0] <= '9') &&
           strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == len;
}

/* Absolute, no '.' or '..' component, not / nor under /proc, /sys, /dev once slashes are collapsed. */
static bool writable_ok(const char *p)
{
    size_t len = strlen(p);
    if (p[0] != '/' || len >= 1024)
        return false;
    char norm[1024];
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] != '/' || (n > 0 && norm[n - 1] != '/'))
            norm[n++] = p[i];
    if (n > 0 && norm[n - 1] == '/')
        n--;
    norm[n] = '\0'; /* "a/b" for "//a//b/" */
    if (n == 0)
        return false;
    static const char *const system[] = {"proc", "sys", "dev"};
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(system[k]);
        if (strncmp(norm, system[k], sl) == 0 && (norm[sl] == '\0' || norm[sl] == '/'))
            return false;
    }
    char padded[1030];
    (void)snprintf(padded, sizeof(padded), "/%s/", norm);
    return strstr(padded, "/./") == NULL && strstr(padded, "/../") == NULL;
}

static void check_limits(const gate_limits *l)
{
    FUZZ_CHECK(l->processes <= 1000000000ull && l->cpu <= 1000000000ull,
               "processes and cpu at most 10^9");
}

/* [flow SRC -> DST]: branch names, no flow twice nor into itself, every number in its range. */
static void check_flows(const gate_config *c)
{
    FUZZ_CHECK(c->nflows <= GATE_MAX_FLOWS, "at most 32 flows");
    for (size_t i = 0; i < c->nflows; i++) {
        const gate_flow_config *f = &c->flows[i];
        keel_status a = gate_branch_check(f->from), b = gate_branch_check(f->to);
        FUZZ_CHECK(keel_ok(a) && keel_ok(b), "a flow's branches are branch names");
        keel_status_free(a);
        keel_status_free(b);
        FUZZ_CHECK(strcmp(f->from, f->to) != 0, "no flow into itself");
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(f->from, c->flows[k].from) != 0 || strcmp(f->to, c->flows[k].to) != 0,
                       "no flow twice");
        FUZZ_CHECK(f->nremind >= 1 && f->nremind <= GATE_FLOW_REMIND_MAX, "1 to 8 reminders");
        for (size_t k = 0; k < f->nremind; k++)
            FUZZ_CHECK(f->remind_s[k] > 0, "a reminder's back-off above 0");
        FUZZ_CHECK(f->remind_max >= 1 && f->remind_max <= GATE_FLOW_PEOPLE_MAX,
                   "remind-max in [1, 32]");
        FUZZ_CHECK((f->trigger == GATE_FLOW_ON_SCHEDULE) == (f->interval_s > 0),
                   "a schedule has an interval, a commit trigger none");
        FUZZ_CHECK(f->levels != 0 && (f->levels & ~0x1fu) == 0, "a flow's levels: known bits");
    }
}

static void check_accepted(const gate_config *c)
{
    FUZZ_CHECK(c->nconfigs >= 1 && c->nconfigs <= GATE_MAX_CONFIGS, "1 to 64 configurations");
    size_t tlen = strnlen(c->target, sizeof(c->target));
    FUZZ_CHECK(tlen > 0 && tlen < sizeof(c->target), "a target of 1 to 255 bytes");
    FUZZ_CHECK(
        strspn(c->target, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+/-") ==
                tlen &&
            strstr(c->target, "..") == NULL && c->target[0] != '-',
        "a target of a branch name's characters, without '..' or a leading '-'");
    FUZZ_CHECK(c->target_set || strcmp(c->target, "main") == 0, "the default target is main");
    FUZZ_CHECK(c->slots <= 256 && c->max_batch >= 1 && c->max_batch <= 1024 && c->max_depth >= 1 &&
                   c->max_depth <= 256 && c->retries <= 10 && c->crash_limit <= 1000 &&
                   c->log_days <= 100000,
               "[gate] numbers in their ranges");
    FUZZ_CHECK(c->strategy <= GATE_STRATEGY_ADAPTIVE &&
                   strcmp(gate_strategy_name(c->strategy), "?") != 0,
               "a known strategy");
    check_limits(&c->limits);
    FUZZ_CHECK(words_sane(&c->notify) && words_sane(&c->pass_env), "notify, pass-env words");
    for (size_t i = 0; i < c->pass_env.n; i++) {
        const char *v = c->pass_env.words[i];
        FUZZ_CHECK(variable_name_ok(v), "pass-env: variable names");
        FUZZ_CHECK(!gate_env_forbidden(v, strlen(v)), "pass-env: never a forbidden variable");
    }
    bool any_required = false;
    for (size_t k = 0; k < c->nconfigs; k++) {
        const gate_matrix_config *m = &c->configs[k];
        FUZZ_CHECK(config_name_ok(m->name), "configuration names of the documented characters");
        for (size_t j = 0; j < k; j++)
            FUZZ_CHECK(strcmp(m->name, c->configs[j].name) != 0, "no configuration twice");
        FUZZ_CHECK(words_sane(&m->build) && words_sane(&m->test) && words_sane(&m->env) &&
                       words_sane(&m->writable),
                   "a configuration's words");
        FUZZ_CHECK(m->build.n + m->test.n > 0, "every configuration has a build or a test");
        for (size_t i = 0; i < m->env.n; i++) {
            const char *eq = strchr(m->env.words[i], '=');
            FUZZ_CHECK(eq != NULL && eq != m->env.words[i], "env words are NAME=value");
        }
        for (size_t i = 0; i < m->writable.n; i++)
            FUZZ_CHECK(writable_ok(m->writable.words[i]), "writable: absolute, not a system path");
        FUZZ_CHECK(m->timeout_s >= 1 && m->timeout_s <= 7 * 24 * 3600, "timeout in [1 s, 7 days]");
        FUZZ_CHECK((m->limits_set & ~0x3fu) == 0, "limits_set: GATE_LIMIT_* bits only");
        check_limits(&m->limits);
        for (size_t i = 0; i < 6; i++)
            if ((m->limits_set & (1u << i)) == 0)
                FUZZ_CHECK(limit_at(&m->limits, i) == limit_at(&c->limits, i),
                           "a limit a configuration does not set is [gate]'s");
        any_required |= m->required;
    }
    FUZZ_CHECK(any_required, "at least one configuration is required");
    check_flows(c);
}

/* ---- what a refusal says ----------------------------------------------------------- */

static void check_refused(keel_status s, const char *text, size_t len)
{
    const char *msg = keel_status_message(s);
    size_t olen = strlen(origin);
    FUZZ_CHECK(strncmp(msg, origin, olen) == 0 && msg[olen] == ':', "an error names the origin");
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    char *end = NULL;
    unsigned long line = strtoul(msg + olen + 1, &end, 10);
    bool has_line = end != msg + olen + 1 && *end == ':';
    if (has_line) {
        FUZZ_CHECK(line >= 1 && line <= lines, "the line an error names is in the text");
        unsigned long long detail = 0;
        if (keel_status_get_uint(s, "line", &detail))
            FUZZ_CHECK(detail == line, "the 'line' detail is the line of the message");
    } else {
        /* only what is about no line in particular */
        FUZZ_CHECK(strstr(msg, "no [config NAME] section") != NULL ||
                       strstr(msg, "no configuration at level 'gate' is required") != NULL ||
                       KEEL_IS(s, KEEL_E_NOMEM) || KEEL_IS(s, KEEL_E_FULL),
                   "an error about one line names that line");
    }
    /* the reason a change is rejected with (the store, `log`) keeps origin and line */
    char reason[1024], want[64];
    gate_status_line(s, reason, sizeof(reason));
    (void)snprintf(want, sizeof(want), has_line ? "%s:%lu:" : "%s:", origin, line);
    FUZZ_CHECK(strncmp(reason, want, strlen(want)) == 0,
               "the one-line reason starts with the origin and the line");
}

/* Parse text[0..len) (a copy of exactly that size, so ASan sees any read past it). */
static keel_status parse_copy(const uint8_t *data, size_t len, gate_config **out)
{
    char *text = fuzz_copy(data, len);
    gate_config *c = (gate_config *)(uintptr_t)1; /* must be reset */
    keel_status s = gate_config_parse(text, len, origin, &c);
    FUZZ_CHECK(keel_ok(s) ? c != NULL : c == NULL, "*out is the configuration, NULL on error");
    free(text);
    *out = c;
    return s;
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    gate_config *c = NULL, *again = NULL;
    keel_status s = parse_copy(data, size, &c);
    keel_status s2 = parse_copy(data, size, &again);
    FUZZ_CHECK(keel_ok(s) == keel_ok(s2), "the same text, the same verdict");
    if (!keel_ok(s)) {
        char m1[4096], m2[4096];
        (void)keel_status_format(s, m1, sizeof(m1));
        (void)keel_status_format(s2, m2, sizeof(m2));
        FUZZ_CHECK(strcmp(m1, m2) == 0, "the same text, the same error");
        check_refused(s, (const char *)data, size);
        keel_status_free(s);
        keel_status_free(s2);
        return;
    }
    FUZZ_CHECK(config_diff(c, again) == NULL, "the same text, the same configuration");
    gate_config_free(again);
    check_accepted(c);

    fuzz_str out = {NULL, 0, 0};
    write_config(&out, c);
    gate_config *back = NULL;
    s = gate_config_parse(out.p, out.len, origin, &back);
    if (!keel_ok(s)) {
        char m[4096];
        (void)keel_status_format(s, m, sizeof(m));
        fprintf(stderr, "written back:\n%s\nrefused: %s\n", out.p, m);
        FUZZ_CHECK(false, "an accepted configuration written back parses");
    }
    const char *diff = config_diff(c, back);
    if (diff != NULL)
        fprintf(stderr, "written back:\n%s\ndiffers in %s\n", out.p, diff);
    FUZZ_CHECK(diff == NULL, "an accepted configuration written back parses the same");
    gate_config_free(back);
    gate_config_free(c);
    fuzz_str_free(&out);
}

/* ---- words and sizes --------------------------------------------------------------- */

static void fuzz_words(const char *line)
{
    gate_words w = {NULL, 0};
    keel_status s = gate_words_split(line, &w);
    if (!keel_ok(s)) {
        FUZZ_CHECK(KEEL_IS(s, KEEL_E_PARSE) &&
                       strstr(keel_status_message(s), "unterminated") != NULL,
                   "a split fails only on an unterminated quote");
        FUZZ_CHECK(strpbrk(line, "'\"") != NULL, "an unterminated quote needs a quote");
        FUZZ_CHECK(w.n == 0 && w.words == NULL, "a failed split leaves no words");
        keel_status_free(s);
        return;
    }
    FUZZ_CHECK(words_sane(&w), "words: n of them, NULL after");
    if (strpbrk(line, "'\"\\") == NULL) { /* plain words: the tokens between blanks */
        size_t n = 0;
        for (const char *p = line + strspn(line, " \t"); *p != '\0'; p += strspn(p, " \t")) {
            size_t tlen = strcspn(p, " \t");
            FUZZ_CHECK(n < w.n && strlen(w.words[n]) == tlen && memcmp(w.words[n], p, tlen) == 0,
                       "plain text splits at blanks");
            n++;
            p += tlen;
        }
        FUZZ_CHECK(n == w.n, "plain text: as many words as tokens");
    }
    fuzz_str o = {NULL, 0, 0};
    fuzz_adds(&o, "");
    for (size_t i = 0; i < w.n; i++) {
        fuzz_add(&o, " ", 1);
        put_word(&o, w.words[i]);
    }
    gate_words back = {NULL, 0};
    s = gate_words_split(o.p, &back);
    FUZZ_CHECK(keel_ok(s) && words_equal(&w, &back), "escaped words split back the same");
    keel_status_free(s);
    gate_words_free(&back);
    gate_words_free(&w);
    fuzz_str_free(&o);
}

/* A size read plainly: digits, then K, M, G or T (any case) and "B" or "iB" after it. */
static bool plain_size(const char *t, unsigned long long *out)
{
    unsigned long long v = 0;
    size_t i = 0;
    for (; t[i] >= '0' && t[i] <= '9'; i++) {
        unsigned d = (unsigned)(t[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (i == 0)
        return false;
    const char *units = "KkMmGgTt", *u = t[i] != '\0' ? strchr(units, t[i]) : NULL;
    if (u != NULL) {
        unsigned shift = 10u * (unsigned)((u - units) / 2 + 1);
        if (v > (ULLONG_MAX >> shift))
            return false;
        v <<= shift;
        i++;
        if (strcmp(t + i, "B") == 0 || strcmp(t + i, "iB") == 0)
            i += strlen(t + i);
    }
    *out = v;
    return t[i] == '\0';
}

static void fuzz_size(const char *text)
{
    unsigned long long got = 0, want = 0;
    keel_status s = gate_size_parse(text, &got);
    bool plain = plain_size(text, &want);
    FUZZ_CHECK(keel_ok(s) == plain, "gate_size_parse takes exactly the sizes read plainly");
    FUZZ_CHECK(!plain || got == want, "gate_size_parse's value is the plain one");
    keel_status_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    fuzz_config(data, size);
    /* the text up to its first newline (or NUL), as one value */
    size_t n = 0;
    while (n < size && data[n] != '\n')
        n++;
    char *line = fuzz_cstring(data, n);
    fuzz_words(line);
    fuzz_size(line);
    free(line);
    return 0;
}
